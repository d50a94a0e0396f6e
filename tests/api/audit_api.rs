//! The audit log's read API over real mTLS, "who saw my case", the append-only guarantee at the
//! SQLite level, and `audit export` / `audit verify` as a user runs them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cgc_gateway::audit::merkle::{Hash, leaf_hash, verify_consistency, verify_inclusion};
use cgc_gateway::audit::note::{Checkpoint, NoteVerifier, open_note};
use serde_json::Value;

use crate::helpers::{TestApp, full_case, pki, spawn_app};

const AUDITOR: &str = "auditor-kanagawa-audit";

fn verifier() -> NoteVerifier {
    NoteVerifier::parse(
        std::fs::read_to_string(pki().join("audit/verifier-key.txt"))
            .unwrap()
            .trim(),
    )
    .unwrap()
}

fn hashes(reply: &Value) -> Vec<Hash> {
    reply["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| STANDARD.decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect()
}

/// Some disclosures: three terminals list the Yokohama case, one opens it.
async fn with_disclosures() -> TestApp {
    let app = spawn_app().await;
    app.push(&full_case("yokohama-central", "WS-1", "141046")).await;
    app.push(&full_case("kanagawa-central", "WS-2", "142123")).await;
    for terminal in ["terminal-kagacho-1", "terminal-hq-1", "terminal-tsurumi-1"] {
        assert_eq!(app.list(terminal).await.status, 200);
    }
    assert_eq!(
        app.detail("terminal-kagacho-1", "yokohama-central:WS-1").await.status,
        200
    );
    app.app.context().audit.publish_checkpoint().await.unwrap();
    app
}

async fn get(app: &TestApp, client: &str, path: &str) -> cgc_gateway::client::Reply {
    app.client(client).get(path, None).await.unwrap()
}

#[tokio::test]
async fn an_auditor_fetches_checkpoint_entries_and_proofs_that_verify() {
    let app = with_disclosures().await;
    let reply = get(&app, AUDITOR, "/v1/audit/checkpoint").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "text/plain; charset=utf-8");
    let note = reply.text();
    let opened = open_note(&note, &[verifier()]).unwrap();
    let checkpoint = Checkpoint::parse(opened.text).unwrap();
    assert_eq!(checkpoint.origin, cgc_gateway::config::DEV_AUDIT_ORIGIN);
    let size = checkpoint.size;
    assert!(size >= 4, "{size}");

    // Entries page by page (page of 2), exact lines: their hashes rebuild the signed root.
    let mut lines = Vec::new();
    while (lines.len() as u64) < size {
        let reply = get(
            &app,
            AUDITOR,
            &format!(
                "/v1/audit/entries?start={}&end={}",
                lines.len(),
                (lines.len() + 2).min(size as usize)
            ),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let page = reply.json().unwrap();
        assert_eq!(page["start"], lines.len() as u64);
        for l in page["entries"].as_array().unwrap() {
            lines.push(l.as_str().unwrap().to_owned());
        }
    }
    let tree = cgc_gateway::audit::merkle::Tree::from_leaf_hashes(lines.iter().map(|l| leaf_hash(l.as_bytes())));
    assert_eq!(tree.root_at(size).unwrap(), checkpoint.root);

    for index in 0..size {
        let reply = get(
            &app,
            AUDITOR,
            &format!("/v1/audit/proof/inclusion?index={index}&size={size}"),
        )
        .await;
        assert_eq!(reply.status, 200);
        let proof = hashes(&reply.json().unwrap());
        verify_inclusion(
            &leaf_hash(lines[index as usize].as_bytes()),
            index,
            size,
            &proof,
            &checkpoint.root,
        )
        .unwrap();
    }
    for old in 1..size {
        let reply = get(
            &app,
            AUDITOR,
            &format!("/v1/audit/proof/consistency?old={old}&new={size}"),
        )
        .await;
        assert_eq!(reply.status, 200);
        let proof = hashes(&reply.json().unwrap());
        verify_consistency(old, size, &proof, &tree.root_at(old).unwrap(), &checkpoint.root).unwrap();
    }
}

#[tokio::test]
async fn bad_audit_parameters_are_problems_naming_the_parameter() {
    let app = with_disclosures().await;
    let size = app.app.context().audit.size();
    for (path, param) in [
        ("/v1/audit/entries".to_owned(), "start"),
        ("/v1/audit/entries?start=-1".to_owned(), "start"),
        ("/v1/audit/entries?start=01".to_owned(), "start"),
        (format!("/v1/audit/entries?start={}", size + 1), "start"),
        ("/v1/audit/entries?start=3&end=2".to_owned(), "end"),
        ("/v1/audit/entries?start=0&limit=2".to_owned(), "limit"),
        ("/v1/audit/proof/inclusion?size=2".to_owned(), "index"),
        ("/v1/audit/proof/inclusion?index=2&size=2".to_owned(), "index"),
        ("/v1/audit/proof/inclusion?index=x&size=2".to_owned(), "index"),
        (format!("/v1/audit/proof/inclusion?index=0&size={}", size + 1), "size"),
        ("/v1/audit/proof/consistency?old=0&new=2".to_owned(), "old"),
        ("/v1/audit/proof/consistency?old=3&new=2".to_owned(), "old"),
        (format!("/v1/audit/proof/consistency?old=1&new={}", size + 5), "new"),
        ("/v1/audit/proof/consistency?old=1&old=1&new=2".to_owned(), "old"),
    ] {
        let reply = get(&app, AUDITOR, &path).await;
        assert_eq!(reply.status, 400, "{path}");
        assert_eq!(reply.headers["content-type"], "application/problem+json", "{path}");
        let problem = reply.json().unwrap();
        assert_eq!(
            problem["errors"][0]["pointer"],
            format!("?{param}"),
            "{path}: {problem}"
        );
    }
    // A page is capped, never refused for being large.
    let reply = get(&app, AUDITOR, "/v1/audit/entries?start=0&end=99999").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json().unwrap()["entries"].as_array().unwrap().len() as u64, size);
}

