//! The durable store: one SQLite database (WAL, `synchronous=FULL`, so a commit is on disk
//! before it returns). It holds the revocations with their audit trail, idempotency keys,
//! the published generations, and the bytes of the current snapshot and delta, written in
//! the same transaction as the generation they carry.
//!
//! All calls block: the HTTP layer runs them on the blocking pool.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;

use super::error::OriginError;
use super::ingest::{target_from_parts, target_parts, NewRevocation};
use crate::snapshot::Revocation;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS revocations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    not_before INTEGER,
    exp INTEGER,
    reason TEXT,
    source TEXT,
    fingerprint TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    removed_at_ms INTEGER,
    removed_by TEXT,
    removed_reason TEXT
);
CREATE INDEX IF NOT EXISTS revocations_kind_value ON revocations(kind, value);
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    revocation_id TEXT NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS generations (
    generation INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    base_generation INTEGER NOT NULL,
    built_at INTEGER NOT NULL,
    published_at_ms INTEGER NOT NULL,
    bytes_len INTEGER NOT NULL,
    entries INTEGER NOT NULL,
    build_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS current_files (
    kind TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    base_generation INTEGER NOT NULL,
    built_at INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    through_seq INTEGER NOT NULL,
    change_seq INTEGER NOT NULL,
    entries INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS feed_replay (
    namespace TEXT NOT NULL,
    issuer TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (namespace, issuer, jti)
);
CREATE INDEX IF NOT EXISTS feed_replay_expires ON feed_replay(expires_at);
";

/// The replay record of an identity-provider event (a logout token, a Security Event Token):
/// its `jti` is refused again until `expires_at` (Unix seconds), after which the event's own
/// time window refuses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayKey {
    /// The feed (`backchannel_logout`, `ssf`): the same `jti` in two feeds is two events.
    pub namespace: &'static str,
    pub issuer: String,
    pub jti: String,
    pub expires_at: u64,
}

/// What committing an identity-provider event did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// The revocations and the replay record are committed; how many rows were new.
    Committed { inserted: usize },
    /// The `jti` was seen before: nothing was written.
    Replayed,
}

/// How many rows of generation history are kept.
const GENERATION_HISTORY: i64 = 10_000;

/// A stored revocation, as listed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub seq: i64,
    pub kind: String,
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub created_at_ms: i64,
    pub created_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<Removal>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Removal {
    pub at_ms: i64,
    pub by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an ingest did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Committed; the JSON answer (also stored under the idempotency key) and how many rows
    /// were new.
    Committed { response: String, inserted: usize },
    /// The same idempotency key with the same body: the stored answer.
    Replayed(String),
}

/// Which revocations `list` returns.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub kind: Option<String>,
    pub value: Option<String>,
    pub source: Option<String>,
    /// Created at or after this time (Unix seconds).
    pub since: Option<u64>,
    /// "active" (default), "removed" or "all".
    pub state: ListState,
    pub limit: usize,
    /// Return rows after this sequence number.
    pub after_seq: i64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListState {
    #[default]
    Active,
    Removed,
    All,
}

/// A published file as stored.
#[derive(Clone, Debug)]
pub struct StoredFile {
    pub generation: u64,
    pub base_generation: u64,
    pub built_at: u64,
    pub bytes: Vec<u8>,
    /// The highest revocation sequence number the file includes.
    pub through_seq: i64,
    /// The change counter the file was built at.
    pub change_seq: i64,
    /// Active entries when it was built (snapshots: what the compaction rule compares with).
    pub entries: u64,
}

/// What the publisher reads, in one read transaction.
#[derive(Clone, Debug, Default)]
pub struct StoreState {
    pub change_seq: i64,
    pub last_removal_change: i64,
    pub max_seq: i64,
    pub generation_floor: u64,
    pub force_full: bool,
    pub last_generation: u64,
    pub last_built_at: u64,
    pub snapshot: Option<StoredFile>,
    pub delta: Option<StoredFile>,
    /// Active entries after the snapshot's `through_seq` (what a delta would hold).
    pub pending_entries: u64,
}

/// What the publisher decided to build from a [`StoreState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    Full,
    /// A delta of the active entries after this sequence number.
    Delta {
        after_seq: i64,
    },
    Nothing,
}

