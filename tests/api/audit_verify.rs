//! Offline verification of exported logs: a real log of more than 10,000 entries — its first
//! 4,096 written as a gateway before format v2 wrote them (v1 entries, each signed by key A),
//! the rest through `AuditLog` after an upgrade and a key rotation (v2 entries, one signed
//! checkpoint per group commit, by key B) — exported, then tampered with in every way an
//! operator or an intruder could; every change must be caught, and located: a v1 entry by its
//! index, a v2 entry by the group commit that holds it.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::sync::Arc;

use cgc_gateway::audit::entry::{SIGNING_CONTEXT, seal};
use cgc_gateway::audit::export::export;
use cgc_gateway::audit::merkle::{Tree, leaf_hash};
use cgc_gateway::audit::note::{Checkpoint, NoteSigner, sign_note};
use cgc_gateway::audit::verify::{Finding, Folder, KeyLine, parse_key_lines, verify_dir, verify_folder};
use cgc_gateway::audit::{Actor, AuditLog, CaseRef, Channel, ClauseRef, Event, FieldSetKind, LogKey};
use cgc_gateway::clock::ManualClock;
use cgc_gateway::policy::fields::{FieldPath, FieldSet};
use cgc_gateway::store::{AuditKeyRow, AuditRow, CheckpointRow, SharedStore};
use ed25519_dalek::{Signer, SigningKey};
use tokio::sync::OnceCell;

use crate::helpers::NOW;

const ORIGIN: &str = "test.cgc-gateway.invalid/audit";
const ENTRIES: u64 = 10_240;
const BATCH: usize = 512;

fn key(seed: u8) -> LogKey {
    LogKey::new(ORIGIN, SigningKey::from_bytes(&[seed; 32])).unwrap()
}

fn trusted(keys: &[&LogKey]) -> Vec<KeyLine> {
    keys.iter()
        .map(|k| KeyLine {
            verifier: k.verifier(),
            validity: None,
            activated: None,
        })
        .collect()
}

pub fn event(n: u64, salt: &str) -> Event {
    let fields = FieldSet::EMPTY
        .with(FieldPath::ChildName)
        .with(FieldPath::ChildSex)
        .with(FieldPath::Status);
    match n % 10 {
        9 => Event::Refusal {
            actor: Actor {
                principal: "urn:cgc-gateway:center:kawasaki-central".into(),
                subject: None,
            },
            request: "GET /v1/centers/{center_id}/cases/{case_id}/disclosures".into(),
            status: 404,
            reason: "not found".into(),
            count: None,
        },
        _ => Event::Disclosure {
            actor: Actor {
                principal: format!("urn:cgc-gateway:terminal:kagacho:{}", n % 3 + 1),
                subject: Some(format!("officer-{}", n % 17)),
            },
            station: "kagacho".into(),
            case: CaseRef {
                center_id: "yokohama-central".into(),
                case_id: format!("{salt}-{}", n % 997),
                version: n % 5 + 1,
            },
            fields,
            agreement: ClauseRef {
                agreement_id: "kanagawa-2026".into(),
                agreement_version: 1,
                clause: "providers.141003".into(),
                audience: "covering_station",
                criterion: None,
            },
            channel: Channel::List,
            set: FieldSetKind::Summary,
        },
    }
}

/// A v1 line as the gateway wrote them before format v2, built from the documented format:
/// `{"v":1,"index":N,"time":…,"kid":…,<event members>,"sig":…}`, signed over the context
/// string and the line without its `sig` member.
fn seal_v1(seed: u8, index: u64, event: &Event) -> String {
    let signing = SigningKey::from_bytes(&[seed; 32]);
    let event = serde_json::to_string(event).unwrap();
    let body = format!(
        "{{\"v\":1,\"index\":{index},\"time\":\"2026-04-01T09:00:00Z\",\"kid\":\"{}\",{}",
        key(seed).key_id_hex(),
        &event[1..]
    );
    let mut message = SIGNING_CONTEXT.to_vec();
    message.extend_from_slice(body.as_bytes());
    let sig = STANDARD.encode(signing.sign(&message).to_bytes());
    format!("{},\"sig\":\"{sig}\"}}", &body[..body.len() - 1])
}

