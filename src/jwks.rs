//! JSON Web Key Sets (RFC 7517): the keys of a set that knut verifies with, each with the
//! one algorithm it is for. Shared by the ingress's bearer tokens (`endpoint::jwt`) and the
//! `verify_signature` step.
//!
//! Only asymmetric keys are used — OKP Ed25519 (EdDSA), RSA (RS256), EC P-256 (ES256) — so
//! a public key can never serve as an HMAC secret, and a signature must use the algorithm
//! its key is for, whatever its header says.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

/// A usable key of a set.
pub struct Key {
    /// Its key id (`kid`), if the set gives one.
    pub kid: Option<String>,
    /// The one algorithm it verifies.
    pub algorithm: Algorithm,
    /// The key.
    pub key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

/// The keys of a JWKS document that knut can use (others are skipped).
pub fn keys_of(set: &JwkSet) -> Vec<Key> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                _ => return None,
            };
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some(Key {
                kid: jwk.common.key_id.clone(),
                algorithm,
                key,
            })
        })
        .collect()
}

/// The usable keys of a JWKS document; an error (for people) when it is not one or has none.
/// The error gives where the document goes wrong, never what it holds.
pub fn parse_set(text: &[u8]) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_slice(text).map_err(|e| {
        format!(
            "not a JSON Web Key Set (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    let keys = keys_of(&set);
    if keys.is_empty() {
        return Err("the key set has no usable key (EdDSA, RS256 or ES256)".into());
    }
    Ok(keys)
}

/// The key of `kid` in `keys`; without a `kid`, the only key of a one-key set.
pub fn find<'a>(keys: &'a [Key], kid: Option<&str>) -> Option<&'a Key> {
    match kid {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
        None if keys.len() == 1 => keys.first(),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asymmetric_keys_are_used() {
        let set = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"hmac"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"ed"}
        ]}"#;
        let keys = parse_set(set).expect("a set");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].algorithm, Algorithm::EdDSA);
        assert!(find(&keys, Some("ed")).is_some());
        assert!(find(&keys, Some("hmac")).is_none());
        assert!(find(&keys, None).is_some(), "the only key of the set");
        assert!(parse_set(br#"{"keys":[]}"#).is_err());
        assert!(parse_set(b"not json").is_err());
        // The error never repeats the document (it may hold anything).
        for odd in [&b"201203042383"[..], br#"{"keys":"201203042383"}"#] {
            let e = parse_set(odd).unwrap_err();
            assert!(!e.contains("201203042383"), "{e}");
        }
    }
}
