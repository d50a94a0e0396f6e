//! SQLite: WAL, `synchronous=FULL` on every pooled connection (a commit is on disk before it
//! is acknowledged), one writer connection so that write transactions never race.
//!
//! Every write goes through `WriteTx`, which issues `BEGIN IMMEDIATE` / `COMMIT` itself and
//! discards the writer connection after any error. sqlx's own transactions are not used for
//! writes: when SQLite rolls a transaction back by itself (`SQLITE_FULL`, `SQLITE_IOERR`), sqlx's
//! `ROLLBACK` fails, its depth counter stays at 1, and every later `begin()`/`commit()` becomes a
//! `SAVEPOINT`/`RELEASE` inside an outer transaction that never ends: writes are acknowledged
//! and never committed. A fresh connection after an error cannot carry such state.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqliteConnection};

use time::OffsetDateTime;

use super::{
    AgreementVersionRow, AuditCommit, AuditKeyRow, AuditRow, AuditTileRow, CenterEventRow, CenterEventTuple, Change,
    ChangeRow, CheckpointRow, ConsentStepRow, EmbeddedMigrations, MovedCase, NewCase, PutOutcome, RevocationRow, Store,
    StoreError, StoredCase, TRANSFER_SELECT, TransferDecided, TransferRequested, TransferRow, TransferTuple,
    center_event_row, parse_time, rfc3339, transfer_row,
};

const MIGRATIONS: EmbeddedMigrations = EmbeddedMigrations(&[
    (1, "initial", include_str!("../../migrations/sqlite/0001_initial.sql")),
    (
        2,
        "agreements",
        include_str!("../../migrations/sqlite/0002_agreements.sql"),
    ),
    (
        3,
        "audit_keys",
        include_str!("../../migrations/sqlite/0003_audit_keys.sql"),
    ),
    (
        4,
        "revocations",
        include_str!("../../migrations/sqlite/0004_revocations.sql"),
    ),
    (
        5,
        "consented_terms",
        include_str!("../../migrations/sqlite/0005_consented_terms.sql"),
    ),
    (
        6,
        "audit_tiles",
        include_str!("../../migrations/sqlite/0006_audit_tiles.sql"),
    ),
    (7, "changes", include_str!("../../migrations/sqlite/0007_changes.sql")),
    (
        8,
        "cosignatures",
        include_str!("../../migrations/sqlite/0008_cosignatures.sql"),
    ),
    (
        14,
        "changes_by_case",
        include_str!("../../migrations/sqlite/0014_changes_by_case.sql"),
    ),
    (
        15,
        "center_events",
        include_str!("../../migrations/sqlite/0015_center_events.sql"),
    ),
    (
        16,
        "transfers",
        include_str!("../../migrations/sqlite/0016_transfers.sql"),
    ),
    (
        17,
        "cases_by_center",
        include_str!("../../migrations/sqlite/0017_cases_by_center.sql"),
    ),
]);

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Wakes `wait_for_change` when a case version commits (one process owns the file).
    changed: Arc<tokio::sync::Notify>,
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        Migrator::new(MIGRATIONS).await?.run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        Ok(Self {
            writer,
            reader,
            changed: Arc::new(tokio::sync::Notify::new()),
        })
    }
}

/// One write transaction on the writer connection. Dropped without `commit` (an error, an
/// early return, a cancelled request), the connection is closed instead of going back to the
/// pool, which rolls back whatever SQLite still holds open.
struct WriteTx {
    conn: PoolConnection<Sqlite>,
    open: bool,
}

impl WriteTx {
    async fn begin(pool: &SqlitePool) -> Result<Self, StoreError> {
        let conn = pool.acquire().await?;
        let mut tx = Self { conn, open: true };
        sqlx::query("BEGIN IMMEDIATE").execute(tx.conn()).await?;
        Ok(tx)
    }