#[tokio::test]
async fn centers_read_checkpoints_and_proofs_but_not_entries_and_terminals_nothing() {
    let app = with_disclosures().await;
    let center = "center-yokohama-central";
    assert_eq!(get(&app, center, "/v1/audit/checkpoint").await.status, 200);
    assert_eq!(
        get(&app, center, "/v1/audit/proof/inclusion?index=0&size=1")
            .await
            .status,
        200
    );
    assert_eq!(
        get(&app, center, "/v1/audit/proof/consistency?old=1&new=2")
            .await
            .status,
        200
    );
    let before = app.app.context().audit.size();
    let reply = get(&app, center, "/v1/audit/entries?start=0").await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    let token = app.token("terminal-kagacho-1", "officer-1");
    for path in [
        "/v1/audit/checkpoint",
        "/v1/audit/entries?start=0",
        "/v1/audit/proof/inclusion?index=0&size=1",
    ] {
        let reply = app.client("terminal-kagacho-1").get(path, Some(&token)).await.unwrap();
        assert_eq!(reply.status, 403, "{path}");
    }
    // Every refusal is an entry: 1 center + 3 terminal.
    let refusals = wait_for_entries(&app, before + 4).await;
    let refused: Vec<&Value> = refusals.iter().filter(|e| e["kind"] == "refusal").collect();
    assert_eq!(refused.len(), 4);
    assert_eq!(
        refused[0]["actor"]["principal"],
        "urn:cgc-gateway:center:yokohama-central"
    );
    assert_eq!(refused[0]["request"], "GET /v1/audit/entries");
    assert_eq!(refused[0]["status"], 403);
}

