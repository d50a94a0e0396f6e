//! `cgc-gateway demo`: the demo world (Kanagawa) on one machine — dev certificates generated
//! if absent, an embedded SQLite database, and a simulated feed of synthetic cases that the
//! demo centers push over real mTLS, exactly as a CGC case system would.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::app::Application;
use crate::cases::synth::Synth;
use crate::client::GatewayClient;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{self, Config};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub port: u16,
    pub data: PathBuf,
    pub certs: PathBuf,
    pub policies: PathBuf,
    pub feed: bool,
}

/// The demo centers and the municipalities their children live in.
pub const DEMO_CENTERS: &[(&str, &[&str])] = &[
    ("kanagawa-central", &["142123"]),
    ("yokohama-central", &["141046", "141011"]),
    ("kawasaki-central", &["141313"]),
    ("sagamihara", &["141534"]),
    ("yokosuka", &["142018"]),
];

/// Makes sure a dev PKI exists at `certs`.
pub fn ensure_dev_certs(certs: &Path) -> Result<(), String> {
    if certs.join("ca").join("terminal-ca.pem").exists() {
        return Ok(());
    }
    tracing::info!(dir = %certs.display(), "generating development certificates");
    crate::devpki::write_dev_pki(certs, config::DEV_AUDIT_ORIGIN).map_err(|e| e.to_string())
}

pub async fn run(options: DemoOptions) -> Result<(), String> {
    ensure_dev_certs(&options.certs)?;
    std::fs::create_dir_all(&options.data).map_err(|e| format!("cannot create {}: {e}", options.data.display()))?;
    let mut config = Config::development(
        &options.certs,
        &options.data,
        &options.policies,
        std::net::SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, options.port)),
    );
    config
        .apply_env(|name| std::env::var(name).ok())
        .map_err(|e| e.to_string())?;
    let clock: SharedClock = Arc::new(SystemClock);
    let app = Application::build(&config, clock.clone())
        .await
        .map_err(|e| e.to_string())?;
    // The demo's sign-in button: development tokens, bound to the calling terminal's cert.
    let issuer_key = options.certs.join("token-issuer").join("issuer-key.pem");
    let issuer_key = std::fs::read(&issuer_key).map_err(|e| format!("cannot read {}: {e}", issuer_key.display()))?;
    let _ = app.context().dev_token_issuer.set(issuer_key);
    let addr = app.addr();
    print_welcome(&options, addr.port());
    if options.feed {
        let certs = options.certs.clone();
        tokio::spawn(async move {
            if let Err(e) = feed(addr, &certs, clock, Duration::from_secs(4)).await {
                tracing::error!(error = %e, "the simulated CGC feed stopped");
            }
        });
    }
    app.run_until_stopped().await;
    Ok(())
}

fn print_welcome(options: &DemoOptions, port: u16) {
    let certs = options.certs.display();
    println!();
    println!("cgc-gateway demo (Kanagawa) — development certificates, never for real data");
    println!();
    println!("  web terminal   https://localhost:{port}/terminal/");
    println!("  API            https://localhost:{port}/v1/terminal/cases");
    println!("  browser cert   {certs}/clients/terminal-kagacho-1.p12   (password: demo)");
    println!("  server CA      {certs}/ca/server-ca.pem");
    println!("  data           {}", options.data.display());
    println!();
    println!("  Try it (加賀町警察署 terminal 1, officer K-1234):");
    println!();
    println!(
        "    TOKEN=$(cargo run --release -q -- dev-token --certs {certs} --client terminal-kagacho-1 --subject K-1234)"
    );
    println!("    curl --cacert {certs}/ca/server-ca.pem \\");
    println!(
        "         --cert {certs}/clients/terminal-kagacho-1.pem --key {certs}/clients/terminal-kagacho-1-key.pem \\"
    );
    println!("         -H \"Authorization: Bearer $TOKEN\" https://localhost:{port}/v1/terminal/cases");
    println!();
}

/// The simulated CGC feed: every center pushes a few cases, then new cases and updates keep
/// arriving every `every`.
pub async fn feed(addr: std::net::SocketAddr, certs: &Path, clock: SharedClock, every: Duration) -> Result<(), String> {
    let mut clients = Vec::new();
    for (center, municipalities) in DEMO_CENTERS {
        let client =
            GatewayClient::from_dev_certs(addr, certs, &format!("center-{center}")).map_err(|e| e.to_string())?;
        clients.push((*center, *municipalities, client));
    }
    let mut synth = Synth::new(clock.now().unix_timestamp().unsigned_abs());
    let mut pushed: Vec<(usize, serde_json::Value)> = Vec::new();
    let mut serial = 0u32;
    let stamp = clock.now().unix_timestamp().unsigned_abs() % 100_000;
    let mut push =
        async |synth: &mut Synth, pushed: &mut Vec<(usize, serde_json::Value)>, i: usize, update: Option<usize>| {
            let Some((center, municipalities, client)) = clients.get(i) else {
                return;
            };
            let now = clock.now();
            let case = match update.and_then(|u| pushed.get(u)) {
                Some((_, previous)) => synth.bump(previous, now),
                None => {
                    serial += 1;
                    let municipality = municipalities
                        .get(serial as usize % municipalities.len().max(1))
                        .copied()
                        .unwrap_or("142123");
                    synth.case(center, &format!("D{stamp}-{serial:04}"), municipality, 1, now)
                }
            };
            let Some(case_id) = case.get("case_id").and_then(|v| v.as_str()).map(str::to_owned) else {
                return;
            };
            match client.put_json(&format!("/v1/cases/{case_id}"), &case).await {
                Ok(reply) if reply.status.is_success() => match update {
                    Some(u) => {
                        if let Some(slot) = pushed.get_mut(u) {
                            slot.1 = case;
                        }
                    }
                    None => pushed.push((i, case)),
                },
                Ok(reply) => tracing::warn!(status = %reply.status, center, "demo feed push refused"),
                Err(e) => tracing::warn!(error = %e, center, "demo feed push failed"),
            }
        };
    for round in 0..4 {
        for i in 0..DEMO_CENTERS.len() {
            push(&mut synth, &mut pushed, i, None).await;
        }
        tracing::debug!(round, "demo feed seeded a round");
    }
    let mut tick = 0usize;
    loop {
        tokio::time::sleep(every).await;
        tick += 1;
        if tick % 3 == 0 || pushed.is_empty() {
            push(&mut synth, &mut pushed, tick % DEMO_CENTERS.len(), None).await;
        } else {
            let u = (tick * 7) % pushed.len();
            let i = pushed.get(u).map_or(0, |(i, _)| *i);
            push(&mut synth, &mut pushed, i, Some(u)).await;
        }
    }
}
