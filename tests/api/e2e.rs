//! The screens in a real browser: Debian's Chromium driven by playwright-core against the real
//! gateway over mTLS with each screen's client certificate — the web terminal
//! (`tests/e2e/terminal.mjs`), the administrator's console and the CGC's page
//! (`tests/e2e/consoles.mjs`). Needs `/usr/bin/chromium` and `tests/e2e/node_modules`: without
//! them the tests fail under `CI` and print how to install them otherwise.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::{full_case, pki, spawn_app_with};
use cgc_gateway::identity::Principal;
use cgc_gateway::policy::ConsentState;

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e")
}

fn prerequisites() -> Result<(), String> {
    let chromium = std::env::var("E2E_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut missing = Vec::new();
    if !Path::new(&chromium).exists() {
        missing.push(format!("{chromium} (apt-get install -y chromium)"));
    }
    if !e2e_dir().join("node_modules/playwright-core").exists() || !e2e_dir().join("node_modules/axe-core").exists() {
        missing.push("tests/e2e/node_modules (cd tests/e2e && npm ci)".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join(", "))
    }
}

/// Whether the browser test `name` can run; fails under `CI` when it cannot.
fn runnable(name: &str) -> bool {
    match prerequisites() {
        Ok(()) => true,
        Err(missing) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "browser tests cannot run under CI: missing {missing}"
            );
            eprintln!("SKIPPED {name}: missing {missing}");
            false
        }
    }
}

/// The gateway as `demo` runs it: with the development token issuer (the pages' sign-in
/// buttons).
async fn spawn_demo_like() -> crate::helpers::TestApp {
    spawn_app_with(|c, _| {
        c.dev_token_issuer_key = Some(pki().join("token-issuer/issuer-key.pem"));
    })
    .await
}

#[tokio::test]
async fn the_consoles_work_in_chromium() {
    if !runnable("the_consoles_work_in_chromium") {
        return;
    }
    let app = spawn_demo_like().await;
    // Yokohama's case in 加賀町's area (the terminal opens it), and another center's.
    app.push(&full_case("yokohama-central", "E2E-C1", "141046")).await;
    app.push(&full_case("kanagawa-central", "E2E-OTHER", "142123")).await;
    // Yokohama's case the page hands over to Kawasaki's center.
    app.push(&full_case("yokohama-central", "E2E-T1", "141046")).await;
    let artifacts = e2e_dir().join("artifacts");
    let status = tokio::process::Command::new("node")
        .arg("consoles.mjs")
        .current_dir(e2e_dir())
        .env("E2E_GATEWAY", format!("https://localhost:{}", app.app.addr().port()))
        .env("E2E_PKI", pki())
        .env("E2E_ARTIFACTS", &artifacts)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(Duration::from_secs(240), status)
        .await
        .expect("the browser test did not finish within 240 s")
        .expect("node must be installed");
    assert!(
        status.success(),
        "the browser test failed (see stderr and {})",
        artifacts.display()
    );
}