    /// `begin`, and the index the next audit entry must have, in one round trip to the
    /// connection's SQLite thread (a group commit waits on each round trip besides the fsync).
    async fn begin_audit(pool: &SqlitePool) -> Result<(Self, u64), StoreError> {
        let conn = pool.acquire().await?;
        let mut tx = Self { conn, open: true };
        let next: i64 = sqlx::query_scalar("BEGIN IMMEDIATE; SELECT coalesce(max(idx) + 1, 0) FROM audit_entries")
            .fetch_one(tx.conn())
            .await?;
        Ok((tx, to_u64(next)?))
    }

    fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    async fn commit(mut self) -> Result<(), StoreError> {
        sqlx::query("COMMIT").execute(self.conn()).await?;
        self.open = false;
        Ok(())
    }

    /// Stores `row` and commits, in one round trip: a failed insert stops before the
    /// `COMMIT`, and the dropped transaction rolls back.
    async fn commit_with_checkpoint(mut self, row: &CheckpointRow) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO audit_checkpoints (tree_size, note, published_at) VALUES (?, ?, ?); COMMIT")
            .bind(to_i64(row.tree_size)?)
            .bind(&row.note)
            .bind(super::rfc3339(row.published_at)?)
            .execute(self.conn())
            .await?;
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

fn version_of(r: &sqlx::sqlite::SqliteRow, column: &str) -> Result<Option<u32>, StoreError> {
    r.try_get::<Option<i64>, _>(column)?
        .map(|v| u32::try_from(v).map_err(|_| StoreError::Corrupt("agreement version out of range")))
        .transpose()
}

fn audit_row(r: &sqlx::sqlite::SqliteRow) -> Result<AuditRow, StoreError> {
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

#[async_trait]
impl Store for SqliteStore {
    async fn put_case(&self, case: NewCase<'_>) -> Result<PutOutcome, StoreError> {
        let version = to_i64(case.version)?;
        let received_at = rfc3339(case.received_at)?;
        let mut tx = WriteTx::begin(&self.writer).await?;
        let row: Option<(i64, Option<String>)> =
            sqlx::query_as("SELECT version, moved_to FROM cases WHERE center_id = ? AND case_id = ?")
                .bind(case.center_id)
                .bind(case.case_id)
                .fetch_optional(tx.conn())
                .await?;
        if let Some((_, Some(to_center))) = row {
            tx.commit().await?;
            return Ok(PutOutcome::Transferred { to_center });
        }
        if let Some((stored, _)) = row
            && version <= stored
        {
            let body: Option<String> = sqlx::query_scalar(
                "SELECT body FROM case_versions WHERE center_id = ? AND case_id = ? AND version = ?",
            )
            .bind(case.center_id)
            .bind(case.case_id)
            .bind(version)
            .fetch_optional(tx.conn())
            .await?;
            tx.commit().await?;
            return Ok(if body.as_deref() == Some(case.body) {
                PutOutcome::Identical
            } else {
                PutOutcome::Conflict {
                    stored_version: to_u64(stored)?,
                }
            });
        }
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO case_versions (center_id, case_id, version, body, received_at) VALUES (?, ?, ?, ?, ?) RETURNING seq",
        )
        .bind(case.center_id)
        .bind(case.case_id)
        .bind(version)
        .bind(case.body)
        .bind(&received_at)
        .fetch_one(tx.conn())
        .await?;
        sqlx::query(
            "INSERT INTO cases (center_id, case_id, version, seq) VALUES (?, ?, ?, ?) \
             ON CONFLICT (center_id, case_id) DO UPDATE SET version = excluded.version, seq = excluded.seq",
        )
        .bind(case.center_id)
        .bind(case.case_id)
        .bind(version)
        .bind(seq)
        .execute(tx.conn())
        .await?;
        let change = note_change(
            &mut tx,
            &Change::Case {
                center_id: case.center_id.to_owned(),
                case_id: case.case_id.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        self.changed.notify_one();
        Ok(PutOutcome::Stored { seq, change })
    }

    async fn current_cases(&self) -> Result<Vec<StoredCase>, StoreError> {
        let rows = sqlx::query(select_current!(" WHERE c.moved_to IS NULL ORDER BY c.seq"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(super::stored_case).collect()
    }

    async fn append_audit(&self, rows: &[AuditRow]) -> Result<(), StoreError> {
        let (mut tx, next) = WriteTx::begin_audit(&self.writer).await?;
        insert_audit_rows(&mut tx, next, rows).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn append_audit_commit(&self, commit: &AuditCommit) -> Result<Option<i64>, StoreError> {
        let (mut tx, next) = WriteTx::begin_audit(&self.writer).await?;
        insert_audit_rows(&mut tx, next, &commit.entries).await?;
        upsert_tiles(&mut tx, &commit.tiles).await?;
        let last = insert_center_events(&mut tx, &commit.center_events).await?;
        match &commit.checkpoint {
            Some(row) => tx.commit_with_checkpoint(row).await?,
            None => tx.commit().await?,
        }
        Ok(last)
    }

    async fn audit_tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT hashes FROM audit_tiles WHERE level = ? AND idx = ?")
                .bind(i64::from(level))
                .bind(to_i64(index)?)
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn audit_leaf_hashes(&self) -> Result<Vec<[u8; 32]>, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as("SELECT idx, leaf_hash FROM audit_entries ORDER BY idx")
            .fetch_all(&self.reader)
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
        let rows = sqlx::query("SELECT * FROM audit_entries WHERE idx >= ? AND idx < ? ORDER BY idx")
            .bind(to_i64(start)?)
            .bind(to_i64(end)?)
            .fetch_all(&self.reader)
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
        let rows = sqlx::query(
            "SELECT * FROM audit_entries WHERE center_id = ? AND case_id = ? AND idx >= ? ORDER BY idx LIMIT ?",
        )
        .bind(center_id)
        .bind(case_id)
        .bind(to_i64(after)?)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(audit_row).collect()
    }

    async fn put_checkpoint(&self, row: &CheckpointRow) -> Result<(), StoreError> {
        WriteTx::begin(&self.writer).await?.commit_with_checkpoint(row).await
    }

    async fn checkpoints(&self) -> Result<Vec<CheckpointRow>, StoreError> {
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT tree_size, note, published_at FROM audit_checkpoints ORDER BY tree_size")
                .fetch_all(&self.reader)
                .await?;
        rows.into_iter()
            .map(|(s, note, published_at)| {
                Ok(CheckpointRow {
                    tree_size: to_u64(s)?,
                    note,
                    published_at: super::parse_time(&published_at)?,
                })
            })
            .collect()
    }

    async fn latest_checkpoint(&self) -> Result<Option<CheckpointRow>, StoreError> {
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT tree_size, note, published_at FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        row.map(|(s, note, published_at)| {
            Ok(CheckpointRow {
                tree_size: to_u64(s)?,
                note,
                published_at: super::parse_time(&published_at)?,
            })
        })
        .transpose()
    }

    async fn agreement_versions(&self) -> Result<Vec<AgreementVersionRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM agreement_versions ORDER BY agreement_id, version")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AgreementVersionRow {
                    agreement_id: r.try_get("agreement_id")?,
                    version: u32::try_from(r.try_get::<i64, _>("version")?)
                        .map_err(|_| StoreError::Corrupt("agreement version out of range"))?,
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
        let mut tx = WriteTx::begin(&self.writer).await?;
        let inserted = insert_agreement_version(&mut tx, row).await?;
        if inserted {
            for step in steps {
                insert_consent_step(&mut tx, step).await?;
            }
            note_change(&mut tx, &Change::Policy).await?;
        }
        tx.commit().await?;
        Ok(inserted)
    }

    async fn consent_steps(&self) -> Result<Vec<ConsentStepRow>, StoreError> {
        let rows = sqlx::query("SELECT * FROM consent_steps ORDER BY seq")
            .fetch_all(&self.reader)
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
                    consented_version: version_of(r, "consented_version")?,
                    confirmed_version: version_of(r, "confirmed_version")?,
                    actor: r.try_get("actor")?,
                    at: parse_time(r.try_get("at")?)?,
                })
            })
            .collect()
    }

