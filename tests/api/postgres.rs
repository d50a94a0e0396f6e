//! The real gateway on PostgreSQL: ingest and disclosure over mTLS, and a database server
//! that goes away and comes back. While it is gone nothing is acknowledged and nothing is
//! disclosed (503 problem+json); once it is back, service resumes without a restart.

use std::time::{Duration, Instant};

use cgc_gateway::store::{
    self, AgreementVersionRow, AuditKeyRow, AuditRow, CheckpointRow, ConsentStepRow, NewCase, PutOutcome, RevocationRow,
};
use hyper::Method;
use sqlx::{Connection, Executor};

use crate::helpers::{full_case, spawn_app_with};
use crate::pg::{self, PgCluster};

#[tokio::test]
async fn the_gateway_serves_from_postgresql_and_fails_closed_while_it_is_down() {
    let Some(cluster) = PgCluster::start() else { return };
    let url = cluster.create_database().await;
    let app = spawn_app_with(|c, _| c.database_url = url.clone()).await;
    let center = app.client("center-yokosuka");
    let terminal = app.client("terminal-yokosuka-1");
    let token = app.token("terminal-yokosuka-1", "K-1");

    let reply = app.push(&full_case("yokosuka", "PG-1", "142018")).await;
    assert_eq!(reply.json().unwrap()["outcome"], "stored");
    let again = center
        .put_json("/v1/cases/PG-1", &full_case("yokosuka", "PG-1", "142018"))
        .await
        .unwrap();
    assert_eq!(again.json().unwrap()["outcome"], "unchanged");
    let view = terminal
        .get("/v1/terminal/cases/yokosuka:PG-1", Some(&token))
        .await
        .unwrap();
    assert_eq!(view.status, 200, "{}", view.text());
    assert!(view.text().contains("山田"));

    cluster.stop();
    let started = Instant::now();
    let refused = full_case("yokosuka", "PG-DOWN", "142018");
    let reply = center.put_json("/v1/cases/PG-DOWN", &refused).await.unwrap();
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert!(reply.headers.contains_key("retry-after"));
    assert!(
        !reply.text().contains("postgres"),
        "internals in a refusal: {}",
        reply.text()
    );
    assert!(reply.text().contains("store-unavailable"), "{}", reply.text());
    let view = terminal
        .get("/v1/terminal/cases/yokosuka:PG-1", Some(&token))
        .await
        .unwrap();
    assert_eq!(
        view.status,
        503,
        "a disclosure went out without its entry: {}",
        view.text()
    );
    assert_eq!(view.headers["content-type"], "application/problem+json");
    assert!(!view.text().contains("山田"), "case data in a refusal");
    // Refused before anything is read: the instance cannot even learn what others changed.
    assert!(
        view.text().contains("store-unavailable") || view.text().contains("audit-unavailable"),
        "{}",
        view.text()
    );
    let list = terminal.get("/v1/terminal/cases", Some(&token)).await.unwrap();
    assert_eq!(list.status, 503, "{}", list.text());
    assert!(!list.text().contains("山田"), "case data in a refusal");
    // Each refusal waits at most the pool's acquire timeout, not for the server.
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());

    cluster.restart();
    let reply = app.push(&full_case("yokosuka", "PG-2", "142018")).await;
    assert_eq!(reply.json().unwrap()["outcome"], "stored");
    let view = terminal
        .get("/v1/terminal/cases/yokosuka:PG-2", Some(&token))
        .await
        .unwrap();
    assert_eq!(view.status, 200, "{}", view.text());
    let receipt = view.json().unwrap()["receipt"]["audit_index"].as_u64().unwrap();

    // What another instance (or a restart) reads: the acknowledged cases, not the refused one,
    // and the receipted disclosure's entry.
    let outside = store::open(&url).await.unwrap();
    let ids: Vec<String> = outside
        .current_cases()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.case_id)
        .collect();
    assert_eq!(ids, ["PG-1", "PG-2"]);
    assert!(outside.audit_len().await.unwrap() > receipt);
    let entry = outside.audit_entries(receipt, receipt + 1).await.unwrap();
    assert_eq!(entry[0].case_id.as_deref(), Some("PG-2"));
    // The refused version was never stored: pushing it now stores it.
    let late = center.put_json("/v1/cases/PG-DOWN", &refused).await.unwrap();
    assert_eq!(late.status, 200, "{}", late.text());
    assert_eq!(late.json().unwrap()["outcome"], "stored");
}

