//! Access: who may make a request now, and the record of every refusal. Each client
//! certificate has a rate limit checked before anything else, each officer another; revoked
//! terminals and officers are refused; every refusal is an audit entry, repeats within a window
//! coalesced into one entry with a count and a flood into one security entry. A service: it
//! owns its errors and knows nothing of HTTP (the edge decides the status and the words).

use std::time::Duration;

use tokio::sync::watch;

use crate::audit::{Actor, AuditLog, Event};
use crate::clock::SharedClock;
use crate::identity::Principal;
use crate::limits::{RateLimiter, RefusalCoalescer, RefusalKey, RefusalNote};
use crate::revocations::Revocations;

/// How often refusal windows that ended without a further refusal have their counts recorded.
const REFUSAL_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Why a request may not proceed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("rate limited; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("this terminal has been revoked")]
    TerminalRevoked,
    #[error("this officer has been revoked")]
    OfficerRevoked,
}

/// One refused request, as the audit log records it: the route template, never a value.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub principal: String,
    pub subject: Option<String>,
    pub request: String,
    pub status: u16,
    pub reason: String,
}

pub struct Access {
    pub revocations: Revocations,
    certificates: RateLimiter,
    /// CGC case systems' certificates, with their own budget.
    centers: RateLimiter,
    officers: RateLimiter,
    refusals: RefusalCoalescer,
    audit: AuditLog,
    clock: SharedClock,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").finish_non_exhaustive()
    }
}

impl Access {
    pub fn new(
        revocations: Revocations,
        certificates: RateLimiter,
        centers: RateLimiter,
        officers: RateLimiter,
        refusals: RefusalCoalescer,
        audit: AuditLog,
        clock: SharedClock,
    ) -> Self {
        Self {
            revocations,
            certificates,
            centers,
            officers,
            refusals,
            audit,
            clock,
        }
    }

    /// Takes one request from the certificate's bucket. Checked before any token is verified
    /// or anything is written, for every principal kind.
    pub fn admit_certificate(&self, principal: &Principal) -> Result<(), Denied> {
        let limiter = match principal {
            Principal::Center { .. } => &self.centers,
            _ => &self.certificates,
        };
        limiter
            .check(&principal.to_string(), self.clock.now())
            .map_err(|retry_after_secs| Denied::RateLimited { retry_after_secs })
    }

    /// A terminal with a verified officer: neither revoked, and the officer within its limit.
    pub fn admit_officer(&self, terminal: &Principal, officer: &str) -> Result<(), Denied> {
        if self.revocations.terminal_revoked(terminal) {
            return Err(Denied::TerminalRevoked);
        }
        if self.revocations.officer_revoked(officer) {
            return Err(Denied::OfficerRevoked);
        }
        self.officers
            .check(officer, self.clock.now())
            .map_err(|retry_after_secs| Denied::RateLimited { retry_after_secs })
    }

    /// Records a refusal: the first of its kind (principal, subject, request, status) in a
    /// window at once, repeats as one entry with their count when the window closes. Never
    /// fails the request it refuses: a failure to record is logged.
    pub fn record_refusal(&self, refusal: Refusal) {
        let key = RefusalKey {
            principal: refusal.principal,
            subject: refusal.subject,
            request: refusal.request,
            status: refusal.status,
        };
        let notes = self.refusals.refused(key, &refusal.reason, self.clock.now());
        self.record_in_background(self.events(notes));
    }

    /// Records the counts of refusal windows that closed without a further refusal, every
    /// second, until `shutdown`; then the counts of every open window, so that none is lost.
    pub async fn flush_refusals(&self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(REFUSAL_FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let notes = self.refusals.flush(self.clock.now());
                    self.record_in_background(self.events(notes));
                }
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() {
                    break;
                },
            }
        }
        let events = self.events(self.refusals.drain(self.clock.now()));
        if let Err(e) = self.audit.record(events).await {
            tracing::error!(error = %e, "could not record the last refusal counts in the audit log");
        }
    }

    /// The audit entries for what the coalescer noted, in order.
    fn events(&self, notes: Vec<RefusalNote>) -> Vec<Event> {
        notes
            .into_iter()
            .map(|note| match note {
                RefusalNote::First { key, reason } => refusal_event(key, reason, None),
                RefusalNote::Repeated { key, count, reason } => refusal_event(key, reason, Some(count)),
                RefusalNote::Flood { principal, count } => Event::Security {
                    actor: Actor {
                        principal,
                        subject: None,
                    },
                    what: format!(
                        "refusal flood: {count} refusals of this certificate within {} s exceeded the configured threshold",
                        self.refusals.window().whole_seconds()
                    ),
                },
            })
            .collect()
    }

    /// Records `events` as one batch whose loss must not fail the request: logged if it fails.
    fn record_in_background(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let audit = self.audit.clone();
        tokio::spawn(async move {
            if let Err(e) = audit.record(events).await {
                tracing::error!(error = %e, "could not record refusals or a security entry in the audit log");
            }
        });
    }
}

fn refusal_event(key: RefusalKey, reason: String, count: Option<u64>) -> Event {
    Event::Refusal {
        actor: Actor {
            principal: key.principal,
            subject: key.subject,
        },
        request: key.request,
        status: key.status,
        reason,
        count,
    }
}
