//! The log as C2SP tlog-tiles over real mTLS: tiles and entry bundles byte for byte as the spec
//! lays them out (checked against a tree computed here independently, with plain SHA-256), the
//! root rebuilt from served tiles equal to the signed checkpoint's; receipts that verify offline
//! and fail under every mutation; and a restart that reads only the right edge of the tree.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cgc_gateway::audit::note::{Checkpoint, NoteVerifier, open_note};
use cgc_gateway::audit::receipt::verify_receipt;
use cgc_gateway::audit::verify::{KeyLine, parse_key_lines};
use cgc_gateway::audit::{AuditLog, Event, LogKey, Receipt};
use cgc_gateway::clock::ManualClock;
use cgc_gateway::store::*;
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::audit_verify::event;
use crate::helpers::{NOW, TestApp, pki, spawn_app};

const AUDITOR: &str = "auditor-kanagawa-audit";
const CENTER: &str = "center-yokosuka";

type H = [u8; 32];

fn leaf(line: &[u8]) -> H {
    Sha256::new().chain_update([0]).chain_update(line).finalize().into()
}

fn node(l: &H, r: &H) -> H {
    Sha256::new()
        .chain_update([1])
        .chain_update(l)
        .chain_update(r)
        .finalize()
        .into()
}

/// RFC 9162 §2.1.1 MTH, straight from its definition.
fn mth(leaves: &[H]) -> H {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// `x001/x234/067` for 1234067, written out here rather than taken from the crate.
fn index_path(n: u64) -> String {
    let s = format!("{n:03}");
    let digits = s.len().div_ceil(3) * 3;
    let s = format!("{n:0digits$}");
    let parts: Vec<&str> = (0..s.len()).step_by(3).map(|i| &s[i..i + 3]).collect();
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| if i < last { format!("x{p}") } else { p.to_string() })
        .collect::<Vec<_>>()
        .join("/")
}

fn trusted() -> Vec<KeyLine> {
    parse_key_lines(&std::fs::read_to_string(pki().join("audit/verifier-key.txt")).unwrap()).unwrap()
}

async fn get(app: &TestApp, client: &str, path: &str) -> cgc_gateway::client::Reply {
    app.client(client).get(path, None).await.unwrap()
}

async fn record(log: &AuditLog, from: u64, count: u64, salt: &str) -> Vec<Receipt> {
    let mut out = Vec::new();
    let mut n = from;
    while n < from + count {
        let end = (n + 512).min(from + count);
        let events: Vec<Event> = (n..end).map(|i| event(i, salt)).collect();
        out.extend(log.record(events).await.unwrap());
        n = end;
    }
    out
}

