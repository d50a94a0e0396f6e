//! Persistence behind one trait, one implementation per backend (`sqlite`, `postgres`), each
//! with its own migrations, chosen from the URL scheme. Every implementation gives the same
//! answers: `tests/api/store_contract.rs` runs one suite against both.

/// The current version of cases, with the latest change of each; `$rest` filters and orders
/// (in the backend's placeholders). Read with `stored_case`.
macro_rules! select_current {
    ($rest:literal) => {
        concat!(
            "SELECT c.center_id, c.case_id, c.version, v.body, c.seq, \
             (SELECT coalesce(max(h.seq), 0) FROM changes h WHERE h.center_id = c.center_id AND h.case_id = c.case_id) AS change \
             FROM cases c JOIN case_versions v ON v.seq = c.seq",
            $rest
        )
    };
}

pub mod postgres;
pub mod sqlite;

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL (expected sqlite:... or postgres://...)")]
    UnsupportedUrl,
    #[error("stored data is inconsistent: {0}")]
    Corrupt(&'static str),
    /// Audit entries sealed for a position the log has passed (another instance appended
    /// meanwhile): nothing was written; the writer catches up to `stored` entries and seals again.
    #[error("the audit log holds {stored} entries; the batch does not continue it")]
    AuditBehind { stored: u64 },
    #[error("a time cannot be stored: {0}")]
    Time(#[from] time::error::Format),
    #[error("the database did not answer in time")]
    TimedOut,
}

impl StoreError {
    /// Whether the store could not be reached or written now (a full disk, an I/O error, a
    /// lock or pool timeout, a lost connection, a database server shutting down or refusing
    /// connections): a condition that passes, during which nothing is acknowledged. Anything
    /// else (a constraint the caller broke, corrupt data) is a fault.
    pub fn is_unavailable(&self) -> bool {
        use sqlx::error::ErrorKind;
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => {
                match db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                    Some(pg) => pg_unavailable(pg.code()),
                    None => matches!(db.kind(), ErrorKind::Other),
                }
            }
            StoreError::TimedOut => true,
            StoreError::Database(
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed,
            ) => true,
            _ => false,
        }
    }
}

/// PostgreSQL's SQLSTATEs for conditions that pass: connection exceptions (08), serialization
/// failures and deadlocks (40001, 40P01), a read-only transaction (25006: a standby, during a
/// fail-over), insufficient resources (53: disk full, out of memory, too many connections),
/// operator intervention (57: shutdown, restart, cancelled statements) and system errors (58).
fn pg_unavailable(code: &str) -> bool {
    matches!(code, "40001" | "40P01" | "25006") || ["08", "53", "57", "58"].iter().any(|class| code.starts_with(class))
}

/// Times are stored as RFC 3339 text, the same bytes on every backend.
fn rfc3339(at: OffsetDateTime) -> Result<String, StoreError> {
    Ok(at.format(&Rfc3339)?)
}

/// A key's activation time: unknown (`None`) for rows written before it was RFC 3339.
fn parse_activated(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

fn activated_text(at: Option<OffsetDateTime>) -> Result<String, StoreError> {
    at.map_or_else(|| Ok(String::new()), rfc3339)
}

fn parse_time(text: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| StoreError::Corrupt("a stored time is not RFC 3339"))
}

type CenterEventTuple = (i64, String, String, String, String);

fn center_event_row((seq, center_id, kind, at, body): CenterEventTuple) -> Result<CenterEventRow, StoreError> {
    Ok(CenterEventRow {
        seq,
        center_id,
        kind,
        at: parse_time(&at)?,
        body,
    })
}

/// Every column of a transfer, in `TransferTuple`'s order (both backends).
const TRANSFER_SELECT: &str =
    "SELECT id, center_id, case_id, to_center, state, requested_at, decided_at FROM transfers";

type TransferTuple = (i64, String, String, String, String, String, Option<String>);

fn transfer_row(
    (id, center_id, case_id, to_center, state, requested_at, decided_at): TransferTuple,
) -> Result<TransferRow, StoreError> {
    Ok(TransferRow {
        id,
        center_id,
        case_id,
        to_center,
        state,
        requested_at: parse_time(&requested_at)?,
        decided_at: decided_at.as_deref().map(parse_time).transpose()?,
    })
}