    async fn append_consent_step(&self, row: &ConsentStepRow) -> Result<i64, StoreError> {
        let mut tx = WriteTx::begin(&self.writer).await?;
        let seq = insert_consent_step(&mut tx, row).await?;
        note_change(&mut tx, &Change::Policy).await?;
        tx.commit().await?;
        Ok(seq)
    }

    async fn seed_policy(
        &self,
        source: &str,
        at: OffsetDateTime,
        versions: &[AgreementVersionRow],
        steps: &[ConsentStepRow],
    ) -> Result<bool, StoreError> {
        let mut tx = WriteTx::begin(&self.writer).await?;
        let seeded: Option<i64> = sqlx::query_scalar("SELECT id FROM policy_seed WHERE id = 1")
            .fetch_optional(tx.conn())
            .await?;
        if seeded.is_some() {
            tx.commit().await?;
            return Ok(false);
        }
        for v in versions {
            insert_agreement_version(&mut tx, v).await?;
        }
        for s in steps {
            insert_consent_step(&mut tx, s).await?;
        }
        sqlx::query("INSERT INTO policy_seed (id, source, seeded_at) VALUES (1, ?, ?)")
            .bind(source)
            .bind(rfc3339(at)?)
            .execute(tx.conn())
            .await?;
        note_change(&mut tx, &Change::Policy).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn audit_keys(&self) -> Result<Vec<AuditKeyRow>, StoreError> {
        let rows: Vec<(i64, String, String, String)> =
            sqlx::query_as("SELECT first_index, key_id, verifier_key, activated_at FROM audit_keys ORDER BY seq")
                .fetch_all(&self.reader)
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
        let mut tx = WriteTx::begin(&self.writer).await?;
        sqlx::query("INSERT INTO audit_keys (first_index, key_id, verifier_key, activated_at) VALUES (?, ?, ?, ?)")
            .bind(to_i64(row.first_index)?)
            .bind(&row.key_id)
            .bind(&row.verifier_key)
            .bind(super::activated_text(row.activated_at)?)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    async fn audit_len(&self) -> Result<u64, StoreError> {
        // The entries have no gaps (idx is the primary key, appended in order), so this is the
        // count without scanning a log of any size.
        let (n,): (i64,) = sqlx::query_as("SELECT coalesce(max(idx) + 1, 0) FROM audit_entries")
            .fetch_one(&self.reader)
            .await?;
        to_u64(n)
    }

    async fn add_revocation(&self, row: &RevocationRow) -> Result<bool, StoreError> {
        let mut tx = WriteTx::begin(&self.writer).await?;
        let done = sqlx::query(
            "INSERT INTO revocations (kind, subject, revoked_by, revoked_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (kind, subject) DO NOTHING",
        )
        .bind(&row.kind)
        .bind(&row.subject)
        .bind(&row.revoked_by)
        .bind(rfc3339(row.revoked_at)?)
        .execute(tx.conn())
        .await?;
        if done.rows_affected() == 1 {
            note_change(&mut tx, &Change::Revocation).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn revocations(&self) -> Result<Vec<RevocationRow>, StoreError> {
        let rows: Vec<(String, String, String, String)> =
            sqlx::query_as("SELECT kind, subject, revoked_by, revoked_at FROM revocations ORDER BY seq")
                .fetch_all(&self.reader)
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
        let mut tx = WriteTx::begin(&self.writer).await?;
        sqlx::query("INSERT OR IGNORE INTO audit_cosignatures (tree_size, line) VALUES (?, ?)")
            .bind(to_i64(tree_size)?)
            .bind(line)
            .execute(tx.conn())
            .await?;
        tx.commit().await
    }

    async fn cosignatures(&self, tree_size: u64) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT line FROM audit_cosignatures WHERE tree_size = ? ORDER BY seq")
                .bind(to_i64(tree_size)?)
                .fetch_all(&self.reader)
                .await?,
        )
    }

    async fn all_cosignatures(&self) -> Result<Vec<(u64, String)>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT tree_size, line FROM audit_cosignatures ORDER BY tree_size, seq")
                .fetch_all(&self.reader)
                .await?;
        rows.into_iter().map(|(size, line)| Ok((to_u64(size)?, line))).collect()
    }

    async fn current_case(&self, center_id: &str, case_id: &str) -> Result<Option<StoredCase>, StoreError> {
        let row = sqlx::query(select_current!(
            " WHERE c.center_id = ? AND c.case_id = ? AND c.moved_to IS NULL"
        ))
        .bind(center_id)
        .bind(case_id)
        .fetch_optional(&self.reader)
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
            " WHERE c.center_id = ? AND c.seq < ? AND c.moved_to IS NULL ORDER BY c.seq DESC LIMIT ?"
        ))
        .bind(center_id)
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(super::stored_case).collect()
    }

    async fn changes_after(&self, after: i64, limit: u32) -> Result<Vec<ChangeRow>, StoreError> {
        let rows: Vec<(i64, String, Option<String>, Option<String>)> =
            sqlx::query_as("SELECT seq, kind, center_id, case_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?")
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.reader)
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
        let mut tx = WriteTx::begin(&self.writer).await?;
        let seq = insert_center_events(&mut tx, std::slice::from_ref(row))
            .await?
            .ok_or(StoreError::Corrupt("a center event was not stored"))?;
        tx.commit().await?;
        Ok(seq)
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
             WHERE center_id = ? AND (? IS NULL OR kind = ?) AND seq > ? ORDER BY seq LIMIT ?",
        )
        .bind(center_id)
        .bind(kind)
        .bind(kind)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(center_event_row).collect()
    }

    async fn latest_center_event(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM center_events")
            .fetch_one(&self.reader)
            .await?)
    }

    async fn request_transfer(&self, row: &TransferRow) -> Result<TransferRequested, StoreError> {
        let mut tx = WriteTx::begin(&self.writer).await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM cases WHERE center_id = ? AND case_id = ? AND moved_to IS NULL")
                .bind(&row.center_id)
                .bind(&row.case_id)
                .fetch_optional(tx.conn())
                .await?;
        if current.is_none() {
            tx.commit().await?;
            return Ok(TransferRequested::NoSuchCase);
        }
        let pending: Option<i64> =
            sqlx::query_scalar("SELECT id FROM transfers WHERE center_id = ? AND case_id = ? AND state = 'pending'")
                .bind(&row.center_id)
                .bind(&row.case_id)
                .fetch_optional(tx.conn())
                .await?;
        if let Some(id) = pending {
            tx.commit().await?;
            return Ok(TransferRequested::AlreadyPending(id));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO transfers (center_id, case_id, to_center, state, requested_at) \
             VALUES (?, ?, ?, 'pending', ?) RETURNING id",
        )
        .bind(&row.center_id)
        .bind(&row.case_id)
        .bind(&row.to_center)
        .bind(rfc3339(row.requested_at)?)
        .fetch_one(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(TransferRequested::Requested(id))
    }

    async fn transfer(&self, id: i64) -> Result<Option<TransferRow>, StoreError> {
        let row: Option<TransferTuple> = sqlx::query_as(&format!("{TRANSFER_SELECT} WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(transfer_row).transpose()
    }

    async fn pending_transfers(&self, center_id: &str) -> Result<Vec<TransferRow>, StoreError> {
        let rows: Vec<TransferTuple> = sqlx::query_as(&format!(
            "{TRANSFER_SELECT} WHERE state = 'pending' AND (center_id = ? OR to_center = ?) ORDER BY id"
        ))
        .bind(center_id)
        .bind(center_id)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(transfer_row).collect()
    }

    async fn decide_transfer(
        &self,
        id: i64,
        accept: Option<NewCase<'_>>,
        at: OffsetDateTime,
    ) -> Result<TransferDecided, StoreError> {
        let mut tx = WriteTx::begin(&self.writer).await?;
        let row: Option<(String, String, String)> =
            sqlx::query_as("SELECT center_id, case_id, to_center FROM transfers WHERE id = ? AND state = 'pending'")
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
            let old: Option<(i64, Option<String>)> =
                sqlx::query_as("SELECT version, moved_to FROM cases WHERE center_id = ? AND case_id = ?")
                    .bind(&from)
                    .bind(&case_id)
                    .fetch_optional(tx.conn())
                    .await?;
            if !matches!(old, Some((v, None)) if v == to_i64(copy.version)?) {
                tx.commit().await?;
                return Ok(TransferDecided::CaseChanged);
            }
            let taken: Option<i64> = sqlx::query_scalar("SELECT 1 FROM cases WHERE center_id = ? AND case_id = ?")
                .bind(&to)
                .bind(&case_id)
                .fetch_optional(tx.conn())
                .await?;
            if taken.is_some() {
                tx.commit().await?;
                return Ok(TransferDecided::IdTaken);
            }
            let version = to_i64(copy.version)?;
            let seq: i64 = sqlx::query_scalar(
                "INSERT INTO case_versions (center_id, case_id, version, body, received_at) VALUES (?, ?, ?, ?, ?) RETURNING seq",
            )
            .bind(&to)
            .bind(&case_id)
            .bind(version)
            .bind(copy.body)
            .bind(rfc3339(copy.received_at)?)
            .fetch_one(tx.conn())
            .await?;
            sqlx::query("INSERT INTO cases (center_id, case_id, version, seq) VALUES (?, ?, ?, ?)")
                .bind(&to)
                .bind(&case_id)
                .bind(version)
                .bind(seq)
                .execute(tx.conn())
                .await?;
            sqlx::query("UPDATE cases SET moved_to = ? WHERE center_id = ? AND case_id = ?")
                .bind(&to)
                .bind(&from)
                .bind(&case_id)
                .execute(tx.conn())
                .await?;
            // The old case's row first: a follower removes it before it shows the new one.
            let old_change = note_change(
                &mut tx,
                &Change::Case {
                    center_id: from.clone(),
                    case_id: case_id.clone(),
                },
            )
            .await?;
            let change = note_change(
                &mut tx,
                &Change::Case {
                    center_id: to.clone(),
                    case_id: case_id.clone(),
                },
            )
            .await?;
            stored = Some(MovedCase {
                seq,
                change,
                old_change,
            });
        }
        sqlx::query("UPDATE transfers SET state = ?, decided_at = ? WHERE id = ?")
            .bind(if accept.is_some() { "accepted" } else { "declined" })
            .bind(rfc3339(at)?)
            .bind(id)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        if stored.is_some() {
            self.changed.notify_one();
        }
        Ok(TransferDecided::Done { stored })
    }

    async fn moved_cases(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT center_id, case_id, moved_to FROM cases WHERE moved_to IS NOT NULL")
                .fetch_all(&self.reader)
                .await?,
        )
    }

    async fn latest_change(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM changes")
            .fetch_one(&self.reader)
            .await?)
    }

    fn is_shared(&self) -> bool {
        false
    }

    async fn wait_for_change(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.changed.notified()).await;
    }
}