#[tokio::test]
async fn served_tiles_and_bundles_are_tlog_tiles_and_rebuild_the_signed_root() {
    let app = spawn_app().await;
    let log = app.app.context().audit.clone();
    let already = log.size();
    record(&log, already, 600, "T").await;
    if log.size() % 256 == 0 {
        record(&log, log.size(), 1, "T").await;
    }

    let reply = get(&app, AUDITOR, "/v1/audit/checkpoint").await;
    let note = reply.text();
    let verifier = NoteVerifier::parse(
        std::fs::read_to_string(pki().join("audit/verifier-key.txt"))
            .unwrap()
            .trim(),
    )
    .unwrap();
    let checkpoint = Checkpoint::parse(open_note(&note, &[verifier]).unwrap().text).unwrap();
    let size = checkpoint.size;
    assert!(size > 512 && !size.is_multiple_of(256) && size < 65_536, "{size}");
    let lines: Vec<String> = app.audit_lines().await;
    assert_eq!(lines.len() as u64, size);
    let leaves: Vec<H> = lines.iter().map(|l| leaf(l.as_bytes())).collect();

    // Level 0: full tiles, then the partial one; their hashes are the leaves, and every
    // bundle's entries hash to its tile.
    let full = size / 256;
    let width = size % 256;
    let mut from_tiles: Vec<H> = Vec::new();
    for n in 0..=full {
        let suffix = if n < full { String::new() } else { format!(".p/{width}") };
        let path = format!("/v1/audit/tile/0/{}{suffix}", index_path(n));
        let reply = get(&app, AUDITOR, &path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.headers["content-type"], "application/octet-stream");
        let start = n as usize * 256;
        let count = if n < full { 256 } else { width as usize };
        let expected: Vec<u8> = leaves[start..start + count].concat();
        assert_eq!(reply.body.as_ref(), expected.as_slice(), "{path}");
        from_tiles.extend(reply.body.chunks(32).map(|c| <H>::try_from(c).unwrap()));

        let path = format!("/v1/audit/tile/entries/{}{suffix}", index_path(n));
        let bundle = get(&app, AUDITOR, &path).await;
        assert_eq!(bundle.status, 200, "{path}");
        let mut expected = Vec::new();
        for line in &lines[start..start + count] {
            expected.extend_from_slice(&(line.len() as u16).to_be_bytes());
            expected.extend_from_slice(line.as_bytes());
        }
        assert_eq!(bundle.body.as_ref(), expected.as_slice(), "{path}");
    }
    // The root rebuilt from the served tiles is the one the checkpoint signs.
    assert_eq!(mth(&from_tiles), checkpoint.root);

    // Level 1: a partial tile whose hashes are the roots of the full level-0 tiles.
    let reply = get(&app, CENTER, &format!("/v1/audit/tile/1/000.p/{full}")).await;
    assert_eq!(reply.status, 200);
    let expected: Vec<u8> = (0..full as usize)
        .flat_map(|n| mth(&leaves[n * 256..(n + 1) * 256]))
        .collect();
    assert_eq!(reply.body.as_ref(), expected.as_slice());
    // A narrower partial tile is its prefix (what a client of an older checkpoint asks for).
    let reply = get(&app, AUDITOR, "/v1/audit/tile/0/000.p/7").await;
    assert_eq!(reply.body.as_ref(), leaves[..7].concat().as_slice());

    // What the tree does not have, and paths that are not canonical, are 404.
    for path in [
        format!("/v1/audit/tile/0/{}", index_path(full)),
        format!("/v1/audit/tile/0/{}.p/{}", index_path(full), width + 1),
        format!("/v1/audit/tile/0/{}.p/1", index_path(full + 1)),
        "/v1/audit/tile/1/000".to_owned(),
        "/v1/audit/tile/2/000.p/1".to_owned(),
        "/v1/audit/tile/0/0".to_owned(),
        "/v1/audit/tile/0/x000/000".to_owned(),
        "/v1/audit/tile/0/000.p/0".to_owned(),
        "/v1/audit/tile/00/000".to_owned(),
        format!("/v1/audit/tile/entries/{}.p/{}", index_path(full), width + 1),
    ] {
        assert_eq!(get(&app, AUDITOR, &path).await.status, 404, "{path}");
    }
    // A center reads hash tiles, which are only hashes, but not entry bundles.
    assert_eq!(get(&app, CENTER, "/v1/audit/tile/0/000").await.status, 200);
    assert_eq!(get(&app, CENTER, "/v1/audit/tile/entries/000").await.status, 403);
    assert_eq!(
        get(&app, "terminal-kagacho-1", "/v1/audit/tile/0/000").await.status,
        403
    );
}

fn mutate_json(receipt: &serde_json::Value, f: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut r = receipt.clone();
    f(&mut r);
    serde_json::to_vec(&r).unwrap()
}

