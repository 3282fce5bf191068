//! The access audit: every access to a person's data and every refusal — who, on whose
//! behalf, what, when, under which right, allowed or not — appended by the `audit` step
//! (guardian access, "my cases") to `knut_access_audit`.
//!
//! The people are never stored in plain text: `actor` and `on_behalf_of` are HMAC-SHA256
//! hashes under the instance's [`AuditKey`] (`[audit] key_env`), a personnummer first
//! brought to its twelve digits so that `130412-2383`, `20130412-2383` and `201304122383`
//! are one person. Without the key a hash cannot be tied to a person; with it, "did this
//! guardian view?" is asked by hashing the guardian's number ([`Store::audit_hash`]) and
//! querying ([`Store::access_audit_query`]). The other columns refuse a personnummer-shaped
//! value. Append-only: the store has no method that changes or removes a row.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ring::hmac;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Store, StoreError, corrupt};
use crate::core::redact::shaped_spans;
use crate::expr::personnummer;

/// The fewest bytes an audit key may have.
pub const MIN_KEY_LEN: usize = 32;

/// The development key: public (it is in the source), so a hash under it proves nothing.
/// Used by `knut test`, in-memory stores and `knut run --dev` without a configured key.
const DEVELOPMENT_KEY: &[u8] = b"knutpunkt development access-audit key: not secret";

/// The most rows one query returns.
pub const MAX_QUERY_LIMIT: u32 = 10_000;

/// The key under which the access audit hashes people. Its `Debug` never shows it.
#[derive(Clone)]
pub struct AuditKey {
    key: hmac::Key,
    development: bool,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("development", &self.development)
            .finish_non_exhaustive()
    }
}

impl AuditKey {
    /// A key from secret bytes (at least [`MIN_KEY_LEN`]); the error says what is wrong,
    /// never the key.
    pub fn new(secret: &[u8]) -> Result<AuditKey, String> {
        if secret.len() < MIN_KEY_LEN {
            return Err(format!(
                "the access audit's key has {} bytes; give at least {MIN_KEY_LEN} random bytes \
                 (e.g. `openssl rand -base64 48`)",
                secret.len()
            ));
        }
        if secret == DEVELOPMENT_KEY {
            return Err(
                "the access audit's key is the public development key, which anyone can read in \
                 the source; give a secret of your own (e.g. `openssl rand -base64 48`)"
                    .into(),
            );
        }
        Ok(AuditKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            development: false,
        })
    }

    /// The fixed development key (public: for development and tests only).
    pub fn development() -> AuditKey {
        AuditKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, DEVELOPMENT_KEY),
            development: true,
        }
    }

    /// Whether this is the public development key.
    pub fn is_development(&self) -> bool {
        self.development
    }

    /// The hash of a person or other identity: HMAC-SHA256 (64 hex digits) of its
    /// [`normalise`]d form.
    pub fn hash(&self, identity: &str) -> String {
        let tag = hmac::sign(&self.key, normalise(identity).as_bytes());
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A personnummer (or samordningsnummer) in any accepted form — `YYYYMMDDNNNC`,
/// `YYYYMMDD-NNNC`, `YYMMDD-NNNC`, `YYMMDD+NNNC`, or ten digits `YYMMDDNNNC` — as its
/// twelve digits; anything else (a staff token's `sub`) as it is.
pub fn normalise(identity: &str) -> String {
    let trimmed = identity.trim();
    let ten_digits = trimmed.len() == 10 && trimmed.bytes().all(|b| b.is_ascii_digit());
    let parsed = if ten_digits {
        personnummer::parse(&format!("{}-{}", &trimmed[..6], &trimmed[6..]))
    } else {
        personnummer::parse(trimmed)
    };
    match parsed {
        Ok(p) => p.canonical(),
        Err(_) => identity.to_string(),
    }
}

/// Whether `text` holds a personnummer-shaped value (which the access audit's plain
/// columns refuse).
pub fn has_personnummer_shape(text: &str) -> bool {
    !shaped_spans(text.as_bytes()).is_empty()
}

/// One access to record ([`Store::access_audit_append`]): the people as they are, hashed
/// by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who acted: a personnummer, or another identity (a staff token's `sub`).
    pub actor: String,
    /// On whose behalf (the child, the person who delegated), if anyone's.
    pub on_behalf_of: Option<String>,
    /// What was done: `view-case`, `list-cases`, `login`, `approve`, …
    pub action: String,
    /// What it concerned (a case id), never a personnummer.
    pub resource: Option<String>,
    /// The right it was done under: `own`, `guardian-view`, `guardian-approve`,
    /// `delegation`, `power-of-attorney`.
    pub right: Option<String>,
    /// Whether it was allowed (false: a refusal).
    pub allowed: bool,
    /// The route that recorded it.
    pub route: String,
    /// The correlation id of the message that recorded it.
    pub correlation_id: Uuid,
}