/// Two gateway instances on one database, each pushed the same version of a case with a
/// different body at the same moment: exactly one version is stored, and the other center is
/// answered 409 naming it.
#[tokio::test]
async fn two_gateways_on_one_database_store_a_racing_version_once() {
    let Some(url) = pg::database().await else { return };
    let first = spawn_app_with(|c, _| c.database_url = url.clone()).await;
    let second = spawn_app_with(|c, _| c.database_url = url.clone()).await;
    let clients = [first.client("center-yokosuka"), second.client("center-yokosuka")];
    for version in 1..=5u64 {
        let bodies: Vec<_> = ["FIRST", "SECOND"]
            .iter()
            .map(|who| {
                let mut case = full_case("yokosuka", "TWIN-1", "142018");
                case["version"] = version.into();
                case["household"] = format!("{who}-{version}").into();
                case
            })
            .collect();
        // Connected (TLS and all) before either request is sent, so that both arrive together.
        let mut connections = [clients[0].connect().await.unwrap(), clients[1].connect().await.unwrap()];
        let [c0, c1] = &mut connections;
        let put = |case: &serde_json::Value| Some(serde_json::to_vec(case).unwrap());
        let (a, b) = tokio::join!(
            c0.send(Method::PUT, "/v1/cases/TWIN-1", None, put(&bodies[0])),
            c1.send(Method::PUT, "/v1/cases/TWIN-1", None, put(&bodies[1])),
        );
        let replies = [a.unwrap(), b.unwrap()];
        let stored: Vec<usize> = (0..2)
            .filter(|&i| replies[i].status == 200 && replies[i].json().unwrap()["outcome"] == "stored")
            .collect();
        assert_eq!(
            stored.len(),
            1,
            "version {version}: {} / {}",
            replies[0].text(),
            replies[1].text()
        );
        let winner = stored[0];
        let loser = &replies[1 - winner];
        assert_eq!(loser.status, 409, "{}", loser.text());
        assert_eq!(loser.headers["content-type"], "application/problem+json");
        assert_eq!(loser.json().unwrap()["stored_version"], version);

        let cases = store::open(&url).await.unwrap().current_cases().await.unwrap();
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].version, version);
        let kept: serde_json::Value = serde_json::from_str(&cases[0].body).unwrap();
        assert_eq!(kept["household"], bodies[winner]["household"]);
    }
}

/// A write the database holds up (here: another session keeps the case's row locked, as a
/// hung server or a partition would keep it waiting) ends at the store's deadline as
/// unavailable, stores nothing, and leaves the store writing.
#[tokio::test]
async fn a_write_the_database_holds_up_is_unavailable_after_a_deadline_and_stores_nothing() {
    let Some(url) = pg::database().await else { return };
    let s = store::open(&url).await.unwrap();
    let case = |version, body| NewCase {
        center_id: "yokosuka",
        case_id: "HELD",
        version,
        body,
        received_at: crate::helpers::NOW,
    };
    assert!(matches!(
        s.put_case(case(1, "v1")).await.unwrap(),
        PutOutcome::Stored { .. }
    ));

    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    holder.execute("BEGIN").await.unwrap();
    holder
        .execute("SELECT 1 FROM cases WHERE case_id = 'HELD' FOR UPDATE")
        .await
        .unwrap();
    let started = Instant::now();
    let err = s.put_case(case(2, "v2")).await.unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    holder.execute("ROLLBACK").await.unwrap();

    let current = s.current_cases().await.unwrap();
    assert_eq!((current[0].version, current[0].body.as_str()), (1, "v1"));
    assert!(matches!(
        s.put_case(case(2, "v2")).await.unwrap(),
        PutOutcome::Stored { .. }
    ));
}

