//! One suite of store tests, written once against `SharedStore` and run against every backend:
//! `store_contract::sqlite::*` on a SQLite file, `store_contract::postgres::*` on a fresh
//! database of a throwaway PostgreSQL cluster (see `pg.rs`).

use std::collections::BTreeMap;

use cgc_gateway::store::{
    self, AgreementVersionRow, AuditCommit, AuditKeyRow, AuditRow, AuditTileRow, CenterEventRow, CheckpointRow,
    ConsentStepRow, NewCase, PutOutcome, RevocationRow, SharedStore, TransferDecided, TransferRequested, TransferRow,
};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::pg;

const AT: OffsetDateTime = datetime!(2026-11-20 12:00:00 +09:00);

/// A store on one backend, and what it needs kept alive.
pub struct Backend {
    url: String,
    store: SharedStore,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
        let store = store::open(&url).await.unwrap();
        Self {
            url,
            store,
            _dir: Some(dir),
        }
    }

    async fn postgres() -> Option<Self> {
        let url = pg::database().await?;
        let store = store::open(&url).await.unwrap();
        Some(Self { url, store, _dir: None })
    }

    /// The same database opened again, as a restart (or another instance) would.
    async fn reopen(&self) -> SharedStore {
        store::open(&self.url).await.unwrap()
    }
}

/// Runs each named check against both backends, as `sqlite::<name>` and `postgres::<name>`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let backend = super::Backend::sqlite().await;
                    super::$name(&backend).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(backend) = super::Backend::postgres().await else { return };
                    super::$name(&backend).await;
                }
            )*
        }
    };
}

contract!(
    put_case_follows_the_version_rule,
    seq_orders_accepted_updates,
    racing_writers_of_one_version_store_it_exactly_once,
    racing_versions_keep_the_newest_and_seq_follows_the_version,
    acknowledged_writes_are_there_after_reopening,
    audit_entries_append_and_read_by_range_and_case,
    audit_appends_only_continue_the_log,
    a_large_group_commit_is_stored_whole,
    checkpoints_keep_the_first_note_per_size,
    agreement_versions_and_consent_steps_round_trip,
    policy_is_seeded_once,
    revocations_are_recorded_once,
    audit_keys_keep_their_order_and_refuse_a_repeated_key,
    every_change_terminals_may_see_is_in_the_change_log_in_commit_order,
    a_centers_cases_page_newest_first_and_only_its_own,
    center_events_are_kept_in_order_per_center,
    center_events_of_an_audit_commit_are_stored_with_it_or_not_at_all,
    an_accepted_transfer_moves_the_case_and_a_declined_one_does_not,
);

fn case<'a>(case_id: &'a str, version: u64, body: &'a str) -> NewCase<'a> {
    NewCase {
        center_id: "yokosuka",
        case_id,
        version,
        body,
        received_at: AT,
    }
}

fn seq_of(outcome: &PutOutcome) -> i64 {
    match outcome {
        PutOutcome::Stored { seq, .. } => *seq,
        other => panic!("not stored: {other:?}"),
    }
}

async fn current(store: &SharedStore) -> BTreeMap<String, (u64, String, i64)> {
    store
        .current_cases()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.case_id, (c.version, c.body, c.seq)))
        .collect()
}

