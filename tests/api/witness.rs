//! Witnesses (C2SP tlog-witness over HTTP on loopback, real keys written by `witness keygen`,
//! a real state folder): they cosign checkpoints that extend what they cosigned, refuse forks,
//! rollbacks and bad proofs with the protocol's status codes, and remember across restarts.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::Bytes;
use cgc_gateway::audit::merkle::{Hash, Tree, leaf_hash};
use cgc_gateway::audit::note::{Checkpoint, NoteSigner, NoteVerifier, open_note, sign_note};
use cgc_gateway::cli::witness::{VERIFIER_KEY_FILE, keygen, open_or_create_key, read_log_keys, read_witness_key};
use cgc_gateway::clock::ManualClock;
use cgc_gateway::witness::protocol::AddCheckpoint;
use cgc_gateway::witness::{
    Witness, WitnessConfig, WitnessEndpoint, WitnessError, WitnessServer, WitnessVerifier, add_checkpoint,
    append_cosignatures, cosign_checkpoint,
};
use ed25519_dalek::SigningKey;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

use crate::helpers::NOW;

const ORIGIN: &str = "test.cgc-gateway.invalid/audit";
const WITNESS_NAME: &str = "witness.test.invalid/w1";

fn log_key() -> NoteSigner {
    NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[11; 32])).unwrap()
}

/// A tree of `n` leaves; another `salt` gives another history.
fn tree(n: u64, salt: &str) -> Tree {
    Tree::from_leaf_hashes((0..n).map(|i| leaf_hash(format!("{salt} entry {i}").as_bytes())))
}

fn checkpoint(tree: &Tree, size: u64, signer: &NoteSigner) -> String {
    let text = Checkpoint {
        origin: signer.name().to_owned(),
        size,
        root: tree.root_at(size).unwrap(),
    }
    .to_text();
    sign_note(&text, &[signer]).unwrap()
}

