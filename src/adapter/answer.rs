//! An HTTP answer as Knutpunkt reads it from a system: its status classified (success,
//! transient, permanent) and its body read up to a size limit. Shared by the adapter
//! client, the OAuth2 token fetch and the JWKS fetch.

use bytes::Bytes;

use crate::core::error::FailureKind;

/// Is a response status a failure, and of which kind? `None` for success (1xx–3xx).
/// 408, 425, 429 and 5xx are transient; every other 4xx is permanent.
pub fn classify(status: u16) -> Option<FailureKind> {
    match status {
        100..=399 => None,
        408 | 425 | 429 | 500..=599 => Some(FailureKind::Transient),
        _ => Some(FailureKind::Permanent),
    }
}

/// Why an answer's body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// It is larger than the limit (by its `Content-Length`, or as it came).
    TooLarge,
    /// The connection failed or timed out while reading.
    Cut,
}

/// The body of `resp`, read chunk by chunk up to `limit` bytes: an answer whose
/// `Content-Length` is over the limit is refused before any of it is read, and reading stops
/// at the first chunk that would take it over, so no more than `limit` bytes are ever kept
/// (the rest is never read; the connection is dropped).
pub async fn read_limited(mut resp: reqwest::Response, limit: usize) -> Result<Bytes, ReadError> {
    let declared = resp.content_length();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge);
    }
    // A one-chunk answer (most are) is kept as it came, without a copy.
    let mut single: Option<Bytes> = None;
    let mut joined: Option<bytes::BytesMut> = None;
    while let Some(chunk) = resp.chunk().await.map_err(|_| ReadError::Cut)? {
        let held = match &joined {
            Some(j) => j.len(),
            None => single.as_ref().map_or(0, Bytes::len),
        };
        if chunk.len() > limit - held {
            return Err(ReadError::TooLarge);
        }
        match (&mut joined, single.take()) {
            (Some(j), _) => j.extend_from_slice(&chunk),
            (None, None) => single = Some(chunk),
            (None, Some(first)) => {
                let want = declared.map_or(0, |n| n as usize).max(held + chunk.len());
                let mut j = bytes::BytesMut::with_capacity(want.min(limit));
                j.extend_from_slice(&first);
                j.extend_from_slice(&chunk);
                joined = Some(j);
            }
        }
    }
    Ok(match joined {
        Some(j) => j.freeze(),
        None => single.unwrap_or_default(),
    })
}

/// A size for people: `16MiB`, `512KiB`, or bytes.
pub fn size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{}MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{}KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}