/// A backend's migrations, compiled into the binary: (version, description, SQL).
#[derive(Debug, Clone, Copy)]
struct EmbeddedMigrations(&'static [(i64, &'static str, &'static str)]);

impl<'s> MigrationSource<'s> for EmbeddedMigrations {
    fn resolve(self) -> BoxFuture<'s, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(v, d, sql)| {
                    Migration::new(*v, Cow::Borrowed(d), MigrationType::Simple, Cow::Borrowed(sql), false)
                })
                .collect())
        })
    }
}

/// A case version about to be stored. `body` is its canonical JSON.
#[derive(Debug, Clone)]
pub struct NewCase<'a> {
    pub center_id: &'a str,
    pub case_id: &'a str,
    pub version: u64,
    pub body: &'a str,
    pub received_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Durable; `seq` orders every accepted update; `change` is its row in the change log
    /// (`Store::changes_after`), whose order is commit order.
    Stored { seq: i64, change: i64 },
    /// The same version with the same body was already stored.
    Identical,
    /// A different body at a version at or below the stored one.
    Conflict { stored_version: u64 },
    /// The case was transferred to `to_center`: its old center can no longer push it.
    Transferred { to_center: String },
}

#[derive(Debug, Clone)]
pub struct StoredCase {
    pub center_id: String,
    pub case_id: String,
    pub version: u64,
    pub body: String,
    pub seq: i64,
    /// The case's latest row in the change log: every change of this case up to this version
    /// has a row at or before it.
    pub change: i64,
}

/// What changed, for the instances that follow the store (see `Store::changes_after`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A case version was stored: the case's current version may be newer.
    Case { center_id: String, case_id: String },
    /// An agreement version or a consent step was stored.
    Policy,
    /// A terminal or an officer was revoked.
    Revocation,
}

/// One row of the change log: its position in commit order, and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRow {
    pub seq: i64,
    pub change: Change,
}

impl Change {
    fn kind(&self) -> &'static str {
        match self {
            Change::Case { .. } => "case",
            Change::Policy => "policy",
            Change::Revocation => "revocation",
        }
    }

    fn key(&self) -> (Option<&str>, Option<&str>) {
        match self {
            Change::Case { center_id, case_id } => (Some(center_id), Some(case_id)),
            _ => (None, None),
        }
    }

    fn from_row(kind: &str, center_id: Option<String>, case_id: Option<String>) -> Result<Self, StoreError> {
        match (kind, center_id, case_id) {
            ("case", Some(center_id), Some(case_id)) => Ok(Change::Case { center_id, case_id }),
            ("policy", _, _) => Ok(Change::Policy),
            ("revocation", _, _) => Ok(Change::Revocation),
            _ => Err(StoreError::Corrupt("unknown change kind")),
        }
    }
}

/// One audit log leaf as stored.
#[derive(Debug, Clone)]
pub struct AuditRow {
    pub index: u64,
    pub line: String,
    pub leaf_hash: [u8; 32],
    pub kind: String,
    pub center_id: Option<String>,
    pub case_id: Option<String>,
}

/// One hash tile of the audit log's tree (C2SP tlog-tiles): `hashes` is the tile's bytes, 32
/// per hash, 1 to 256 hashes. A stored tile only ever grows, until it is full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditTileRow {
    pub level: u8,
    pub index: u64,
    pub hashes: Vec<u8>,
}

/// One group commit of the audit log: its entries, the tiles they change, and the checkpoint
/// signed over the tree they make (absent only when tiles are rebuilt for an older log).
#[derive(Debug, Clone, Default)]
pub struct AuditCommit {
    pub entries: Vec<AuditRow>,
    pub tiles: Vec<AuditTileRow>,
    pub checkpoint: Option<CheckpointRow>,
    /// Center events durable with the entries or not at all (a case opened: the center is told
    /// in the same transaction that records the disclosure). Their `seq` is assigned here.
    pub center_events: Vec<CenterEventRow>,
}

#[derive(Debug, Clone)]
pub struct CheckpointRow {
    pub tree_size: u64,
    pub note: String,
    pub published_at: OffsetDateTime,
}