/// A witness folder as an operator would make it: `witness keygen`, plus the log's verifier
/// key in a file.
struct Setup {
    dir: tempfile::TempDir,
    verifier: WitnessVerifier,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        keygen(dir.path(), WITNESS_NAME).unwrap();
        std::fs::write(
            dir.path().join("log-verifier-key.txt"),
            format!("{}\n", log_key().verifier_key_text()),
        )
        .unwrap();
        let text = std::fs::read_to_string(dir.path().join(VERIFIER_KEY_FILE)).unwrap();
        Self {
            verifier: WitnessVerifier::parse(&text).unwrap(),
            dir,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    async fn start(&self) -> Running {
        let config = WitnessConfig {
            key: read_witness_key(&self.path().join("witness-key.txt")).unwrap(),
            log_keys: read_log_keys(&[self.path().join("log-verifier-key.txt")]).unwrap(),
            state_dir: self.path().join("state"),
            clock: Arc::new(ManualClock::new(NOW)),
        };
        let witness = Arc::new(Witness::open(config).unwrap());
        let server = WitnessServer::start(witness, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let endpoint = WitnessEndpoint::new(&server.url(), self.verifier.clone()).unwrap();
        Running { server, endpoint }
    }
}

struct Running {
    server: WitnessServer,
    endpoint: WitnessEndpoint,
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: String,
}

/// A raw `POST /add-checkpoint`, to see status codes and headers as the protocol defines them.
async fn post(addr: SocketAddr, method: Method, body: String) -> Answer {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let request = Request::builder()
        .method(method)
        .uri("/add-checkpoint")
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn request(old: u64, proof: Vec<Hash>, note: &str) -> String {
    AddCheckpoint {
        old,
        proof,
        note: note.to_owned(),
    }
    .to_body()
}

#[tokio::test]
async fn a_witness_cosigns_a_first_checkpoint_and_a_consistent_extension() {
    let setup = Setup::new();
    let w = setup.start().await;
    let log = tree(12, "real");
    let cp5 = checkpoint(&log, 5, &log_key());
    let line = add_checkpoint(&w.endpoint, 0, &[], &cp5).await.unwrap();
    assert_eq!(line.name, WITNESS_NAME);
    assert_eq!(line.timestamp, u64::try_from(NOW.unix_timestamp()).unwrap());

    // The published form: the log's note with the cosignature appended. The witness's key (read
    // from the file keygen wrote) verifies it, and the log's key still opens the note.
    let cosigned = append_cosignatures(&cp5, std::slice::from_ref(&line));
    assert_eq!(setup.verifier.verify_note(&cosigned).unwrap(), line);
    let log_verifier = NoteVerifier::parse(&log_key().verifier_key_text()).unwrap();
    open_note(&cosigned, &[log_verifier]).unwrap();

    let cp9 = checkpoint(&log, 9, &log_key());
    let line9 = add_checkpoint(&w.endpoint, 5, &log.consistency_proof(5, 9).unwrap(), &cp9)
        .await
        .unwrap();
    setup
        .verifier
        .verify_note(&append_cosignatures(&cp9, &[line9]))
        .unwrap();
    // A cosignature of one checkpoint is not one of another.
    assert!(
        setup
            .verifier
            .verify_note(&append_cosignatures(&cp9, std::slice::from_ref(&line)))
            .is_err()
    );
    // Asking again for the same checkpoint is answered; the protocol's 200 is a signature line.
    let again = post(w.server.addr(), Method::POST, request(9, vec![], &cp9)).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body.starts_with("— witness.test.invalid/w1 ") && again.body.ends_with('\n'));
    w.server.stop().await;
}

#[tokio::test]
async fn a_forked_checkpoint_of_the_cosigned_size_is_refused_and_kept_as_evidence() {
    let setup = Setup::new();
    let w = setup.start().await;
    let real = tree(9, "real");
    let cp5 = checkpoint(&real, 5, &log_key());
    add_checkpoint(&w.endpoint, 0, &[], &cp5).await.unwrap();

    let fork = checkpoint(&tree(9, "fork"), 5, &log_key());
    let answer = post(w.server.addr(), Method::POST, request(5, vec![], &fork)).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_ne!(answer.content_type, "text/x.tlog.size");
    assert!(answer.body.contains("fork"), "{}", answer.body);
    let err = add_checkpoint(&w.endpoint, 5, &[], &fork).await.unwrap_err();
    assert!(matches!(err, WitnessError::Fork(_)), "{err}");
    assert!(err.is_alarm() && !err.is_transient());

    let evidence: Vec<_> = std::fs::read_dir(setup.path().join("state/evidence"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(evidence.len(), 1, "one file per refused tree, however often it is sent");
    assert!(evidence[0].contains(&fork), "the refused note is kept");
    assert!(evidence[0].contains(&cp5), "next to the cosigned one it contradicts");

    // The witness still stands by the real tree.
    let cp9 = checkpoint(&real, 9, &log_key());
    add_checkpoint(&w.endpoint, 5, &real.consistency_proof(5, 9).unwrap(), &cp9)
        .await
        .unwrap();
    w.server.stop().await;
}

#[tokio::test]
async fn a_rolled_back_size_is_refused_with_the_witness_size() {
    let setup = Setup::new();
    let w = setup.start().await;
    let log = tree(9, "real");
    add_checkpoint(&w.endpoint, 0, &[], &checkpoint(&log, 9, &log_key()))
        .await
        .unwrap();
    let cp5 = checkpoint(&log, 5, &log_key());
    let answer = post(w.server.addr(), Method::POST, request(5, vec![], &cp5)).await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.content_type, "text/x.tlog.size");
    assert_eq!(answer.body, "9\n");
    // `old` beyond the checkpoint's own size is malformed.
    let answer = post(w.server.addr(), Method::POST, request(9, vec![], &cp5)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);

    // The log side learns the witness's size and sees it is ahead of the log: an alarm.
    let err = cosign_checkpoint(&w.endpoint, 5, &cp5, |old| log.consistency_proof(old, 5))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            WitnessError::AheadOfLog {
                witness_size: 9,
                size: 5
            }
        ),
        "{err}"
    );
    assert!(err.is_alarm());
    w.server.stop().await;
}

#[tokio::test]
async fn a_wrong_old_size_gets_409_with_the_witness_size_and_the_client_recovers() {
    let setup = Setup::new();
    let w = setup.start().await;
    let log = tree(20, "real");
    add_checkpoint(&w.endpoint, 0, &[], &checkpoint(&log, 5, &log_key()))
        .await
        .unwrap();
    let cp9 = checkpoint(&log, 9, &log_key());
    for old in [0, 3, 7] {
        let proof = if old == 0 {
            vec![]
        } else {
            log.consistency_proof(old, 9).unwrap()
        };
        let answer = post(w.server.addr(), Method::POST, request(old, proof, &cp9)).await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "old {old}");
        assert_eq!(answer.content_type, "text/x.tlog.size");
        assert_eq!(answer.body, "5\n");
    }
    let err = add_checkpoint(&w.endpoint, 0, &[], &cp9).await.unwrap_err();
    assert!(matches!(err, WitnessError::Conflict { size: 5 }), "{err}");
    assert!(err.is_transient() && !err.is_alarm());

