//! The audit log of disclosures: one entry per disclosed case, written before the response,
//! with a receipt that verifies offline, no case contents, and no disclosure at all when the
//! log cannot be written.

use cgc_gateway::audit::entry::verify_line;
use cgc_gateway::audit::receipt::verify_receipt;
use cgc_gateway::audit::verify::parse_key_lines;
use ed25519_dalek::pkcs8::DecodePrivateKey;

use crate::helpers::{full_case, listed, pki, spawn_app};

fn log_keys() -> Vec<(String, ed25519_dalek::VerifyingKey)> {
    let pem = std::fs::read_to_string(pki().join("audit/log-key.pem")).unwrap();
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).unwrap();
    let log = cgc_gateway::audit::LogKey::new(cgc_gateway::config::DEV_AUDIT_ORIGIN, key.clone()).unwrap();
    vec![(log.key_id_hex().to_owned(), key.verifying_key())]
}

fn disclosures(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "disclosure")
        .collect()
}

#[tokio::test]
async fn every_disclosed_case_is_exactly_one_signed_entry_without_case_contents() {
    let app = spawn_app().await;
    for (center, id, muni) in [
        ("yokohama-central", "AU-1", "141046"),
        ("kanagawa-central", "AU-2", "142123"),
        ("yokosuka", "AU-3", "142018"),
        ("kawasaki-central", "AU-4", "141313"),
    ] {
        app.push(&full_case(center, id, muni)).await;
    }
    let before = disclosures(&app.audit_lines().await).len();
    let list = app.list("terminal-hq-1").await;
    let refs = listed(&list);
    assert_eq!(refs.len(), 3);
    let detail = app.detail("terminal-kagacho-1", "yokohama-central:AU-1").await;
    assert_eq!(detail.status, 200);

    let lines = app.audit_lines().await;
    let trusted = parse_key_lines(&std::fs::read_to_string(pki().join("audit/verifier-key.txt")).unwrap()).unwrap();
    let new = &disclosures(&lines)[before..];
    assert_eq!(new.len(), 4, "3 listed + 1 detail");
    // Each listed case's receipt points at its own entry.
    for case in list.json().unwrap()["cases"].as_array().unwrap() {
        let index = case["receipt"]["audit_index"].as_u64().unwrap() as usize;
        let entry: serde_json::Value = serde_json::from_str(&lines[index]).unwrap();
        assert_eq!(entry["kind"], "disclosure");
        assert_eq!(entry["case"]["case_id"], case["case_id"]);
        assert_eq!(entry["actor"]["principal"], "urn:cgc-gateway:terminal:hq:1");
        assert_eq!(entry["actor"]["subject"], "officer-1");
        assert_eq!(entry["channel"], "list");
        assert_eq!(entry["agreement"]["clause"], case["receipt"]["clause"]);
        // The receipt carries the entry byte for byte and verifies offline with the public key.
        assert_eq!(case["receipt"]["entry"].as_str().unwrap(), lines[index]);
        let receipt = serde_json::to_vec(&case["receipt"]).unwrap();
        let verified = verify_receipt(&receipt, &trusted).unwrap();
        assert_eq!(verified.index, index as u64);
        let fields: Vec<&str> = entry["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        // A list discloses the summary: triage fields, not the household the full view has.
        assert_eq!(entry["set"], "summary");
        assert!(fields.contains(&"risk_level") && !fields.contains(&"household"));
        assert!(!fields.contains(&"assessment"));
    }
    // Every entry is well formed at its index, and no entry carries case contents.
    let keys = log_keys();
    for (i, line) in lines.iter().enumerate() {
        verify_line(line, i as u64, &keys).unwrap();
        for canary in [
            "山田",
            "ヤマダ",
            "ADDRCANARY",
            "HOUSEHOLDCANARY",
            "ASSESSCANARY",
            "佐藤",
            "045-000",
        ] {
            assert!(!line.contains(canary), "entry {i} carries case contents: {canary}");
        }
    }
}

#[tokio::test]
async fn when_the_log_cannot_be_written_nothing_is_disclosed() {
    let app = spawn_app().await;
    app.push(&full_case("yokohama-central", "FC-1", "141046")).await;
    assert_eq!(listed(&app.list("terminal-kagacho-1").await).len(), 1);

    // Break the log's storage from outside, as a full disk or a failing volume would.
    let broken = app.break_audit_log().await;
    let size_before = app.app.context().audit.size();

    for (path, what) in [
        ("/v1/terminal/cases", "list"),
        ("/v1/terminal/cases/yokohama-central:FC-1", "detail"),
    ] {
        let token = app.token("terminal-kagacho-1", "officer-1");
        let reply = app.client("terminal-kagacho-1").get(path, Some(&token)).await.unwrap();
        assert_eq!(reply.status, 503, "{what}");
        assert_eq!(reply.headers["content-type"], "application/problem+json");
        let body = reply.text();
        for canary in ["山田", "ヤマダ", "FC-1", "ADDRCANARY", "female", "2019-05-04"] {
            assert!(
                !body.contains(canary),
                "{what} leaked {canary} while the log was down: {body}"
            );
        }
    }
    assert_eq!(
        app.app.context().audit.size(),
        size_before,
        "no index was consumed by a failed write"
    );

    // Repaired: disclosures resume, and the tree has no gap.
    broken.repair().await;
    assert_eq!(listed(&app.list("terminal-kagacho-1").await).len(), 1);
    let lines = app.audit_lines().await;
    let keys = log_keys();
    for (i, line) in lines.iter().enumerate() {
        verify_line(line, i as u64, &keys).unwrap();
    }
}
