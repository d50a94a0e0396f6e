//! PostgreSQL: the same contract as SQLite for any number of gateway instances on one database.
//!
//! Durability: `synchronous_commit = on` is set on every connection, whatever the server's
//! default, so a commit is on the server's disk (and on its synchronous standbys, if any) before
//! it is acknowledged.
//!
//! Concurrency: nothing relies on a single writer. The version rule of `put_case` is one
//! conditional upsert on the case's row (`ON CONFLICT ... DO UPDATE ... WHERE version <`), so two
//! writers of one case meet on that row's lock and the second sees the first's outcome; `seq`
//! is drawn from a sequence after that lock is held. Audit appends check, inside their
//! transaction, that they continue the stored log; the primary key on `idx` refuses a second
//! writer of the same index.
//!
//! Connections: every write goes through `WriteTx` (own `BEGIN`/`COMMIT`), and a connection
//! whose transaction did not commit is closed instead of going back to the pool, as the SQLite
//! store does: whatever state an error left on the server or in the driver goes with it.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Executor, PgConnection, Postgres, Row};

use time::OffsetDateTime;

use super::{
    AgreementVersionRow, AuditCommit, AuditKeyRow, AuditRow, AuditTileRow, CenterEventRow, CenterEventTuple, Change,
    ChangeRow, CheckpointRow, ConsentStepRow, EmbeddedMigrations, MovedCase, NewCase, PutOutcome, RevocationRow, Store,
    StoreError, StoredCase, TRANSFER_SELECT, TransferDecided, TransferRequested, TransferRow, TransferTuple,
    center_event_row, parse_time, rfc3339, transfer_row,
};

const MIGRATIONS: EmbeddedMigrations = EmbeddedMigrations(&[
    (1, "initial", include_str!("../../migrations/postgres/0001_initial.sql")),
    (2, "changes", include_str!("../../migrations/postgres/0002_changes.sql")),
    (
        3,
        "audit_tiles",
        include_str!("../../migrations/postgres/0003_audit_tiles.sql"),
    ),
    (
        4,
        "cosignatures",
        include_str!("../../migrations/postgres/0004_cosignatures.sql"),
    ),
    (
        10,
        "changes_by_case",
        include_str!("../../migrations/postgres/0010_changes_by_case.sql"),
    ),
    (
        11,
        "center_events",
        include_str!("../../migrations/postgres/0011_center_events.sql"),
    ),
    (
        12,
        "transfers",
        include_str!("../../migrations/postgres/0012_transfers.sql"),
    ),
    (
        13,
        "cases_by_center",
        include_str!("../../migrations/postgres/0013_cases_by_center.sql"),
    ),
]);

/// The advisory lock an audit append holds from reading the log's end to its commit: appends
/// of several instances queue instead of racing for the same indices.
const AUDIT_LOCK: i64 = 0x6367_635f_6175_6474; // "cgc_audt"

/// How long a request waits for a connection before the store counts as unavailable (503).
/// Also bounds how long a request waits while the server is unreachable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_CONNECTIONS: u32 = 8;

/// How long a write may take, its wait for a connection included. A server that stops answering (a
/// network partition that drops packets, a hung server) would otherwise hold the request, and
/// every disclosure queued behind an audit append, for as long as TCP takes to give up. When it
/// expires the transaction's connection is closed, which rolls the transaction back unless
/// `COMMIT` had already been sent (then the outcome is unknown, as for any cut connection).
const WRITE_DEADLINE: Duration = Duration::from_secs(10);