    // A log that forgot what the witness cosigned (size 0) gets there in one retry.
    let line = cosign_checkpoint(&w.endpoint, 0, &cp9, |old| log.consistency_proof(old, 9))
        .await
        .unwrap();
    setup.verifier.verify_note(&append_cosignatures(&cp9, &[line])).unwrap();
    let cp20 = checkpoint(&log, 20, &log_key());
    cosign_checkpoint(&w.endpoint, 9, &cp20, |old| log.consistency_proof(old, 20))
        .await
        .unwrap();
    w.server.stop().await;
}

#[tokio::test]
async fn an_inconsistent_proof_gets_422() {
    let setup = Setup::new();
    let w = setup.start().await;
    let real = tree(9, "real");
    add_checkpoint(&w.endpoint, 0, &[], &checkpoint(&real, 5, &log_key()))
        .await
        .unwrap();

    // A fork that grew: its size-9 tree does not contain the cosigned size-5 tree, and its own
    // consistency proof cannot link the two.
    let fork = tree(9, "fork");
    let fork9 = checkpoint(&fork, 9, &log_key());
    let answer = post(
        w.server.addr(),
        Method::POST,
        request(5, fork.consistency_proof(5, 9).unwrap(), &fork9),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let err = add_checkpoint(&w.endpoint, 5, &fork.consistency_proof(5, 9).unwrap(), &fork9)
        .await
        .unwrap_err();
    assert!(matches!(err, WitnessError::InconsistentProof(_)), "{err}");
    assert!(err.is_alarm());

    // The real checkpoint with a wrong proof, a truncated proof, or none.
    let cp9 = checkpoint(&real, 9, &log_key());
    let good = real.consistency_proof(5, 9).unwrap();
    let mut flipped = good.clone();
    flipped[0][0] ^= 1;
    for proof in [flipped, good[1..].to_vec(), vec![]] {
        let answer = post(w.server.addr(), Method::POST, request(5, proof, &cp9)).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    // A proof from the empty tree must be empty.
    let fresh = Setup::new();
    let f = fresh.start().await;
    let answer = post(f.server.addr(), Method::POST, request(0, good.clone(), &cp9)).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    f.server.stop().await;

    add_checkpoint(&w.endpoint, 5, &good, &cp9).await.unwrap();
    w.server.stop().await;
}

#[tokio::test]
async fn a_checkpoint_signed_by_another_key_or_of_another_log_is_refused() {
    let setup = Setup::new();
    let w = setup.start().await;
    let log = tree(5, "real");
    let impostor = NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[12; 32])).unwrap();
    let answer = post(
        w.server.addr(),
        Method::POST,
        request(0, vec![], &checkpoint(&log, 5, &impostor)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let err = add_checkpoint(&w.endpoint, 0, &[], &checkpoint(&log, 5, &impostor))
        .await
        .unwrap_err();
    assert!(matches!(err, WitnessError::Refused { status: 403, .. }), "{err}");

    // A note whose log signature was made over other text.
    let real = checkpoint(&log, 5, &log_key());
    let tampered = real.replacen("\n5\n", "\n4\n", 1);
    let answer = post(w.server.addr(), Method::POST, request(0, vec![], &tampered)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);

    let stranger = NoteSigner::new("other.example/log", SigningKey::from_bytes(&[11; 32])).unwrap();
    let answer = post(
        w.server.addr(),
        Method::POST,
        request(0, vec![], &checkpoint(&log, 5, &stranger)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);

    // Nothing was recorded: the first real checkpoint is still welcome with `old 0`.
    add_checkpoint(&w.endpoint, 0, &[], &real).await.unwrap();
    w.server.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let setup = Setup::new();
    let w = setup.start().await;
    let cp = checkpoint(&tree(5, "real"), 5, &log_key());
    // Signed by the log, but not a checkpoint.
    let not_a_checkpoint = sign_note(&format!("{ORIGIN}\nfive\nroot\n"), &[&log_key()]).unwrap();
    for body in [
        String::new(),
        "garbage".to_owned(),
        format!("old 0\n{cp}"),
        format!("old 00\n\n{cp}"),
        format!("old -1\n\n{cp}"),
        format!("old 0\nnot-a-hash\n\n{cp}"),
        format!("old 0\n\n{}", cp.trim_end()),
        format!("old 0\n\n{not_a_checkpoint}"),
        format!("old 6\n\n{cp}"),
    ] {
        let answer = post(w.server.addr(), Method::POST, body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body:?}: {}", answer.body);
    }
    let answer = post(w.server.addr(), Method::GET, String::new()).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    let huge = format!("old 0\n\n{cp}{}", "x".repeat(70 * 1024));
    let answer = post(w.server.addr(), Method::POST, huge).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing malformed changed the state.
    add_checkpoint(&w.endpoint, 0, &[], &cp).await.unwrap();
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_cannot_both_move_the_state() {
    let setup = Setup::new();
    let w = setup.start().await;
    let log = tree(40, "real");
    // Twenty clients all believe the witness is fresh, each with another size.
    let tasks: Vec<_> = (1..=20)
        .map(|size| {
            let endpoint = w.endpoint.clone();
            let cp = checkpoint(&log, size * 2, &log_key());
            tokio::spawn(async move { add_checkpoint(&endpoint, 0, &[], &cp).await })
        })
        .collect();
    let mut cosigned = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => cosigned += 1,
            Err(WitnessError::Conflict { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(cosigned, 1, "only the first request can start from size 0");
    w.server.stop().await;
}

#[tokio::test]
async fn the_state_survives_a_restart_and_a_fork_is_still_refused() {
    let setup = Setup::new();
    let real = tree(12, "real");
    let w = setup.start().await;
    add_checkpoint(&w.endpoint, 0, &[], &checkpoint(&real, 5, &log_key()))
        .await
        .unwrap();
    w.server.stop().await;

    let w = setup.start().await;
    let fork = checkpoint(&tree(12, "fork"), 5, &log_key());
    let err = add_checkpoint(&w.endpoint, 5, &[], &fork).await.unwrap_err();
    assert!(matches!(err, WitnessError::Fork(_)), "{err}");
    // Nor can a restart be used to start over from nothing.
    let err = add_checkpoint(&w.endpoint, 0, &[], &fork).await.unwrap_err();
    assert!(matches!(err, WitnessError::Conflict { size: 5 }), "{err}");
    let cp12 = checkpoint(&real, 12, &log_key());
    add_checkpoint(&w.endpoint, 5, &real.consistency_proof(5, 12).unwrap(), &cp12)
        .await
        .unwrap();
    w.server.stop().await;

    let w = setup.start().await;
    let err = add_checkpoint(&w.endpoint, 0, &[], &cp12).await.unwrap_err();
    assert!(matches!(err, WitnessError::Conflict { size: 12 }), "{err}");
    w.server.stop().await;
}

#[tokio::test]
async fn a_down_or_silent_witness_fails_fast_as_transient() {
    let setup = Setup::new();
    let cp = checkpoint(&tree(5, "real"), 5, &log_key());

    // Nothing listens on the port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let down = WitnessEndpoint::new(&format!("http://{addr}"), setup.verifier.clone()).unwrap();
    let err = add_checkpoint(&down, 0, &[], &cp).await.unwrap_err();
    assert!(matches!(err, WitnessError::Unreachable(_)), "{err}");
    assert!(err.is_transient() && !err.is_alarm());

    // A witness that accepts the connection and never answers is cut at the timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let slow = WitnessEndpoint::new(&format!("http://{addr}"), setup.verifier.clone())
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let err = add_checkpoint(&slow, 0, &[], &cp).await.unwrap_err();
    assert!(matches!(err, WitnessError::Timeout(_)), "{err}");
    assert!(err.is_transient());
    assert!(started.elapsed() < Duration::from_secs(3));
    hold.abort();
}

#[tokio::test]
async fn an_answer_signed_by_another_witness_key_is_not_accepted() {
    let setup = Setup::new();
    let w = setup.start().await;
    let other = Setup::new();
    let wrong = WitnessEndpoint::new(&w.server.url(), other.verifier.clone()).unwrap();
    let cp = checkpoint(&tree(5, "real"), 5, &log_key());
    let err = add_checkpoint(&wrong, 0, &[], &cp).await.unwrap_err();
    assert!(matches!(err, WitnessError::BadCosignature(_)), "{err}");
    w.server.stop().await;
}

#[test]
fn keygen_never_overwrites_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let verifier = keygen(dir.path(), WITNESS_NAME).unwrap();
    let key = std::fs::read_to_string(dir.path().join("witness-key.txt")).unwrap();
    assert!(keygen(dir.path(), WITNESS_NAME).is_err());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("witness-key.txt")).unwrap(),
        key
    );
    assert_eq!(
        read_witness_key(&dir.path().join("witness-key.txt"))
            .unwrap()
            .verifier()
            .to_text(),
        verifier
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("witness-key.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the private key is readable by its owner only");
}

#[test]
fn a_demo_keeps_its_witness_key_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let first = open_or_create_key(dir.path(), WITNESS_NAME).unwrap();
    let again = open_or_create_key(dir.path(), WITNESS_NAME).unwrap();
    assert_eq!(first.verifier(), again.verifier());
    let published = std::fs::read_to_string(dir.path().join(VERIFIER_KEY_FILE)).unwrap();
    assert_eq!(WitnessVerifier::parse(&published).unwrap(), first.verifier());
    assert!(open_or_create_key(dir.path(), "another.example/w2").is_err());
}

#[tokio::test]
async fn witness_serve_through_the_binary_cosigns_and_reports_a_fork_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_cgc-gateway");
    let keys = dir.path().join("keys");
    let out = std::process::Command::new(bin)
        .args(["witness", "keygen", "--name", WITNESS_NAME, "--out"])
        .arg(&keys)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log_key_file = dir.path().join("log-verifier-key.txt");
    std::fs::write(&log_key_file, format!("{}\n", log_key().verifier_key_text())).unwrap();

    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut child = tokio::process::Command::new(bin)
        .args(["witness", "serve", "--listen", &listen, "--key"])
        .arg(keys.join("witness-key.txt"))
        .arg("--log-key")
        .arg(&log_key_file)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let verifier = WitnessVerifier::parse(&std::fs::read_to_string(keys.join(VERIFIER_KEY_FILE)).unwrap()).unwrap();
    let endpoint = WitnessEndpoint::new(&format!("http://{listen}"), verifier.clone()).unwrap();
    let real = tree(5, "real");
    let cp = checkpoint(&real, 5, &log_key());
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        match add_checkpoint(&endpoint, 0, &[], &cp).await {
            Ok(line) => break line,
            Err(e) if e.is_transient() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    verifier.verify_note(&append_cosignatures(&cp, &[line])).unwrap();
    // The state went next to the key.
    assert!(keys.join("witness-state.json").exists());

    // A fork is refused, and the operator's log says so with both trees.
    let fork = tree(5, "fork");
    let err = add_checkpoint(&endpoint, 5, &[], &checkpoint(&fork, 5, &log_key()))
        .await
        .unwrap_err();
    assert!(err.is_alarm(), "{err}");
    child.kill().await.unwrap();
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr)
        .await
        .unwrap();
    let fork_line = stderr.lines().find(|l| l.contains("LOG FORK")).expect(&stderr);
    assert!(fork_line.contains("ERROR"), "{fork_line}");
    for root in [real.root(), fork.root()] {
        assert!(fork_line.contains(&STANDARD.encode(root)), "{fork_line}");
    }
}

#[tokio::test]
async fn stopping_closes_kept_alive_connections() {
    let setup = Setup::new();
    let w = setup.start().await;
    let addr = w.server.addr();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    let conn = tokio::spawn(conn);
    let cp = checkpoint(&tree(5, "real"), 5, &log_key());
    let http_request = |body: String| {
        Request::builder()
            .method(Method::POST)
            .uri("/add-checkpoint")
            .header(hyper::header::HOST, addr.to_string())
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let first = sender
        .send_request(http_request(request(0, vec![], &cp)))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    first.into_body().collect().await.unwrap();

    // An idle kept-alive connection must not hold the witness (and its state) open.
    tokio::time::timeout(Duration::from_secs(5), w.server.stop())
        .await
        .expect("stop returns while a client keeps its connection open");
    tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        sender
            .send_request(http_request(request(5, vec![], &cp)))
            .await
            .is_err()
    );
}