/// Writes `count` v1 entries signed by key `seed` straight into the store, with a checkpoint
/// after each batch, as a gateway before v2 (and before tiles) did.
async fn fill_v1(store: &SharedStore, seed: u8, count: u64, salt: &str) {
    let log_key = key(seed);
    if store.audit_keys().await.unwrap().is_empty() {
        store
            .add_audit_key(&AuditKeyRow {
                first_index: 0,
                key_id: log_key.key_id_hex().to_owned(),
                verifier_key: log_key.verifier().to_text(),
                activated_at: Some(time::macros::datetime!(2026-04-01 09:00 UTC)),
            })
            .await
            .unwrap();
    }
    let mut tree = Tree::new();
    for line in store.audit_entries(0, u64::MAX >> 2).await.unwrap() {
        tree.push(line.leaf_hash);
    }
    let start = tree.len();
    let mut n = start;
    while n < start + count {
        let end = (n + BATCH as u64).min(start + count);
        let rows: Vec<AuditRow> = (n..end)
            .map(|i| {
                let event = event(i, salt);
                let line = seal_v1(seed, i, &event);
                AuditRow {
                    index: i,
                    leaf_hash: leaf_hash(line.as_bytes()),
                    line,
                    kind: event.kind().into(),
                    center_id: event.case().map(|(c, _)| c.to_owned()),
                    case_id: event.case().map(|(_, c)| c.to_owned()),
                }
            })
            .collect();
        store.append_audit(&rows).await.unwrap();
        for row in &rows {
            tree.push(row.leaf_hash);
        }
        let text = Checkpoint {
            origin: ORIGIN.into(),
            size: end,
            root: tree.root(),
        }
        .to_text();
        store
            .put_checkpoint(&CheckpointRow {
                tree_size: end,
                note: sign_note(&text, &[log_key.note_signer()]).unwrap(),
                published_at: time::macros::datetime!(2026-04-01 09:00 UTC),
            })
            .await
            .unwrap();
        n = end;
    }
}

async fn open_store(dir: &Path) -> SharedStore {
    cgc_gateway::store::open(&format!("sqlite://{}", dir.join("gateway.db").display()))
        .await
        .unwrap()
}

async fn open_log(store: &SharedStore, key: LogKey, clock: &Arc<ManualClock>) -> AuditLog {
    AuditLog::open(store.clone(), key, ORIGIN.into(), clock.clone())
        .await
        .unwrap()
}

/// Appends `count` events in batches, publishing a checkpoint after each batch.
async fn fill(log: &AuditLog, clock: &ManualClock, count: u64, salt: &str) {
    let start = log.size();
    let mut n = start;
    while n < start + count {
        let end = (n + BATCH as u64).min(start + count);
        let events: Vec<Event> = (n..end).map(|i| event(i, salt)).collect();
        // Many concurrent requesters, as in the gateway: the appender groups them.
        let mut waits = Vec::new();
        for chunk in events.chunks(64) {
            let (log, chunk) = (log.clone(), chunk.to_vec());
            waits.push(tokio::spawn(async move { log.record(chunk).await }));
        }
        for w in waits {
            w.await.unwrap().unwrap();
        }
        clock.advance(time::Duration::milliseconds(700));
        log.publish_checkpoint().await.unwrap();
        n = end;
    }
}

struct Exported {
    /// The full log: 10,240 entries in two key epochs.
    folder: Folder,
    /// The same log exported earlier, at 4,096 entries.
    older: Folder,
    /// A different log under the same key and origin (a fork), 10,240 entries.
    fork: Folder,
    _dirs: Vec<tempfile::TempDir>,
}

/// Built once per test binary run: the slow part is writing the logs, not verifying them.
async fn exported() -> &'static Exported {
    static CELL: OnceCell<Exported> = OnceCell::const_new();
    CELL.get_or_init(|| async {
        // A dedicated runtime: the logs' background tasks must outlive any one test's runtime.
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(build_exports())
        })
        .join()
        .unwrap()
    })
    .await
}

