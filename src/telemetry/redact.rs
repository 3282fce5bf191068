//! Masking of personnummer-shaped values in log output: [`RedactingMakeWriter`] passes every
//! formatted line through [`crate::core::redact::mask`] before it reaches stderr (or any
//! other sink), so no field, span, nested `Debug` value or log line from a dependency can
//! escape it, in text or JSON format. The rule is described in [`crate::core::redact`].

use std::io;

use tracing_subscriber::fmt::MakeWriter;

pub use crate::core::redact::{MASK, mask, mask_bytes};

/// An [`io::Write`] that masks personnummer-shaped values before passing bytes on.
///
/// Bytes are processed line by line, so a value split across two `write` calls is still
/// seen whole; an unfinished last line is processed on [`flush`](io::Write::flush) or drop.
#[derive(Debug)]
pub struct RedactingWriter<W: io::Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: io::Write> RedactingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            pending: Vec::new(),
        }
    }

    fn write_complete_lines(&mut self) -> io::Result<()> {
        if let Some(last_nl) = self.pending.iter().rposition(|&c| c == b'\n') {
            let rest = self.pending.split_off(last_nl + 1);
            let lines = std::mem::replace(&mut self.pending, rest);
            self.inner.write_all(&mask_bytes(&lines))?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            let all = std::mem::take(&mut self.pending);
            self.inner.write_all(&mask_bytes(&all))?;
        }
        Ok(())
    }
}

impl<W: io::Write> io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        self.write_complete_lines()?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_pending()?;
        self.inner.flush()
    }
}

impl<W: io::Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        // Nowhere to report a failure to write a log line; the line is lost, not leaked.
        let _ = self.write_pending();
        let _ = self.inner.flush();
    }
}

/// A [`MakeWriter`] whose writers mask personnummer-shaped values: wrap the log sink in it.
#[derive(Debug, Clone)]
pub struct RedactingMakeWriter<M> {
    inner: M,
}

impl<M> RedactingMakeWriter<M> {
    /// Wraps `inner`, e.g. `RedactingMakeWriter::new(std::io::stderr)`.
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

impl<'a, M> MakeWriter<'a> for RedactingMakeWriter<M>
where
    M: MakeWriter<'a>,
{
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter::new(self.inner.make_writer())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingWriter::new(self.inner.make_writer_for(meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::io::Write;

    // All personnummer in these tests are fictional: born 2012-03-15, serial 001, Luhn
    // digit computed over the last ten digits.
    const PNR12: &str = "201203150014";

    #[test]
    fn masks_every_personnummer_form() {
        for pnr in [
            PNR12,
            "20120315-0014",
            "120315-0014",
            "120315+0014",
            "1203150014",
            "20120375-0011", // fictional samordningsnummer shape (day + 60)
        ] {
            let line = format!("student {pnr} moved");
            let masked = mask(&line);
            assert_eq!(masked, format!("student {MASK} moved"), "{pnr}");
        }
    }

    #[test]
    fn masks_in_any_surrounding() {
        let cases = [
            format!("pnr={PNR12}"),
            format!("{{\"civicNo\":\"{PNR12}\"}}"),
            format!("Person {{ pnr: \"{PNR12}\" }}"),
            format!("pnr{PNR12}x"),
            format!("{PNR12}-201203150022"),
            format!("a\n{PNR12}\nb"),
            PNR12.to_string(),
        ];
        for case in &cases {
            let masked = mask(case);
            assert!(!masked.contains("0315"), "{case} -> {masked}");
            assert!(masked.contains(MASK), "{case} -> {masked}");
        }
    }

    #[test]
    fn leaves_other_numbers_readable() {
        for s in [
            "id=0190f3c4-5a6b-7c8d-9e0f-112233445566",
            "id=01234567-0123-4567-8901-234567890123",
            "at 2026-11-23T10:15:00+01:00 and 2026-11-23T10:15:00.123456Z",
            "took 1.234567s, 1234567890123 ms since epoch",
            "counter 12345678901234567890",
            "port 8080, 2012-03-15, 120315, 20120315, 12345-6789",
            "20120315-00141",
            "ingen personuppgift här",
            "",
        ] {
            assert!(
                matches!(mask(s), Cow::Borrowed(_)),
                "{s} was changed to {}",
                mask(s)
            );
        }
    }

    #[test]
    fn keeps_text_around_the_mask() {
        assert_eq!(
            mask("åäö 120315-0014, 1203150014."),
            format!("åäö {MASK}, {MASK}.")
        );
    }

    #[test]
    fn bytes_version_agrees() {
        let s = format!("x {PNR12} y");
        assert_eq!(mask_bytes(s.as_bytes()).as_ref(), mask(&s).as_bytes());
        let latin1 = b"\xe5 201203150014 \xff";
        assert_eq!(
            mask_bytes(latin1).as_ref(),
            [&b"\xe5 "[..], MASK.as_bytes(), &b" \xff"[..]].concat()
        );
    }

    #[test]
    fn writer_masks_values_split_across_writes() {
        let mut out = Vec::new();
        {
            let mut w = RedactingWriter::new(&mut out);
            w.write_all(b"one 2012031").unwrap();
            w.write_all(b"50014 two\nthree 12031").unwrap();
            w.write_all(b"5-0014").unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, format!("one {MASK} two\nthree {MASK}"));
    }

    #[test]
    fn writer_flush_writes_the_unfinished_line() {
        let mut out = Vec::new();
        let mut w = RedactingWriter::new(&mut out);
        w.write_all(b"x 1203150014").unwrap();
        w.flush().unwrap();
        drop(w);
        assert_eq!(out, format!("x {MASK}").into_bytes());
    }
}