#[tokio::test]
async fn the_web_terminal_works_in_chromium() {
    if !runnable("the_web_terminal_works_in_chromium") {
        return;
    }
    let app = spawn_demo_like().await;
    // The browser pushes and ages cases by its own clock (`Date.now()`): the gateway's clock
    // must be the same wall clock, as in a real deployment.
    #[allow(clippy::disallowed_methods)]
    let now = time::OffsetDateTime::now_utc();
    app.clock.set(now);
    let ctx = app.app.context().clone();
    let at = |ago: time::Duration| {
        (now - ago)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };

    // What terminal-kagacho-1 (加賀町, covering Yokohama Naka-ku 141046) starts with.
    let mut y1 = full_case("yokohama-central", "E2E-Y1", "141046");
    y1["child"]["address"]["text"] = json!("E2EADDR-E2E-Y1");
    app.push(&y1).await;
    let mut dv = full_case("yokohama-central", "E2E-DV", "141046");
    dv["child"]["name"] = json!("伊藤　陽菜");
    dv["child"]["name_kana"] = json!("イトウ　ヒナ");
    dv["child"]["address"]["text"] = json!("E2EADDR-E2E-DV");
    dv["flags"]["dv"] = json!(true);
    app.push(&dv).await;
    let mut k1 = full_case("kanagawa-central", "E2E-K1", "142123");
    k1["status"] = json!("returned_home");
    app.push(&k1).await;
    let mut s1 = full_case("yokosuka", "E2E-S1", "142018");
    s1["child"]["name"] = json!("佐々木　ゆい");
    s1["child"]["name_kana"] = json!("ササキ　ユイ");
    s1["flags"]["missing"] = json!(true);
    app.push(&s1).await;
    app.push(&full_case("kawasaki-central", "E2E-KW", "141313")).await;
    // A low-risk neglect-only case past the 48-hour rule, and a 10-week-old baby whose
    // 48 hours are running: both in 加賀町's own area.
    let mut late = full_case("yokohama-central", "E2E-LATE", "141046");
    late["child"]["name"] = json!("松本　悠真");
    late["child"]["name_kana"] = json!("マツモト　ユウマ");
    late["abuse"] = json!({ "types": ["neglect"], "injury": false });
    late["risk_level"] = json!("low");
    late["intake_at"] = json!(at(time::Duration::hours(50)));
    late["updated_at"] = json!(at(time::Duration::hours(49)));
    late.as_object_mut().unwrap().remove("safety_confirmed_at");
    app.push(&late).await;
    let mut baby = full_case("yokohama-central", "E2E-BABY", "141046");
    baby["child"]["name"] = json!("井上　陽葵");
    baby["child"]["name_kana"] = json!("イノウエ　ヒマリ");
    baby["child"]["birth_date"] = json!((now - time::Duration::days(75)).date().to_string());
    baby["abuse"] = json!({ "types": ["neglect", "psychological"], "injury": false });
    baby["risk_level"] = json!("medium");
    baby["status"] = json!("intake");
    baby["intake_at"] = json!(at(time::Duration::hours(3)));
    baby["updated_at"] = json!(at(time::Duration::hours(2)));
    baby.as_object_mut().unwrap().remove("safety_confirmed_at");
    app.push(&baby).await;
    let expired = cgc_gateway::cli::dev_token(
        pki(),
        "terminal-kagacho-1",
        "K-1234",
        time::Duration::minutes(30),
        now - time::Duration::hours(2),
    )
    .unwrap();

    let artifacts = e2e_dir().join("artifacts");
    let mut child = tokio::process::Command::new("node")
        .arg("terminal.mjs")
        .current_dir(e2e_dir())
        .env("E2E_GATEWAY", format!("https://localhost:{}", app.app.addr().port()))
        .env("E2E_PKI", pki())
        .env("E2E_ARTIFACTS", &artifacts)
        .env("E2E_ADMIN_TOKEN", app.token("admin-141003-city-admin", "city-admin"))
        .env("E2E_PREF_ADMIN_TOKEN", app.token("admin-14-pref-admin", "pref-admin"))
        .env("E2E_EXPIRED_TOKEN", expired)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node must be installed");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut broken = None;
    let run = async {
        // The script asks the harness for what only the gateway's owner can do: withdraw a
        // consent when the admin API is absent, break the audit log's storage from outside (as
        // a full disk would) and repair it, and cut a terminal's connections (a network drop).
        while let Some(line) = lines.next_line().await.unwrap() {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("WITHDRAW"), Some(operator)) => {
                    let mut world = (*ctx.policy()).clone();
                    world
                        .consents
                        .set("kanagawa-2026", operator, ConsentState::Withdrawn.into());
                    ctx.set_policy(world);
                }
                (Some("BREAK"), None) => broken = Some(app.break_audit_log().await),
                (Some("REPAIR"), None) => {
                    if let Some(log) = broken.take() {
                        log.repair().await;
                    }
                }
                (Some("CUT"), Some(station)) => {
                    ctx.connections.cut_where(
                        |p| matches!(&p.principal, Principal::Terminal { station_id, .. } if station_id == station),
                    );
                }
                _ => continue,
            }
            stdin.write_all(b"OK\n").await.unwrap();
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser test did not finish within 240 s");
    assert!(
        status.success(),
        "the browser test failed (see stderr and {})",
        artifacts.display()
    );
}
