//! The state store: Knutpunkt's small durable state.
//!
//! It holds what the message path must remember across deliveries and restarts:
//! - **idempotent consumer** keys ([`Store::claim_key`], [`Store::release_key`]),
//! - **aggregator** groups ([`Store::aggregate_add`], [`Store::aggregate_take`],
//!   [`Store::aggregate_expired`]),
//! - **poll** watermarks and per-item dedupe ([`Store::watermark`], [`Store::is_seen`],
//!   [`Store::mark_seen`]),
//! - the **message journal**, one row per hop and never a body ([`Store::journal`]), and
//!   the business keys its messages carried ([`Store::journal_keys_many`]),
//! - the **access audit**, who accessed whose data under which right, the people hashed
//!   ([`Store::access_audit_append`], [`Store::access_audit_query`]).
//!
//! SQLite is the default (`sqlite://<root>/data/knut.db`, one instance, WAL mode);
//! PostgreSQL (`postgres://…`) lets several knut instances share the state. The same
//! portable SQL runs on both through sqlx's `Any` driver; every operation that must stay
//! correct under concurrency is a single `INSERT … ON CONFLICT` or a short transaction that
//! starts with a write, so many tasks in one process and several processes on PostgreSQL
//! agree. Migrations (`migrations/sqlite`, `migrations/postgres`, embedded in the binary)
//! run at connect, idempotently.
//!
//! Times are stored as microseconds since the Unix epoch (UTC): a [`DateTime`] read back
//! has microsecond precision.

mod access;
pub mod conformance;
mod error;
mod journal;
mod migrate;

pub use access::{
    AccessAuditEntry, AccessAuditQuery, AccessRecord, AuditKey, MAX_QUERY_LIMIT, MIN_KEY_LEN,
    has_personnummer_shape, normalise as normalise_identity,
};
pub use error::StoreError;
pub use journal::JournalKey;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Connection, Executor, Row};
use uuid::Uuid;

use error::describe;

/// Set on every SQLite connection: wait up to 5 s for another writer; WAL makes
/// `synchronous = NORMAL` durable across application crashes (the classic pairing).
const SQLITE_PRAGMAS: &str =
    "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;";
/// Connections in a file-backed SQLite pool (writes are serialised by SQLite anyway).
const SQLITE_MAX_CONNECTIONS: u32 = 8;
/// Connections per knut instance in a PostgreSQL pool.
const POSTGRES_MAX_CONNECTIONS: u32 = 10;
/// How long to wait for a connection from the pool.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The database behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The state store: a handle on a pool of database connections. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The access audit's key (see [`Store::with_audit_key`]).
    audit_key: Option<std::sync::Arc<AuditKey>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the URL: it may carry a password.
        f.debug_struct("Store")
            .field("backend", &self.backend.name())
            .finish_non_exhaustive()
    }
}

/// The answer of the idempotent consumer ([`Store::claim_key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The key was not seen before in this scope: it is now recorded; process the message.
    First,
    /// The key was claimed before by this same message id (a redelivery or retry of the
    /// message that claimed it): let it pass.
    SameMessage,
    /// The key was claimed by another message: this one is a duplicate; drop it.
    Duplicate,
}

/// An aggregation group: the items collected so far for one correlation key of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// The correlation key.
    pub key: String,
    /// The items, in arrival order (each message id counted once).
    pub items: Vec<serde_json::Value>,
    /// When the first item arrived (microsecond precision).
    pub opened_at: DateTime<Utc>,
    /// Who is completing the group (the completed message's id), once it is claimed.
    pub completing: Option<String>,
    /// What the add did with the message.
    pub added: Added,
}

/// What [`Store::aggregate_add`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// It is a member of the group (now, or already: a redelivery).
    Member,
    /// It was a member of a group completed before (a redelivery after completion): it
    /// adds nothing and opens no group.
    AlreadyCompleted,
    /// The group is being completed and takes no new members: try again after.
    GroupCompleting,
}

/// How long the members of completed groups are remembered (a redelivery later than this
/// would open a new group).
const AGGREGATE_DONE_KEPT_US: i64 = 30 * 24 * 3600 * 1_000_000;

/// One hop of a message in the journal. Never holds a body or personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// When the hop ended (stored with microsecond precision).
    pub at: DateTime<Utc>,
    /// The message's id.
    pub message_id: Uuid,
    /// The correlation id that follows the message through every hop.
    pub correlation_id: Uuid,
    /// The route.
    pub route: String,
    /// The step: a path such as `steps[2].to`, or `ingress`, `dead-letter`, `replay`,
    /// `discard`.
    pub step: String,
    /// `ok`, `filtered`, `retry`, `dead-letter`, `duplicate`, `replayed` or `discarded`.
    pub outcome: String,
    /// How long the hop took, in microseconds.
    pub duration_us: i64,
    /// A short note (an error kind, a status code); no personal data, no content.
    pub detail: Option<String>,
}