async fn put_case_follows_the_version_rule(b: &Backend) {
    let s = &b.store;
    let first = s.put_case(case("C-1", 1, "{\"v\":1}")).await.unwrap();
    let seq1 = seq_of(&first);
    assert_eq!(
        s.put_case(case("C-1", 1, "{\"v\":1}")).await.unwrap(),
        PutOutcome::Identical
    );
    assert_eq!(
        s.put_case(case("C-1", 1, "{\"v\":\"other\"}")).await.unwrap(),
        PutOutcome::Conflict { stored_version: 1 }
    );
    let seq2 = seq_of(&s.put_case(case("C-1", 3, "{\"v\":3}")).await.unwrap());
    assert!(seq2 > seq1);
    // An older version: identical to what was stored at that version, or a conflict naming the
    // current one; never stored, never a gap filled.
    assert_eq!(
        s.put_case(case("C-1", 1, "{\"v\":1}")).await.unwrap(),
        PutOutcome::Identical
    );
    assert_eq!(
        s.put_case(case("C-1", 2, "{\"v\":2}")).await.unwrap(),
        PutOutcome::Conflict { stored_version: 3 }
    );
    assert_eq!(
        s.put_case(case("C-1", 3, "{\"v\":\"x\"}")).await.unwrap(),
        PutOutcome::Conflict { stored_version: 3 }
    );
    // The same case id at another center is another case.
    let other = NewCase {
        center_id: "odawara",
        ..case("C-1", 1, "{\"v\":\"odawara\"}")
    };
    assert!(matches!(s.put_case(other).await.unwrap(), PutOutcome::Stored { .. }));
    let cases = s.current_cases().await.unwrap();
    assert_eq!(cases.len(), 2);
    let c1 = cases.iter().find(|c| c.center_id == "yokosuka").unwrap();
    assert_eq!((c1.version, c1.body.as_str(), c1.seq), (3, "{\"v\":3}", seq2));
}

async fn a_centers_cases_page_newest_first_and_only_its_own(b: &Backend) {
    let s = &b.store;
    for id in ["A", "B", "C"] {
        s.put_case(case(id, 1, id)).await.unwrap();
    }
    let other = NewCase {
        center_id: "odawara",
        ..case("D", 1, "odawara")
    };
    s.put_case(other).await.unwrap();
    // A new version moves A to the front: the order is the latest stored version's.
    s.put_case(case("A", 2, "A2")).await.unwrap();
    let ids = |cases: &[cgc_gateway::store::StoredCase]| cases.iter().map(|c| c.case_id.clone()).collect::<Vec<_>>();
    let first = s.center_cases("yokosuka", None, 2).await.unwrap();
    assert_eq!(ids(&first), ["A", "C"]);
    assert_eq!((first[0].version, first[0].body.as_str()), (2, "A2"));
    let rest = s.center_cases("yokosuka", Some(first[1].seq), 2).await.unwrap();
    assert_eq!(ids(&rest), ["B"]);
    assert!(
        s.center_cases("yokosuka", Some(rest[0].seq), 2)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(ids(&s.center_cases("odawara", None, 10).await.unwrap()), ["D"]);
    assert!(s.center_cases("kawasaki-central", None, 10).await.unwrap().is_empty());
}

async fn seq_orders_accepted_updates(b: &Backend) {
    let s = &b.store;
    let a1 = seq_of(&s.put_case(case("A", 1, "a1")).await.unwrap());
    let b1 = seq_of(&s.put_case(case("B", 1, "b1")).await.unwrap());
    let a2 = seq_of(&s.put_case(case("A", 2, "a2")).await.unwrap());
    assert!(a1 < b1 && b1 < a2, "{a1} {b1} {a2}");
    let order: Vec<String> = s
        .current_cases()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.case_id)
        .collect();
    assert_eq!(order, ["B", "A"]);
}

/// Many writers push the same version of one case at once, through two stores opened on the
/// same database (two gateway instances), half with one body and half with another: exactly
/// one is stored, the writers of its body are told it is identical, the others get a conflict;
/// the stored body is the winner's.
async fn racing_writers_of_one_version_store_it_exactly_once(b: &Backend) {
    let stores = [b.store.clone(), b.reopen().await];
    for (case_id, version) in [("NEW", 1), ("OLD", 2)] {
        if version > 1 {
            b.store.put_case(case(case_id, 1, "v1")).await.unwrap();
        }
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = stores[(i / 2) % 2].clone();
                let body = if i % 2 == 0 { "even" } else { "odd" };
                tokio::spawn(async move { (body, store.put_case(case(case_id, version, body)).await.unwrap()) })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let winners: Vec<_> = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, PutOutcome::Stored { .. }))
            .collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        let winner = winners[0].0;
        for (body, outcome) in &outcomes {
            match outcome {
                PutOutcome::Stored { .. } => {}
                PutOutcome::Identical => assert_eq!(*body, winner),
                PutOutcome::Conflict { stored_version } => {
                    assert_ne!(*body, winner);
                    assert_eq!(*stored_version, version);
                }
                PutOutcome::Transferred { .. } => panic!("never transferred"),
            }
        }
        let now = current(&b.store).await;
        assert_eq!(now[case_id].0, version);
        assert_eq!(now[case_id].1, winner);
    }
}