/// A file to commit as the next generation.
#[derive(Clone, Debug)]
pub struct Publication {
    pub kind: FileKindName,
    pub file: StoredFile,
    pub published_at_ms: i64,
    pub build_ms: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKindName {
    Snapshot,
    Delta,
}

impl FileKindName {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKindName::Snapshot => "snapshot",
            FileKindName::Delta => "delta",
        }
    }
}

/// A row of the generation history.
#[derive(Clone, Debug, Serialize)]
pub struct GenerationRow {
    pub generation: u64,
    pub kind: String,
    pub base_generation: u64,
    pub built_at: u64,
    pub published_at_ms: i64,
    pub bytes: u64,
    pub entries: u64,
    pub build_ms: i64,
}

pub struct Store {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

fn lock(m: &Mutex<Connection>) -> Result<MutexGuard<'_, Connection>, OriginError> {
    m.lock()
        .map_err(|_| OriginError::Internal("a database lock is poisoned".into()))
}

fn u(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i(v: u64) -> Result<i64, OriginError> {
    i64::try_from(v).map_err(|_| OriginError::Internal(format!("{v} does not fit the store")))
}

fn open_connection(
    path: &Path,
    max_page_count: Option<u64>,
    read_only: bool,
) -> Result<Connection, OriginError> {
    let flags = if read_only {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
            | rusqlite::OpenFlags::SQLITE_OPEN_CREATE
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| OriginError::Storage(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    if !read_only {
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OriginError::Storage(format!(
                "{}: cannot switch to WAL mode (got {mode})",
                path.display()
            )));
        }
    }
    // FULL: a commit is fsync'd (WAL and directory) before it returns, so a 2xx survives a
    // power loss, not only a process crash.
    conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
    if let Some(pages) = max_page_count {
        let _: i64 = conn.query_row(&format!("PRAGMA max_page_count={pages}"), [], |r| r.get(0))?;
    }
    Ok(conn)
}

fn meta(conn: &Connection, key: &str) -> Result<i64, OriginError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key=?1", [key], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

fn set_meta(conn: &Connection, key: &str, value: i64) -> Result<(), OriginError> {
    conn.execute(
        "INSERT INTO meta(key,value) VALUES(?1,?2) ON CONFLICT(key) DO UPDATE SET value=?2",
        params![key, value],
    )?;
    Ok(())
}

fn bump_change(conn: &Connection) -> Result<i64, OriginError> {
    let next = meta(conn, "change_seq")?.saturating_add(1);
    set_meta(conn, "change_seq", next)?;
    Ok(next)
}

fn read_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    let removed_at: Option<i64> = row.get("removed_at_ms")?;
    let removed = match removed_at {
        Some(at_ms) => Some(Removal {
            at_ms,
            by: row
                .get::<_, Option<String>>("removed_by")?
                .unwrap_or_default(),
            reason: row.get("removed_reason")?,
        }),
        None => None,
    };
    Ok(Record {
        id: row.get("id")?,
        seq: row.get("seq")?,
        kind: row.get("kind")?,
        value: row.get("value")?,
        not_before: row.get::<_, Option<i64>>("not_before")?.map(u),
        exp: row.get::<_, Option<i64>>("exp")?.map(u),
        reason: row.get("reason")?,
        source: row.get("source")?,
        created_at_ms: row.get("created_at_ms")?,
        created_by: row.get("created_by")?,
        removed,
    })
}

fn read_file(conn: &Connection, kind: &str) -> Result<Option<StoredFile>, OriginError> {
    Ok(conn
        .query_row(
            "SELECT generation, base_generation, built_at, bytes, through_seq, change_seq, entries
             FROM current_files WHERE kind=?1",
            [kind],
            |r| {
                Ok(StoredFile {
                    generation: u(r.get(0)?),
                    base_generation: u(r.get(1)?),
                    built_at: u(r.get(2)?),
                    bytes: r.get(3)?,
                    through_seq: r.get(4)?,
                    change_seq: r.get(5)?,
                    entries: u(r.get(6)?),
                })
            },
        )
        .optional()?)
}

fn new_id() -> Result<String, OriginError> {
    let mut raw = [0u8; 12];
    getrandom::getrandom(&mut raw).map_err(|e| OriginError::Internal(e.to_string()))?;
    Ok(format!("rv_{}", crate::wire::hex(&raw)))
}