impl JournalEntry {
    /// The row of one hop of `m` through `route`'s `step`, ending now, that took `took`.
    pub fn of(
        m: &crate::core::envelope::Envelope,
        route: &str,
        step: &str,
        outcome: &str,
        took: std::time::Duration,
        detail: Option<String>,
    ) -> JournalEntry {
        JournalEntry {
            at: Utc::now(),
            message_id: m.id,
            correlation_id: m.correlation_id,
            route: route.to_string(),
            step: step.to_string(),
            outcome: outcome.to_string(),
            duration_us: i64::try_from(took.as_micros()).unwrap_or(i64::MAX),
            // An error's text can quote what the message held: masked before it is kept.
            detail: detail.map(|d| crate::core::redact::mask(&d).into_owned()),
        }
    }
}

/// One call to the admin API in the audit journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When it was answered (microsecond precision).
    pub at: DateTime<Utc>,
    /// Who: the API key's name, the token's subject (`jwt:<sub>`), or `anonymous`.
    pub actor: String,
    /// The roles the caller held, comma-separated.
    pub roles: String,
    /// The HTTP method.
    pub method: String,
    /// The path (route and message ids; never a body).
    pub path: String,
    /// The status answered (401 and 403 for refused calls).
    pub status: u16,
}

impl Store {
    /// Connects to the store named by `url` and applies the migrations.
    ///
    /// - `sqlite://<path>` or `sqlite:<path>`: a file; its folder is created, and so is the
    ///   file unless the URL sets `mode=` itself. WAL mode, a busy timeout of 5 s.
    ///   `sqlite::memory:` gives the same as [`Store::memory`].
    /// - `postgres://…` or `postgresql://…`: a shared database; the schema comes from the
    ///   connection's `search_path` (e.g. `?options=-c%20search_path%3Dknut`).
    ///
    /// Safe when several processes connect at once: migrations are idempotent and, on
    /// PostgreSQL, serialised by an advisory lock.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => {
                if is_sqlite_memory(url) {
                    return Store::memory().await;
                }
                Store::connect_sqlite_file(url).await
            }
            "postgres" | "postgresql" => Store::connect_postgres(url).await,
            other => Err(StoreError::UnsupportedUrl {
                scheme: other.chars().take(32).collect(),
            }),
        }
    }

    /// A private in-memory SQLite store on one connection, for `knut test` and unit tests.
    /// Its state is gone when the last clone is dropped or [`Store::close`] is called.
    pub async fn memory() -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::Sqlite;
        // One connection that is never reaped: the database lives in that connection.
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect("sqlite::memory:")
            .await
            .map_err(|e| connect_error(backend, &e))?;
        let store = Store {
            pool,
            backend,
            // A private store of a test or `knut test`: the public development key.
            audit_key: Some(std::sync::Arc::new(AuditKey::development())),
        };
        migrate::run(&store.pool, backend.name(), migrate::sqlite()).await?;
        Ok(store)
    }

    async fn connect_sqlite_file(url: &str) -> Result<Store, StoreError> {
        let backend = Backend::Sqlite;
        let url = prepare_sqlite_file(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(SQLITE_MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(SQLITE_PRAGMAS).await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| connect_error(backend, &e))?;
        enable_wal(&pool).await?;
        let store = Store {
            pool,
            backend,
            audit_key: None,
        };
        migrate::run(&store.pool, backend.name(), migrate::sqlite()).await?;
        Ok(store)
    }

    async fn connect_postgres(url: &str) -> Result<Store, StoreError> {
        let backend = Backend::Postgres;
        // One direct connection first: when the database is unreachable, the pool would only
        // report a timeout; this gives the real reason (refused, auth, unknown database), fast.
        sqlx::AnyConnection::connect(url)
            .await
            .map_err(|e| connect_error(backend, &e))?
            .close()
            .await
            .map_err(|e| connect_error(backend, &e))?;
        let pool = AnyPoolOptions::new()
            .max_connections(POSTGRES_MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(|e| connect_error(backend, &e))?;
        let store = Store {
            pool,
            backend,
            audit_key: None,
        };
        migrate::run(&store.pool, backend.name(), migrate::postgres()).await?;
        Ok(store)
    }

    /// The database behind this store: `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }

    /// Idempotent consumer. The first time `key` is seen in `scope`, records it with
    /// `message_id` and returns [`Claim::First`]. The same key again from the same message
    /// id (a retry of that message) returns [`Claim::SameMessage`]: let it pass. From any
    /// other message, [`Claim::Duplicate`].
    ///
    /// One round trip (`INSERT … ON CONFLICT DO UPDATE … RETURNING`), atomic under any
    /// concurrency: of many concurrent claims of a fresh key exactly one gets `First`.
    pub async fn claim_key(
        &self,
        scope: &str,
        key: &str,
        message_id: Uuid,
    ) -> Result<Claim, StoreError> {
        const OP: &str = "claim_key";
        let row = sqlx::query(
            "INSERT INTO knut_idempotency (scope, idem_key, message_id, claimed_at_us, hits) \
             VALUES ($1, $2, $3, $4, 1) \
             ON CONFLICT (scope, idem_key) DO UPDATE SET hits = knut_idempotency.hits + 1 \
             RETURNING message_id, hits",
        )
        .bind(scope)
        .bind(key)
        .bind(message_id.to_string())
        .bind(now_us())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.query_error(OP, &e))?;
        let owner = self.uuid_col(OP, "knut_idempotency", &row, "message_id")?;
        let hits = self.i64_col(OP, "knut_idempotency", &row, "hits")?;
        Ok(if owner != message_id {
            Claim::Duplicate
        } else if hits <= 1 {
            Claim::First
        } else {
            Claim::SameMessage
        })
    }

    /// Undoes a claim when its message is dead-lettered, so that a corrected resend is not
    /// taken for a duplicate. Only the message that holds the claim can release it; releasing
    /// a key that is not held (or held by another message) does nothing.
    pub async fn release_key(
        &self,
        scope: &str,
        key: &str,
        message_id: Uuid,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM knut_idempotency WHERE scope = $1 AND idem_key = $2 AND message_id = $3",
        )
        .bind(scope)
        .bind(key)
        .bind(message_id.to_string())
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error("release_key", &e))?;
        Ok(())
    }

    /// Undoes every claim held by `message_id` (in any scope) when that message is
    /// dead-lettered, so that a corrected resend of the same business key is not taken for a
    /// duplicate and dropped; a replay of the dead letter itself claims the key again.
    /// Returns how many claims were released.
    pub async fn release_keys_of(&self, message_id: Uuid) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM knut_idempotency WHERE message_id = $1")
            .bind(message_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| self.query_error("release_keys_of", &e))?;
        Ok(done.rows_affected())
    }

    /// Aggregator: adds `item` to the group (`route`, `key`), opening the group if needed,
    /// and returns the group's items so far (in arrival order) and when it opened. Adding the
    /// same message id twice adds it once (a redelivery). A message that was a member of a
    /// group completed before adds nothing ([`Added::AlreadyCompleted`]); a group being
    /// completed takes no new member ([`Added::GroupCompleting`]).
    pub async fn aggregate_add(
        &self,
        route: &str,
        key: &str,
        message_id: Uuid,
        item: &serde_json::Value,
    ) -> Result<Group, StoreError> {
        const OP: &str = "aggregate_add";
        let item_text = serde_json::to_string(item).map_err(|_| StoreError::InvalidValue {
            operation: OP,
            field: "item",
            reason: "it cannot be serialised as JSON",
        })?;
        let id = message_id.to_string();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.query_error(OP, &e))?;
        // A write first: it takes the group's row lock (PostgreSQL) or the write lock (SQLite)
        // for the whole transaction, so adds, claims and finishes of one group are serialised.
        let group = sqlx::query(
            "INSERT INTO knut_agg_groups (route, group_key, opened_at_us, next_seq) \
             VALUES ($1, $2, $3, 1) \
             ON CONFLICT (route, group_key) DO UPDATE \
             SET next_seq = knut_agg_groups.next_seq + 1 \
             RETURNING opened_at_us, next_seq, completing",
        )
        .bind(route)
        .bind(key)
        .bind(now_us())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| self.query_error(OP, &e))?;
        let opened_at_us = self.i64_col(OP, "knut_agg_groups", &group, "opened_at_us")?;
        let seq = self.i64_col(OP, "knut_agg_groups", &group, "next_seq")?;
        let completing: Option<String> = group
            .try_get("completing")
            .map_err(|e| self.query_error(OP, &e))?;
        let done =
            sqlx::query("SELECT 1 AS one FROM knut_agg_done WHERE route = $1 AND message_id = $2")
                .bind(route)
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| self.query_error(OP, &e))?
                .is_some();
        let member = sqlx::query(
            "SELECT 1 AS one FROM knut_agg_items WHERE route = $1 AND group_key = $2 AND message_id = $3",
        )
        .bind(route)
        .bind(key)
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.query_error(OP, &e))?
        .is_some();
        let added = if done {
            Added::AlreadyCompleted
        } else if completing.is_some() && !member {
            Added::GroupCompleting
        } else {
            Added::Member
        };
        if added == Added::Member && !member {
            sqlx::query(
                "INSERT INTO knut_agg_items (route, group_key, message_id, seq, item) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(route)
            .bind(key)
            .bind(&id)
            .bind(seq)
            .bind(item_text)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(OP, &e))?;
        }
        let items = self.aggregate_items(OP, &mut tx, route, key).await?;
        if items.is_empty() {
            // The add opened no group (the message was completed before): leave none open.
            sqlx::query("DELETE FROM knut_agg_groups WHERE route = $1 AND group_key = $2")
                .bind(route)
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.query_error(OP, &e))?;
        }
        tx.commit().await.map_err(|e| self.query_error(OP, &e))?;
        Ok(Group {
            key: key.to_string(),
            items,
            opened_at: self.time(OP, "knut_agg_groups", "opened_at_us", opened_at_us)?,
            completing,
            added,
        })
    }

    /// The items of a group, in arrival order.
    async fn aggregate_items(
        &self,
        op: &'static str,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        route: &str,
        key: &str,
    ) -> Result<Vec<serde_json::Value>, StoreError> {
        let rows = sqlx::query(
            "SELECT item FROM knut_agg_items WHERE route = $1 AND group_key = $2 ORDER BY seq",
        )
        .bind(route)
        .bind(key)
        .fetch_all(&mut **tx)
        .await
        .map_err(|e| self.query_error(op, &e))?;
        rows.iter().map(|row| self.json_col(op, row)).collect()
    }

    /// Claims the group (`route`, `key`) for completion by `claimant` (the id of the message
    /// it completes into) and returns it, with its items: atomically, so that when several
    /// callers (tasks or instances) race exactly one gets `Some`. The claimant itself may
    /// claim again (its message was redelivered before it finished); a claim older than
    /// `stale_before` (its claimant died and is not coming back) may be taken over. From the
    /// claim on the group takes no new members. `None` when there is no such group or
    /// another holds it.
    pub async fn aggregate_claim(
        &self,
        route: &str,
        key: &str,
        claimant: &str,
        stale_before: Option<DateTime<Utc>>,
    ) -> Result<Option<Group>, StoreError> {
        const OP: &str = "aggregate_claim";
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.query_error(OP, &e))?;
        let group = sqlx::query(
            "UPDATE knut_agg_groups SET completing = $3, claimed_at_us = $4 \
             WHERE route = $1 AND group_key = $2 \
             AND (completing IS NULL OR completing = $3 OR claimed_at_us < $5) \
             RETURNING opened_at_us",
        )
        .bind(route)
        .bind(key)
        .bind(claimant)
        .bind(now_us())
        .bind(stale_before.map_or(i64::MIN, |t| t.timestamp_micros()))
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.query_error(OP, &e))?;
        let Some(group) = group else {
            tx.rollback().await.map_err(|e| self.query_error(OP, &e))?;
            return Ok(None);
        };
        let opened_at_us = self.i64_col(OP, "knut_agg_groups", &group, "opened_at_us")?;
        let items = self.aggregate_items(OP, &mut tx, route, key).await?;
        tx.commit().await.map_err(|e| self.query_error(OP, &e))?;
        Ok(Some(Group {
            key: key.to_string(),
            items,
            opened_at: self.time(OP, "knut_agg_groups", "opened_at_us", opened_at_us)?,
            completing: Some(claimant.to_string()),
            added: Added::Member,
        }))
    }

    /// Finishes a group `claimant` completed (its completed message is published): the group
    /// is removed and its members remembered, so that a member redelivered afterwards adds
    /// nothing. Nothing happens when `claimant` does not hold the group (another took it
    /// over, or it is finished already). Members of groups finished more than 30 days ago
    /// are forgotten.
    pub async fn aggregate_finish(
        &self,
        route: &str,
        key: &str,
        claimant: &str,
    ) -> Result<(), StoreError> {
        const OP: &str = "aggregate_finish";
        let now = now_us();
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.query_error(OP, &e))?;
        let held = sqlx::query(
            "DELETE FROM knut_agg_groups WHERE route = $1 AND group_key = $2 AND completing = $3 \
             RETURNING opened_at_us",
        )
        .bind(route)
        .bind(key)
        .bind(claimant)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| self.query_error(OP, &e))?;
        if held.is_none() {
            tx.rollback().await.map_err(|e| self.query_error(OP, &e))?;
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO knut_agg_done (route, message_id, done_at_us) \
             SELECT route, message_id, $3 FROM knut_agg_items WHERE route = $1 AND group_key = $2 \
             ON CONFLICT (route, message_id) DO NOTHING",
        )
        .bind(route)
        .bind(key)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.query_error(OP, &e))?;
        sqlx::query("DELETE FROM knut_agg_items WHERE route = $1 AND group_key = $2")
            .bind(route)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(OP, &e))?;
        sqlx::query("DELETE FROM knut_agg_done WHERE route = $1 AND done_at_us < $2")
            .bind(route)
            .bind(now - AGGREGATE_DONE_KEPT_US)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(OP, &e))?;
        tx.commit().await.map_err(|e| self.query_error(OP, &e))?;
        Ok(())
    }

    /// Keys of the groups of `route` opened before `opened_before`, with when each opened,
    /// oldest first (for completion by timeout).
    pub async fn aggregate_expired(
        &self,
        route: &str,
        opened_before: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        const OP: &str = "aggregate_expired";
        let rows = sqlx::query(
            "SELECT group_key, opened_at_us FROM knut_agg_groups WHERE route = $1 AND opened_at_us < $2 \
             ORDER BY opened_at_us, group_key",
        )
        .bind(route)
        .bind(opened_before.timestamp_micros())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(OP, &e))?;
        rows.iter()
            .map(|row| {
                let key = self.string_col(OP, "knut_agg_groups", row, "group_key")?;
                let at = self.i64_col(OP, "knut_agg_groups", row, "opened_at_us")?;
                Ok((key, self.time(OP, "knut_agg_groups", "opened_at_us", at)?))
            })
            .collect()
    }

    /// The last watermark stored for the poll endpoint `endpoint`, if any.
    pub async fn watermark(&self, endpoint: &str) -> Result<Option<String>, StoreError> {
        const OP: &str = "watermark";
        let row = sqlx::query("SELECT value FROM knut_watermarks WHERE endpoint = $1")
            .bind(endpoint)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.query_error(OP, &e))?;
        row.map(|row| self.string_col(OP, "knut_watermarks", &row, "value"))
            .transpose()
    }

    /// `cache` step: keep `value` (JSON text) under `key` of cache `name`, replacing what
    /// the key held; it expires after `ttl` when given.
    pub async fn cache_set(
        &self,
        name: &str,
        key: &str,
        value: &str,
        ttl: Option<std::time::Duration>,
    ) -> Result<(), StoreError> {
        self.cache_set_keys(name, &[key], value, ttl).await
    }

    /// [`Store::cache_set`] for every key of `keys`, in one transaction (a run's thousands
    /// of rows remembered at once, not one commit each).
    pub async fn cache_set_keys(
        &self,
        name: &str,
        keys: &[&str],
        value: &str,
        ttl: Option<std::time::Duration>,
    ) -> Result<(), StoreError> {
        const OP: &str = "cache_set";
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.query_error(OP, &e))?;
        let (now, expires) = (now_us(), expiry(ttl));
        for key in keys {
            // An upsert of the single value, then the set's members go: two instances
            // setting one key at once both succeed (the last one's value stays).
            sqlx::query(
                "INSERT INTO knut_cache (name, cache_key, member, value, added_at_us, expires_at_us) \
                 VALUES ($1, $2, '', $3, $4, $5) \
                 ON CONFLICT (name, cache_key, member) DO UPDATE \
                 SET value = excluded.value, added_at_us = excluded.added_at_us, \
                 expires_at_us = excluded.expires_at_us",
            )
            .bind(name)
            .bind(*key)
            .bind(value)
            .bind(now)
            .bind(expires)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(OP, &e))?;
            sqlx::query(
                "DELETE FROM knut_cache WHERE name = $1 AND cache_key = $2 AND member <> ''",
            )
            .bind(name)
            .bind(*key)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error(OP, &e))?;
        }
        tx.commit().await.map_err(|e| self.query_error(OP, &e))?;
        self.cache_purge().await
    }

    /// Remove expired cache entries, at most once a minute per process (they are invisible
    /// to readers already; this frees what they held, which may be personal data).
    async fn cache_purge(&self) -> Result<(), StoreError> {
        const OP: &str = "cache_purge";
        static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        let now = now_us();
        let last = LAST.load(std::sync::atomic::Ordering::Relaxed);
        if now - last < 60_000_000
            || LAST
                .compare_exchange(
                    last,
                    now,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_err()
        {
            return Ok(());
        }
        sqlx::query(
            "DELETE FROM knut_cache WHERE expires_at_us IS NOT NULL AND expires_at_us <= $1",
        )
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error(OP, &e))?;
        Ok(())
    }

    /// `cache` step: add `value` (JSON text, known by `member`, a hash of it) to the set
    /// under `key` of cache `name`; adding it again renews its expiry. Expired members of
    /// the key are removed.
    pub async fn cache_add(
        &self,
        name: &str,
        key: &str,
        member: &str,
        value: &str,
        ttl: Option<std::time::Duration>,
    ) -> Result<(), StoreError> {
        const OP: &str = "cache_add";
        let now = now_us();
        sqlx::query(
            "DELETE FROM knut_cache WHERE name = $1 AND cache_key = $2 \
             AND expires_at_us IS NOT NULL AND expires_at_us <= $3",
        )
        .bind(name)
        .bind(key)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error(OP, &e))?;
        sqlx::query(
            "INSERT INTO knut_cache (name, cache_key, member, value, added_at_us, expires_at_us) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name, cache_key, member) DO UPDATE \
             SET value = excluded.value, expires_at_us = excluded.expires_at_us",
        )
        .bind(name)
        .bind(key)
        .bind(member)
        .bind(value)
        .bind(now)
        .bind(expiry(ttl))
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error(OP, &e))?;
        self.cache_purge().await
    }

    /// `cache` step: what `key` of cache `name` holds and has not expired, as `(member,
    /// value)` in the order added (member `""` for a value `set`).
    pub async fn cache_get(
        &self,
        name: &str,
        key: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        const OP: &str = "cache_get";
        let rows = sqlx::query(
            "SELECT member, value FROM knut_cache WHERE name = $1 AND cache_key = $2 \
             AND (expires_at_us IS NULL OR expires_at_us > $3) ORDER BY added_at_us, member",
        )
        .bind(name)
        .bind(key)
        .bind(now_us())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(OP, &e))?;
        rows.iter()
            .map(|row| {
                Ok((
                    self.string_col(OP, "knut_cache", row, "member")?,
                    self.string_col(OP, "knut_cache", row, "value")?,
                ))
            })
            .collect()
    }

    /// [`Store::cache_get`] for every key of `keys` at once (a few hundred keys per query):
    /// what each key that holds something holds, by key.
    pub async fn cache_get_keys(
        &self,
        name: &str,
        keys: &[&str],
    ) -> Result<BTreeMap<String, Vec<(String, String)>>, StoreError> {
        const OP: &str = "cache_get";
        const PER_QUERY: usize = 500;
        let mut found: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let now = now_us();
        for chunk in keys.chunks(PER_QUERY) {
            let placeholders: Vec<String> =
                (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "SELECT cache_key, member, value FROM knut_cache WHERE name = $1 \
                 AND (expires_at_us IS NULL OR expires_at_us > $2) AND cache_key IN ({}) \
                 ORDER BY cache_key, added_at_us, member",
                placeholders.join(", ")
            );
            // Only placeholders are put into the text; every key is bound.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(name).bind(now);
            for key in chunk {
                query = query.bind(*key);
            }
            let rows = query
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.query_error(OP, &e))?;
            for row in &rows {
                found
                    .entry(self.string_col(OP, "knut_cache", row, "cache_key")?)
                    .or_default()
                    .push((
                        self.string_col(OP, "knut_cache", row, "member")?,
                        self.string_col(OP, "knut_cache", row, "value")?,
                    ));
            }
        }
        Ok(found)
    }

    /// `cache` step: forget `key` of cache `name` (with `member`, only that member of its
    /// set).
    pub async fn cache_delete(
        &self,
        name: &str,
        key: &str,
        member: Option<&str>,
    ) -> Result<(), StoreError> {
        const OP: &str = "cache_delete";
        let query = match member {
            Some(m) => sqlx::query(
                "DELETE FROM knut_cache WHERE name = $1 AND cache_key = $2 AND member = $3",
            )
            .bind(name)
            .bind(key)
            .bind(m),
            None => sqlx::query("DELETE FROM knut_cache WHERE name = $1 AND cache_key = $2")
                .bind(name)
                .bind(key),
        };
        query
            .execute(&self.pool)
            .await
            .map_err(|e| self.query_error(OP, &e))?;
        Ok(())
    }

    /// Stores `value` as the watermark of the poll endpoint `endpoint` (replacing the last).
    pub async fn set_watermark(&self, endpoint: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO knut_watermarks (endpoint, value, updated_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (endpoint) DO UPDATE \
             SET value = excluded.value, updated_at_us = excluded.updated_at_us",
        )
        .bind(endpoint)
        .bind(value)
        .bind(now_us())
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error("set_watermark", &e))?;
        Ok(())
    }

    /// Notes that `route` holds dead letters since `at`, unless a time is noted already: the
    /// dead-letter overview's oldest age ([`Store::dead_letters_since`]). Kept beside the
    /// poll watermarks, under `dead-letters/<route>`.
    pub async fn note_dead_letters_since(
        &self,
        route: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO knut_watermarks (endpoint, value, updated_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (endpoint) DO NOTHING",
        )
        .bind(dead_letters_key(route))
        .bind(at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .bind(now_us())
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error("note_dead_letters_since", &e))?;
        Ok(())
    }

    /// Since when `route` holds dead letters, as noted ([`Store::note_dead_letters_since`],
    /// [`Store::set_dead_letters_since`]); `None` when nothing is noted.
    pub async fn dead_letters_since(
        &self,
        route: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .watermark(&dead_letters_key(route))
            .await?
            .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
            .map(|t| t.with_timezone(&Utc)))
    }

    /// Replaces the time since which `route` holds dead letters (its oldest dead letter's, once
    /// read from the queue), or forgets it (`None`: the queue is empty).
    pub async fn set_dead_letters_since(
        &self,
        route: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let key = dead_letters_key(route);
        match at {
            Some(at) => {
                self.set_watermark(
                    &key,
                    &at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                )
                .await
            }
            None => {
                sqlx::query("DELETE FROM knut_watermarks WHERE endpoint = $1")
                    .bind(key)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| self.query_error("set_dead_letters_since", &e))?;
                Ok(())
            }
        }
    }

    /// Has `item` been recorded for the poll endpoint `endpoint` ([`Store::mark_seen`])?
    /// Changes nothing: a poll asks first, hands the item on, and marks it only then.
    pub async fn is_seen(&self, endpoint: &str, item: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS hit FROM knut_seen WHERE endpoint = $1 AND item = $2")
            .bind(endpoint)
            .bind(item)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.query_error("is_seen", &e))?;
        Ok(row.is_some())
    }

    /// Per-item dedupe for a poll endpoint: records `item` and returns `true` the first time
    /// it is seen for `endpoint`, `false` afterwards. Atomic: of concurrent callers exactly
    /// one gets `true`.
    pub async fn mark_seen(&self, endpoint: &str, item: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO knut_seen (endpoint, item, seen_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (endpoint, item) DO NOTHING",
        )
        .bind(endpoint)
        .bind(item)
        .bind(now_us())
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error("mark_seen", &e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Take or renew the lease `name` for `holder` until `ttl` from now. True when `holder`
    /// holds it now: it was free, expired, or already `holder`'s. Atomic: of instances
    /// racing for a free lease exactly one gets it.
    pub async fn take_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError> {
        let now = now_us();
        let until = now.saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX));
        let done = sqlx::query(
            "INSERT INTO knut_leases (name, holder, expires_at_us) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE \
             SET holder = excluded.holder, expires_at_us = excluded.expires_at_us \
             WHERE knut_leases.holder = excluded.holder OR knut_leases.expires_at_us < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error("take_lease", &e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Give the lease `name` up, if `holder` has it (at a graceful stop: another instance
    /// takes over at once instead of after the lease expires).
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM knut_leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(|e| self.query_error("release_lease", &e))?;
        Ok(())
    }

    /// Appends one hop to the message journal.
    pub async fn journal(&self, entry: &JournalEntry) -> Result<(), StoreError> {
        self.journal_many(std::slice::from_ref(entry)).await
    }

    /// Record several hops in one transaction (the journal writer's batches), up to
    /// [`JOURNAL_ROWS_PER_INSERT`] rows per statement: a statement per row cost the writer
    /// more than the rows themselves.
    pub async fn journal_many(&self, entries: &[JournalEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.query_error("journal", &e))?;
        for chunk in entries.chunks(JOURNAL_ROWS_PER_INSERT) {
            // Built from row numbers only, no data.
            let sql = journal_insert(self.backend, chunk.len());
            // Only the full size is kept prepared: the last chunk's size varies, and would
            // push the other statements out of the connection's cache.
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .persistent(chunk.len() == JOURNAL_ROWS_PER_INSERT);
            for entry in chunk {
                query = query
                    .bind(entry.at.timestamp_micros())
                    .bind(entry.message_id.to_string())
                    .bind(entry.correlation_id.to_string())
                    .bind(entry.route.as_str())
                    .bind(entry.step.as_str())
                    .bind(entry.outcome.as_str())
                    .bind(entry.duration_us)
                    .bind(entry.detail.as_deref());
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(|e| self.query_error("journal", &e))?;
        }
        tx.commit()
            .await
            .map_err(|e| self.query_error("journal", &e))?;
        Ok(())
    }

    /// Record one admin API call.
    pub async fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO knut_audit (at_us, actor, roles, method, path, status) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(entry.at.timestamp_micros())
        .bind(entry.actor.as_str())
        .bind(entry.roles.as_str())
        .bind(entry.method.as_str())
        .bind(entry.path.as_str())
        .bind(i64::from(entry.status))
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error("audit", &e))?;
        Ok(())
    }

    /// The newest `limit` admin API calls, newest first.
    pub async fn audit_recent(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        const OP: &str = "audit_recent";
        const T: &str = "knut_audit";
        let rows = sqlx::query(
            "SELECT at_us, actor, roles, method, path, status FROM knut_audit \
             ORDER BY at_us DESC, id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(OP, &e))?;
        rows.iter()
            .map(|row| {
                let status = self.i64_col(OP, T, row, "status")?;
                Ok(AuditEntry {
                    at: self.time(OP, T, "at_us", self.i64_col(OP, T, row, "at_us")?)?,
                    actor: self.string_col(OP, T, row, "actor")?,
                    roles: self.string_col(OP, T, row, "roles")?,
                    method: self.string_col(OP, T, row, "method")?,
                    path: self.string_col(OP, T, row, "path")?,
                    status: u16::try_from(status)
                        .map_err(|_| corrupt(OP, T, "status", "not an HTTP status"))?,
                })
            })
            .collect()
    }

    /// Every hop journaled for `correlation_id`, in time order (ties in write order).
    pub async fn journal_for(&self, correlation_id: Uuid) -> Result<Vec<JournalEntry>, StoreError> {
        const OP: &str = "journal_for";
        const T: &str = "knut_journal";
        let rows = sqlx::query(
            "SELECT at_us, message_id, correlation_id, route, step, outcome, duration_us, detail \
             FROM knut_journal WHERE correlation_id = $1 ORDER BY at_us, id",
        )
        .bind(correlation_id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.query_error(OP, &e))?;
        rows.iter()
            .map(|row| {
                Ok(JournalEntry {
                    at: self.time(OP, T, "at_us", self.i64_col(OP, T, row, "at_us")?)?,
                    message_id: self.uuid_col(OP, T, row, "message_id")?,
                    correlation_id: self.uuid_col(OP, T, row, "correlation_id")?,
                    route: self.string_col(OP, T, row, "route")?,
                    step: self.string_col(OP, T, row, "step")?,
                    outcome: self.string_col(OP, T, row, "outcome")?,
                    duration_us: self.i64_col(OP, T, row, "duration_us")?,
                    detail: row
                        .try_get::<Option<String>, _>("detail")
                        .map_err(|_| corrupt(OP, T, "detail", "not text"))?,
                })
            })
            .collect()
    }

    /// Closes every connection, waiting for the ones in use to be returned. Further calls on
    /// any clone of this store fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn query_error(&self, operation: &'static str, error: &sqlx::Error) -> StoreError {
        StoreError::Query {
            operation,
            backend: self.backend.name(),
            cause: describe(error),
        }
    }

    fn i64_col(
        &self,
        op: &'static str,
        table: &'static str,
        row: &AnyRow,
        column: &'static str,
    ) -> Result<i64, StoreError> {
        row.try_get::<i64, _>(column)
            .map_err(|_| corrupt(op, table, column, "not an integer"))
    }

    fn string_col(
        &self,
        op: &'static str,
        table: &'static str,
        row: &AnyRow,
        column: &'static str,
    ) -> Result<String, StoreError> {
        row.try_get::<String, _>(column)
            .map_err(|_| corrupt(op, table, column, "not text"))
    }

    fn uuid_col(
        &self,
        op: &'static str,
        table: &'static str,
        row: &AnyRow,
        column: &'static str,
    ) -> Result<Uuid, StoreError> {
        let text = self.string_col(op, table, row, column)?;
        Uuid::parse_str(&text).map_err(|_| corrupt(op, table, column, "not a UUID"))
    }

    fn json_col(&self, op: &'static str, row: &AnyRow) -> Result<serde_json::Value, StoreError> {
        let text = self.string_col(op, "knut_agg_items", row, "item")?;
        serde_json::from_str(&text).map_err(|_| corrupt(op, "knut_agg_items", "item", "not JSON"))
    }

    fn time(
        &self,
        op: &'static str,
        table: &'static str,
        column: &'static str,
        micros: i64,
    ) -> Result<DateTime<Utc>, StoreError> {
        DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| corrupt(op, table, column, "a time out of range"))
    }
}

