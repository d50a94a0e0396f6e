//! `cgc-gateway policy check|simulate|apply`: through the library functions, and `check`
//! through the built binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use cgc_gateway::cli::policy;
use hyper::Method;
use time::macros::datetime;

use crate::helpers::{ClockExt, full_case, pki, spawn_app};

fn policies() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn demo_agreement() -> String {
    std::fs::read_to_string(policies().join("agreements/kanagawa-2026.toml")).unwrap()
}

/// A copy of the demo policy folder with the agreement replaced and extra agreement files.
fn folder(agreement: &str, extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("agreements")).unwrap();
    std::fs::copy(policies().join("registry.toml"), dir.path().join("registry.toml")).unwrap();
    std::fs::copy(policies().join("consents.toml"), dir.path().join("consents.toml")).unwrap();
    std::fs::write(dir.path().join("agreements/kanagawa-2026.toml"), agreement).unwrap();
    for (name, text) in extra {
        std::fs::write(dir.path().join("agreements").join(name), text).unwrap();
    }
    dir
}

fn problems(dir: &Path) -> Vec<String> {
    policy::check(dir)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn check_accepts_the_demo_policies() {
    let summary = policy::check(&policies()).unwrap();
    assert!(summary.contains("1 agreement version(s) and consents OK"), "{summary}");
    policy::check(&policies().join("agreements/kanagawa-2026.toml")).unwrap();
    policy::check(&policies().join("registry.toml")).unwrap();
}

#[test]
fn check_names_file_line_and_what_is_wrong() {
    let cases: Vec<(String, &str)> = vec![
        (
            demo_agreement().replacen("version = 1", "version = 1\nstatus = \"draft\"", 1),
            "unknown field `status`",
        ),
        (
            demo_agreement().replacen("operator = \"142018\"", "operator = \"142019\"", 1),
            "operator `142019` is not in the registry",
        ),
        (
            demo_agreement().replacen("\"risk_level\"", "\"risk_score\"", 1),
            "unknown field path `risk_score`",
        ),
        (
            demo_agreement().replacen("address_audiences = []", "address_audiences = [\"hq\", \"hq\"]", 1),
            "audience `hq` is listed twice",
        ),
        (
            demo_agreement().replacen("2026-04-01T00:00:00+09:00", "2026-04-31T00:00:00+09:00", 1),
            "invalid date",
        ),
        (
            // An audience given two views.
            demo_agreement().replacen("hq = [", "hq = [\"abuse\"]\nhq = [", 1),
            "duplicate key",
        ),
    ];
    for (text, expected) in cases {
        let dir = folder(&text, &[]);
        let found = problems(dir.path());
        assert_eq!(found.len(), 1, "{found:?}");
        let file = dir.path().join("agreements/kanagawa-2026.toml").display().to_string();
        assert!(found[0].starts_with(&format!("{file}:")), "{found:?}");
        assert!(found[0].contains(expected), "expected `{expected}` in {found:?}");
    }
    // An unknown field path is reported on its own line.
    let text = demo_agreement().replacen("\"risk_level\"", "\"risk_score\"", 1);
    let dir = folder(&text, &[]);
    let found = problems(dir.path());
    assert!(
        found[0].contains(&format!(":{}:", line_of(&text, "risk_score"))),
        "{found:?}"
    );
}

#[test]
fn check_refuses_predicates_it_cannot_evaluate() {
    let with = |p: &str| {
        demo_agreement().replacen(
            "operator = \"142018\"\nscope = \"all\"",
            &format!("operator = \"142018\"\nscope = \"all\"\n[[providers.predicates]]\n{p}"),
            1,
        )
    };
    for (p, expected) in [
        (
            "field = \"child.name\"\nin = [\"x\"]",
            "predicate field `child.name` cannot be tested",
        ),
        (
            "field = \"risk_level\"\nin = [\"severe\"]",
            "`severe` is not a value of `risk_level`",
        ),
        ("field = \"flags.dv\"\nin = [\"true\"]", "yes/no field"),
        ("field = \"risk_level\"\nequals = true", "not a yes/no field"),
        ("field = \"risk_level\"", "exactly one of"),
        (
            "field = \"child.address.municipality_code\"\nin = [\"141004\"]",
            "check digit",
        ),
        (
            "field = \"status\"\nin = [\"intake\"]\nnot_in = [\"closed\"]",
            "exactly one of",
        ),
    ] {
        let text = with(p);
        let found = problems(folder(&text, &[]).path());
        assert!(found.len() == 1 && found[0].contains(expected), "{p}: {found:?}");
    }
    let ok = with("field = \"risk_level\"\nin = [\"high\", \"medium\"]");
    policy::check(folder(&ok, &[]).path()).unwrap();
}

#[test]
fn check_refuses_overlapping_providers_across_agreements() {
    let other = demo_agreement()
        .replacen("id = \"kanagawa-2026\"", "id = \"kanagawa-extra\"", 1)
        .replacen(
            "effective_from = 2026-04-01T00:00:00+09:00",
            "effective_from = 2027-01-01T00:00:00+09:00",
            1,
        );
    let found = problems(folder(&demo_agreement(), &[("kanagawa-extra.toml", &other)]).path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("kanagawa-extra.toml:"), "{found:?}");
    assert!(
        found[0].contains("provider `14` is also named by `kanagawa-2026` version 1"),
        "{found:?}"
    );
    // The same agreement ending before the other starts does not overlap.
    let ended = demo_agreement().replacen(
        "effective_from = 2026-04-01T00:00:00+09:00",
        "effective_from = 2026-04-01T00:00:00+09:00\neffective_until = 2027-01-01T00:00:00+09:00",
        1,
    );
    policy::check(folder(&ended, &[("kanagawa-extra.toml", &other)]).path()).unwrap();
}

#[test]
fn check_through_the_binary_exits_non_zero_with_file_and_line() {
    let bin = env!("CARGO_BIN_EXE_cgc-gateway");
    let ok = Command::new(bin)
        .args(["policy", "check"])
        .arg(policies())
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let text = demo_agreement().replacen("\"risk_level\"", "\"risk_score\"", 1);
    let dir = folder(&text, &[]);
    let file = dir.path().join("agreements/kanagawa-2026.toml");
    let bad = Command::new(bin).args(["policy", "check"]).arg(&file).output().unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    let expected = format!(
        "{}:{}: unknown field path `risk_score`",
        file.display(),
        line_of(&text, "risk_score")
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

fn case_file(dir: &Path, case: &serde_json::Value) -> PathBuf {
    let path = dir.join("case.json");
    std::fs::write(&path, serde_json::to_vec(case).unwrap()).unwrap();
    path
}

#[test]
fn simulate_shows_fields_with_values_and_the_clause() {
    let dir = tempfile::tempdir().unwrap();
    let file = case_file(dir.path(), &full_case("yokohama-central", "SIM-1", "141046"));
    let out = policy::simulate(
        &policies(),
        &file,
        "terminal-kagacho-1",
        datetime!(2026-11-20 12:00 +09:00),
    )
    .unwrap();
    assert!(
        out.contains("clause: kanagawa-2026@v1/providers/141003/criteria/views/covering_station"),
        "{out}"
    );
    assert!(
        out.contains("child.address = {\"municipality_code\":\"141046\",\"text\":\"ADDRCANARY-SIM-1\"}"),
        "{out}"
    );
    assert!(out.contains("criterion met: injury_neglect_sexual"), "{out}");
    assert!(
        out.contains(
            "summary (lists, search, stream): child.name, child.birth_date, child.address.municipality_code, abuse,"
        ),
        "{out}"
    );
    assert!(
        !out.contains("ASSESSCANARY") && !out.contains("HOUSEHOLDCANARY"),
        "{out}"
    );
    // DV: the address is withheld and said to be.
    let mut dv = full_case("yokohama-central", "SIM-2", "141046");
    dv["flags"]["dv"] = true.into();
    let file = case_file(dir.path(), &dv);
    let out = policy::simulate(&policies(), &file, "terminal-hq-1", datetime!(2026-11-20 12:00 +09:00)).unwrap();
    assert!(!out.contains("ADDRCANARY"), "{out}");
    assert!(out.contains("child.address: withheld"), "{out}");
}

#[test]
fn simulate_says_specifically_why_nothing_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let at = datetime!(2026-11-20 12:00 +09:00);
    let run = |case: serde_json::Value, at| {
        let file = case_file(dir.path(), &case);
        policy::simulate(&policies(), &file, "terminal-kawasaki-1", at).unwrap()
    };
    let out = run(full_case("kawasaki-central", "N-1", "141313"), at);
    assert!(
        out.contains("sees nothing") && out.contains("`141305` has not opted in") && out.contains("state: asked"),
        "{out}"
    );
    let out = run(full_case("sagamihara", "N-2", "141534"), at);
    assert!(out.contains("no agreement names operator `141500`"), "{out}");
    let mut closed = full_case("kanagawa-central", "N-3", "142123");
    closed["status"] = "closed".into();
    assert!(run(closed, at).contains("the case is closed"));
    let out = run(
        full_case("kanagawa-central", "N-4", "142123"),
        datetime!(2026-03-01 00:00 +09:00),
    );
    assert!(out.contains("no version of it is in force"), "{out}");
    let mut none = full_case("yokohama-central", "N-5", "141046");
    none["abuse"] = serde_json::json!({"types": ["psychological"], "injury": false});
    let out = run(none, at);
    assert!(out.contains("meets none of the criteria"), "{out}");
    assert!(policy::simulate(&policies(), &dir.path().join("case.json"), "kagacho", at).is_err());
}

#[tokio::test]
async fn apply_submits_a_version_with_an_admin_certificate() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("v2.toml");
    std::fs::write(&file, demo_agreement().replacen("version = 1", "version = 2", 1)).unwrap();
    let gateway = format!("https://127.0.0.1:{}", app.app.addr().port());
    let answer = policy::apply(&file, &gateway, pki(), "admin-14-pref-admin", app.clock.now_at())
        .await
        .unwrap();
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(
        (answer["version"].clone(), answer["in_force"].clone()),
        (2.into(), true.into())
    );
    // Again: refused, with the gateway's reason.
    let err = policy::apply(&file, &gateway, pki(), "admin-14-pref-admin", app.clock.now_at())
        .await
        .unwrap_err();
    assert!(err.contains("409") && err.contains("latest stored version 2"), "{err}");
    // A city administrator cannot.
    std::fs::write(&file, demo_agreement().replacen("version = 1", "version = 3", 1)).unwrap();
    let err = policy::apply(&file, &gateway, pki(), "admin-141003-city-admin", app.clock.now_at())
        .await
        .unwrap_err();
    assert!(err.contains("403"), "{err}");
    let token = app.token("admin-14-pref-admin", "pref-admin");
    let doc = app
        .client("admin-14-pref-admin")
        .send(Method::GET, "/v1/admin/agreements/kanagawa-2026", Some(&token), None)
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(doc["latest_version"], 2);
}

#[test]
fn diff_through_the_binary_ends_with_the_verdict_and_exits_by_it() {
    let bin = env!("CARGO_BIN_EXE_cgc-gateway");
    let dir = folder(&demo_agreement(), &[]);
    let old = dir.path().join("agreements/kanagawa-2026.toml");
    let write = |name: &str, text: String| {
        let path = dir.path().join("agreements").join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let run = |new: &Path| {
        Command::new(bin)
            .args(["policy", "diff"])
            .arg(&old)
            .arg(new)
            .output()
            .unwrap()
    };

    let same = write("same.toml", demo_agreement().replacen("version = 1", "version = 2", 1));
    let out = run(&same);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("No gains.") && stdout.contains("No losses."),
        "{stdout}"
    );
    assert!(stdout.ends_with("Verdict: no new access.\n"), "{stdout}");

    let v2 = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/examples/kanagawa-2026-v2.toml");
    let out = run(&v2);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("provider 141500 相模原市 | criterion return_home | hq | non-DV cases | consent active |"),
        "{stdout}"
    );
    assert!(stdout.contains("— by providers[operator=141500]"), "{stdout}");
    assert!(stdout.contains("Verdict: NEW ACCESS"), "{stdout}");

    let bad = write(
        "bad.toml",
        demo_agreement().replacen("\"risk_level\"", "\"risk_score\"", 1),
    );
    let out = run(&bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.toml:") && stderr.contains("unknown field path `risk_score`"),
        "{stderr}"
    );
}