/// Adds `change` to the change log, in the writing transaction.
async fn note_change(tx: &mut WriteTx, change: &Change) -> Result<i64, StoreError> {
    let (center, case) = change.key();
    Ok(
        sqlx::query_scalar("INSERT INTO changes (kind, center_id, case_id) VALUES (?, ?, ?) RETURNING seq")
            .bind(change.kind())
            .bind(center)
            .bind(case)
            .fetch_one(tx.conn())
            .await?,
    )
}

async fn insert_agreement_version(tx: &mut WriteTx, row: &AgreementVersionRow) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT OR IGNORE INTO agreement_versions (agreement_id, version, document, sha256, submitted_by, submitted_at) \
         VALUES (?, ?, ?, ?, ?, ?)",
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
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
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

/// Appends entries that continue the stored log exactly: the log grows only at its end, without
/// gaps (the primary key refuses repeats); a batch sealed for another position is refused with
/// the stored size, so its writer can catch up.
/// Appends `rows`, which must start at `next`, the index after the stored log's last.
async fn insert_audit_rows(tx: &mut WriteTx, next: u64, rows: &[AuditRow]) -> Result<(), StoreError> {
    let Some(first) = rows.first() else {
        return Ok(());
    };
    if first.index != next {
        return Err(StoreError::AuditBehind { stored: next });
    }
    let next = to_i64(next)?;
    let mut indices = Vec::with_capacity(rows.len());
    for (row, expected) in rows.iter().zip(next..) {
        let index = to_i64(row.index)?;
        if index != expected {
            return Err(StoreError::Corrupt("audit entries to append are not consecutive"));
        }
        indices.push(index);
    }
    for (chunk, indices) in statement_chunks(rows).zip(statement_chunks(&indices)) {
        let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
            "INSERT INTO audit_entries (idx, line, leaf_hash, kind, center_id, case_id) ",
        );
        insert.push_values(chunk.iter().zip(indices), |mut values, (row, index)| {
            values
                .push_bind(*index)
                .push_bind(row.line.as_str())
                .push_bind(row.leaf_hash.as_slice())
                .push_bind(row.kind.as_str())
                .push_bind(row.center_id.as_deref())
                .push_bind(row.case_id.as_deref());
        });
        insert.build().execute(tx.conn()).await?;
    }
    Ok(())
}