async fn build_exports() -> Exported {
    let clock = Arc::new(ManualClock::new(NOW));
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let store = open_store(data.path()).await;

    // Key A signs the first 4,096 entries, one by one (v1); then the gateway is upgraded and
    // restarts with key B: it builds the tiles of the old entries and goes on with v2.
    fill_v1(&store, 1, 4096, "C").await;
    export(&store, &out.path().join("older")).await.unwrap();
    let log = open_log(&store, key(2), &clock).await;
    fill(&log, &clock, ENTRIES - 4096, "C").await;
    let summary = export(&store, &out.path().join("full")).await.unwrap();
    assert_eq!(summary.entries, ENTRIES);
    assert_eq!(summary.keys, 2);

    let fork_data = tempfile::tempdir().unwrap();
    let fork_store = open_store(fork_data.path()).await;
    fill_v1(&fork_store, 1, 4096, "F").await;
    let fork_log = open_log(&fork_store, key(2), &clock).await;
    fill(&fork_log, &clock, ENTRIES - 4096, "F").await;
    export(&fork_store, &out.path().join("fork")).await.unwrap();

    Exported {
        folder: Folder::read(&out.path().join("full")).unwrap(),
        older: Folder::read(&out.path().join("older")).unwrap(),
        fork: Folder::read(&out.path().join("fork")).unwrap(),
        _dirs: vec![data, out, fork_data],
    }
}

fn keys_ab() -> Vec<KeyLine> {
    trusted(&[&key(1), &key(2)])
}

fn check(folder: &Folder) -> Result<(), Finding> {
    verify_folder(folder, &keys_ab(), None).map(|_| ())
}

#[tokio::test]
async fn an_exported_log_signed_by_two_keys_verifies_with_only_public_keys() {
    let e = exported().await;
    let summary = verify_folder(&e.folder, &keys_ab(), None).unwrap();
    assert_eq!(summary.entries, ENTRIES);
    assert!(summary.checkpoints >= 20, "{} checkpoints", summary.checkpoints);
    assert_eq!(summary.entries_by_key.values().sum::<u64>(), 4096);
    assert_eq!(summary.entries_by_key.get(key(1).key_id_hex()), Some(&4096));
    assert_eq!(summary.entries_v2, ENTRIES - 4096);

    // verifier-keys lists each key with its validity; it is public and parseable.
    let listed = parse_key_lines(std::str::from_utf8(&e.folder.verifier_keys).unwrap()).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].verifier, key(1).verifier());
    assert_eq!(listed[0].validity.map(|v| (v.from, v.to)), Some((0, Some(4096))));
    assert_eq!(listed[1].verifier, key(2).verifier());
    assert_eq!(listed[1].validity.map(|v| (v.from, v.to)), Some((4096, None)));
    // The folder's own key list, fed back as the trusted list, verifies as well.
    verify_folder(&e.folder, &listed, None).unwrap();

    // The older export verifies alone, and the newer one extends the checkpoint it ended at.
    verify_folder(&e.older, &keys_ab(), None).unwrap();
    let seen = verify_folder(&e.folder, &keys_ab(), Some(&e.older.checkpoint)).unwrap();
    assert_eq!(seen.trusted_size, Some(4096));
}

fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Flips one bit at `pos` of entry `index` and checks that verification names that entry, or
/// for a v2 entry (no signature of its own) at least the group commit that holds it.
fn flip_is_named(e: &Exported, index: u64, pos: usize, bit: u64) -> bool {
    let mut folder = e.folder.clone();
    folder.entries[index as usize][pos] ^= 1 << bit;
    match check(&folder) {
        Err(Finding::Entry { index: found, .. }) => found == index,
        Err(Finding::Entries { from, to, .. }) => {
            index >= 4096 && from <= index && index < to && to - from <= BATCH as u64
        }
        Ok(()) => false,
        Err(other) => {
            eprintln!("entry {index} byte {pos}: reported as {other}");
            false
        }
    }
}

