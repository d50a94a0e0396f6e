//! The web terminal in a real browser: Debian's Chromium driven by playwright-core
//! (`tests/e2e/terminal.mjs`) against the real gateway over mTLS with the terminal's client
//! certificate. Needs `/usr/bin/chromium` and `tests/e2e/node_modules`: without them the test
//! fails under `CI` and prints how to install them otherwise.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::{full_case, pki, spawn_app_with};
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
    if !e2e_dir().join("node_modules/playwright-core").exists() {
        missing.push("tests/e2e/node_modules (cd tests/e2e && npm ci)".into());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join(", "))
    }
}

#[tokio::test]
async fn the_web_terminal_works_in_chromium() {
    if let Err(missing) = prerequisites() {
        assert!(
            std::env::var_os("CI").is_none(),
            "browser tests cannot run under CI: missing {missing}"
        );
        eprintln!("SKIPPED the_web_terminal_works_in_chromium: missing {missing}");
        return;
    }
    let app = spawn_app_with(|c, _| {
        c.dev_token_issuer_key = Some(pki().join("token-issuer/issuer-key.pem"));
    })
    .await;
    // The browser pushes and ages cases by its own clock (`Date.now()`): the gateway's clock
    // must be the same wall clock, as in a real deployment.
    #[allow(clippy::disallowed_methods)]
    app.clock.set(time::OffsetDateTime::now_utc());
    let ctx = app.app.context().clone();

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

    let artifacts = e2e_dir().join("artifacts");
    let mut child = tokio::process::Command::new("node")
        .arg("terminal.mjs")
        .current_dir(e2e_dir())
        .env("E2E_GATEWAY", format!("https://localhost:{}", app.app.addr().port()))
        .env("E2E_PKI", pki())
        .env("E2E_ARTIFACTS", &artifacts)
        .env("E2E_ADMIN_TOKEN", app.token("admin-141003-city-admin", "city-admin"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node must be installed");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let run = async {
        // The script asks the harness for what only the gateway's owner can do in this build.
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(operator) = line.strip_prefix("WITHDRAW ") {
                let mut world = (*ctx.policy()).clone();
                world
                    .consents
                    .set("kanagawa-2026", operator, ConsentState::Withdrawn.into());
                ctx.set_policy(world);
                stdin.write_all(b"OK\n").await.unwrap();
            }
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser test did not finish within 120 s");
    assert!(
        status.success(),
        "the browser test failed (see stderr and {})",
        artifacts.display()
    );
}