/// One row of the access audit, as stored: the people as hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessAuditEntry {
    /// The row's id (increasing in write order).
    pub id: i64,
    /// When it happened (microsecond precision).
    pub at: DateTime<Utc>,
    /// The actor's hash.
    pub actor: String,
    /// The hash of whom it was done on behalf of.
    pub on_behalf_of: Option<String>,
    /// What was done.
    pub action: String,
    /// What it concerned.
    pub resource: Option<String>,
    /// The right it was done under.
    pub right: Option<String>,
    /// Whether it was allowed.
    pub allowed: bool,
    /// The route that recorded it.
    pub route: String,
    /// The correlation id of the message that recorded it.
    pub correlation_id: Uuid,
}

/// What [`Store::access_audit_query`] looks for; every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct AccessAuditQuery {
    /// The actor's hash ([`Store::audit_hash`]).
    pub actor: Option<String>,
    /// The hash of whom it was done on behalf of.
    pub on_behalf_of: Option<String>,
    /// The action.
    pub action: Option<String>,
    /// From this time on (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Before this time (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// The most rows (default 100, at most [`MAX_QUERY_LIMIT`]).
    pub limit: Option<u32>,
}

/// A bound value of a query built at run time.
enum Bound {
    Text(String),
    Int(i64),
}

const T: &str = "knut_access_audit";

impl Store {
    /// This store with `key` for the access audit (a store from [`Store::connect`] has none
    /// until given one, and refuses to append; [`Store::memory`] has the development key).
    pub fn with_audit_key(mut self, key: AuditKey) -> Store {
        self.audit_key = Some(Arc::new(key));
        self
    }

    /// Whether the store has a key for the access audit (it appends only with one).
    pub fn has_audit_key(&self) -> bool {
        self.audit_key.is_some()
    }

    /// Whether the access audit's key is the public development key (`None`: no key).
    pub fn audit_key_is_development(&self) -> Option<bool> {
        self.audit_key.as_deref().map(AuditKey::is_development)
    }

    /// The hash under which the access audit knows `identity` (a personnummer in any form,
    /// or another identity as it is): what [`AccessAuditQuery`] filters by.
    pub fn audit_hash(&self, identity: &str) -> Result<String, StoreError> {
        Ok(self.audit_key()?.hash(identity))
    }

    fn audit_key(&self) -> Result<&AuditKey, StoreError> {
        self.audit_key.as_deref().ok_or(StoreError::NoAuditKey)
    }

