//! Errors of the state store, written for the operator who reads them.
//!
//! No error text ever carries a stored value (an idempotency key may hold a personnummer,
//! an aggregated item holds message content): texts name the operation, the backend, the
//! table and column, and what to do.

use std::path::PathBuf;

/// Everything that can go wrong in the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL names a database the store does not support.
    #[error(
        "store URL has scheme `{scheme}`, which is not supported: use `sqlite://<path>` \
         (default, one instance) or `postgres://…` (several instances sharing state)"
    )]
    UnsupportedUrl {
        /// The scheme found (the part before `:`), never the rest of the URL.
        scheme: String,
    },

    /// The folder that should hold the SQLite file could not be created.
    #[error(
        "cannot create the folder `{}` for the SQLite store: {source}; \
         check that the path is writable or set `store.url`",
        path.display()
    )]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Connecting to the database failed.
    #[error(
        "cannot connect to the {backend} store: {cause}; check `store.url` and that the \
         database is running and reachable"
    )]
    Connect {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What the driver reported (digit runs masked).
        cause: String,
    },

    /// Applying the schema migrations failed.
    #[error(
        "cannot apply the {backend} store's migrations: {cause}; the database may have been \
         changed by hand or by a newer knut version"
    )]
    Migrate {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What the migrator reported (digit runs masked).
        cause: String,
    },

    /// A store operation failed in the database.
    #[error("store operation `{operation}` failed on {backend}: {cause}")]
    Query {
        /// The operation (`claim_key`, `aggregate_add`, …).
        operation: &'static str,
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What the driver reported (digit runs masked, no bound values).
        cause: String,
    },

    /// A stored row holds something the store cannot read back.
    #[error(
        "store table `{table}` holds an unreadable `{column}` ({reason}) in operation \
         `{operation}`; the row was written by something other than knut"
    )]
    CorruptRow {
        /// The operation.
        operation: &'static str,
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
        /// The kind of problem (never the value).
        reason: &'static str,
    },

    /// The access audit has no key to hash people with.
    #[error(
        "the access audit has no key: set the environment variable that `[audit] key_env` \
         names (default KNUT_AUDIT_KEY) to at least 32 random bytes"
    )]
    NoAuditKey,

    /// A value to be stored cannot be represented.
    #[error("store operation `{operation}` cannot store `{field}`: {reason}")]
    InvalidValue {
        /// The operation.
        operation: &'static str,
        /// The field.
        field: &'static str,
        /// Why (never the value).
        reason: &'static str,
    },
}

/// Describes a driver error without any value that might have been bound or stored.
///
/// Database messages can quote values (a failed cast, a constraint detail); the store never
/// includes the detail, and masks every run of six or more digits (a date of birth,
/// a whole personnummer; ports and error codes stay readable) in the message, so that
/// neither a personnummer nor a part of one can slip through.
pub(crate) fn describe(error: &sqlx::Error) -> String {
    let text = match error {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (code {code})", db.message()),
            None => db.message().to_string(),
        },
        sqlx::Error::PoolTimedOut => {
            "no database connection became free in time (pool timed out)".to_string()
        }
        sqlx::Error::PoolClosed => "the store was closed".to_string(),
        sqlx::Error::RowNotFound => "an expected row was not found".to_string(),
        // Decode errors can quote the value they failed on; name the kind only.
        sqlx::Error::ColumnDecode { index, .. } => format!("cannot decode column {index}"),
        sqlx::Error::Decode(_) => "cannot decode a value".to_string(),
        other => other.to_string(),
    };
    mask_digits(&text)
}

/// Describes a migration error, masked like [`describe`].
pub(crate) fn describe_migrate(error: &sqlx::migrate::MigrateError) -> String {
    match error {
        sqlx::migrate::MigrateError::Execute(inner) => describe(inner),
        sqlx::migrate::MigrateError::ExecuteMigration(inner, version) => {
            format!("migration {version}: {}", describe(inner))
        }
        other => mask_digits(&other.to_string()),
    }
}

/// Replaces every run of six or more ASCII digits with `*`s of the same length.
pub(crate) fn mask_digits(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 6 {
            out.extend(std::iter::repeat_n('*', run.len()));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_long_digit_runs_only() {
        // Fictional personnummer (born 2012, valid Luhn digit), never a real person.
        assert_eq!(
            mask_digits("key 20120315-2382 or 120315-2382, code 23505 port 5432"),
            "key ********-2382 or ******-2382, code 23505 port 5432"
        );
        assert_eq!(mask_digits("abc"), "abc");
        assert_eq!(mask_digits("201203152382"), "************");
    }

    #[test]
    fn texts_never_carry_the_url_beyond_its_scheme() {
        let e = StoreError::UnsupportedUrl {
            scheme: "mysql".into(),
        };
        let text = e.to_string();
        assert!(text.contains("`mysql`"));
        assert!(text.contains("sqlite://"));
    }
}