/// A tile row only grows (the table's trigger refuses anything else).
async fn upsert_tiles(tx: &mut WriteTx, tiles: &[AuditTileRow]) -> Result<(), StoreError> {
    let indices = tiles.iter().map(|t| to_i64(t.index)).collect::<Result<Vec<_>, _>>()?;
    for (chunk, indices) in statement_chunks(tiles).zip(statement_chunks(&indices)) {
        let mut upsert = sqlx::QueryBuilder::<Sqlite>::new("INSERT INTO audit_tiles (level, idx, hashes) ");
        upsert.push_values(chunk.iter().zip(indices), |mut values, (tile, index)| {
            values
                .push_bind(i64::from(tile.level))
                .push_bind(*index)
                .push_bind(tile.hashes.as_slice());
        });
        upsert.push(
            " ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes WHERE length(excluded.hashes) > length(hashes)",
        );
        upsert.build().execute(tx.conn()).await?;
    }
    Ok(())
}

/// The most rows one multi-row statement carries.
const ROWS_PER_STATEMENT: usize = 64;

/// `rows` cut for multi-row statements: each statement is one round trip to the connection's
/// SQLite thread, so a group commit of N entries costs a few statements instead of N. Chunks of
/// `ROWS_PER_STATEMENT`, then powers of two, so that only a handful of distinct statements are
/// ever prepared (and kept in the connection's statement cache).
fn statement_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let len = rest.len();
        if len == 0 {
            return None;
        }
        let take = if len >= ROWS_PER_STATEMENT {
            ROWS_PER_STATEMENT
        } else {
            1 << len.ilog2()
        };
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        Some(chunk)
    })
}