#[tokio::test]
async fn receipts_verify_offline_and_every_mutation_fails() {
    let app = spawn_app().await;
    let log = app.app.context().audit.clone();
    let start = log.size();
    let receipts = record(&log, start, 300, "R").await;
    let keys = trusted();
    for r in &receipts {
        let json = serde_json::to_vec(r).unwrap();
        let verified = verify_receipt(&json, &keys).unwrap();
        assert_eq!(verified.index, r.audit_index);
        assert!(verified.tree_size > r.audit_index);
    }
    let receipt = serde_json::to_value(&receipts[137]).unwrap();
    assert_eq!(
        receipt.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["checkpoint", "entry", "inclusion_proof", "index"]
    );
    let mut mutants: Vec<(String, Vec<u8>)> = Vec::new();
    for delta in [1i64, -1, 256] {
        mutants.push((
            format!("index {delta:+}"),
            mutate_json(&receipt, |r| r["index"] = (r["index"].as_i64().unwrap() + delta).into()),
        ));
    }
    let entry = receipt["entry"].as_str().unwrap().to_owned();
    for pos in 0..entry.len() {
        let mut bytes = entry.clone().into_bytes();
        bytes[pos] ^= 0x01;
        if let Ok(changed) = String::from_utf8(bytes) {
            mutants.push((
                format!("entry byte {pos}"),
                mutate_json(&receipt, |r| r["entry"] = changed.into()),
            ));
        }
    }
    let note = receipt["checkpoint"].as_str().unwrap().to_owned();
    for pos in 0..note.len() {
        let mut bytes = note.clone().into_bytes();
        bytes[pos] ^= 0x01;
        if let Ok(changed) = String::from_utf8(bytes) {
            mutants.push((
                format!("checkpoint byte {pos}"),
                mutate_json(&receipt, |r| r["checkpoint"] = changed.into()),
            ));
        }
    }
    let proof: Vec<String> = serde_json::from_value(receipt["inclusion_proof"].clone()).unwrap();
    assert!(proof.len() >= 8, "{}", proof.len());
    for i in 0..proof.len() {
        let mut raw = STANDARD.decode(&proof[i]).unwrap();
        raw[i % 32] ^= 0x80;
        let mut changed = proof.clone();
        changed[i] = STANDARD.encode(raw);
        mutants.push((
            format!("proof hash {i}"),
            mutate_json(&receipt, |r| r["inclusion_proof"] = changed.into()),
        ));
        let mut shorter = proof.clone();
        shorter.remove(i);
        mutants.push((
            format!("proof without hash {i}"),
            mutate_json(&receipt, |r| r["inclusion_proof"] = shorter.into()),
        ));
    }
    let mut longer = proof.clone();
    longer.push(proof[0].clone());
    mutants.push((
        "proof with an extra hash".into(),
        mutate_json(&receipt, |r| r["inclusion_proof"] = longer.into()),
    ));
    let mut swapped = proof.clone();
    swapped.swap(0, 1);
    mutants.push((
        "proof reordered".into(),
        mutate_json(&receipt, |r| r["inclusion_proof"] = swapped.into()),
    ));
    let other = serde_json::to_value(&receipts[138]).unwrap();
    mutants.push((
        "another entry's proof".into(),
        mutate_json(&receipt, |r| r["inclusion_proof"] = other["inclusion_proof"].clone()),
    ));
    mutants.push((
        "another entry".into(),
        mutate_json(&receipt, |r| r["entry"] = other["entry"].clone()),
    ));
    mutants.push((
        "a clause the entry does not record".into(),
        mutate_json(&receipt, |r| r["clause"] = "providers.999999".into()),
    ));
    let mut undetected = Vec::new();
    for (what, json) in &mutants {
        if verify_receipt(json, &keys).is_ok() {
            undetected.push(what.clone());
        }
    }
    assert!(mutants.len() > 500, "{}", mutants.len());
    assert_eq!(undetected, Vec::<String>::new());
    // Another log's key verifies nothing.
    let stranger = LogKey::new(cgc_gateway::config::DEV_AUDIT_ORIGIN, SigningKey::from_bytes(&[9; 32])).unwrap();
    let stranger = vec![KeyLine {
        verifier: stranger.verifier(),
        validity: None,
        activated: None,
    }];
    assert!(verify_receipt(&serde_json::to_vec(&receipt).unwrap(), &stranger).is_err());

    // The receipt of a case in the terminal API verifies with the command line, as a court
    // would check it; a changed one does not.
    app.push(&crate::helpers::full_case("yokohama-central", "RC-1", "141046"))
        .await;
    let detail = app.detail("terminal-kagacho-1", "yokohama-central:RC-1").await;
    let view = detail.json().unwrap()["receipt"].clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("receipt.json");
    std::fs::write(&file, serde_json::to_vec(&view).unwrap()).unwrap();
    let key = pki().join("audit/verifier-key.txt");
    let run = |file: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_cgc-gateway"))
            .args(["audit", "verify-receipt"])
            .arg(file)
            .arg("--key")
            .arg(&key)
            .output()
            .unwrap()
    };
    let ok = run(&file);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("OK: entry"));
    let forged = mutate_json(&view, |r| {
        r["entry"] = r["entry"].as_str().unwrap().replace("officer-1", "officer-2").into()
    });
    std::fs::write(&file, forged).unwrap();
    let bad = run(&file);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("verification FAILED"));
}