    /// Append one access to the audit: the people hashed; `action`, `resource` and `right`
    /// refused when one holds a personnummer-shaped value (the error names the field, never
    /// the value).
    pub async fn access_audit_append(&self, record: &AccessRecord) -> Result<(), StoreError> {
        const OP: &str = "access_audit_append";
        let key = self.audit_key()?;
        let plain = [
            ("action", Some(record.action.as_str())),
            ("resource", record.resource.as_deref()),
            ("right", record.right.as_deref()),
            ("route", Some(record.route.as_str())),
        ];
        for (field, value) in plain {
            if value.is_some_and(has_personnummer_shape) {
                return Err(StoreError::InvalidValue {
                    operation: OP,
                    field,
                    reason: "it has the shape of a personnummer, which the access audit never \
                             holds in plain text (give a case id; people go in actor and \
                             on_behalf_of, hashed)",
                });
            }
        }
        sqlx::query(
            "INSERT INTO knut_access_audit (at_us, actor, on_behalf_of, action, resource, \
             access_right, allowed, route, correlation_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(record.at.timestamp_micros())
        .bind(key.hash(&record.actor))
        .bind(record.on_behalf_of.as_deref().map(|p| key.hash(p)))
        .bind(record.action.as_str())
        .bind(record.resource.as_deref())
        .bind(record.right.as_deref())
        .bind(record.allowed)
        .bind(record.route.as_str())
        .bind(record.correlation_id.to_string())
        .execute(&self.pool)
        .await
        .map_err(|e| self.query_error(OP, &e))?;
        Ok(())
    }

    /// The rows of the access audit that match `q`, newest first (ties: last written first).
    pub async fn access_audit_query(
        &self,
        q: &AccessAuditQuery,
    ) -> Result<Vec<AccessAuditEntry>, StoreError> {
        const OP: &str = "access_audit_query";
        let mut sql = String::from(
            "SELECT id, at_us, actor, on_behalf_of, action, resource, access_right, \
             CASE WHEN allowed THEN 1 ELSE 0 END AS allowed_int, route, correlation_id \
             FROM knut_access_audit WHERE 1 = 1",
        );
        let mut bound = Vec::new();
        let filter = |sql: &mut String, bound: &mut Vec<Bound>, condition: &str, value: Bound| {
            bound.push(value);
            sql.push_str(&format!(" AND {condition} ${}", bound.len()));
        };
        if let Some(a) = &q.actor {
            filter(&mut sql, &mut bound, "actor =", Bound::Text(a.clone()));
        }
        if let Some(o) = &q.on_behalf_of {
            filter(
                &mut sql,
                &mut bound,
                "on_behalf_of =",
                Bound::Text(o.clone()),
            );
        }
        if let Some(a) = &q.action {
            filter(&mut sql, &mut bound, "action =", Bound::Text(a.clone()));
        }
        if let Some(from) = q.from {
            filter(
                &mut sql,
                &mut bound,
                "at_us >=",
                Bound::Int(from.timestamp_micros()),
            );
        }
        if let Some(to) = q.to {
            filter(
                &mut sql,
                &mut bound,
                "at_us <",
                Bound::Int(to.timestamp_micros()),
            );
        }
        let limit = q.limit.unwrap_or(100).clamp(1, MAX_QUERY_LIMIT);
        bound.push(Bound::Int(i64::from(limit)));
        sql.push_str(&format!(
            " ORDER BY at_us DESC, id DESC LIMIT ${}",
            bound.len()
        ));
        // Only fixed text and `$n` placeholders: every value is bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in bound {
            query = match b {
                Bound::Text(t) => query.bind(t),
                Bound::Int(i) => query.bind(i),
            };
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.query_error(OP, &e))?;
        rows.iter()
            .map(|row| {
                let text = |column: &'static str| -> Result<Option<String>, StoreError> {
                    sqlx::Row::try_get::<Option<String>, _>(row, column)
                        .map_err(|_| corrupt(OP, T, column, "not text"))
                };
                Ok(AccessAuditEntry {
                    id: self.i64_col(OP, T, row, "id")?,
                    at: self.time(OP, T, "at_us", self.i64_col(OP, T, row, "at_us")?)?,
                    actor: self.string_col(OP, T, row, "actor")?,
                    on_behalf_of: text("on_behalf_of")?,
                    action: self.string_col(OP, T, row, "action")?,
                    resource: text("resource")?,
                    right: text("access_right")?,
                    allowed: self.i64_col(OP, T, row, "allowed_int")? != 0,
                    route: self.string_col(OP, T, row, "route")?,
                    correlation_id: self.uuid_col(OP, T, row, "correlation_id")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fictional: valid check digits, never a real person.
    const PNR12: &str = "201304122383";

    #[test]
    fn a_personnummer_hashes_alike_in_every_form_and_other_identities_as_they_are() {
        let key = AuditKey::development();
        let h = key.hash(PNR12);
        // Plain HMAC-SHA256 of the 12 digits, hex: what `openssl dgst -sha256 -hmac <key>`
        // gives, so an operator can hash a number to query with; and stable, so the rows
        // written before still match.
        assert_eq!(
            h,
            "5d7382bf189f7989442d9aac4b51937349baab895ed0268df9b76ca8c1529886"
        );
        for form in [
            "20130412-2383",
            "130412-2383",
            "1304122383",
            " 201304122383 ",
        ] {
            assert_eq!(key.hash(form), h, "{form}");
        }
        assert_ne!(key.hash("staff-ada"), key.hash("Staff-ada"));
        assert_eq!(normalise("staff-ada"), "staff-ada");
        // A number with a wrong check digit is no personnummer: hashed as it is.
        assert_eq!(normalise("201304122384"), "201304122384");
        // Another key, another hash.
        let other = AuditKey::new(&[7u8; 32]).unwrap();
        assert_ne!(other.hash(PNR12), h);
        assert!(!h.contains(PNR12));
    }

    #[test]
    fn a_short_key_is_refused_without_repeating_it() {
        let err = AuditKey::new(b"hunter2").unwrap_err();
        assert!(
            err.contains("7 bytes") && err.contains("at least 32"),
            "{err}"
        );
        assert!(!err.contains("hunter2"));
        assert!(!format!("{:?}", AuditKey::new(&[1u8; 40]).unwrap()).contains("[1"));
    }

    #[test]
    fn personnummer_shapes_are_found() {
        assert!(has_personnummer_shape("130412-2383"));
        assert!(has_personnummer_shape("case/201304122383"));
        assert!(!has_personnummer_shape("PRH-2026-000123"));
        assert!(!has_personnummer_shape("view-case"));
    }
}
