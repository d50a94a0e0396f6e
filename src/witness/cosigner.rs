//! Asking the configured witnesses to cosign the log's checkpoints (C2SP tlog-witness), one
//! task per witness, in the background: a witness that is down or slow never holds up a
//! disclosure (checkpoints are cosigned when it returns, the newest first); a witness that
//! reports a fork or a rollback is logged loudly and asked again only after a long pause.
//! Each cosignature is stored with its checkpoint's size and published with it.

use std::time::Duration;

use tokio::sync::watch;

use crate::audit::AuditLog;
use crate::store::SharedStore;
use crate::witness::{WitnessEndpoint, WitnessError, add_checkpoint};

/// How often a witness task looks for a newer checkpoint.
const EVERY: Duration = Duration::from_millis(250);
/// How long a task waits after a witness was unreachable or refused.
const BACKOFF: Duration = Duration::from_secs(2);
/// How long after a fork or rollback alarm before asking that witness again.
const ALARM_PAUSE: Duration = Duration::from_secs(60);

/// Starts one task per witness; they end when `shutdown` turns true.
pub fn spawn_cosigners(log: AuditLog, witnesses: Vec<WitnessEndpoint>, shutdown: watch::Receiver<bool>) {
    for witness in witnesses {
        tokio::spawn(cosign_forever(log.clone(), witness, shutdown.clone()));
    }
}

async fn cosign_forever(log: AuditLog, witness: WitnessEndpoint, mut shutdown: watch::Receiver<bool>) {
    // What the witness cosigned last, as far as this task knows: 0 at start, corrected by the
    // witness's 409 (its size) on the first request.
    let mut last: u64 = 0;
    loop {
        let pause = match cosign_latest(&log, log.store(), &witness, &mut last).await {
            Ok(()) => EVERY,
            Err(e) if e.is_alarm() => {
                tracing::error!(
                    witness = witness.verifier().name(),
                    error = %e,
                    "WITNESS ALARM: the witness refuses the log's history; investigate before trusting checkpoints"
                );
                ALARM_PAUSE
            }
            Err(e) => {
                tracing::warn!(witness = witness.verifier().name(), error = %e, "checkpoint not cosigned yet");
                BACKOFF
            }
        };
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            changed = shutdown.changed() => if changed.is_err() || *shutdown.borrow() {
                return;
            },
        }
    }
}

/// Offers the latest checkpoint to `witness` if it is newer than what it cosigned.
async fn cosign_latest(
    log: &AuditLog,
    store: &SharedStore,
    witness: &WitnessEndpoint,
    last: &mut u64,
) -> Result<(), WitnessError> {
    let Some(checkpoint) = log.latest_checkpoint() else {
        return Ok(());
    };
    let size = checkpoint.tree_size;
    if size <= *last {
        return Ok(());
    }
    let proof = if *last == 0 {
        Vec::new()
    } else {
        log.consistency_proof(*last, size)
            .await
            .map_err(|e| WitnessError::Proof(e.to_string()))?
    };
    match add_checkpoint(witness, *last, &proof, &checkpoint.note).await {
        Ok(line) => {
            store
                .add_cosignature(size, &line.to_line())
                .await
                .map_err(|e| WitnessError::Proof(format!("cannot store the cosignature: {e}")))?;
            *last = size;
            Ok(())
        }
        // The witness cosigned another size (a restart of ours, or another instance's
        // checkpoint): ask again from there.
        Err(WitnessError::Conflict { size: theirs }) if theirs <= size => {
            *last = theirs;
            Ok(())
        }
        Err(WitnessError::Conflict { size: theirs }) => Err(WitnessError::AheadOfLog {
            witness_size: theirs,
            size,
        }),
        Err(e) => Err(e),
    }
}
