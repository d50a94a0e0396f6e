//! The state every handler is given: the services and the pieces of the edge a request needs.
//! The app builds it (`app::Application::build`); the HTTP layer owns its shape.

use std::sync::Arc;

use crate::audit::AuditLog;
use crate::auth::TokenVerifier;
use crate::clock::SharedClock;
use crate::live::Hub;
use crate::policy::PolicyWorld;
use crate::store::SharedStore;
use crate::tls::TlsState;
use crate::tls::serve::Connections;

/// Everything a request handler needs.
pub struct AppContext {
    pub clock: SharedClock,
    pub store: SharedStore,
    /// The agreements and consents in force, and the one way to change them.
    pub agreements: Arc<crate::agreements::Agreements>,
    pub audit: AuditLog,
    pub tokens: TokenVerifier,
    pub tls: Arc<TlsState>,
    pub connections: Arc<Connections>,
    /// Rate limits, revocations, and the record of every refusal.
    pub access: Arc<crate::access::Access>,
    /// On a store shared with other instances: what keeps this one current with their writes.
    pub follower: Option<Arc<crate::follow::Follower>>,
    /// Every case version a CGC pushes goes through this service.
    pub ingest: crate::ingest::Ingest,
    /// The largest batch import body (`[limits] batch_body_bytes`).
    pub batch_body_bytes: u64,
    /// What any other request may carry (`[limits]`).
    pub requests: super::RequestLimits,
    /// Every disclosure to a terminal, by every channel, goes through this service.
    pub disclosures: crate::views::Disclosures,
    /// Police responses and the centers' streams.
    pub centers: Arc<crate::centers::Centers>,
    /// Case transfers between centers.
    pub transfers: crate::centers::transfers::Transfers,
    /// The live fan-out hub behind the terminal streams.
    pub live: Arc<Hub>,
    /// The development token issuer's private key, set only by `demo`: enables
    /// `POST /v1/dev/token`. Never set in `serve`.
    pub dev_token_issuer: Option<Vec<u8>>,
    /// The web terminal's idle lock (`[terminal] idle_lock_minutes`; 0: none).
    pub terminal_idle_lock_minutes: u32,
}

impl std::fmt::Debug for AppContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppContext")
            .field("cases", &self.live.case_count())
            .field("audit", &self.audit)
            .finish_non_exhaustive()
    }
}

impl AppContext {
    /// The agreements, consents and registry in force now (a snapshot: never changes under a
    /// request that holds it).
    pub fn policy(&self) -> Arc<PolicyWorld> {
        self.agreements.current()
    }

    /// Re-reads the certificates and CRLs (SPEC §3: without a restart) and cuts every open
    /// connection whose certificate the new material refuses. Returns how many were cut.
    pub fn reload_tls(&self) -> Result<usize, crate::tls::TlsError> {
        self.tls.reload()?;
        // The time handshakes are verified at (rustls's time provider), so that an open
        // connection is cut exactly when a new handshake with its certificate would fail.
        let cut = match self.tls.current().config.time_provider.current_time() {
            Some(now) => self.connections.cut_refused(&self.tls, now),
            None => 0,
        };
        tracing::info!(cut, "TLS material reloaded");
        Ok(cut)
    }

    /// Replaces the policy world; live streams re-evaluate at once (withdrawals included).
    pub fn set_policy(&self, world: PolicyWorld) {
        self.agreements.install(world);
    }
}

pub type Ctx = Arc<AppContext>;