/// One signing key of the audit log's history (public parts only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditKeyRow {
    /// The index of the first entry this key signs (the tree size when it took over).
    pub first_index: u64,
    /// The C2SP key id, 8 lowercase hex digits, as entries carry it in `kid`.
    pub key_id: String,
    /// The C2SP verifier key `<origin>+<key id>+<base64>`.
    pub verifier_key: String,
    /// When it took over; `None` for a key recorded before times were kept as RFC 3339.
    pub activated_at: Option<OffsetDateTime>,
}

/// A terminal (`kind` "terminal", `subject` its principal URN) or an officer (`kind`
/// "officer", `subject` the token subject) revoked by an administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRow {
    pub kind: String,
    pub subject: String,
    pub revoked_by: String,
    pub revoked_at: OffsetDateTime,
}

/// One stored version of a sharing agreement: its exact text, as submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementVersionRow {
    pub agreement_id: String,
    pub version: u32,
    pub document: String,
    /// Lower-case hex SHA-256 of `document`'s bytes.
    pub sha256: String,
    /// The administrator's principal URN and token subject, or the seed's source.
    pub submitted_by: String,
    pub submitted_at: OffsetDateTime,
}

/// One step of a city provider's opt-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentStepRow {
    pub seq: i64,
    pub agreement_id: String,
    pub operator: String,
    /// `consent`, `decline`, `withdraw`, `confirm`, `reask` (a new version widened what the
    /// city shares), or `seed` for the state imported from files.
    pub action: String,
    pub from_state: String,
    pub to_state: String,
    /// After the step: the agreement version whose terms the city consented to, and the one
    /// the prefecture confirmed (what its cases are shared under).
    pub consented_version: Option<u32>,
    pub confirmed_version: Option<u32>,
    pub actor: String,
    pub at: OffsetDateTime,
}

/// A row of `select_current!`, on either backend.
fn stored_case<'r, R>(r: &'r R) -> Result<StoredCase, StoreError>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let version: i64 = r.try_get("version")?;
    Ok(StoredCase {
        center_id: r.try_get("center_id")?,
        case_id: r.try_get("case_id")?,
        version: u64::try_from(version).map_err(|_| StoreError::Corrupt("negative integer"))?,
        body: r.try_get("body")?,
        seq: r.try_get("seq")?,
        change: r.try_get("change")?,
    })
}

/// One event of a center's stream (`centers`): `kind` is `response` or `opened`, `body` its
/// JSON; `seq` orders every center's events in commit order and is the stream's cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CenterEventRow {
    pub seq: i64,
    pub center_id: String,
    pub kind: String,
    pub at: OffsetDateTime,
    pub body: String,
}

/// A case transfer (転出・転入) from `center_id` to `to_center`; `state` is `pending`, `accepted`
/// or `declined`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    pub id: i64,
    pub center_id: String,
    pub case_id: String,
    pub to_center: String,
    pub state: String,
    pub requested_at: OffsetDateTime,
    pub decided_at: Option<OffsetDateTime>,
}

/// What a transfer request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferRequested {
    /// Stored, pending, with this id.
    Requested(i64),
    /// A transfer of this case is already pending (its id); nothing was stored.
    AlreadyPending(i64),
    /// The center has no current case with that id.
    NoSuchCase,
}

/// An accepted transfer as stored: the copy's `seq` and change-log row, and the old case's
/// change-log row (just before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovedCase {
    pub seq: i64,
    pub change: i64,
    pub old_change: i64,
}