#[tokio::test]
async fn editing_any_byte_of_any_entry_is_detected_and_located() {
    let e = exported().await;
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let (mut tried, mut missed) = (0, 0);
    // Every byte of the first entries of each format (a refusal and disclosures: every member,
    // the signature, the braces), one random bit each.
    // A v2 entry is found only by re-hashing the whole log against its checkpoints, so those
    // take every third byte.
    for index in (0..4u64).chain([4096, 4099]) {
        let stride = if index < 4096 { 1 } else { 3 };
        for pos in (0..e.folder.entries[index as usize].len()).step_by(stride) {
            tried += 1;
            if !flip_is_named(e, index, pos, next() % 8) {
                missed += 1;
            }
        }
    }
    // And random bytes of entries spread over the whole log, one per 1/48th of it, in both
    // key epochs.
    for stratum in 0..48u64 {
        let index = stratum * (ENTRIES / 48) + next() % (ENTRIES / 48);
        let pos = (next() % e.folder.entries[index as usize].len() as u64) as usize;
        tried += 1;
        if !flip_is_named(e, index, pos, next() % 8) {
            missed += 1;
        }
    }
    assert!(tried > 1_000, "{tried}");
    assert_eq!(
        missed, 0,
        "{missed} of {tried} byte edits were not caught at their entry"
    );
}

fn resign(note_text: &str, signer: &LogKey) -> Vec<u8> {
    sign_note(note_text, &[signer.note_signer()]).unwrap().into_bytes()
}

fn note_text(note: &[u8]) -> String {
    let note = std::str::from_utf8(note).unwrap();
    let end = note.rfind("\n\n").unwrap();
    note[..=end].to_owned()
}

/// (what, tampered folder, trusted checkpoint the auditor saw before, trusted keys).
type Case = (String, Folder, Option<Vec<u8>>, Vec<KeyLine>);