async fn within_deadline<T>(write: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    tokio::time::timeout(WRITE_DEADLINE, write)
        .await
        .unwrap_or(Err(StoreError::TimedOut))
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Whether a change or a center event also sends `NOTIFY cgc_changes` (a wake-up for the
    /// other instances; without it they find both by polling).
    notify: bool,
    /// This instance's `LISTEN cgc_changes` connection, opened on first wait.
    listener: std::sync::Arc<tokio::sync::Mutex<Option<sqlx::postgres::PgListener>>>,
}

/// The channel on which instances wake each other.
const CHANGES_CHANNEL: &str = "cgc_changes";

/// The advisory lock every change-writing transaction takes just before its change row and
/// holds until it commits: change rows commit in `seq` order.
const CHANGES_LOCK: i64 = 0x6367_635f_6368_616e; // "cgc_chan"
/// The lock a center event's transaction holds from its insert to its commit, so that `seq`
/// order is commit order (see the migration `center_events`).
const CENTER_EVENTS_LOCK: i64 = 0x6367_635f_6365_6e74; // "cgc_cent"

impl PgStore {
    /// Whether changes and center events send a NOTIFY wake-up (default on). Off, other
    /// instances find them within their polling interval; on, PostgreSQL takes a global lock at each notifying
    /// commit (see docs/deployment.md).
    pub fn with_notify(mut self, notify: bool) -> Self {
        self.notify = notify;
        self
    }

    /// Connects and brings the schema up to date. Instances starting at once are safe: sqlx
    /// holds an advisory lock while it migrates.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("cgc-gateway")
            .options([("synchronous_commit", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A server restart leaves dead connections in the pool; each is checked (and
            // replaced) before use, so service resumes by itself.
            .test_before_acquire(true)
            .connect_with(options)
            .await?;
        Migrator::new(MIGRATIONS).await?.run(&pool).await?;
        // The one server setting that silently voids `synchronous_commit`.
        let fsync: String = sqlx::query_scalar("SELECT current_setting('fsync')")
            .fetch_one(&pool)
            .await?;
        if fsync != "on" {
            tracing::warn!("PostgreSQL runs with fsync off: acknowledged writes can be lost in a crash");
        }
        Ok(Self {
            pool,
            notify: true,
            listener: Default::default(),
        })
    }
}

/// One write transaction. Dropped without `commit` (an error, an early return, a cancelled
/// request), the connection is closed instead of going back to the pool, which ends the
/// transaction on the server.
struct WriteTx {
    conn: PoolConnection<Postgres>,
    open: bool,
}

impl WriteTx {
    async fn begin(pool: &PgPool) -> Result<Self, StoreError> {
        let conn = pool.acquire().await?;
        let mut tx = Self { conn, open: true };
        tx.conn().execute("BEGIN").await?;
        Ok(tx)
    }

    fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    async fn commit(mut self) -> Result<(), StoreError> {
        self.conn().execute("COMMIT").await?;
        self.open = false;
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

fn to_u64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt("negative integer"))
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt("integer out of range"))
}

fn to_u32(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt("agreement version out of range"))
}

fn audit_row(r: &PgRow) -> Result<AuditRow, StoreError> {
    let hash: Vec<u8> = r.try_get("leaf_hash")?;
    Ok(AuditRow {
        index: to_u64(r.try_get("idx")?)?,
        line: r.try_get("line")?,
        leaf_hash: hash.try_into().map_err(|_| StoreError::Corrupt("leaf hash length"))?,
        kind: r.try_get("kind")?,
        center_id: r.try_get("center_id")?,
        case_id: r.try_get("case_id")?,
    })
}

fn checkpoint_row((s, note, published_at): (i64, String, String)) -> Result<CheckpointRow, StoreError> {
    Ok(CheckpointRow {
        tree_size: to_u64(s)?,
        note,
        published_at: super::parse_time(&published_at)?,
    })
}

const AUDIT_COLUMNS: &str = "idx, line, leaf_hash, kind, center_id, case_id";

#[async_trait]
impl Store for PgStore {
    async fn put_case(&self, case: NewCase<'_>) -> Result<PutOutcome, StoreError> {
        within_deadline(async {
            let version = to_i64(case.version)?;
            let received_at = rfc3339(case.received_at)?;
            let mut tx = WriteTx::begin(&self.pool).await?;
            // The claim: the case's row takes this version only if it is newer. A concurrent writer
            // of the same case waits here for the row lock and then re-checks the condition against
            // what the first one committed. The `seq` of an update is drawn under that lock.
            let claimed: Option<i64> = sqlx::query_scalar(
                "INSERT INTO cases (center_id, case_id, version, seq) VALUES ($1, $2, $3, nextval('case_seq')) \
                 ON CONFLICT (center_id, case_id) DO UPDATE SET version = excluded.version, seq = nextval('case_seq') \
                 WHERE cases.version < excluded.version AND cases.moved_to IS NULL \
                 RETURNING seq",
            )
            .bind(case.center_id)
            .bind(case.case_id)
            .bind(version)
            .fetch_optional(tx.conn())
            .await?;
            if let Some(seq) = claimed {
                sqlx::query(
                    "INSERT INTO case_versions (seq, center_id, case_id, version, body, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(seq)
                .bind(case.center_id)
                .bind(case.case_id)
                .bind(version)
                .bind(case.body)
                .bind(&received_at)
                .execute(tx.conn())
                .await?;
                let change = Change::Case {
                    center_id: case.center_id.to_owned(),
                    case_id: case.case_id.to_owned(),
                };
                let change = note_change(&mut tx, &change, self.notify).await?;
                tx.commit().await?;
                return Ok(PutOutcome::Stored { seq, change });
            }
            // Not newer: the row exists and (locked by the upsert) stays as read here until commit.
            let row: Option<(i64, Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT c.version, v.body, c.moved_to FROM cases c \
                 LEFT JOIN case_versions v ON v.center_id = c.center_id AND v.case_id = c.case_id AND v.version = $3 \
                 WHERE c.center_id = $1 AND c.case_id = $2",
            )
            .bind(case.center_id)
            .bind(case.case_id)
            .bind(version)
            .fetch_optional(tx.conn())
            .await?;
            tx.commit().await?;
            let (stored, body, moved) = row.ok_or(StoreError::Corrupt("a case row vanished"))?;
            Ok(if let Some(to_center) = moved {
                PutOutcome::Transferred { to_center }
            } else if body.as_deref() == Some(case.body) {
                PutOutcome::Identical
            } else {
                PutOutcome::Conflict {
                    stored_version: to_u64(stored)?,
                }
            })
        })
        .await
    }

    async fn current_cases(&self) -> Result<Vec<StoredCase>, StoreError> {
        let rows = sqlx::query(select_current!(" WHERE c.moved_to IS NULL ORDER BY c.seq"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(super::stored_case).collect()
    }

    async fn append_audit(&self, rows: &[AuditRow]) -> Result<(), StoreError> {
        self.append_audit_commit(&AuditCommit {
            entries: rows.to_vec(),
            ..AuditCommit::default()
        })
        .await
        .map(drop)
    }

    async fn append_audit_commit(&self, commit: &AuditCommit) -> Result<Option<i64>, StoreError> {
        within_deadline(async {
            let mut tx = WriteTx::begin(&self.pool).await?;
            insert_audit_rows(&mut tx, &commit.entries).await?;
            upsert_tiles(&mut tx, &commit.tiles).await?;
            if let Some(row) = &commit.checkpoint {
                insert_checkpoint(&mut tx, row).await?;
            }
            // Last, so that the center events' lock is held only from here to the commit; an
            // audit commit that lost its race for the log's end failed above without taking it.
            let last = insert_center_events(&mut tx, &commit.center_events).await?;
            if last.is_some() && self.notify {
                notify(&mut tx).await?;
            }
            tx.commit().await?;
            Ok(last)
        })
        .await
    }

    async fn audit_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT hashes FROM audit_tiles WHERE level = $1 AND idx = $2")
                .bind(i16::from(level))
                .bind(to_i64(index)?)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn audit_leaf_hashes(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT idx, leaf_hash FROM audit_entries ORDER BY idx")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (expected, (idx, hash)) in rows.into_iter().enumerate() {
            if to_u64(idx)? != expected as u64 {
                return Err(StoreError::Corrupt("audit log has a gap"));
            }
            out.push(hash.try_into().map_err(|_| StoreError::Corrupt("leaf hash length"))?);
        }
        Ok(out)
    }

    async fn audit_entries(&self, start: u64, end: u64) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx"
        ))
        .bind(to_i64(start)?)
        .bind(to_i64(end)?)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_row).collect()
    }

    async fn audit_entries_for_case(
        &self,
        center_id: &str,
        case_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_entries WHERE center_id = $1 AND case_id = $2 AND idx >= $3 \
             ORDER BY idx LIMIT $4"
        ))
        .bind(center_id)
        .bind(case_id)
        .bind(to_i64(after)?)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_row).collect()
    }

    async fn put_checkpoint(&self, row: &CheckpointRow) -> Result<(), StoreError> {
        within_deadline(async {
            let mut tx = WriteTx::begin(&self.pool).await?;
            insert_checkpoint(&mut tx, row).await?;
            tx.commit().await
        })
        .await
    }

    async fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT tree_size, note, published_at FROM audit_checkpoints ORDER BY tree_size")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(checkpoint_row).collect()
    }

    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError> {
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT tree_size, note, published_at FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(checkpoint_row).transpose()
    }

    async fn agreement_versions(&self) -> Result<Vec<AgreementVersionRow>, StoreError> {
        // Byte order, as SQLite sorts text, whatever the database's collation.
        let rows = sqlx::query(
            "SELECT agreement_id, version, document, sha256, submitted_by, submitted_at FROM agreement_versions \
             ORDER BY agreement_id COLLATE \"C\", version",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AgreementVersionRow {
                    agreement_id: r.try_get("agreement_id")?,
                    version: to_u32(r.try_get("version")?)?,
                    document: r.try_get("document")?,
                    sha256: r.try_get("sha256")?,
                    submitted_by: r.try_get("submitted_by")?,
                    submitted_at: parse_time(r.try_get("submitted_at")?)?,
                })
            })
            .collect()
    }

    async fn put_agreement_version(
        &self,
        row: &AgreementVersionRow,
        steps: &[ConsentStepRow],
    ) -> Result<bool, StoreError> {
        within_deadline(async {
            let mut tx = WriteTx::begin(&self.pool).await?;
            let inserted = insert_agreement_version(&mut tx, row).await?;
            if inserted {
                for step in steps {
                    insert_consent_step(&mut tx, step).await?;
                }
                note_change(&mut tx, &Change::Policy, self.notify).await?;
            }
            tx.commit().await?;
            Ok(inserted)
        })
        .await
    }

    async fn consent_steps(&self) -> Result<Vec<ConsentStepRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, agreement_id, operator, action, from_state, to_state, consented_version, confirmed_version, actor, at \
             FROM consent_steps ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConsentStepRow {
                    seq: r.try_get("seq")?,
                    agreement_id: r.try_get("agreement_id")?,
                    operator: r.try_get("operator")?,
                    action: r.try_get("action")?,
                    from_state: r.try_get("from_state")?,
                    to_state: r.try_get("to_state")?,
                    consented_version: r
                        .try_get::<Option<i64>, _>("consented_version")?
                        .map(to_u32)
                        .transpose()?,
                    confirmed_version: r
                        .try_get::<Option<i64>, _>("confirmed_version")?
                        .map(to_u32)
                        .transpose()?,
                    actor: r.try_get("actor")?,
                    at: parse_time(r.try_get("at")?)?,
                })
            })
            .collect()
    }

    async fn append_consent_step(&self, row: &ConsentStepRow) -> Result<i64, StoreError> {
        within_deadline(async {
            let mut tx = WriteTx::begin(&self.pool).await?;
            let seq = insert_consent_step(&mut tx, row).await?;
            note_change(&mut tx, &Change::Policy, self.notify).await?;
            tx.commit().await?;
            Ok(seq)
        })
        .await
    }

    async fn seed_policy(
        &self,
        source: &str,
        at: OffsetDateTime,
        versions: &[AgreementVersionRow],
        steps: &[ConsentStepRow],
    ) -> Result<bool, StoreError> {
        within_deadline(async {
            let mut tx = WriteTx::begin(&self.pool).await?;
            // The marker first: an instance seeding at the same moment waits on it and then finds
            // the import done.
            let marked = sqlx::query(
                "INSERT INTO policy_seed (id, source, seeded_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
            )
            .bind(source)
            .bind(rfc3339(at)?)
            .execute(tx.conn())
            .await?;
            if marked.rows_affected() == 0 {
                tx.commit().await?;
                return Ok(false);
            }
            for v in versions {
                insert_agreement_version(&mut tx, v).await?;
            }
            for s in steps {
                insert_consent_step(&mut tx, s).await?;
            }
            note_change(&mut tx, &Change::Policy, self.notify).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await
    }

    async fn audit_keys(&self) -> Result<Vec<AuditKeyRow>, StoreError> {
        let rows: Vec<(i64, String, String, String)> =
            sqlx::query_as("SELECT first_index, key_id, verifier_key, activated_at FROM audit_keys ORDER BY seq")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(first, key_id, verifier_key, activated_at)| {
                Ok(AuditKeyRow {
                    first_index: to_u64(first)?,
                    key_id,
                    verifier_key,
                    activated_at: super::parse_activated(&activated_at),
                })
            })
            .collect()
    }

    async fn add_audit_key(&self, row: &AuditKeyRow) -> Result<(), StoreError> {
        within_deadline(async {
            let mut tx = WriteTx::begin(&self.pool).await?;
            sqlx::query(
                "INSERT INTO audit_keys (first_index, key_id, verifier_key, activated_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(to_i64(row.first_index)?)
            .bind(&row.key_id)
            .bind(&row.verifier_key)
            .bind(super::activated_text(row.activated_at)?)
            .execute(tx.conn())
            .await?;
            tx.commit().await
        })
        .await
    }

    async fn audit_len(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_entries")
            .fetch_one(&self.pool)
            .await?;
        to_u64(n)
    }

    async fn add_revocation(&self, row: &RevocationRow) -> Result<bool, StoreError> {
        within_deadline(async {
            let mut tx = WriteTx::begin(&self.pool).await?;
            let done = sqlx::query(
                "INSERT INTO revocations (kind, subject, revoked_by, revoked_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (kind, subject) DO NOTHING",
            )
            .bind(&row.kind)
            .bind(&row.subject)
            .bind(&row.revoked_by)
            .bind(rfc3339(row.revoked_at)?)
            .execute(tx.conn())
            .await?;
            if done.rows_affected() == 1 {
                note_change(&mut tx, &Change::Revocation, self.notify).await?;
            }
            tx.commit().await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn revocations(&self) -> Result<Vec<RevocationRow>, StoreError> {
        let rows: Vec<(String, String, String, String)> =
            sqlx::query_as("SELECT kind, subject, revoked_by, revoked_at FROM revocations ORDER BY seq")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(kind, subject, revoked_by, revoked_at)| {
                Ok(RevocationRow {
                    kind,
                    subject,
                    revoked_by,
                    revoked_at: parse_time(&revoked_at)?,
                })
            })
            .collect()
    }

    async fn add_cosignature(&self, tree_size: u64, line: &str) -> Result<(), StoreError> {
        let mut tx = WriteTx::begin(&self.pool).await?;
        sqlx::query("INSERT INTO audit_cosignatures (tree_size, line) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(to_i64(tree_size)?)
            .bind(line)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    async fn cosignatures(&self, tree_size: u64) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT line FROM audit_cosignatures WHERE tree_size = $1 ORDER BY seq")
                .bind(to_i64(tree_size)?)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn all_cosignatures(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT tree_size, line FROM audit_cosignatures ORDER BY tree_size, seq")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter().map(|(size, line)| Ok((to_u64(size)?, line))).collect()
    }

    async fn current_case(&self, center_id: &str, case_id: &str) -> Result<Option<StoredCase>, StoreError> {
        let row = sqlx::query(select_current!(
            " WHERE c.center_id = $1 AND c.case_id = $2 AND c.moved_to IS NULL"
        ))
        .bind(center_id)
        .bind(case_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(super::stored_case).transpose()
    }

    async fn center_cases(
        &self,
        center_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredCase>, StoreError> {
        let rows = sqlx::query(select_current!(
            " WHERE c.center_id = $1 AND c.seq < $2 AND c.moved_to IS NULL ORDER BY c.seq DESC LIMIT $3"
        ))
        .bind(center_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(super::stored_case).collect()
    }

    async fn changes_after(&self, after: i64, limit: u32) -> Result<Vec<ChangeRow>, StoreError> {
        let rows: Vec<(i64, String, Option<String>, Option<String>)> =
            sqlx::query_as("SELECT seq, kind, center_id, case_id FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2")
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(seq, kind, center, case)| {
                Ok(ChangeRow {
                    seq,
                    change: Change::from_row(&kind, center, case)?,
                })
            })
            .collect()
    }

    async fn append_center_event(&self, row: &CenterEventRow) -> Result<i64, StoreError> {
        within_deadline(async {
            let mut tx = WriteTx::begin(&self.pool).await?;
            let seq = insert_center_events(&mut tx, std::slice::from_ref(row))
                .await?
                .ok_or(StoreError::Corrupt("a center event was not stored"))?;
            // The other instances' center streams wake at once. A center event is never written
            // in a transaction that notes a change, so no NOTIFY already there could carry this
            // wake-up: this is the transaction's only one.
            if self.notify {
                notify(&mut tx).await?;
            }
            tx.commit().await?;
            Ok(seq)
        })
        .await
    }

    async fn center_events_after(
        &self,
        center_id: &str,
        kind: Option<&str>,
        after: i64,
        limit: u32,
    ) -> Result<Vec<CenterEventRow>, StoreError> {
        let rows: Vec<CenterEventTuple> = sqlx::query_as(
            "SELECT seq, center_id, kind, at, body FROM center_events \
             WHERE center_id = $1 AND ($2::text IS NULL OR kind = $2) AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .bind(center_id)
        .bind(kind)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(center_event_row).collect()
    }

    async fn latest_center_event(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT coalesce(max(seq), 0)::bigint FROM center_events")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn request_transfer(&self, row: &TransferRow) -> Result<TransferRequested, StoreError> {
        within_deadline(async {
            let mut tx = WriteTx::begin(&self.pool).await?;
            // Locks the case's row: a concurrent acceptance of an earlier transfer waits, or has
            // moved it already.
            let current: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM cases WHERE center_id = $1 AND case_id = $2 AND moved_to IS NULL FOR UPDATE",
            )
            .bind(&row.center_id)
            .bind(&row.case_id)
            .fetch_optional(tx.conn())
            .await?;
            if current.is_none() {
                tx.commit().await?;
                return Ok(TransferRequested::NoSuchCase);
            }
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO transfers (center_id, case_id, to_center, state, requested_at) \
                 VALUES ($1, $2, $3, 'pending', $4) ON CONFLICT DO NOTHING RETURNING id",
            )
            .bind(&row.center_id)
            .bind(&row.case_id)
            .bind(&row.to_center)
            .bind(rfc3339(row.requested_at)?)
            .fetch_optional(tx.conn())
            .await?;
            let outcome = match id {
                Some(id) => TransferRequested::Requested(id),
                None => {
                    let pending: i64 = sqlx::query_scalar(
                        "SELECT id FROM transfers WHERE center_id = $1 AND case_id = $2 AND state = 'pending'",
                    )
                    .bind(&row.center_id)
                    .bind(&row.case_id)
                    .fetch_one(tx.conn())
                    .await?;
                    TransferRequested::AlreadyPending(pending)
                }
            };
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    async fn transfer(&self, id: i64) -> Result<Option<TransferRow>, StoreError> {
        let row: Option<TransferTuple> = sqlx::query_as(&format!("{TRANSFER_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(transfer_row).transpose()
    }

    async fn pending_transfers(&self, center_id: &str) -> Result<Vec<TransferRow>, StoreError> {
        let rows: Vec<TransferTuple> = sqlx::query_as(&format!(
            "{TRANSFER_SELECT} WHERE state = 'pending' AND (center_id = $1 OR to_center = $1) ORDER BY id"
        ))
        .bind(center_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(transfer_row).collect()
    }

    async fn decide_transfer(
        &self,
        id: i64,
        accept: Option<NewCase<'_>>,
        at: OffsetDateTime,
    ) -> Result<TransferDecided, StoreError> {
        within_deadline(async {
            let mut tx = WriteTx::begin(&self.pool).await?;
            let row: Option<(String, String, String)> = sqlx::query_as(
                "SELECT center_id, case_id, to_center FROM transfers WHERE id = $1 AND state = 'pending' FOR UPDATE",
            )
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
            let Some((from, case_id, to)) = row else {
                tx.commit().await?;
                return Ok(TransferDecided::NotPending);
            };
            let mut stored = None;
            if let Some(copy) = &accept {
                if copy.center_id != to || copy.case_id != case_id {
                    return Err(StoreError::Corrupt("a transfer's copy names another case"));
                }
                // The old row's lock keeps its center's pushes out until this commits; after
                // it, they find the row moved.
                let old: Option<(i64, Option<String>)> = sqlx::query_as(
                    "SELECT version, moved_to FROM cases WHERE center_id = $1 AND case_id = $2 FOR UPDATE",
                )
                .bind(&from)
                .bind(&case_id)
                .fetch_optional(tx.conn())
                .await?;
                let version = to_i64(copy.version)?;
                if !matches!(old, Some((v, None)) if v == version) {
                    tx.commit().await?;
                    return Ok(TransferDecided::CaseChanged);
                }
                let seq: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO cases (center_id, case_id, version, seq) VALUES ($1, $2, $3, nextval('case_seq')) \
                     ON CONFLICT (center_id, case_id) DO NOTHING RETURNING seq",
                )
                .bind(&to)
                .bind(&case_id)
                .bind(version)
                .fetch_optional(tx.conn())
                .await?;
                let Some(seq) = seq else {
                    tx.commit().await?;
                    return Ok(TransferDecided::IdTaken);
                };
                sqlx::query(
                    "INSERT INTO case_versions (seq, center_id, case_id, version, body, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(seq)
                .bind(&to)
                .bind(&case_id)
                .bind(version)
                .bind(copy.body)
                .bind(rfc3339(copy.received_at)?)
                .execute(tx.conn())
                .await?;
                sqlx::query("UPDATE cases SET moved_to = $1 WHERE center_id = $2 AND case_id = $3")
                    .bind(&to)
                    .bind(&from)
                    .bind(&case_id)
                    .execute(tx.conn())
                    .await?;
                // The old case's row first: a follower removes it before it shows the new one.
                let old_case = Change::Case {
                    center_id: from.clone(),
                    case_id: case_id.clone(),
                };
                let old_change = note_change(&mut tx, &old_case, self.notify).await?;
                let new_case = Change::Case {
                    center_id: to.clone(),
                    case_id: case_id.clone(),
                };
                let change = note_change(&mut tx, &new_case, self.notify).await?;
                stored = Some(MovedCase {
                    seq,
                    change,
                    old_change,
                });
            }
            sqlx::query("UPDATE transfers SET state = $1, decided_at = $2 WHERE id = $3")
                .bind(if accept.is_some() { "accepted" } else { "declined" })
                .bind(rfc3339(at)?)
                .bind(id)
                .execute(tx.conn())
                .await?;
            tx.commit().await?;
            Ok(TransferDecided::Done { stored })
        })
        .await
    }

    async fn moved_cases(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT center_id, case_id, moved_to FROM cases WHERE moved_to IS NOT NULL")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn latest_change(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT coalesce(max(seq), 0)::bigint FROM changes")
            .fetch_one(&self.pool)
            .await?)
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn wait_for_change(&self, timeout: Duration) {
        let mut slot = self.listener.lock().await;
        if slot.is_none() {
            match sqlx::postgres::PgListener::connect_with(&self.pool).await {
                Ok(mut l) => match l.listen(CHANGES_CHANNEL).await {
                    Ok(()) => *slot = Some(l),
                    Err(e) => tracing::warn!(error = %e, "cannot LISTEN for changes; polling"),
                },
                Err(e) => tracing::warn!(error = %e, "cannot LISTEN for changes; polling"),
            }
        }
        let Some(listener) = slot.as_mut() else {
            drop(slot);
            tokio::time::sleep(timeout).await;
            return;
        };
        match tokio::time::timeout(timeout, listener.recv()).await {
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => {
                // Reconnected on the next wait; meanwhile the caller polls.
                tracing::warn!(error = %e, "LISTEN connection lost");
                *slot = None;
            }
        }
    }
}

/// Stores a checkpoint; the first note of a size stays (several instances sign the same tree).
async fn insert_checkpoint(tx: &mut WriteTx, row: &CheckpointRow) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (tree_size, note, published_at) VALUES ($1, $2, $3) \
         ON CONFLICT (tree_size) DO NOTHING",
    )
    .bind(to_i64(row.tree_size)?)
    .bind(&row.note)
    .bind(super::rfc3339(row.published_at)?)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Appends entries that continue the stored log exactly, holding the audit lock until commit;
/// a batch sealed for another position is refused with the stored size, so that its writer (an
/// instance that fell behind another) catches up and seals again.
async fn insert_audit_rows(tx: &mut WriteTx, rows: &[AuditRow]) -> Result<(), StoreError> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let mut idx = Vec::with_capacity(rows.len());
    let mut line = Vec::with_capacity(rows.len());
    let mut hash = Vec::with_capacity(rows.len());
    let mut kind = Vec::with_capacity(rows.len());
    let mut center = Vec::with_capacity(rows.len());
    let mut case = Vec::with_capacity(rows.len());
    for (offset, row) in rows.iter().enumerate() {
        if Some(row.index) != first.index.checked_add(offset as u64) {
            return Err(StoreError::Corrupt("audit entries to append are not consecutive"));
        }
        idx.push(to_i64(row.index)?);
        line.push(row.line.as_str());
        hash.push(row.leaf_hash.as_slice());
        kind.push(row.kind.as_str());
        center.push(row.center_id.as_deref());
        case.push(row.case_id.as_deref());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(AUDIT_LOCK)
        .execute(tx.conn())
        .await?;
    let next: i64 = sqlx::query_scalar("SELECT coalesce(max(idx) + 1, 0) FROM audit_entries")
        .fetch_one(tx.conn())
        .await?;
    if next != to_i64(first.index)? {
        return Err(StoreError::AuditBehind { stored: to_u64(next)? });
    }
    sqlx::query(
        "INSERT INTO audit_entries (idx, line, leaf_hash, kind, center_id, case_id) \
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::text[], $5::text[], $6::text[])",
    )
    .bind(&idx)
    .bind(&line)
    .bind(&hash)
    .bind(&kind)
    .bind(&center)
    .bind(&case)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Adds `change` to the change log as the last step of its transaction: the advisory lock
/// orders change rows by commit, and the NOTIFY (delivered at commit) wakes the other instances.
async fn note_change(tx: &mut WriteTx, change: &Change, notify: bool) -> Result<i64, StoreError> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CHANGES_LOCK)
        .execute(tx.conn())
        .await?;
    let (center, case) = change.key();
    let seq: i64 =
        sqlx::query_scalar("INSERT INTO changes (kind, center_id, case_id) VALUES ($1, $2, $3) RETURNING seq")
            .bind(change.kind())
            .bind(center)
            .bind(case)
            .fetch_one(tx.conn())
            .await?;
    if notify {
        self::notify(tx).await?;
    }
    Ok(seq)
}

/// A wake-up for the other instances, delivered when `tx` commits: it carries no data, only
/// "look at the store".
/// Stores center events, in one statement, under the lock that makes their `seq` commit in
/// order (a reader that saw `seq` n never later finds a smaller one committed); answers the
/// last `seq`.
async fn insert_center_events(tx: &mut WriteTx, rows: &[CenterEventRow]) -> Result<Option<i64>, StoreError> {
    if rows.is_empty() {
        return Ok(None);
    }
    let center: Vec<&str> = rows.iter().map(|r| r.center_id.as_str()).collect();
    let kind: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
    let at = rows.iter().map(|r| rfc3339(r.at)).collect::<Result<Vec<_>, _>>()?;
    let body: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(CENTER_EVENTS_LOCK)
        .execute(tx.conn())
        .await?;
    // unnest keeps the arrays' order, and `seq` is drawn in insertion order.
    let seqs: Vec<i64> = sqlx::query_scalar(
        "INSERT INTO center_events (center_id, kind, at, body) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) RETURNING seq",
    )
    .bind(&center)
    .bind(&kind)
    .bind(&at)
    .bind(&body)
    .fetch_all(tx.conn())
    .await?;
    Ok(seqs.into_iter().max())
}

/// Inserts or grows a commit's tiles in one statement (a stored tile only ever grows). A commit
/// names each tile once (`audit::log::tile_rows`); were one named twice, PostgreSQL would refuse
/// the statement and the commit with it.
async fn upsert_tiles(tx: &mut WriteTx, tiles: &[AuditTileRow]) -> Result<(), StoreError> {
    if tiles.is_empty() {
        return Ok(());
    }
    let level: Vec<i16> = tiles.iter().map(|t| i16::from(t.level)).collect();
    let idx = tiles.iter().map(|t| to_i64(t.index)).collect::<Result<Vec<_>, _>>()?;
    let hashes: Vec<&[u8]> = tiles.iter().map(|t| t.hashes.as_slice()).collect();
    sqlx::query(
        "INSERT INTO audit_tiles (level, idx, hashes) \
         SELECT * FROM unnest($1::smallint[], $2::bigint[], $3::bytea[]) \
         ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes \
         WHERE octet_length(excluded.hashes) > octet_length(audit_tiles.hashes)",
    )
    .bind(&level)
    .bind(&idx)
    .bind(&hashes)
    .execute(tx.conn())
    .await?;
    Ok(())
}

async fn notify(tx: &mut WriteTx) -> Result<(), StoreError> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANGES_CHANNEL)
        .execute(tx.conn())
        .await?;
    Ok(())
}

async fn insert_agreement_version(tx: &mut WriteTx, row: &AgreementVersionRow) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO agreement_versions (agreement_id, version, document, sha256, submitted_by, submitted_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (agreement_id, version) DO NOTHING",
    )
    .bind(&row.agreement_id)
    .bind(i64::from(row.version))
    .bind(&row.document)
    .bind(&row.sha256)
    .bind(&row.submitted_by)
    .bind(rfc3339(row.submitted_at)?)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn insert_consent_step(tx: &mut WriteTx, row: &ConsentStepRow) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO consent_steps (agreement_id, operator, action, from_state, to_state, consented_version, confirmed_version, actor, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq",
    )
    .bind(&row.agreement_id)
    .bind(&row.operator)
    .bind(&row.action)
    .bind(&row.from_state)
    .bind(&row.to_state)
    .bind(row.consented_version.map(i64::from))
    .bind(row.confirmed_version.map(i64::from))
    .bind(&row.actor)
    .bind(rfc3339(row.at)?)
    .fetch_one(tx.conn())
    .await?)
}