fn corrupt(
    operation: &'static str,
    table: &'static str,
    column: &'static str,
    reason: &'static str,
) -> StoreError {
    StoreError::CorruptRow {
        operation,
        table,
        column,
        reason,
    }
}

fn connect_error(backend: Backend, error: &sqlx::Error) -> StoreError {
    StoreError::Connect {
        backend: backend.name(),
        cause: describe(error),
    }
}

/// The watermark key under which the time since a route holds dead letters is kept.
fn dead_letters_key(route: &str) -> String {
    format!("dead-letters/{route}")
}

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

/// When something kept for `ttl` from now expires (microseconds), or never.
fn expiry(ttl: Option<std::time::Duration>) -> Option<i64> {
    ttl.map(|t| now_us().saturating_add(i64::try_from(t.as_micros()).unwrap_or(i64::MAX)))
}

/// The part of a SQLite URL after the scheme, split into path and query.
fn sqlite_parts(url: &str) -> (&str, Option<&str>) {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    }
}

fn is_sqlite_memory(url: &str) -> bool {
    let (path, query) = sqlite_parts(url);
    path == ":memory:"
        || query.is_some_and(|q| q.split('&').any(|pair| pair == "mode=memory"))
        || (path.is_empty() && query.is_none())
}

/// Creates the folder of a SQLite file URL, and asks for the file to be created when the
/// URL does not say which `mode` it wants.
fn prepare_sqlite_file(url: &str) -> Result<String, StoreError> {
    let (path, query) = sqlite_parts(url);
    if let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let has_mode = query.is_some_and(|q| q.split('&').any(|pair| pair.starts_with("mode=")));
    Ok(match (query, has_mode) {
        (_, true) => url.to_string(),
        (Some(_), false) => format!("{url}&mode=rwc"),
        (None, false) => format!("{url}?mode=rwc"),
    })
}