/// Writers of different versions of one case at once: the newest always ends up current, and
/// a later stored version always has a larger `seq` (what the in-memory index relies on).
async fn racing_versions_keep_the_newest_and_seq_follows_the_version(b: &Backend) {
    for round in 0..4 {
        let case_id = format!("RACE-{round}");
        // Newest first: a newer version that starts before an older one is stored must still
        // end with the larger seq.
        let tasks: Vec<_> = (1..=24u64)
            .rev()
            .map(|v| {
                let store = b.store.clone();
                let case_id = case_id.clone();
                tokio::spawn(async move {
                    let body = format!("v{v}");
                    (v, store.put_case(case(&case_id, v, &body)).await.unwrap())
                })
            })
            .collect();
        let mut stored = Vec::new();
        for t in tasks {
            let (v, outcome) = t.await.unwrap();
            match outcome {
                PutOutcome::Stored { seq, .. } => stored.push((v, seq)),
                PutOutcome::Conflict { stored_version } => assert!(stored_version > v),
                PutOutcome::Identical => panic!("version {v} was never pushed before"),
                PutOutcome::Transferred { .. } => panic!("never transferred"),
            }
        }
        stored.sort();
        assert!(
            stored.windows(2).all(|w| w[0].1 < w[1].1),
            "seq not increasing with version: {stored:?}"
        );
        assert_eq!(stored.last().unwrap().0, 24);
        assert_eq!(current(&b.store).await[&case_id].0, 24);
    }
}

async fn acknowledged_writes_are_there_after_reopening(b: &Backend) {
    let seq = seq_of(&b.store.put_case(case("DURABLE", 1, "kept")).await.unwrap());
    b.store.append_audit(&audit_rows(0, 2)).await.unwrap();
    let again = b.reopen().await;
    assert_eq!(current(&again).await["DURABLE"], (1, "kept".to_owned(), seq));
    assert_eq!(again.audit_len().await.unwrap(), 2);
    // The schema is not migrated twice, and the reopened store writes.
    assert!(matches!(
        again.put_case(case("DURABLE", 2, "next")).await.unwrap(),
        PutOutcome::Stored { .. }
    ));
}

fn audit_rows(start: u64, end: u64) -> Vec<AuditRow> {
    (start..end)
        .map(|i| AuditRow {
            index: i,
            line: format!("{{\"index\":{i}}}"),
            leaf_hash: [u8::try_from(i % 256).unwrap(); 32],
            kind: if i % 2 == 0 { "disclosure" } else { "ingest" }.into(),
            center_id: (i % 3 != 2).then(|| "yokosuka".into()),
            case_id: (i % 3 != 2).then(|| if i % 3 == 0 { "C-A" } else { "C-B" }.into()),
        })
        .collect()
}

