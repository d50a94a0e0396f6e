//! The gateway with witnesses: every checkpoint is offered to each configured witness in the
//! background; published checkpoints and exports carry the cosignatures; `audit verify
//! --witness-key` requires one; a witness that is down never holds up a disclosure.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cgc_gateway::audit::note::NoteVerifier;
use cgc_gateway::config::WitnessConfig;
use cgc_gateway::witness::{Witness, WitnessKey, WitnessServer};

use crate::helpers::{NOW, full_case, pki, spawn_app_with};

const NAME: &str = "witness.test.cgc-gateway.invalid/audit-committee";

async fn start_witness(key: WitnessKey, state: &std::path::Path) -> WitnessServer {
    let log_key = std::fs::read_to_string(pki().join("audit/verifier-key.txt")).unwrap();
    let witness = Witness::open(cgc_gateway::witness::WitnessConfig {
        key,
        log_keys: vec![NoteVerifier::parse(log_key.trim()).unwrap()],
        state_dir: state.to_path_buf(),
        clock: Arc::new(cgc_gateway::clock::ManualClock::new(NOW)),
    })
    .unwrap();
    WitnessServer::start(Arc::new(witness), SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

#[tokio::test]
async fn checkpoints_are_cosigned_and_an_export_verifies_only_with_the_witness_that_cosigned() {
    let state = tempfile::tempdir().unwrap();
    let key = WitnessKey::generate(NAME).unwrap();
    let verifier = key.verifier();
    let server = start_witness(key, state.path()).await;
    let url = format!("http://{}", server.addr());
    let verifier_text = verifier.to_text();
    let app = spawn_app_with(|c, _| {
        c.audit.witnesses.push(WitnessConfig {
            url: url.clone(),
            verifier_key: verifier_text.clone(),
        });
    })
    .await;
    app.push(&full_case("yokosuka", "W-1", "142018")).await;
    assert_eq!(app.detail("terminal-yokosuka-1", "yokosuka:W-1").await.status, 200);

    // The published checkpoint carries the witness's cosignature within moments.
    let auditor = app.client("auditor-kanagawa-audit");
    let deadline = Instant::now() + Duration::from_secs(10);
    let published = loop {
        let note = auditor.get("/v1/audit/checkpoint", None).await.unwrap().text();
        if verifier.verify_note(&note).is_ok() {
            break note;
        }
        assert!(Instant::now() < deadline, "no cosigned checkpoint: {note}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(published.contains(&format!("\u{2014} {NAME} ")), "{published}");

    let out = tempfile::tempdir().unwrap();
    let folder = out.path().join("export");
    cgc_gateway::audit::export::export(&app.app.context().store, &folder)
        .await
        .unwrap();
    let log_key = pki().join("audit/verifier-key.txt");
    let summary =
        cgc_gateway::audit::verify::verify_dir_witnessed(&folder, &log_key, None, std::slice::from_ref(&verifier))
            .unwrap();
    assert!(summary.witnessed.get(NAME).is_some_and(|size| *size > 0), "{summary}");
    // Without cosignatures by a witness, its key is not satisfied.
    let stranger = WitnessKey::generate("witness.test.cgc-gateway.invalid/stranger")
        .unwrap()
        .verifier();
    let refused = cgc_gateway::audit::verify::verify_dir_witnessed(&folder, &log_key, None, &[stranger]);
    assert!(
        matches!(refused, Err(cgc_gateway::audit::verify::Finding::Unwitnessed(_))),
        "{refused:?}"
    );
    // And the export still verifies for an auditor who asks no witness.
    assert!(cgc_gateway::audit::verify::verify_dir(&folder, &log_key, None).is_ok());
    server.stop().await;
}

#[tokio::test]
async fn a_witness_that_is_down_never_holds_up_a_disclosure() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let verifier = WitnessKey::generate(NAME).unwrap().verifier().to_text();
    let app = spawn_app_with(|c, _| {
        c.audit.witnesses.push(WitnessConfig {
            url: format!("http://{closed}"),
            verifier_key: verifier.clone(),
        });
    })
    .await;
    app.push(&full_case("yokosuka", "W-2", "142018")).await;
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(app.detail("terminal-yokosuka-1", "yokosuka:W-2").await.status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