/// Journal rows per `INSERT` statement (8 parameters each; far below both backends' limits).
const JOURNAL_ROWS_PER_INSERT: usize = 64;

/// The `INSERT` of `rows` journal rows. PostgreSQL numbers its parameters (`$1` …); SQLite
/// is given plain `?`, because it binds a numbered one by looking its name up among all of
/// the statement's (the look-ups took more time than the rows).
fn journal_insert(backend: Backend, rows: usize) -> String {
    use std::fmt::Write;
    let mut sql = String::from(
        "INSERT INTO knut_journal \
         (at_us, message_id, correlation_id, route, step, outcome, duration_us, detail) VALUES ",
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..8 {
            if column > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${}", row * 8 + column + 1);
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// Switches a SQLite file to WAL mode. WAL is a property of the file, so once is enough;
/// the switch needs a moment of exclusive access, which another process starting at the
/// same time may hold, so it is retried briefly.
async fn enable_wal(pool: &AnyPool) -> Result<(), StoreError> {
    let mut last = None;
    for _ in 0..50 {
        match pool.execute("PRAGMA journal_mode = WAL").await {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(StoreError::Connect {
        backend: "sqlite",
        cause: last
            .map(|e| format!("cannot switch to WAL mode: {}", describe(&e)))
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests;