/// Every structural tampering of the folder, each detected: (what, tampered folder, trusted
/// checkpoint the auditor saw before, trusted keys).
#[tokio::test]
async fn deleting_reordering_truncating_inserting_forking_and_rolling_back_are_all_detected() {
    let e = exported().await;
    let full = &e.folder;
    let last = full.entries.len() - 1;
    let latest = full
        .checkpoints
        .keys()
        .map(|k| k.parse::<u64>().unwrap())
        .max()
        .unwrap();
    // Group commits fall where the scheduler puts them, so take a size both logs signed (each
    // batch of `fill` starts a commit of its own).
    let mid = full
        .checkpoints
        .keys()
        .filter(|k| e.fork.checkpoints.contains_key(*k))
        .map(|k| k.parse::<u64>().unwrap())
        .filter(|s| *s > 4096)
        .min()
        .unwrap();
    let stranger = key(9);
    let mut cases: Vec<Case> = Vec::new();
    let mut add = |what: &str, f: &dyn Fn(&mut Folder)| {
        let mut folder = full.clone();
        f(&mut folder);
        cases.push((what.to_owned(), folder, None, keys_ab()));
    };

    for index in [0, 1, 4095, 4096, 5000, last] {
        add(&format!("delete entry {index}"), &|f| {
            f.entries.remove(index);
        });
        add(&format!("duplicate entry {index}"), &|f| {
            let copy = f.entries[index].clone();
            f.entries.insert(index, copy);
        });
    }
    for (a, b) in [(0, 1), (10, 11), (4095, 4096), (7000, 9000), (last - 1, last)] {
        add(&format!("swap entries {a} and {b}"), &|f| f.entries.swap(a, b));
    }
    add("reverse the whole log", &|f| f.entries.reverse());
    for keep in [0, 1, 4096, last] {
        add(&format!("truncate to {keep} entries"), &|f| f.entries.truncate(keep));
    }
    add("cut the final newline", &|f| f.unterminated = true);
    add("append a copy of the last entry", &|f| {
        let copy = f.entries[last].clone();
        f.entries.push(copy);
    });
    add("insert an entry from the fork", &|f| {
        f.entries.insert(100, e.fork.entries[100].clone())
    });
    add("replace an entry by the fork's", &|f| {
        f.entries[6000] = e.fork.entries[6000].clone()
    });
    add("append an entry signed by the log's key for index N", &|f| {
        let sealed = seal(ENTRIES, NOW, &event(1, "X")).unwrap();
        f.entries.push(sealed.line.into_bytes());
    });
    add("insert a blank line", &|f| f.entries.insert(500, Vec::new()));
    add("entry signed with key A after the hand-over", &|f| {
        f.entries[5000] = seal_v1(1, 5000, &event(5000, "C")).into_bytes();
    });

    // Checkpoints.
    let fork_mid = e.fork.checkpoints[&mid.to_string()].clone();
    let fork_latest = e.fork.checkpoint.clone();
    add("a checkpoint from a fork (same key, other entries)", &|f| {
        f.checkpoints.insert(mid.to_string(), fork_mid.clone());
    });
    add("the latest checkpoint from a fork", &|f| {
        f.checkpoint = fork_latest.clone();
        f.checkpoints.insert(latest.to_string(), fork_latest.clone());
    });
    add("the checkpoint file from a fork", &|f| {
        f.checkpoint = fork_latest.clone()
    });
    add("checkpoint file is an older checkpoint", &|f| {
        f.checkpoint = f.checkpoints[&mid.to_string()].clone()
    });
    add("checkpoint stored under another size", &|f| {
        let c = f.checkpoints[&mid.to_string()].clone();
        f.checkpoints.insert((mid + 1).to_string(), c);
    });
    add("latest checkpoints deleted", &|f| {
        f.checkpoints.remove(&latest.to_string());
    });
    add("checkpoint re-signed by a stranger key of the same name", &|f| {
        let text = note_text(&f.checkpoints[&mid.to_string()]);
        f.checkpoints.insert(mid.to_string(), resign(&text, &stranger));
    });
    add("checkpoint signed by key A after the hand-over", &|f| {
        let text = note_text(&f.checkpoints[&mid.to_string()]);
        f.checkpoints.insert(mid.to_string(), resign(&text, &key(1)));
    });
    add("checkpoint with a rewritten root, re-signed by a stranger", &|f| {
        let text = note_text(&f.checkpoints[&mid.to_string()]).replace('A', "B");
        f.checkpoints.insert(mid.to_string(), resign(&text, &stranger));
    });
    let extra_sig = |f: &mut Folder, line: &str| {
        let mut note = f.checkpoints[&mid.to_string()].clone();
        note.extend_from_slice(line.as_bytes());
        f.checkpoints.insert(mid.to_string(), note);
    };
    let stranger_sig = {
        let text = note_text(&full.checkpoints[&mid.to_string()]);
        let other = NoteSigner::new("witness.example", SigningKey::from_bytes(&[5; 32])).unwrap();
        let note = sign_note(&text, &[&other]).unwrap();
        note.lines().last().unwrap().to_owned()
    };
    let own_sig = std::str::from_utf8(&full.checkpoints[&mid.to_string()])
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    // A line by another key is how a witness's cosignature rides on a checkpoint
    // (docs/witness.md): it changes nothing the log signed, so it is not a finding; whether a
    // witness cosigned is asked with `--witness-key`.
    {
        let mut cosigned = full.clone();
        extra_sig(&mut cosigned, &format!("{stranger_sig}\n"));
        assert!(verify_folder(&cosigned, &keys_ab(), None).is_ok());
    }
    add("the log's signature line twice", &|f| {
        extra_sig(f, &format!("{own_sig}\n"))
    });
    add("extra signature line claiming the log's key", &|f| {
        let forged = format!("{}AAAA\n", &own_sig[..own_sig.len() - 4]);
        extra_sig(f, &forged);
    });
    for (what, line) in [
        ("malformed signature line: no em dash", "- x AAAA\n"),
        ("malformed signature line: bad base64", "\u{2014} x !!!\n"),
        ("malformed signature line: too short", "\u{2014} x AAA=\n"),
        ("malformed signature line: empty", "\n"),
        ("malformed signature line: no newline", "\u{2014} x AAAAAAAA"),
        ("malformed signature line: control character", "\u{2014} x\tAAAAAAAA\n"),
    ] {
        add(what, &|f| extra_sig(f, line));
    }
    add("signature line removed", &|f| {
        let text = note_text(&f.checkpoints[&mid.to_string()]);
        f.checkpoints.insert(mid.to_string(), format!("{text}\n").into_bytes());
    });
    add("checkpoint body edited (size)", &|f| {
        let note = std::str::from_utf8(&f.checkpoints[&mid.to_string()])
            .unwrap()
            .to_owned();
        let edited = note.replacen(&format!("\n{mid}\n"), &format!("\n{}\n", mid - 1), 1);
        f.checkpoints.insert(mid.to_string(), edited.into_bytes());
    });
    add("verifier-keys widened for the retired key", &|f| {
        // The auditor's own keys carry no validity here, so the folder's is used: widening the
        // retired key's validity does not make its signatures on key B's entries valid.
        let text = std::str::from_utf8(&f.verifier_keys).unwrap().replace(" to=4096", "");
        f.verifier_keys = text.into_bytes();
        f.entries[5000] = seal_v1(1, 5000, &event(5000, "C")).into_bytes();
    });
    add("verifier-keys malformed", &|f| {
        f.verifier_keys.extend_from_slice(b"garbage\n")
    });

    // Wrong keys: a stranger's key, or only one of the two epochs' keys.
    for (what, keys) in [
        ("a wrong key", trusted(&[&stranger])),
        ("only the retired key", trusted(&[&key(1)])),
        ("only the current key", trusted(&[&key(2)])),
    ] {
        cases.push((what.into(), full.clone(), None, keys));
    }
    // Rollback: the auditor saw the latest checkpoint; then is shown the older export, or
    // the full log cut back to an older checkpoint, or a fork.
    let seen = Some(full.checkpoint.clone());
    cases.push((
        "rollback to the older export".into(),
        e.older.clone(),
        seen.clone(),
        keys_ab(),
    ));
    let mut cut = full.clone();
    cut.entries.truncate(mid as usize);
    cut.checkpoints.retain(|k, _| k.parse::<u64>().unwrap() <= mid);
    cut.checkpoint = cut.checkpoints[&mid.to_string()].clone();
    assert!(
        verify_folder(&cut, &keys_ab(), None).is_ok(),
        "a consistent prefix alone verifies"
    );
    cases.push(("rollback to an earlier checkpoint".into(), cut, seen, keys_ab()));
    cases.push((
        "a fork after a checkpoint was seen".into(),
        e.fork.clone(),
        Some(e.older.checkpoint.clone()),
        keys_ab(),
    ));
    cases.push((
        "trusted checkpoint from a fork".into(),
        full.clone(),
        Some(e.fork.checkpoints[&mid.to_string()].clone()),
        keys_ab(),
    ));

    let total = cases.len();
    let mut undetected = Vec::new();
    for (what, folder, seen, keys) in &cases {
        match verify_folder(folder, keys, seen.as_deref()) {
            Ok(_) => undetected.push(what.clone()),
            Err(finding) => eprintln!("{what}: {finding}"),
        }
    }
    assert!(total >= 50, "{total} cases");
    assert_eq!(undetected, Vec::<String>::new(), "undetected of {total}");
}