/// Refusals are recorded in the background; waits until the log reaches `size`.
async fn wait_for_entries(app: &TestApp, size: u64) -> Vec<Value> {
    for _ in 0..100 {
        if app.app.context().audit.size() >= size {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.audit_lines()
        .await
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn the_owning_center_sees_who_saw_its_case_and_other_centers_get_404() {
    let app = with_disclosures().await;
    let path = "/v1/centers/yokohama-central/cases/WS-1/disclosures";
    let reply = get(&app, "center-yokohama-central", path).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json().unwrap();
    let list = body["disclosures"].as_array().unwrap();
    // kagacho (covering station) list + detail, hq list, tsurumi (prefecture station) list.
    assert_eq!(list.len(), 4, "{body}");
    let lines = app.audit_lines().await;
    let keys = {
        let v = verifier();
        vec![(format!("{:08x}", v.key_id()), *v.verifying_key())]
    };
    for d in list {
        let index = d["audit_index"].as_u64().unwrap();
        assert_eq!(d["line"], lines[index as usize]);
        cgc_gateway::audit::entry::verify_line(d["line"].as_str().unwrap(), index, &keys).unwrap();
        assert!(d["time"].is_string() && d["officer"] == "officer-1");
        assert!(d["agreement"]["clause"].is_string());
    }
    let kagacho: Vec<&Value> = list.iter().filter(|d| d["station"] == "kagacho").collect();
    assert_eq!(kagacho.len(), 2);
    assert_eq!(kagacho[0]["terminal"], "urn:cgc-gateway:terminal:kagacho:1");
    let tsurumi = list.iter().find(|d| d["station"] == "tsurumi").unwrap();
    let fields: Vec<&str> = tsurumi["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"child.name") && !fields.contains(&"child.address"),
        "{fields:?}"
    );
    // An auditor sees the same.
    assert_eq!(
        get(&app, AUDITOR, path).await.json().unwrap()["disclosures"],
        body["disclosures"]
    );

    // Paged: 1 at a time, following next_after.
    let mut seen = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let q = after.map_or(String::from("?limit=1"), |a| format!("?limit=1&after={a}"));
        let page = get(&app, "center-yokohama-central", &format!("{path}{q}"))
            .await
            .json()
            .unwrap();
        for d in page["disclosures"].as_array().unwrap() {
            seen.push(d["audit_index"].as_u64().unwrap());
        }
        match page["next_after"].as_u64() {
            Some(a) => after = Some(a),
            None => break,
        }
    }
    let all: Vec<u64> = list.iter().map(|d| d["audit_index"].as_u64().unwrap()).collect();
    assert_eq!(seen, all);

    // Another center: exactly the answer for a case that does not exist.
    let other = get(&app, "center-kawasaki-central", path).await;
    let unknown = get(
        &app,
        "center-yokohama-central",
        "/v1/centers/yokohama-central/cases/NOPE/disclosures",
    )
    .await;
    assert_eq!(other.status, 404);
    assert_eq!(unknown.status, 404);
    assert_eq!(other.body, unknown.body);
    assert_eq!(other.headers["content-type"], unknown.headers["content-type"]);
    // Even a case id that exists at the caller's own center is not a way in.
    assert_eq!(
        get(
            &app,
            "center-kanagawa-central",
            "/v1/centers/yokohama-central/cases/WS-2/disclosures"
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn update_and_delete_on_the_audit_tables_fail_in_sqlite() {
    let app = with_disclosures().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", app.db_path().display()))
        .await
        .unwrap();
    for sql in [
        "UPDATE audit_entries SET line = 'x' WHERE idx = 0",
        "DELETE FROM audit_entries WHERE idx = 0",
        "DELETE FROM audit_entries",
        "UPDATE audit_checkpoints SET note = 'x'",
        "DELETE FROM audit_checkpoints",
        "UPDATE audit_keys SET first_index = 5",
        "DELETE FROM audit_keys",
        "DELETE FROM audit_tiles",
    ] {
        let err = sqlx::query(sql).execute(&pool).await.unwrap_err().to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    // A tile only grows: rewriting or shortening one fails.
    for sql in [
        "UPDATE audit_tiles SET hashes = zeroblob(length(hashes))",
        "UPDATE audit_tiles SET hashes = substr(hashes, 1, 32) WHERE length(hashes) > 32",
        "UPDATE audit_tiles SET idx = idx + 1000",
    ] {
        let err = sqlx::query(sql).execute(&pool).await.unwrap_err().to_string();
        assert!(err.contains("only grow"), "{sql}: {err}");
    }
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_entries")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n as u64, app.app.context().audit.size());
}

#[tokio::test]
async fn audit_export_and_verify_commands_pass_and_then_name_a_tampered_entry() {
    let app = with_disclosures().await;
    let out = tempfile::tempdir().unwrap();
    let folder = out.path().join("export");
    let bin = env!("CARGO_BIN_EXE_cgc-gateway");
    let run = |args: &[&str]| std::process::Command::new(bin).args(args).output().unwrap();
    let export = run(&[
        "audit",
        "export",
        "--data",
        app.data.path().to_str().unwrap(),
        "--out",
        folder.to_str().unwrap(),
    ]);
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    for file in ["entries.jsonl", "checkpoint", "verifier-keys"] {
        assert!(folder.join(file).is_file(), "{file}");
    }
    let key = pki().join("audit/verifier-key.txt");
    let verify = run(&[
        "audit",
        "verify",
        folder.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(stdout.starts_with("OK: audit log"), "{stdout}");

    // Exporting into a folder that is not empty is refused.
    assert!(
        !run(&[
            "audit",
            "export",
            "--data",
            app.data.path().to_str().unwrap(),
            "--out",
            folder.to_str().unwrap()
        ])
        .status
        .success()
    );

    let entries = std::fs::read_to_string(folder.join("entries.jsonl")).unwrap();
    std::fs::write(
        folder.join("entries.jsonl"),
        entries.replacen("officer-1", "officer-2", 1),
    )
    .unwrap();
    let verify = run(&[
        "audit",
        "verify",
        folder.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    assert!(!verify.status.success());
    let stderr = String::from_utf8_lossy(&verify.stderr);
    // The entry has no signature of its own (v2): the finding names the group commit (the
    // entries between two checkpoints) that holds it.
    let first = entries.lines().position(|l| l.contains("officer-1")).unwrap();
    let range = stderr
        .split("entries ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap();
    let (from, to) = range.split_once("..").unwrap();
    assert!(
        from.parse::<usize>().unwrap() <= first && first < to.parse::<usize>().unwrap(),
        "{stderr}"
    );
}