async fn audit_entries_append_and_read_by_range_and_case(b: &Backend) {
    let s = &b.store;
    assert_eq!(s.audit_len().await.unwrap(), 0);
    assert!(s.audit_leaf_hashes().await.unwrap().is_empty());
    s.append_audit(&audit_rows(0, 3)).await.unwrap();
    s.append_audit(&audit_rows(3, 10)).await.unwrap();
    assert_eq!(s.audit_len().await.unwrap(), 10);
    let hashes = s.audit_leaf_hashes().await.unwrap();
    assert_eq!(hashes.len(), 10);
    assert_eq!(hashes[7], [7u8; 32]);

    let range = s.audit_entries(2, 5).await.unwrap();
    assert_eq!(range.iter().map(|r| r.index).collect::<Vec<_>>(), [2, 3, 4]);
    let expected = &audit_rows(2, 3)[0];
    assert_eq!(
        (
            &range[0].line,
            range[0].leaf_hash,
            &range[0].kind,
            &range[0].center_id,
            &range[0].case_id
        ),
        (
            &expected.line,
            expected.leaf_hash,
            &expected.kind,
            &expected.center_id,
            &expected.case_id
        )
    );
    assert!(range[0].center_id.is_none());
    assert!(s.audit_entries(10, 20).await.unwrap().is_empty());

    // C-A is at 0, 3, 6, 9.
    let for_case = s.audit_entries_for_case("yokosuka", "C-A", 3, 2).await.unwrap();
    assert_eq!(for_case.iter().map(|r| r.index).collect::<Vec<_>>(), [3, 6]);
    let rest = s.audit_entries_for_case("yokosuka", "C-A", 7, 100).await.unwrap();
    assert_eq!(rest.iter().map(|r| r.index).collect::<Vec<_>>(), [9]);
    assert!(
        s.audit_entries_for_case("odawara", "C-A", 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Indices are unique and continuous: an index already stored is refused, and so is a batch
/// that would leave a gap; a refused batch stores none of its rows, and the log goes on.
async fn audit_appends_only_continue_the_log(b: &Backend) {
    let s = &b.store;
    s.append_audit(&audit_rows(0, 4)).await.unwrap();
    let repeat = s.append_audit(&audit_rows(3, 6)).await.unwrap_err();
    assert!(!repeat.is_unavailable(), "{repeat}");
    let gap = s.append_audit(&audit_rows(5, 7)).await.unwrap_err();
    assert!(!gap.is_unavailable(), "{gap}");
    assert_eq!(s.audit_len().await.unwrap(), 4);
    s.append_audit(&audit_rows(4, 6)).await.unwrap();
    assert_eq!(s.audit_leaf_hashes().await.unwrap().len(), 6);
}

/// One group commit of many entries (more than one multi-row statement's worth) and several
/// tiles is stored whole, in order, with its checkpoint; a later commit grows a tile.
async fn a_large_group_commit_is_stored_whole(b: &Backend) {
    let s = &b.store;
    s.append_audit(&audit_rows(0, 1)).await.unwrap();
    // 203 entries: 64 + 64 + 64 + 8 + 2 + 1 rows per statement.
    let rows = audit_rows(1, 204);
    let tiles: Vec<AuditTileRow> = (0..5u8)
        .map(|i| AuditTileRow {
            level: i % 2,
            index: u64::from(i),
            hashes: vec![i; 32 * (usize::from(i) + 1)],
        })
        .collect();
    let commit = AuditCommit {
        entries: rows.clone(),
        tiles: tiles.clone(),
        checkpoint: Some(CheckpointRow {
            tree_size: 204,
            note: "two hundred and four".into(),
            published_at: time::macros::datetime!(2026-11-20 12:00 +09:00),
        }),
        center_events: Vec::new(),
    };
    assert_eq!(s.append_audit_commit(&commit).await.unwrap(), None);
    assert_eq!(s.audit_len().await.unwrap(), 204);
    let stored = s.audit_entries(0, 204).await.unwrap();
    assert_eq!(stored.len(), 204);
    for (got, want) in stored[1..].iter().zip(&rows) {
        assert_eq!(
            (
                got.index,
                &got.line,
                got.leaf_hash,
                &got.kind,
                &got.center_id,
                &got.case_id
            ),
            (
                want.index,
                &want.line,
                want.leaf_hash,
                &want.kind,
                &want.center_id,
                &want.case_id
            )
        );
    }
    for t in &tiles {
        assert_eq!(
            s.audit_tile(t.level, t.index).await.unwrap().as_deref(),
            Some(t.hashes.as_slice())
        );
    }
    assert_eq!(
        s.latest_checkpoint().await.unwrap().unwrap().note,
        "two hundred and four"
    );

    // The next commit extends tile 0/4 by one hash and leaves a shorter copy of tile 1/3
    // unapplied.
    let mut longer = tiles[4].hashes.clone();
    longer.extend([9; 32]);
    let grown = AuditTileRow {
        level: 0,
        index: 4,
        hashes: longer,
    };
    let shorter = AuditTileRow {
        level: 1,
        index: 3,
        hashes: vec![7; 32],
    };
    s.append_audit_commit(&AuditCommit {
        entries: audit_rows(204, 205),
        tiles: vec![grown.clone(), shorter],
        checkpoint: None,
        center_events: Vec::new(),
    })
    .await
    .unwrap();
    assert_eq!(s.audit_tile(0, 4).await.unwrap(), Some(grown.hashes));
    assert_eq!(s.audit_tile(1, 3).await.unwrap(), Some(tiles[3].hashes.clone()));
    assert_eq!(s.audit_len().await.unwrap(), 205);
}

async fn checkpoints_keep_the_first_note_per_size(b: &Backend) {
    let s = &b.store;
    assert!(s.latest_checkpoint().await.unwrap().is_none());
    for (size, note) in [(5, "five"), (3, "three"), (5, "five again")] {
        s.put_checkpoint(&CheckpointRow {
            tree_size: size,
            note: note.into(),
            published_at: time::macros::datetime!(2026-11-20 12:00 +09:00),
        })
        .await
        .unwrap();
    }
    let all = s.checkpoints().await.unwrap();
    assert_eq!(
        all.iter().map(|c| (c.tree_size, c.note.as_str())).collect::<Vec<_>>(),
        [(3, "three"), (5, "five")]
    );
    let latest = s.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!((latest.tree_size, latest.note.as_str()), (5, "five"));
    assert_eq!(latest.published_at, time::macros::datetime!(2026-11-20 12:00 +09:00));
}

fn version(id: &str, v: u32) -> AgreementVersionRow {
    AgreementVersionRow {
        agreement_id: id.into(),
        version: v,
        document: format!("# {id} v{v}\n"),
        sha256: format!("{:064x}", v),
        submitted_by: "urn:cgc-gateway:admin:kanagawa/admin-1".into(),
        submitted_at: AT,
    }
}

fn step(id: &str, action: &str, consented: Option<u32>, confirmed: Option<u32>) -> ConsentStepRow {
    ConsentStepRow {
        seq: 0,
        agreement_id: id.into(),
        operator: "city-141003".into(),
        action: action.into(),
        from_state: "invited".into(),
        to_state: "consented".into(),
        consented_version: consented,
        confirmed_version: confirmed,
        actor: "urn:cgc-gateway:admin:yokohama/admin-2".into(),
        at: datetime!(2026-11-20 12:30:00.25 +09:00),
    }
}

async fn agreement_versions_and_consent_steps_round_trip(b: &Backend) {
    let s = &b.store;
    assert!(
        s.put_agreement_version(&version("kanagawa", 2), &[step("kanagawa", "reask", Some(1), Some(1))])
            .await
            .unwrap()
    );
    assert!(s.put_agreement_version(&version("kanagawa", 1), &[]).await.unwrap());
    assert!(s.put_agreement_version(&version("aichi", 1), &[]).await.unwrap());
    // The same id and version again: refused, and its steps are not stored.
    let mut changed = version("kanagawa", 2);
    changed.document = "something else".into();
    assert!(
        !s.put_agreement_version(&changed, &[step("kanagawa", "reask", None, None)])
            .await
            .unwrap()
    );
    let versions = s.agreement_versions().await.unwrap();
    assert_eq!(
        versions,
        [version("aichi", 1), version("kanagawa", 1), version("kanagawa", 2)]
    );

    let later = s
        .append_consent_step(&step("kanagawa", "confirm", Some(2), None))
        .await
        .unwrap();
    let steps = s.consent_steps().await.unwrap();
    assert_eq!(steps.len(), 2);
    assert!(steps[0].seq < steps[1].seq);
    assert_eq!(steps[1].seq, later);
    // Times come back as written, offset and fraction included.
    assert_eq!(steps[0].at.offset(), datetime!(2026-11-20 12:30:00.25 +09:00).offset());
    assert_eq!(steps[0].at.nanosecond(), 250_000_000);
    assert_eq!(
        steps[0],
        ConsentStepRow {
            seq: steps[0].seq,
            ..step("kanagawa", "reask", Some(1), Some(1))
        }
    );
    assert_eq!(
        steps[1],
        ConsentStepRow {
            seq: later,
            ..step("kanagawa", "confirm", Some(2), None)
        }
    );
}

async fn policy_is_seeded_once(b: &Backend) {
    let s = &b.store;
    let at = AT;
    let versions = [version("kanagawa", 1)];
    let steps = [step("kanagawa", "seed", None, None)];
    assert!(s.seed_policy("policies/", at, &versions, &steps).await.unwrap());
    assert!(
        !s.seed_policy("policies/", at, &[version("other", 1)], &steps)
            .await
            .unwrap()
    );
    assert_eq!(s.agreement_versions().await.unwrap(), versions);
    assert_eq!(s.consent_steps().await.unwrap().len(), 1);
}

async fn revocations_are_recorded_once(b: &Backend) {
    let s = &b.store;
    let row = |kind: &str, subject: &str, by: &str| RevocationRow {
        kind: kind.into(),
        subject: subject.into(),
        revoked_by: by.into(),
        revoked_at: AT,
    };
    assert!(s.add_revocation(&row("officer", "K-1", "admin-1")).await.unwrap());
    assert!(s.add_revocation(&row("terminal", "urn:t", "admin-1")).await.unwrap());
    assert!(!s.add_revocation(&row("officer", "K-1", "admin-2")).await.unwrap());
    assert_eq!(
        s.revocations().await.unwrap(),
        [row("officer", "K-1", "admin-1"), row("terminal", "urn:t", "admin-1")]
    );
}

/// A refused write (here a key already in the history) is a fault, not an outage, and leaves
/// the store writing and committing as before.
async fn audit_keys_keep_their_order_and_refuse_a_repeated_key(b: &Backend) {
    let s = &b.store;
    let key = |first: u64, id: &str| AuditKeyRow {
        first_index: first,
        key_id: id.into(),
        verifier_key: format!("origin+{id}+AAAA"),
        activated_at: Some(time::macros::datetime!(2026-11-20 12:00 +09:00)),
    };
    s.add_audit_key(&key(0, "0000000a")).await.unwrap();
    s.add_audit_key(&key(7, "0000000b")).await.unwrap();
    let refused = s.add_audit_key(&key(9, "0000000a")).await.unwrap_err();
    assert!(!refused.is_unavailable(), "{refused}");
    assert_eq!(s.audit_keys().await.unwrap(), [key(0, "0000000a"), key(7, "0000000b")]);

    assert!(matches!(
        s.put_case(case("AFTER", 1, "after")).await.unwrap(),
        PutOutcome::Stored { .. }
    ));
    assert_eq!(current(&b.reopen().await).await["AFTER"].1, "after");
}

/// What other instances follow: a stored version, a policy change and a revocation each add
/// one change, in the order they committed; a refused or repeated write adds none.
async fn every_change_terminals_may_see_is_in_the_change_log_in_commit_order(b: &Backend) {
    use cgc_gateway::store::Change;
    let s = &b.store;
    assert_eq!(s.latest_change().await.unwrap(), 0);
    s.put_case(case("CH-1", 1, "{\"v\":1}")).await.unwrap();
    // Identical and conflicting re-pushes change nothing.
    s.put_case(case("CH-1", 1, "{\"v\":1}")).await.unwrap();
    s.put_case(case("CH-1", 1, "{\"v\":9}")).await.unwrap();
    let revocation = RevocationRow {
        kind: "officer".into(),
        subject: "K-9".into(),
        revoked_by: "admin".into(),
        revoked_at: AT,
    };
    s.add_revocation(&revocation).await.unwrap();
    s.add_revocation(&revocation).await.unwrap();
    let step = ConsentStepRow {
        seq: 0,
        agreement_id: "a".into(),
        operator: "141003".into(),
        action: "consent".into(),
        from_state: "asked".into(),
        to_state: "consented".into(),
        consented_version: Some(1),
        confirmed_version: None,
        actor: "admin".into(),
        at: AT,
    };
    s.append_consent_step(&step).await.unwrap();
    let changes = s.changes_after(0, 100).await.unwrap();
    let kinds: Vec<Change> = changes.iter().map(|c| c.change.clone()).collect();
    assert_eq!(
        kinds,
        [
            Change::Case {
                center_id: "yokosuka".into(),
                case_id: "CH-1".into()
            },
            Change::Revocation,
            Change::Policy,
        ]
    );
    assert!(changes.windows(2).all(|w| w[0].seq < w[1].seq));
    let last = changes.last().unwrap().seq;
    assert_eq!(s.latest_change().await.unwrap(), last);
    assert!(s.changes_after(last, 100).await.unwrap().is_empty());
    assert_eq!(s.changes_after(changes[0].seq, 1).await.unwrap().len(), 1);
    let current = s.current_case("yokosuka", "CH-1").await.unwrap().unwrap();
    assert_eq!((current.version, current.body.as_str()), (1, "{\"v\":1}"));
    assert!(s.current_case("yokosuka", "nope").await.unwrap().is_none());
}

async fn center_events_are_kept_in_order_per_center(b: &Backend) {
    let s = &b.store;
    assert_eq!(s.latest_center_event().await.unwrap(), 0);
    let event = |center: &str, kind: &str, body: &str| CenterEventRow {
        seq: 0,
        center_id: center.into(),
        kind: kind.into(),
        at: AT,
        body: body.into(),
    };
    let a = s
        .append_center_event(&event("yokosuka", "opened", "{\"n\":1}"))
        .await
        .unwrap();
    let other = s
        .append_center_event(&event("sagamihara", "opened", "{}"))
        .await
        .unwrap();
    let c = s
        .append_center_event(&event("yokosuka", "response", "{\"n\":2}"))
        .await
        .unwrap();
    assert!(a < other && other < c);
    assert_eq!(s.latest_center_event().await.unwrap(), c);
    let all = s.center_events_after("yokosuka", None, 0, 10).await.unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [a, c]);
    assert_eq!(
        (all[1].kind.as_str(), all[1].body.as_str(), all[1].at),
        ("response", "{\"n\":2}", AT)
    );
    let responses = s
        .center_events_after("yokosuka", Some("response"), 0, 10)
        .await
        .unwrap();
    assert_eq!(responses.iter().map(|e| e.seq).collect::<Vec<_>>(), [c]);
    assert!(s.center_events_after("yokosuka", None, c, 10).await.unwrap().is_empty());
    assert_eq!(s.center_events_after("yokosuka", None, 0, 1).await.unwrap().len(), 1);
    // Kept across a reopening (a restart, or another instance).
    assert_eq!(
        b.reopen()
            .await
            .center_events_after("yokosuka", None, a, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A case opened: the center's event is stored in the commit that records the disclosure, in
/// `seq` order after the events before it; a commit the store refuses (sealed for a position the
/// log has passed) stores neither its entries nor its events.
async fn center_events_of_an_audit_commit_are_stored_with_it_or_not_at_all(b: &Backend) {
    let s = &b.store;
    let event = |body: &str| CenterEventRow {
        seq: 0,
        center_id: "yokosuka".into(),
        kind: "opened".into(),
        at: AT,
        body: body.into(),
    };
    let before = s.append_center_event(&event("{\"n\":0}")).await.unwrap();
    let last = s
        .append_audit_commit(&AuditCommit {
            entries: audit_rows(0, 2),
            center_events: vec![event("{\"audit_index\":0}"), event("{\"audit_index\":1}")],
            ..AuditCommit::default()
        })
        .await
        .unwrap()
        .unwrap();
    let stored = s.center_events_after("yokosuka", None, before, 10).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.body.as_str()).collect::<Vec<_>>(),
        ["{\"audit_index\":0}", "{\"audit_index\":1}"]
    );
    assert_eq!(stored.last().unwrap().seq, last);
    assert_eq!(s.latest_center_event().await.unwrap(), last);

    // Sealed again at index 0, which the log has passed: refused whole.
    let refused = s
        .append_audit_commit(&AuditCommit {
            entries: audit_rows(0, 1),
            center_events: vec![event("{\"lost\":true}")],
            ..AuditCommit::default()
        })
        .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(s.audit_len().await.unwrap(), 2);
    assert_eq!(s.latest_center_event().await.unwrap(), last);
}

async fn an_accepted_transfer_moves_the_case_and_a_declined_one_does_not(b: &Backend) {
    let s = &b.store;
    s.put_case(case("TR-1", 2, "{\"v\":2}")).await.unwrap();
    let row = |to: &str| TransferRow {
        id: 0,
        center_id: "yokosuka".into(),
        case_id: "TR-1".into(),
        to_center: to.into(),
        state: String::new(),
        requested_at: AT,
        decided_at: None,
    };
    let mut missing = row("sagamihara");
    missing.case_id = "NOPE".into();
    assert_eq!(
        s.request_transfer(&missing).await.unwrap(),
        TransferRequested::NoSuchCase
    );
    let TransferRequested::Requested(first) = s.request_transfer(&row("sagamihara")).await.unwrap() else {
        panic!("not requested");
    };
    assert_eq!(
        s.request_transfer(&row("kawasaki-central")).await.unwrap(),
        TransferRequested::AlreadyPending(first)
    );
    assert_eq!(s.pending_transfers("sagamihara").await.unwrap().len(), 1);
    assert_eq!(s.pending_transfers("yokosuka").await.unwrap()[0].id, first);
    assert_eq!(
        s.decide_transfer(first, None, AT).await.unwrap(),
        TransferDecided::Done { stored: None }
    );
    let declined = s.transfer(first).await.unwrap().unwrap();
    assert_eq!((declined.state.as_str(), declined.decided_at), ("declined", Some(AT)));
    assert_eq!(
        s.decide_transfer(first, None, AT).await.unwrap(),
        TransferDecided::NotPending
    );
    assert!(s.pending_transfers("sagamihara").await.unwrap().is_empty());

    let TransferRequested::Requested(second) = s.request_transfer(&row("sagamihara")).await.unwrap() else {
        panic!("not requested");
    };
    let copy = |version| NewCase {
        center_id: "sagamihara",
        case_id: "TR-1",
        version,
        body: "{\"moved\":true}",
        received_at: AT,
    };
    // Made from another version than the current one: nothing happens.
    assert_eq!(
        s.decide_transfer(second, Some(copy(1)), AT).await.unwrap(),
        TransferDecided::CaseChanged
    );
    let before = s.latest_change().await.unwrap();
    let TransferDecided::Done { stored: Some(moved) } = s.decide_transfer(second, Some(copy(2)), AT).await.unwrap()
    else {
        panic!("not accepted");
    };
    assert!(before < moved.old_change && moved.old_change < moved.change);
    assert!(s.current_case("yokosuka", "TR-1").await.unwrap().is_none());
    let now = s.current_case("sagamihara", "TR-1").await.unwrap().unwrap();
    assert_eq!(
        (now.version, now.body.as_str(), now.seq),
        (2, "{\"moved\":true}", moved.seq)
    );
    let current = current(s).await;
    assert!(current.contains_key("TR-1") && current["TR-1"].1 == "{\"moved\":true}");
    assert_eq!(
        s.moved_cases().await.unwrap(),
        [("yokosuka".to_owned(), "TR-1".to_owned(), "sagamihara".to_owned())]
    );
    // The old center can no longer push it, at any version.
    assert_eq!(
        s.put_case(case("TR-1", 3, "{}")).await.unwrap(),
        PutOutcome::Transferred {
            to_center: "sagamihara".into()
        }
    );
    assert_eq!(
        s.put_case(case("TR-1", 2, "{\"v\":2}")).await.unwrap(),
        PutOutcome::Transferred {
            to_center: "sagamihara".into()
        }
    );
    assert_eq!(s.transfer(second).await.unwrap().unwrap().state, "accepted");
    let changes = s.changes_after(before, 10).await.unwrap();
    assert_eq!(changes.len(), 2);
    // A case can only move once to a center that never had that id.
    s.put_case(case("TR-2", 1, "{}")).await.unwrap();
    let mut third = row("sagamihara");
    third.case_id = "TR-2".into();
    let TransferRequested::Requested(third) = s.request_transfer(&third).await.unwrap() else {
        panic!("not requested");
    };
    s.put_case(NewCase {
        center_id: "sagamihara",
        ..case("TR-2", 1, "{}")
    })
    .await
    .unwrap();
    let mut taken = copy(1);
    taken.case_id = "TR-2";
    assert_eq!(
        s.decide_transfer(third, Some(taken), AT).await.unwrap(),
        TransferDecided::IdTaken
    );
    assert_eq!(s.transfer(third).await.unwrap().unwrap().state, "pending");
}