/// Stores center events in multi-row statements; answers the last `seq` (the writer is one
/// connection, so `seq` order is commit order).
async fn insert_center_events(tx: &mut WriteTx, rows: &[CenterEventRow]) -> Result<Option<i64>, StoreError> {
    let at = rows.iter().map(|r| rfc3339(r.at)).collect::<Result<Vec<_>, _>>()?;
    let mut last = None;
    for (chunk, at) in statement_chunks(rows).zip(statement_chunks(&at)) {
        let mut insert = sqlx::QueryBuilder::<Sqlite>::new("INSERT INTO center_events (center_id, kind, at, body) ");
        insert.push_values(chunk.iter().zip(at), |mut values, (row, at)| {
            values
                .push_bind(row.center_id.as_str())
                .push_bind(row.kind.as_str())
                .push_bind(at.as_str())
                .push_bind(row.body.as_str());
        });
        insert.push(" RETURNING seq");
        let seqs: Vec<i64> = insert.build_query_scalar().fetch_all(tx.conn()).await?;
        last = seqs.into_iter().max().max(last);
    }
    Ok(last)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn statement_chunks_cover_every_row_once_in_order_with_few_shapes() {
        let mut shapes = std::collections::BTreeSet::new();
        for n in 0..=300usize {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = statement_chunks(&rows).collect();
            assert_eq!(chunks.concat(), rows, "{n}");
            assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= ROWS_PER_STATEMENT));
            shapes.extend(chunks.iter().map(|c| c.len()));
        }
        // 64, 32, 16, 8, 4, 2, 1: the only statements ever prepared.
        assert_eq!(shapes.len(), 7);
        assert!(shapes.iter().all(|s| s.is_power_of_two()));
    }
}