/// What a decision on a transfer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferDecided {
    /// Declined; or accepted, and then the case's copy under the receiving center is stored
    /// and its old row is moved.
    Done { stored: Option<MovedCase> },
    /// No pending transfer has that id (decided before, or never requested).
    NotPending,
    /// The case has another version than the copy was made from: read it again.
    CaseChanged,
    /// The receiving center has (or had) a case with that id.
    IdTaken,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a case version if it is newer than the case's stored one; otherwise answers
    /// `Identical` (that version was stored with this body) or `Conflict`. Atomic against any
    /// number of concurrent writers, other instances included: of racing writers of one
    /// version, exactly one gets `Stored`, and a newer stored version always has a larger
    /// `seq`. Returns only once the outcome is durable.
    async fn put_case(&self, case: NewCase<'_>) -> Result<PutOutcome, StoreError>;
    /// The current version of every case.
    async fn current_cases(&self) -> Result<Vec<StoredCase>, StoreError>;

    /// Appends a batch of consecutive audit leaves in one durable transaction.
    async fn append_audit(&self, rows: &[AuditRow]) -> Result<(), StoreError>;
    /// Appends a group commit in one durable transaction: entries, tiles (inserted, or grown in
    /// place: a stored tile is only ever extended), the checkpoint and the center events, all or
    /// nothing. Answers the `seq` of the last center event written, if any.
    async fn append_audit_commit(&self, commit: &AuditCommit) -> Result<Option<i64>, StoreError>;
    /// The stored bytes of hash tile `index` of tile level `level` (possibly wider than a
    /// smaller tree needs: callers take the prefix they need).
    async fn audit_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Every leaf hash, in index order. Not used at start any more (the log reads only the
    /// right edge of its tiles); kept for tools that want the whole tree.
    async fn audit_leaf_hashes(&self) -> Result<Vec<[u8; 32]>, StoreError>;
    /// Entries `[start, end)`.
    async fn audit_entries(&self, start: u64, end: u64) -> Result<Vec<AuditRow>, StoreError>;
    /// Entries about one case, from index `after` on, at most `limit`.
    async fn audit_entries_for_case(
        &self,
        center_id: &str,
        case_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError>;
    async fn put_checkpoint(&self, row: &CheckpointRow) -> Result<(), StoreError>;
    async fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError>;
    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError>;

    /// Every stored agreement version, by id then version.
    async fn agreement_versions(&self) -> Result<Vec<AgreementVersionRow>, StoreError>;
    /// Stores a new version and the consent steps it causes (cities asked again about a
    /// widening) in one durable transaction; `false` (and nothing stored) if that id and
    /// version exist.
    async fn put_agreement_version(
        &self,
        row: &AgreementVersionRow,
        steps: &[ConsentStepRow],
    ) -> Result<bool, StoreError>;
    /// Every consent step, in order.
    async fn consent_steps(&self) -> Result<Vec<ConsentStepRow>, StoreError>;
    /// Appends a step durably (its `seq` is assigned by the store and returned).
    async fn append_consent_step(&self, row: &ConsentStepRow) -> Result<i64, StoreError>;
    /// Imports the policy files in one transaction, unless an import happened before; returns
    /// whether it happened now.
    async fn seed_policy(
        &self,
        source: &str,
        at: OffsetDateTime,
        versions: &[AgreementVersionRow],
        steps: &[ConsentStepRow],
    ) -> Result<bool, StoreError>;

    /// The audit log's signing keys, oldest first.
    async fn audit_keys(&self) -> Result<Vec<AuditKeyRow>, StoreError>;
    /// Records that a key takes over; refused if that key is already in the history.
    async fn add_audit_key(&self, row: &AuditKeyRow) -> Result<(), StoreError>;
    /// How many audit entries are stored.
    async fn audit_len(&self) -> Result<u64, StoreError>;

    /// Records a revocation; false if that terminal or officer was already revoked.
    async fn add_revocation(&self, row: &RevocationRow) -> Result<bool, StoreError>;
    async fn revocations(&self) -> Result<Vec<RevocationRow>, StoreError>;

    /// Records a witness's cosignature line (`— <witness> <base64>`) of the checkpoint of
    /// `tree_size`; a line already recorded changes nothing.
    async fn add_cosignature(&self, tree_size: u64, line: &str) -> Result<(), StoreError>;
    /// The cosignature lines of the checkpoint of `tree_size`, in the order recorded.
    async fn cosignatures(&self, tree_size: u64) -> Result<Vec<String>, StoreError>;
    /// Every cosignature line with its tree size, by size (for exports).
    async fn all_cosignatures(&self) -> Result<Vec<(u64, String)>, StoreError>;

    /// The current version of one case.
    async fn current_case(&self, center_id: &str, case_id: &str) -> Result<Option<StoredCase>, StoreError>;
    /// The current version of one center's cases, the most recently stored first: those whose
    /// `seq` is below `before` (all when `None`), at most `limit`.
    async fn center_cases(
        &self,
        center_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredCase>, StoreError>;
    /// The change log after `after`, in commit order, at most `limit` rows. Every write that
    /// changes what terminals may see (a stored case version, an agreement version, a consent
    /// step, a revocation) adds its row in its own transaction, so a reader never sees a change
    /// before its data and never skips a row that commits later.
    async fn changes_after(&self, after: i64, limit: u32) -> Result<Vec<ChangeRow>, StoreError>;
    /// Appends an event to a center's stream durably; its `seq` is assigned by the store (larger
    /// than every event committed before it, on any instance) and returned. `row.seq` is ignored.
    async fn append_center_event(&self, row: &CenterEventRow) -> Result<i64, StoreError>;
    /// `center_id`'s events after `after`, in order, at most `limit`; only those of `kind` when
    /// given.
    async fn center_events_after(
        &self,
        center_id: &str,
        kind: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<CenterEventRow>, StoreError>;
    /// The `seq` of the last event of any center (0 when none).
    async fn latest_center_event(&self) -> Result<i64, StoreError>;

    /// Requests the transfer of a current case (`row.id`, `state` and `decided_at` are ignored).
    async fn request_transfer(&self, row: &TransferRow) -> Result<TransferRequested, StoreError>;
    async fn transfer(&self, id: i64) -> Result<Option<TransferRow>, StoreError>;
    /// The pending transfers from or to `center_id`, oldest first.
    async fn pending_transfers(&self, center_id: &str) -> Result<Vec<TransferRow>, StoreError>;
    /// Declines (`accept` is `None`) or accepts pending transfer `id`, in one durable transaction.
    /// Accepting stores `accept`, the case's current version as the receiving center's (same
    /// case id and version, `center_id` the receiving center's), marks the old row moved (no
    /// longer current, refused to its old center's pushes) and adds a change row for each.
    async fn decide_transfer(
        &self,
        id: i64,
        accept: Option<NewCase<'_>>,
        at: OffsetDateTime,
    ) -> Result<TransferDecided, StoreError>;
    /// Every case that moved: (old center, case id, the center it moved to), in no order.
    async fn moved_cases(&self) -> Result<Vec<(String, String, String)>, StoreError>;

    /// The position of the last change (0 when none).
    async fn latest_change(&self) -> Result<i64, StoreError>;
    /// Whether other gateway instances may write to this store (PostgreSQL): an instance then
    /// follows the change log to learn of their writes.
    fn is_shared(&self) -> bool;
    /// Returns when another instance may have written a change (a wake-up, not a promise), or
    /// after `timeout`.
    async fn wait_for_change(&self, timeout: std::time::Duration);
}

pub type SharedStore = Arc<dyn Store>;

/// Opens the store a URL names: `sqlite://<path>` (created if missing) or
/// `postgres://user@host:port/db` (`postgresql://` alike; the database must exist). Either is
/// migrated to the current schema before it is returned.
pub async fn open(url: &str) -> Result<SharedStore, StoreError> {
    open_with(url, true).await
}

/// `open`, choosing whether changes send a NOTIFY wake-up to other instances (PostgreSQL).
pub async fn open_with(url: &str, notify_changes: bool) -> Result<SharedStore, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(
            postgres::PgStore::open(url).await?.with_notify(notify_changes),
        ))
    } else {
        Err(StoreError::UnsupportedUrl)
    }
}

#[cfg(test)]
mod tests {
    use super::pg_unavailable;

    #[test]
    fn postgres_outages_are_unavailable_and_broken_rules_are_faults() {
        for passing in [
            "08006", // connection failure
            "57P01", // admin shutdown (pg_ctl stop)
            "57P03", // cannot connect now (starting up, recovering)
            "53100", // disk full
            "53300", // too many connections
            "40001", // serialization failure
            "40P01", // deadlock
            "25006", // read-only transaction: a standby during fail-over
            "58030", // I/O error
        ] {
            assert!(pg_unavailable(passing), "{passing}");
        }
        for fault in [
            "23505", // unique violation: a key already in the history
            "23514", // check violation
            "P0001", // raised by the append-only triggers
            "42601", // syntax error
            "42P01", // undefined table
            "22P02", // invalid text representation
        ] {
            assert!(!pg_unavailable(fault), "{fault}");
        }
    }
}
