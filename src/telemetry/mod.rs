//! Logging: a `tracing` subscriber writing text or JSON lines to stderr, every line passed
//! through the personnummer redaction of [`redact`].
//!
//! Redaction is on always, at the writer, so it covers messages, fields, spans, nested
//! `Debug` values and records from dependencies that log through the `log` crate.
//!
//! Traces ([`otel`]) are a second layer beside the log, installed only when
//! `[telemetry] otlp_endpoint` is set.

pub mod live;
pub mod metrics;
pub mod otel;
pub mod redact;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

pub use crate::config::LogFormat;
use crate::config::TelemetryConfig;
use redact::RedactingMakeWriter;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `log.level` is not a valid filter directive.
    #[error(
        "log level is not a valid filter directive ({reason}); use e.g. `info` or `info,knutpunkt=debug`"
    )]
    InvalidLevel {
        /// What the filter parser said.
        reason: String,
    },
    /// A global subscriber was installed already (init called twice, or by another library).
    #[error("a global log subscriber is already installed; call telemetry::init once, at start")]
    AlreadyInitialised,
    /// Traces could not be set up.
    #[error(transparent)]
    Traces(#[from] otel::OtelError),
}

/// Installs the global subscriber: `format` lines to stderr, filtered by `level` (an
/// `EnvFilter` directive such as `info` or `info,knutpunkt=debug`), every line redacted.
/// Also routes `log` records from dependencies into it. With `traces.otlp_endpoint` set,
/// spans are exported too ([`otel`]; call [`otel::shutdown`] before exiting); must then be
/// called inside a tokio runtime.
pub fn init(
    format: LogFormat,
    level: &str,
    traces: &TelemetryConfig,
) -> Result<(), TelemetryError> {
    let installed = match otel::layer(traces)? {
        None => subscriber(format, level, std::io::stderr)?.try_init(),
        Some(traces) => log_layer(format, level, std::io::stderr)?
            .and_then(traces)
            .with_subscriber(tracing_subscriber::registry())
            .try_init(),
    };
    installed.map_err(|_| TelemetryError::AlreadyInitialised)
}

/// The log of [`subscriber`] as a layer with its own filter (`level`), so that the traces'
/// layer beside it sees the spans it exports whatever the log level.
fn log_layer<S, W>(
    format: LogFormat,
    level: &str,
    writer: W,
) -> Result<Box<dyn Layer<S> + Send + Sync + 'static>, TelemetryError>
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync + 'static,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(level).map_err(|e| TelemetryError::InvalidLevel {
        reason: e.to_string(),
    })?;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(RedactingMakeWriter::new(writer))
        .with_ansi(false);
    Ok(match format {
        LogFormat::Text => layer.with_filter(filter).boxed(),
        LogFormat::Json => layer.json().flatten_event(true).with_filter(filter).boxed(),
    })
}

/// Builds the subscriber [`init`] installs, writing to `writer` instead of stderr (wrapped in
/// [`RedactingMakeWriter`], so redaction cannot be left out). For tests and embedding: use it
/// with `tracing::subscriber::with_default`.
pub fn subscriber<W>(
    format: LogFormat,
    level: &str,
    writer: W,
) -> Result<Box<dyn Subscriber + Send + Sync>, TelemetryError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(level).map_err(|e| TelemetryError::InvalidLevel {
        reason: e.to_string(),
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingMakeWriter::new(writer))
        // No colour codes: they would interleave with values and the output goes to
        // journals and collectors, not terminals.
        .with_ansi(false);
    Ok(match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().flatten_event(true).finish()),
    })
}

#[cfg(test)]
mod tests {
    use super::redact::MASK;
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    /// An in-memory log sink.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    struct BufWriter(Arc<Mutex<Vec<u8>>>);

    impl io::Write for BufWriter {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = BufWriter;
        fn make_writer(&'a self) -> BufWriter {
            BufWriter(self.0.clone())
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[allow(dead_code)] // read through Debug only
    #[derive(Debug)]
    struct Student {
        name: &'static str,
        ids: Vec<&'static str>,
        guardian: Guardian,
    }

    #[allow(dead_code)] // read through Debug only
    #[derive(Debug)]
    struct Guardian {
        civic_no: &'static str,
    }

    // Fictional personnummer (born 2012-03-15 / 2013-07-04 / 2011-01-01, valid Luhn digit);
    // no real person.
    const PNRS: [&str; 5] = [
        "201203150014",
        "20130704-0020",
        "120315-0014",
        "120315+0014",
        "1101010005",
    ];

    fn log_everything() {
        let span = tracing::info_span!("handle", student = PNRS[0]);
        let _guard = span.enter();
        tracing::info!("placement change for {} and {}", PNRS[1], PNRS[4]);
        tracing::warn!(pnr = PNRS[2], other = %PNRS[3], "field values");
        let student = Student {
            name: "Test Testsson",
            ids: vec![PNRS[0], PNRS[1]],
            guardian: Guardian { civic_no: PNRS[2] },
        };
        tracing::error!(?student, "nested debug value");
        tracing::info!(
            request_id = "0190f3c4-5a6b-7c8d-9e0f-112233445566",
            at = "2026-11-23T10:15:00+01:00",
            epoch_ms = 1763889300000_u64,
            "readable values"
        );
    }

    fn assert_redacted(out: &str) {
        assert!(out.lines().count() >= 4, "too little output:\n{out}");
        for pnr in PNRS {
            assert!(!out.contains(pnr), "{pnr} survived:\n{out}");
            let digits: String = pnr.chars().filter(char::is_ascii_digit).collect();
            assert!(!out.contains(&digits), "digits of {pnr} survived:\n{out}");
        }
        assert!(out.contains(MASK), "{out}");
        assert!(out.contains("Test Testsson"), "{out}");
        assert!(
            out.contains("0190f3c4-5a6b-7c8d-9e0f-112233445566"),
            "{out}"
        );
        assert!(out.contains("2026-11-23T10:15:00+01:00"), "{out}");
        assert!(out.contains("1763889300000"), "{out}");
    }

    #[test]
    fn text_logs_never_contain_personnummer() {
        let buf = Buf::default();
        let sub = subscriber(LogFormat::Text, "trace", buf.clone()).unwrap();
        tracing::subscriber::with_default(sub, log_everything);
        assert_redacted(&buf.text());
    }

    #[test]
    fn json_logs_never_contain_personnummer() {
        let buf = Buf::default();
        let sub = subscriber(LogFormat::Json, "trace", buf.clone()).unwrap();
        tracing::subscriber::with_default(sub, log_everything);
        let out = buf.text();
        assert_redacted(&out);
        for line in out.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v.get("timestamp").is_some(), "{line}");
        }
    }

    #[test]
    fn level_filters_and_bad_level_is_an_error() {
        let buf = Buf::default();
        let sub = subscriber(LogFormat::Text, "warn", buf.clone()).unwrap();
        tracing::subscriber::with_default(sub, || {
            tracing::info!("hidden");
            tracing::warn!("shown");
        });
        let out = buf.text();
        assert!(out.contains("shown") && !out.contains("hidden"), "{out}");
        assert!(matches!(
            subscriber(LogFormat::Text, "info,[[", Buf::default()),
            Err(TelemetryError::InvalidLevel { .. })
        ));
    }
}