/// Inserts `items` in `tx` (an event id seen before with the same content is answered, not
/// inserted again); bumps the change counter when a row is new. The answers and how many rows
/// were new.
fn insert_items(
    tx: &Connection,
    items: &[NewRevocation],
    actor: &str,
    now_ms: i64,
) -> Result<(Vec<serde_json::Value>, usize), OriginError> {
    let mut answers = Vec::with_capacity(items.len());
    let mut inserted = 0usize;
    for (index, item) in items.iter().enumerate() {
        let fingerprint = item.fingerprint();
        if let Some(id) = &item.id {
            let existing: Option<(i64, String)> = tx
                .query_row(
                    "SELECT seq, fingerprint FROM revocations WHERE id=?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((seq, fp)) = existing {
                if fp != fingerprint {
                    return Err(OriginError::IdempotencyConflict(format!(
                        "revocation [{index}]: event id {id:?} was used before with different content"
                    )));
                }
                answers.push(serde_json::json!({"id": id, "seq": seq, "created": false}));
                continue;
            }
        }
        let id = match &item.id {
            Some(id) => id.clone(),
            None => new_id()?,
        };
        let (kind, value, not_before) = target_parts(&item.revocation.target);
        let not_before = not_before.map(i).transpose()?;
        let exp = item.revocation.exp.map(i).transpose()?;
        tx.execute(
            "INSERT INTO revocations(id, kind, value, not_before, exp, reason, source,
                fingerprint, created_at_ms, created_by)
             VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
            params![
                id,
                kind,
                value,
                not_before,
                exp,
                item.reason,
                item.source,
                fingerprint,
                now_ms,
                actor
            ],
        )?;
        // The row is the audit record of the revocation (who, when, reason, source);
        // the audit table records what changes a row afterwards (un-revoking).
        let seq = tx.last_insert_rowid();
        inserted = inserted.saturating_add(1);
        answers.push(serde_json::json!({"id": id, "seq": seq, "created": true}));
    }
    if inserted > 0 {
        bump_change(tx)?;
    }
    Ok((answers, inserted))
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path, max_page_count: Option<u64>) -> Result<Store, OriginError> {
        let writer = open_connection(path, max_page_count, false)?;
        writer.execute_batch(SCHEMA)?;
        let reader = open_connection(path, None, false)?;
        Ok(Store {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
        })
    }

    /// Opens an existing database for reading only (`revguard origin export`).
    pub fn open_read_only(path: &Path) -> Result<Store, OriginError> {
        if !path.exists() {
            return Err(OriginError::Storage(format!(
                "{} does not exist",
                path.display()
            )));
        }
        let writer = open_connection(path, None, true)?;
        let reader = open_connection(path, None, true)?;
        Ok(Store {
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
        })
    }

    /// Commits a request's revocations, all or nothing. `idempotency` is the request's key
    /// and the fingerprint of its body.
    pub fn ingest(
        &self,
        items: &[NewRevocation],
        idempotency: Option<(&str, &str)>,
        actor: &str,
        now_ms: i64,
    ) -> Result<IngestOutcome, OriginError> {
        let mut conn = lock(&self.writer)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some((key, fingerprint)) = idempotency {
            let stored: Option<(String, String)> = tx
                .query_row(
                    "SELECT fingerprint, response FROM idempotency WHERE key=?1",
                    [key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((fp, response)) = stored {
                if fp == fingerprint {
                    return Ok(IngestOutcome::Replayed(response));
                }
                return Err(OriginError::IdempotencyConflict(format!(
                    "Idempotency-Key {key:?} was used before with a different body"
                )));
            }
        }
        let (answers, inserted) = insert_items(&tx, items, actor, now_ms)?;
        let response = serde_json::json!({"committed": true, "revocations": answers}).to_string();
        if let Some((key, fingerprint)) = idempotency {
            tx.execute(
                "INSERT INTO idempotency(key, fingerprint, response, created_at_ms)
                 VALUES(?1,?2,?3,?4)",
                params![key, fingerprint, response, now_ms],
            )?;
        }
        tx.commit()?;
        Ok(IngestOutcome::Committed { response, inserted })
    }

    /// Commits an identity-provider event: its replay record and its revocations in one
    /// transaction, or nothing when its `jti` was seen before. Expired replay records are
    /// dropped in the same transaction.
    pub fn ingest_event(
        &self,
        replay: &ReplayKey,
        items: &[NewRevocation],
        actor: &str,
        now_ms: i64,
    ) -> Result<EventOutcome, OriginError> {
        let mut conn = lock(&self.writer)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now_secs = now_ms.div_euclid(1000);
        tx.execute("DELETE FROM feed_replay WHERE expires_at < ?1", [now_secs])?;
        let added = tx.execute(
            "INSERT OR IGNORE INTO feed_replay(namespace, issuer, jti, expires_at, received_at_ms)
             VALUES(?1,?2,?3,?4,?5)",
            params![
                replay.namespace,
                replay.issuer,
                replay.jti,
                i(replay.expires_at)?,
                now_ms
            ],
        )?;
        if added == 0 {
            return Ok(EventOutcome::Replayed);
        }
        let (_, inserted) = insert_items(&tx, items, actor, now_ms)?;
        tx.commit()?;
        Ok(EventOutcome::Committed { inserted })
    }

    /// Removes (un-revokes) a revocation; the next publication is a full snapshot without it.
    pub fn remove(
        &self,
        id: &str,
        actor: &str,
        reason: Option<&str>,
        now_ms: i64,
    ) -> Result<Record, OriginError> {
        let mut conn = lock(&self.writer)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed_at: Option<Option<i64>> = tx
            .query_row(
                "SELECT removed_at_ms FROM revocations WHERE id=?1",
                [id],
                |r| r.get(0),
            )
            .optional()?;
        match removed_at {
            None => {
                return Err(OriginError::NotFound(format!(
                    "no revocation with id {id:?}"
                )))
            }
            Some(Some(_)) => return Err(OriginError::AlreadyRemoved(id.to_string())),
            Some(None) => {}
        }
        tx.execute(
            "UPDATE revocations SET removed_at_ms=?2, removed_by=?3, removed_reason=?4 WHERE id=?1",
            params![id, now_ms, actor, reason],
        )?;
        tx.execute(
            "INSERT INTO audit(at_ms, actor, action, revocation_id, detail)
             VALUES(?1,?2,'unrevoke',?3,?4)",
            params![now_ms, actor, id, reason],
        )?;
        let change = bump_change(&tx)?;
        set_meta(&tx, "last_removal_change", change)?;
        let record = tx.query_row("SELECT * FROM revocations WHERE id=?1", [id], read_record)?;
        tx.commit()?;
        Ok(record)
    }

    /// Lists revocations in sequence order; the second value is the cursor of the next page.
    pub fn list(&self, f: &ListFilter) -> Result<(Vec<Record>, Option<i64>), OriginError> {
        let conn = lock(&self.reader)?;
        let mut sql = String::from("SELECT * FROM revocations WHERE seq > ?1");
        let mut args: Vec<rusqlite::types::Value> = vec![f.after_seq.into()];
        let mut add = |clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&format!(" AND {clause} ?{}", args.len()));
        };
        if let Some(k) = &f.kind {
            add("kind =", k.clone().into());
        }
        if let Some(v) = &f.value {
            add("value =", v.clone().into());
        }
        if let Some(s) = &f.source {
            add("source =", s.clone().into());
        }
        if let Some(since) = f.since {
            add(
                "created_at_ms >=",
                i64::try_from(since.saturating_mul(1000))
                    .unwrap_or(i64::MAX)
                    .into(),
            );
        }
        match f.state {
            ListState::Active => sql.push_str(" AND removed_at_ms IS NULL"),
            ListState::Removed => sql.push_str(" AND removed_at_ms IS NOT NULL"),
            ListState::All => {}
        }
        let limit = i64::try_from(f.limit.saturating_add(1)).unwrap_or(i64::MAX);
        args.push(limit.into());
        sql.push_str(&format!(" ORDER BY seq LIMIT ?{}", args.len()));
        let mut stmt = conn.prepare(&sql)?;
        let mut rows: Vec<Record> = stmt
            .query_map(rusqlite::params_from_iter(args), read_record)?
            .collect::<Result<_, _>>()?;
        let next = if rows.len() > f.limit {
            rows.truncate(f.limit);
            rows.last().map(|r| r.seq)
        } else {
            None
        };
        Ok((rows, next))
    }

    /// Reads the publisher's state and, as `plan` decides, the entries to build from, all
    /// in one read transaction (a consistent view while ingests go on).
    pub fn read_for_publish(
        &self,
        plan: impl FnOnce(&StoreState) -> Plan,
    ) -> Result<(StoreState, Plan, Vec<Revocation>), OriginError> {
        let mut conn = lock(&self.reader)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let snapshot = read_file(&tx, "snapshot")?;
        let delta = read_file(&tx, "delta")?;
        let base_seq = snapshot.as_ref().map_or(0, |s| s.through_seq);
        let pending: i64 = tx.query_row(
            "SELECT COUNT(*) FROM revocations WHERE seq > ?1 AND removed_at_ms IS NULL",
            [base_seq],
            |r| r.get(0),
        )?;
        let (last_generation, last_built_at): (Option<i64>, Option<i64>) = tx.query_row(
            "SELECT MAX(generation), MAX(built_at) FROM generations",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let state = StoreState {
            change_seq: meta(&tx, "change_seq")?,
            last_removal_change: meta(&tx, "last_removal_change")?,
            max_seq: tx.query_row("SELECT COALESCE(MAX(seq),0) FROM revocations", [], |r| {
                r.get(0)
            })?,
            generation_floor: u(meta(&tx, "generation_floor")?),
            force_full: meta(&tx, "force_full")? != 0,
            last_generation: u(last_generation.unwrap_or(0)),
            last_built_at: u(last_built_at.unwrap_or(0)),
            snapshot,
            delta,
            pending_entries: u(pending),
        };
        let plan = plan(&state);
        let after = match plan {
            Plan::Nothing => return Ok((state, plan, Vec::new())),
            Plan::Full => 0,
            Plan::Delta { after_seq } => after_seq,
        };
        let mut stmt = tx.prepare(
            "SELECT kind, value, not_before, exp FROM revocations
             WHERE seq > ?1 AND seq <= ?2 AND removed_at_ms IS NULL ORDER BY seq",
        )?;
        let mut rows = stmt.query(params![after, state.max_seq])?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next()? {
            let kind: String = row.get(0)?;
            let value: String = row.get(1)?;
            let not_before = row.get::<_, Option<i64>>(2)?.map(u);
            let exp = row.get::<_, Option<i64>>(3)?.map(u);
            let target = target_from_parts(&kind, value, not_before).ok_or_else(|| {
                OriginError::Storage(format!("a stored revocation has an invalid kind {kind:?}"))
            })?;
            entries.push(Revocation { target, exp });
        }
        drop(rows);
        drop(stmt);
        tx.commit()?;
        Ok((state, plan, entries))
    }

    /// Commits a new generation: its history row and the current file bytes, in one
    /// transaction. A full snapshot replaces the snapshot and drops the delta.
    pub fn commit_publication(&self, p: &Publication) -> Result<(), OriginError> {
        let mut conn = lock(&self.writer)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let last: Option<i64> =
            tx.query_row("SELECT MAX(generation) FROM generations", [], |r| r.get(0))?;
        let generation = i(p.file.generation)?;
        if last.is_some_and(|l| l >= generation) {
            return Err(OriginError::Internal(format!(
                "generation {generation} is not after the last published one"
            )));
        }
        let bytes_len = i64::try_from(p.file.bytes.len()).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO generations(generation, kind, base_generation, built_at, published_at_ms,
                bytes_len, entries, build_ms) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
            params![
                generation,
                p.kind.as_str(),
                i(p.file.base_generation)?,
                i(p.file.built_at)?,
                p.published_at_ms,
                bytes_len,
                i(p.file.entries)?,
                p.build_ms
            ],
        )?;
        if p.kind == FileKindName::Snapshot {
            tx.execute("DELETE FROM current_files WHERE kind='delta'", [])?;
            set_meta(&tx, "force_full", 0)?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO current_files(kind, generation, base_generation, built_at,
                bytes, through_seq, change_seq, entries) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
            params![
                p.kind.as_str(),
                generation,
                i(p.file.base_generation)?,
                i(p.file.built_at)?,
                p.file.bytes,
                p.file.through_seq,
                p.file.change_seq,
                i(p.file.entries)?
            ],
        )?;
        tx.execute(
            "DELETE FROM generations WHERE generation < ?1",
            [generation.saturating_sub(GENERATION_HISTORY)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Makes the next generation at least `next` and the next publication a full snapshot
    /// (`--jump-generation-to`).
    pub fn set_generation_floor(&self, next: u64) -> Result<(), OriginError> {
        let mut conn = lock(&self.writer)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        set_meta(&tx, "generation_floor", i(next.saturating_sub(1))?)?;
        set_meta(&tx, "force_full", 1)?;
        tx.commit()?;
        Ok(())
    }

    /// The newest published generation (0 if none).
    pub fn last_generation(&self) -> Result<u64, OriginError> {
        let conn = lock(&self.reader)?;
        let g: Option<i64> =
            conn.query_row("SELECT MAX(generation) FROM generations", [], |r| r.get(0))?;
        Ok(u(g.unwrap_or(0)))
    }

    /// The current snapshot and delta.
    pub fn current_files(&self) -> Result<(Option<StoredFile>, Option<StoredFile>), OriginError> {
        let conn = lock(&self.reader)?;
        Ok((read_file(&conn, "snapshot")?, read_file(&conn, "delta")?))
    }

    /// The newest `limit` generations, newest first.
    pub fn generations(&self, limit: usize) -> Result<Vec<GenerationRow>, OriginError> {
        let conn = lock(&self.reader)?;
        let mut stmt = conn.prepare(
            "SELECT generation, kind, base_generation, built_at, published_at_ms, bytes_len,
                entries, build_ms FROM generations ORDER BY generation DESC LIMIT ?1",
        )?;
        let rows = stmt
            .query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(GenerationRow {
                    generation: u(r.get(0)?),
                    kind: r.get(1)?,
                    base_generation: u(r.get(2)?),
                    built_at: u(r.get(3)?),
                    published_at_ms: r.get(4)?,
                    bytes: u(r.get(5)?),
                    entries: u(r.get(6)?),
                    build_ms: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Active revocations (for metrics and the fleet view).
    pub fn count_active(&self) -> Result<u64, OriginError> {
        let conn = lock(&self.reader)?;
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM revocations WHERE removed_at_ms IS NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(u(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::RevocationTarget;

    fn item(sid: &str) -> NewRevocation {
        NewRevocation {
            id: None,
            revocation: Revocation {
                target: RevocationTarget::Sid(sid.into()),
                exp: Some(2_000_000_000),
            },
            reason: Some("backchannel-logout".into()),
            source: Some("backchannel_logout".into()),
        }
    }

    fn key(jti: &str, expires_at: u64) -> ReplayKey {
        ReplayKey {
            namespace: "backchannel_logout",
            issuer: "https://idp.example".into(),
            jti: jti.into(),
            expires_at,
        }
    }

    fn count(store: &Store) -> usize {
        let filter = ListFilter {
            limit: 100,
            ..ListFilter::default()
        };
        store.list(&filter).unwrap().0.len()
    }

    #[test]
    fn an_event_commits_once_with_its_replay_record() {
        let dir = std::env::temp_dir().join(format!("rg-store-{}", new_id().unwrap()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("o.db"), None).unwrap();
        let now_ms = 1_000_000_000;
        let first = store
            .ingest_event(&key("j1", 1_000_500), &[item("s1")], "idp", now_ms)
            .unwrap();
        assert_eq!(first, EventOutcome::Committed { inserted: 1 });
        let rows = store
            .list(&ListFilter {
                limit: 10,
                ..ListFilter::default()
            })
            .unwrap()
            .0;
        assert_eq!(rows[0].created_by, "idp");
        assert_eq!(rows[0].source.as_deref(), Some("backchannel_logout"));
        // The same jti again, even with other content: nothing written.
        let again = store
            .ingest_event(&key("j1", 1_000_500), &[item("s2")], "idp", now_ms)
            .unwrap();
        assert_eq!(again, EventOutcome::Replayed);
        assert_eq!(count(&store), 1);
        // Another feed's namespace is another event.
        let mut ssf = key("j1", 1_000_500);
        ssf.namespace = "ssf";
        assert_eq!(
            store.ingest_event(&ssf, &[], "tx", now_ms).unwrap(),
            EventOutcome::Committed { inserted: 0 }
        );
        // Past its expiry the record is dropped (the event's own window refuses it by then).
        let later = store
            .ingest_event(&key("j1", 1_002_000), &[item("s3")], "idp", 1_000_501_000)
            .unwrap();
        assert_eq!(later, EventOutcome::Committed { inserted: 1 });
        assert_eq!(count(&store), 2);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