#[tokio::test]
async fn verify_dir_reads_a_folder_and_a_key_file_from_disk() {
    let e = exported().await;
    let dir = tempfile::tempdir().unwrap();
    e.folder.write(dir.path()).unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        format!(
            "# the auditor's keys\n{}\n{}\n",
            key(1).verifier().to_text(),
            key(2).verifier().to_text()
        ),
    )
    .unwrap();
    let summary = verify_dir(dir.path(), &keys, None).unwrap();
    assert_eq!(summary.entries, ENTRIES);
    assert!(summary.to_string().starts_with("OK: audit log"));
    let mut bytes = std::fs::read(dir.path().join("entries.jsonl")).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(dir.path().join("entries.jsonl"), bytes).unwrap();
    assert!(matches!(
        verify_dir(dir.path(), &keys, None),
        Err(Finding::Entry { .. } | Finding::Entries { .. })
    ));
}

#[tokio::test]
async fn a_retired_signing_key_cannot_take_over_again() {
    let clock = Arc::new(ManualClock::new(NOW));
    let data = tempfile::tempdir().unwrap();
    let store = open_store(data.path()).await;
    let log = open_log(&store, key(1), &clock).await;
    fill(&log, &clock, 3, "R").await;
    drop(log);
    let log = open_log(&store, key(2), &clock).await;
    fill(&log, &clock, 2, "R").await;
    drop(log);
    let again = AuditLog::open(store.clone(), key(1), ORIGIN.into(), clock.clone()).await;
    assert!(again.unwrap_err().to_string().contains("retired"));
    let history = store.audit_keys().await.unwrap();
    assert_eq!(history.iter().map(|k| k.first_index).collect::<Vec<_>>(), vec![0, 3]);
}