/// Counts what a store is asked for, to show what opening the log reads.
struct Counting {
    inner: SharedStore,
    entries_read: AtomicU64,
    tiles_read: AtomicU64,
}

#[async_trait]
impl Store for Counting {
    async fn put_case(&self, case: NewCase<'_>) -> Result<PutOutcome, StoreError> {
        self.inner.put_case(case).await
    }
    async fn current_cases(&self) -> Result<Vec<StoredCase>, StoreError> {
        self.inner.current_cases().await
    }
    async fn append_audit(&self, rows: &[AuditRow]) -> Result<(), StoreError> {
        self.inner.append_audit(rows).await
    }
    async fn append_audit_commit(&self, commit: &AuditCommit) -> Result<Option<i64>, StoreError> {
        self.inner.append_audit_commit(commit).await
    }
    async fn audit_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.tiles_read.fetch_add(1, Ordering::Relaxed);
        self.inner.audit_tile(level, index).await
    }
    async fn audit_leaf_hashes(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        self.entries_read.fetch_add(u64::MAX / 2, Ordering::Relaxed);
        self.inner.audit_leaf_hashes().await
    }
    async fn audit_entries(&self, start: u64, end: u64) -> Result<Vec<AuditRow>, StoreError> {
        let rows = self.inner.audit_entries(start, end).await?;
        self.entries_read.fetch_add(rows.len() as u64, Ordering::Relaxed);
        Ok(rows)
    }
    async fn audit_entries_for_case(
        &self,
        center_id: &str,
        case_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.inner
            .audit_entries_for_case(center_id, case_id, after, limit)
            .await
    }
    async fn put_checkpoint(&self, row: &CheckpointRow) -> Result<(), StoreError> {
        self.inner.put_checkpoint(row).await
    }
    async fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        self.inner.checkpoints().await
    }
    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError> {
        self.inner.latest_checkpoint().await
    }
    async fn agreement_versions(&self) -> Result<Vec<AgreementVersionRow>, StoreError> {
        self.inner.agreement_versions().await
    }
    async fn put_agreement_version(
        &self,
        row: &AgreementVersionRow,
        steps: &[ConsentStepRow],
    ) -> Result<bool, StoreError> {
        self.inner.put_agreement_version(row, steps).await
    }
    async fn consent_steps(&self) -> Result<Vec<ConsentStepRow>, StoreError> {
        self.inner.consent_steps().await
    }
    async fn append_consent_step(&self, row: &ConsentStepRow) -> Result<i64, StoreError> {
        self.inner.append_consent_step(row).await
    }
    async fn seed_policy(
        &self,
        source: &str,
        at: time::OffsetDateTime,
        versions: &[AgreementVersionRow],
        steps: &[ConsentStepRow],
    ) -> Result<bool, StoreError> {
        self.inner.seed_policy(source, at, versions, steps).await
    }
    async fn audit_keys(&self) -> Result<Vec<AuditKeyRow>, StoreError> {
        self.inner.audit_keys().await
    }
    async fn add_audit_key(&self, row: &AuditKeyRow) -> Result<(), StoreError> {
        self.inner.add_audit_key(row).await
    }
    async fn audit_len(&self) -> Result<u64, StoreError> {
        self.inner.audit_len().await
    }
    async fn add_revocation(&self, row: &RevocationRow) -> Result<bool, StoreError> {
        self.inner.add_revocation(row).await
    }
    async fn revocations(&self) -> Result<Vec<RevocationRow>, StoreError> {
        self.inner.revocations().await
    }
    async fn current_case(&self, center_id: &str, case_id: &str) -> Result<Option<StoredCase>, StoreError> {
        self.inner.current_case(center_id, case_id).await
    }
    async fn center_cases(
        &self,
        center_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredCase>, StoreError> {
        self.inner.center_cases(center_id, before, limit).await
    }
    async fn add_cosignature(&self, tree_size: u64, line: &str) -> Result<(), StoreError> {
        self.inner.add_cosignature(tree_size, line).await
    }
    async fn cosignatures(&self, tree_size: u64) -> Result<Vec<String>, StoreError> {
        self.inner.cosignatures(tree_size).await
    }
    async fn all_cosignatures(&self) -> Result<Vec<(u64, String)>, StoreError> {
        self.inner.all_cosignatures().await
    }
    async fn changes_after(&self, after: i64, limit: u32) -> Result<Vec<ChangeRow>, StoreError> {
        self.inner.changes_after(after, limit).await
    }
    async fn append_center_event(&self, row: &CenterEventRow) -> Result<i64, StoreError> {
        self.inner.append_center_event(row).await
    }
    async fn center_events_after(
        &self,
        center_id: &str,
        kind: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<CenterEventRow>, StoreError> {
        self.inner.center_events_after(center_id, kind, after, limit).await
    }
    async fn latest_center_event(&self) -> Result<i64, StoreError> {
        self.inner.latest_center_event().await
    }
    async fn request_transfer(&self, row: &TransferRow) -> Result<TransferRequested, StoreError> {
        self.inner.request_transfer(row).await
    }
    async fn transfer(&self, id: i64) -> Result<Option<TransferRow>, StoreError> {
        self.inner.transfer(id).await
    }
    async fn pending_transfers(&self, center_id: &str) -> Result<Vec<TransferRow>, StoreError> {
        self.inner.pending_transfers(center_id).await
    }
    async fn decide_transfer(
        &self,
        id: i64,
        accept: Option<NewCase<'_>>,
        at: time::OffsetDateTime,
    ) -> Result<TransferDecided, StoreError> {
        self.inner.decide_transfer(id, accept, at).await
    }
    async fn moved_cases(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.inner.moved_cases().await
    }
    async fn latest_change(&self) -> Result<i64, StoreError> {
        self.inner.latest_change().await
    }
    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }
    async fn wait_for_change(&self, timeout: std::time::Duration) {
        self.inner.wait_for_change(timeout).await
    }
}

