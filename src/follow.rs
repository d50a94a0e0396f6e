//! Following the other gateway instances. Instances that share one PostgreSQL database learn of
//! each other's writes from the store's change log, read in commit order: a stored case version
//! goes to the live hub, a policy change reloads the agreements and consents, a revocation the
//! revocations (cutting what it names). NOTIFY wakes the follower at once; without it, it polls.
//! Each time it wakes or polls it also looks for center events other instances stored, and
//! wakes this instance's center streams when there are new ones (a NOTIFY carries no data: it
//! only says "look").
//! Before any request is served, `ensure_current` applies whatever the log holds beyond what
//! this instance has applied, so a change made on one instance governs the next request on
//! every instance, whatever a wake-up's delay.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use crate::access::Access;
use crate::agreements::{AgreementError, Agreements};
use crate::cases::CurrentCase;
use crate::cases::validate::parse_recorded_case_bytes;
use crate::centers::Centers;
use crate::live::{Change as HubChange, Hub};
use crate::store::{Change, SharedStore, StoreError};

/// Change rows read at once.
const PAGE: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Agreements(#[from] AgreementError),
}

pub struct Follower {
    store: SharedStore,
    hub: Arc<Hub>,
    agreements: Arc<Agreements>,
    access: Arc<Access>,
    centers: Arc<Centers>,
    /// How long it waits for a wake-up before it looks anyway.
    poll: Duration,
    /// The last change applied here.
    applied: Mutex<i64>,
    /// Whether other instances write to the store. Alone, this instance has applied its own
    /// policy changes and revocations already, and the follower only keeps the hub's position.
    shared: bool,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower").finish_non_exhaustive()
    }
}

impl Follower {
    /// A follower that has applied everything up to `from` (read before the instance loaded
    /// its cases, policy and revocations, so nothing between is missed; re-applying is harmless).
    /// It wakes `centers`' streams when other instances stored center events, and waits `poll`
    /// for a wake-up before it looks anyway.
    pub fn new(
        store: SharedStore,
        hub: Arc<Hub>,
        agreements: Arc<Agreements>,
        access: Arc<Access>,
        centers: Arc<Centers>,
        poll: Duration,
        from: i64,
    ) -> Self {
        Self {
            shared: store.is_shared(),
            store,
            hub,
            agreements,
            access,
            centers,
            poll,
            applied: Mutex::new(from),
        }
    }

    /// Applies every change after the last one applied, in order.
    pub async fn catch_up(&self) -> Result<(), FollowError> {
        let mut applied = self.applied.lock().await;
        loop {
            let rows = self.store.changes_after(*applied, PAGE).await?;
            let Some(last) = rows.last().map(|r| r.seq) else {
                return Ok(());
            };
            let (mut policy, mut revocations) = (false, false);
            for row in rows {
                match row.change {
                    Change::Case { center_id, case_id } => self.case(&center_id, &case_id, row.seq).await?,
                    Change::Policy => policy = true,
                    Change::Revocation => revocations = true,
                }
            }
            if policy && self.shared {
                self.agreements.reload().await?;
            }
            if revocations && self.shared {
                self.access.revocations.reload().await?;
            }
            *applied = last;
            self.hub.apply(HubChange::Position(last));
        }
    }

    /// Before a request: applies what other instances committed and this one has not yet
    /// applied (one indexed read when there is nothing).
    pub async fn ensure_current(&self) -> Result<(), FollowError> {
        let head = self.store.latest_change().await?;
        if head > *self.applied.lock().await {
            self.catch_up().await?;
        }
        Ok(())
    }

    /// Follows the log until `shutdown`.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = self.store.wait_for_change(self.poll) => {}
                changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() {
                    return;
                },
            }
            if let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "cannot follow the other instances' changes now; retrying");
            }
            if self.shared
                && let Err(e) = self.centers.look().await
            {
                tracing::warn!(error = %e, "cannot look for the other instances' center events now; retrying");
            }
        }
    }

    async fn case(&self, center_id: &str, case_id: &str, change: i64) -> Result<(), StoreError> {
        // This instance's own writes reach the hub before the log is read.
        if self.hub.case(center_id, case_id).is_some_and(|c| c.change >= change) {
            return Ok(());
        }
        let Some(stored) = self.store.current_case(center_id, case_id).await? else {
            // No longer current but still here: another instance accepted its transfer.
            if self.hub.case(center_id, case_id).is_some()
                && let Some((_, _, to)) = self
                    .store
                    .moved_cases()
                    .await?
                    .into_iter()
                    .find(|(c, k, _)| c == center_id && k == case_id)
            {
                self.hub.apply(HubChange::Moved {
                    from: (center_id.to_owned(), case_id.to_owned()),
                    to: (to, case_id.to_owned()),
                    change,
                });
            }
            return Ok(());
        };
        match parse_recorded_case_bytes(stored.body.as_bytes()) {
            // The hub keeps the newest by `seq`: a version it already has changes nothing.
            Ok((_, record)) => self.hub.apply(HubChange::Case(Arc::new(CurrentCase {
                record,
                seq: stored.seq,
                change: stored.change,
            }))),
            Err(_) => tracing::error!(seq = stored.seq, "a stored case no longer validates; it is not served"),
        }
        Ok(())
    }
}
