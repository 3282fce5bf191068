//! The message journal's business keys, and reading a journey back.
//!
//! A route records a business key by setting a `knut-key-<name>` header (an OeP
//! FlowInstanceID, an errand number); the header travels with the message and its children
//! to every route after it, and the journal writer notes, once per key and correlation id,
//! that the correlation id carried the key ([`Store::journal_keys_many`]). A search by the
//! key then finds every correlation id of the case ([`Store::journal_key_correlations`]),
//! also where the correlation id changes on the way (a case officer's decision comes back
//! as a new request).

use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{DateTime, JournalEntry, Store, StoreError, Utc, corrupt};

/// One business key that messages of one correlation id carried.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct JournalKey {
    /// The key's name (`flowInstanceId` of the header `knut-key-flowInstanceId`).
    pub name: String,
    /// Its value.
    pub value: String,
    /// The correlation id whose messages carried it.
    pub correlation_id: Uuid,
}

/// Most correlation ids or keys one query names (bind parameters stay few on both backends).
const IN_LIST_MAX: usize = 200;

impl Store {
    /// Note that messages of a correlation id carried a business key, first `at` (a key
    /// noted before keeps its first time).
    pub async fn journal_keys_many(
        &self,
        keys: &[(JournalKey, DateTime<Utc>)],
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| self.query_error("journal_keys", &e))?;
        for (key, at) in keys {
            sqlx::query(
                "INSERT INTO knut_journal_keys (name, value, correlation_id, at_us) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name, value, correlation_id) DO NOTHING",
            )
            .bind(key.name.as_str())
            .bind(key.value.as_str())
            .bind(key.correlation_id.to_string())
            .bind(at.timestamp_micros())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.query_error("journal_keys", &e))?;
        }
        tx.commit()
            .await
            .map_err(|e| self.query_error("journal_keys", &e))?;
        Ok(())
    }

    /// The correlation ids that carried a business key of `value` (of the key `name` only,
    /// when given), first noted first; at most `limit`.
    pub async fn journal_key_correlations(
        &self,
        name: Option<&str>,
        value: &str,
        limit: u32,
    ) -> Result<Vec<JournalKey>, StoreError> {
        const OP: &str = "journal_key_correlations";
        let rows = match name {
            Some(name) => {
                sqlx::query(
                    "SELECT name, value, correlation_id FROM knut_journal_keys \
                     WHERE value = $1 AND name = $2 ORDER BY at_us, correlation_id LIMIT $3",
                )
                .bind(value)
                .bind(name)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(
                    "SELECT name, value, correlation_id FROM knut_journal_keys \
                     WHERE value = $1 ORDER BY at_us, correlation_id LIMIT $2",
                )
                .bind(value)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
            }
        }
        .map_err(|e| self.query_error(OP, &e))?;
        rows.iter().map(|row| self.key_row(OP, row)).collect()
    }

    /// Every business key the messages of these correlation ids carried.
    pub async fn journal_keys_of(
        &self,
        correlation_ids: &[Uuid],
    ) -> Result<Vec<JournalKey>, StoreError> {
        const OP: &str = "journal_keys_of";
        let mut keys = Vec::new();
        for chunk in correlation_ids.chunks(IN_LIST_MAX) {
            let sql = format!(
                "SELECT name, value, correlation_id FROM knut_journal_keys \
                 WHERE correlation_id IN ({}) ORDER BY at_us, name, value",
                placeholders(1, chunk.len())
            );
            // Only placeholders are formatted in: every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.to_string());
            }
            let rows = q
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.query_error(OP, &e))?;
            for row in &rows {
                keys.push(self.key_row(OP, row)?);
            }
        }
        Ok(keys)
    }

    /// The hops of these correlation ids, in time order (ties in write order); the first
    /// `limit` of them.
    pub async fn journal_of(
        &self,
        correlation_ids: &[Uuid],
        limit: u32,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        const OP: &str = "journal_of";
        const T: &str = "knut_journal";
        if correlation_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut hops = Vec::new();
        // Each chunk's first `limit` in time order; merged and cut to `limit` below.
        for chunk in correlation_ids.chunks(IN_LIST_MAX) {
            let sql = format!(
                "SELECT id, at_us, message_id, correlation_id, route, step, outcome, duration_us, \
                 detail FROM knut_journal WHERE correlation_id IN ({}) \
                 ORDER BY at_us, id LIMIT ${}",
                placeholders(1, chunk.len()),
                chunk.len() + 1
            );
            // Only placeholders are formatted in: every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.to_string());
            }
            let rows = q
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.query_error(OP, &e))?;
            for row in &rows {
                let id = self.i64_col(OP, T, row, "id")?;
                hops.push((
                    id,
                    JournalEntry {
                        at: self.time(OP, T, "at_us", self.i64_col(OP, T, row, "at_us")?)?,
                        message_id: self.uuid_col(OP, T, row, "message_id")?,
                        correlation_id: self.uuid_col(OP, T, row, "correlation_id")?,
                        route: self.string_col(OP, T, row, "route")?,
                        step: self.string_col(OP, T, row, "step")?,
                        outcome: self.string_col(OP, T, row, "outcome")?,
                        duration_us: self.i64_col(OP, T, row, "duration_us")?,
                        detail: sqlx::Row::try_get::<Option<String>, _>(row, "detail")
                            .map_err(|_| corrupt(OP, T, "detail", "not text"))?,
                    },
                ));
            }
        }
        hops.sort_by_key(|(id, e)| (e.at, *id));
        hops.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(hops.into_iter().map(|(_, e)| e).collect())
    }

    fn key_row(&self, op: &'static str, row: &AnyRow) -> Result<JournalKey, StoreError> {
        const T: &str = "knut_journal_keys";
        Ok(JournalKey {
            name: self.string_col(op, T, row, "name")?,
            value: self.string_col(op, T, row, "value")?,
            correlation_id: self.uuid_col(op, T, row, "correlation_id")?,
        })
    }
}

/// `$first, $first+1, …` (`n` of them).
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