#[tokio::test]
async fn a_restart_reads_only_the_right_edge_of_a_large_log() {
    const ORIGIN: &str = "test.cgc-gateway.invalid/audit";
    const SIZE: u64 = 66_000;
    let key = || LogKey::new(ORIGIN, SigningKey::from_bytes(&[4; 32])).unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let dir = tempfile::tempdir().unwrap();
    let store = open(&format!("sqlite://{}", dir.path().join("gateway.db").display()))
        .await
        .unwrap();
    let log = AuditLog::open(store.clone(), key(), ORIGIN.into(), clock.clone())
        .await
        .unwrap();
    record(&log, 0, SIZE, "L").await;
    let root = log.root_at(SIZE).await.unwrap();
    drop(log);

    let counting = Arc::new(Counting {
        inner: store,
        entries_read: AtomicU64::new(0),
        tiles_read: AtomicU64::new(0),
    });
    let started = Instant::now();
    let log = AuditLog::open(counting.clone(), key(), ORIGIN.into(), clock.clone())
        .await
        .unwrap();
    let took = started.elapsed();
    // Three tile levels, one partial tile each; no entry, no leaf hash.
    assert_eq!(counting.entries_read.load(Ordering::Relaxed), 0);
    assert!(
        counting.tiles_read.load(Ordering::Relaxed) <= 3,
        "{:?}",
        counting.tiles_read
    );
    assert_eq!(log.size(), SIZE);
    assert_eq!(log.latest_checkpoint().unwrap().tree_size, SIZE);
    eprintln!("reopening a log of {SIZE} entries took {took:?}");

    // It goes on where it stopped: proofs over old and new entries, from tiles.
    let more = record(&log, SIZE, 10, "L").await;
    let keys = vec![KeyLine {
        verifier: key().verifier(),
        validity: None,
        activated: None,
    }];
    for r in &more {
        verify_receipt(&serde_json::to_vec(r).unwrap(), &keys).unwrap();
    }
    assert_eq!(log.root_at(SIZE).await.unwrap(), root);
    let proof = log.consistency_proof(SIZE, SIZE + 10).await.unwrap();
    cgc_gateway::audit::merkle::verify_consistency(
        SIZE,
        SIZE + 10,
        &proof,
        &root,
        &log.root_at(SIZE + 10).await.unwrap(),
    )
    .unwrap();
    let old = log.inclusion_proof(12_345, SIZE + 10).await.unwrap();
    let entry = counting.inner.audit_entries(12_345, 12_346).await.unwrap().remove(0);
    cgc_gateway::audit::merkle::verify_inclusion(
        &leaf(entry.line.as_bytes()),
        12_345,
        SIZE + 10,
        &old,
        &log.root_at(SIZE + 10).await.unwrap(),
    )
    .unwrap();
}

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for item in std::fs::read_dir(&d).unwrap() {
            let path = item.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Level-0 tiles (full and partial) of a tree of `size` leaves.
fn level0_tiles(size: u64) -> u64 {
    size.div_ceil(256)
}

#[tokio::test]
async fn an_auditors_mirror_fetches_only_new_tiles_and_refuses_another_history() {
    use cgc_gateway::audit::mirror::{MirrorError, mirror};
    let app = spawn_app().await;
    let log = app.app.context().audit.clone();
    record(&log, log.size(), 600, "M").await;
    let keys = trusted();
    let out = tempfile::tempdir().unwrap();
    let first = mirror(&app.client(AUDITOR), out.path(), &keys).await.unwrap();
    let size1 = first.size;
    assert_eq!(first.previous, None);
    assert_eq!(first.bundles_fetched as u64, level0_tiles(size1));
    // The folder is a tlog-tiles log: its files are the gateway's, byte for byte.
    let tile = std::fs::read(out.path().join("tile/0/001")).unwrap();
    assert_eq!(
        get(&app, AUDITOR, "/v1/audit/tile/0/001").await.body.as_ref(),
        tile.as_slice()
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("checkpoint")).unwrap(),
        get(&app, AUDITOR, "/v1/audit/checkpoint").await.text()
    );

    record(&log, log.size(), 300, "M").await;
    let second = mirror(&app.client(AUDITOR), out.path(), &keys).await.unwrap();
    assert_eq!(second.previous, Some(size1));
    // Only the tiles that were partial or absent: the full ones are not fetched again.
    assert_eq!(
        second.bundles_fetched as u64,
        level0_tiles(second.size) - size1 / 256,
        "{second:?}"
    );
    let third = mirror(&app.client(AUDITOR), out.path(), &keys).await.unwrap();
    assert_eq!((third.tiles_fetched, third.bundles_fetched), (0, 0));
    // Old partial versions are dropped once a tile grows.
    let files = files_under(out.path());
    assert!(!files.iter().any(|f| f.contains(".incoming")), "{files:?}");

    // Another gateway under the same key and origin with another history (a fork, or a
    // rewritten log): refused, and the mirror keeps what it had.
    let other = spawn_app().await;
    let other_log = other.app.context().audit.clone();
    record(&other_log, other_log.size(), 1500, "X").await;
    let before = files_under(out.path());
    let seen = std::fs::read(out.path().join("checkpoint")).unwrap();
    let err = mirror(&other.client(AUDITOR), out.path(), &keys).await.unwrap_err();
    assert!(
        matches!(err, MirrorError::Invalid(_) | MirrorError::Rollback(_)),
        "{err}"
    );
    assert_eq!(std::fs::read(out.path().join("checkpoint")).unwrap(), seen);
    assert_eq!(files_under(out.path()), before);
    // A gateway whose log is shorter than what was seen: a rollback.
    let short = spawn_app().await;
    assert!(matches!(
        mirror(&short.client(AUDITOR), out.path(), &keys).await,
        Err(MirrorError::Rollback(_))
    ));

    // The command line does the same (run without blocking the runtime that serves it).
    let bin = env!("CARGO_BIN_EXE_cgc-gateway");
    let run = tokio::process::Command::new(bin)
        .args(["audit", "mirror", "--from"])
        .arg(format!("https://localhost:{}", app.app.addr().port()))
        .arg("--out")
        .arg(out.path())
        .arg("--key")
        .arg(pki().join("audit/verifier-key.txt"))
        .arg("--certs")
        .arg(pki())
        .output()
        .await
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stdout).starts_with("OK: mirror"));
}