/// A write that fails inside its transaction never hands a connection that is still inside
/// that transaction back to the pool: the server shows no session of the gateway idle in a
/// transaction, and the next writes commit.
#[tokio::test]
async fn refused_writes_leave_no_session_inside_a_transaction() {
    let Some(url) = pg::database().await else { return };
    let s = store::open(&url).await.unwrap();
    let key = AuditKeyRow {
        first_index: 0,
        key_id: "0000000a".into(),
        verifier_key: "origin+0000000a+AAAA".into(),
        activated_at: Some(time::macros::datetime!(2026-11-20 12:00 +09:00)),
    };
    s.add_audit_key(&key).await.unwrap();
    for _ in 0..10 {
        assert!(s.add_audit_key(&key).await.is_err());
    }
    let observer = sqlx::PgPool::connect(&url).await.unwrap();
    let stuck = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'cgc-gateway' AND state LIKE 'idle in transaction%'",
        )
        .fetch_one(&observer)
        .await
        .unwrap()
    };
    // Closing a connection happens in the background; give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while stuck().await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stuck().await, 0);
    for i in 0..10 {
        let body = format!("v{i}");
        let outcome = s
            .put_case(NewCase {
                center_id: "yokosuka",
                case_id: &format!("AFTER-{i}"),
                version: 1,
                body: &body,
                received_at: crate::helpers::NOW,
            })
            .await
            .unwrap();
        assert!(matches!(outcome, PutOutcome::Stored { .. }));
    }
    assert_eq!(
        store::open(&url).await.unwrap().current_cases().await.unwrap().len(),
        10
    );
}

/// The PostgreSQL schema refuses to change or remove what only grows, as SQLite's does, and
/// refuses TRUNCATE too.
#[tokio::test]
async fn append_only_tables_refuse_update_delete_and_truncate() {
    let Some(url) = pg::database().await else { return };
    let s = store::open(&url).await.unwrap();
    s.put_case(NewCase {
        center_id: "yokosuka",
        case_id: "KEPT",
        version: 1,
        body: "{}",
        received_at: crate::helpers::NOW,
    })
    .await
    .unwrap();
    s.append_audit(&[AuditRow {
        index: 0,
        line: "{}".into(),
        leaf_hash: [0; 32],
        kind: "ingest".into(),
        center_id: None,
        case_id: None,
    }])
    .await
    .unwrap();
    s.put_checkpoint(&CheckpointRow {
        tree_size: 1,
        note: "note".into(),
        published_at: time::macros::datetime!(2026-11-20 12:00 +09:00),
    })
    .await
    .unwrap();
    let step = ConsentStepRow {
        seq: 0,
        agreement_id: "kanagawa".into(),
        operator: "city-141003".into(),
        action: "consent".into(),
        from_state: "invited".into(),
        to_state: "consented".into(),
        consented_version: Some(1),
        confirmed_version: None,
        actor: "admin".into(),
        at: crate::helpers::NOW,
    };
    let version = AgreementVersionRow {
        agreement_id: "kanagawa".into(),
        version: 1,
        document: "text".into(),
        sha256: "0".repeat(64),
        submitted_by: "admin".into(),
        submitted_at: crate::helpers::NOW,
    };
    assert!(s.put_agreement_version(&version, &[step]).await.unwrap());
    s.add_audit_key(&AuditKeyRow {
        first_index: 0,
        key_id: "0000000a".into(),
        verifier_key: "origin+0000000a+AAAA".into(),
        activated_at: Some(time::macros::datetime!(2026-11-20 12:00 +09:00)),
    })
    .await
    .unwrap();
    s.add_revocation(&RevocationRow {
        kind: "officer".into(),
        subject: "K-1".into(),
        revoked_by: "admin".into(),
        revoked_at: crate::helpers::NOW,
    })
    .await
    .unwrap();
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    for table in [
        "case_versions",
        "audit_entries",
        "audit_checkpoints",
        "agreement_versions",
        "consent_steps",
        "audit_keys",
        "revocations",
    ] {
        for statement in [format!("DELETE FROM {table}"), format!("TRUNCATE {table} CASCADE")] {
            assert!(db.execute(statement.as_str()).await.is_err(), "{statement} was allowed");
        }
    }
    let update = db.execute("UPDATE case_versions SET body = 'rewritten'").await;
    assert!(update.is_err(), "a stored case version was rewritten");
    let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM case_versions")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(bodies, ["{}"]);
}
