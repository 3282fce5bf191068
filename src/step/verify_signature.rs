//! `verify_signature`: a signed document is let through only when its signature verifies —
//! a JWS with a detached payload (RFC 7515 appendix F) over a text of the message, against
//! a JSON Web Key Set from an adapter operation or a file.
//!
//! The JWS is `BASE64URL(header)..BASE64URL(signature)` (the payload part left empty); the
//! signature is over `BASE64URL(header) + "." + BASE64URL(payload)`, so the header (its
//! algorithm and key id) is signed too. The key is the set's key of the header's `kid` (the
//! only key, for a one-key set without `kid`), and the header's `alg` must be the one
//! algorithm that key is for (EdDSA, RS256, ES256; see [`crate::jwks`]). The signature is
//! checked with `jsonwebtoken::crypto::verify`.
//!
//! Permanent (dead letter), with the reason: unsigned (the `jws` program gives null or an
//! empty string), not a detached compact JWS, a header that cannot be read, an algorithm
//! that is not accepted or not the key's, a key the set lacks, a signer other than
//! `signer` names, and a signature that does not verify. Transient (retried): the key set's
//! adapter unreachable or answering something that is not a key set. Reasons never repeat
//! the message, the payload or the header's values.

use std::path::Path;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::Value;

use super::{Context, Step, StepError, compile, eval_one};
use crate::core::envelope::{Body, Envelope};
use crate::expr::Program;
use crate::jwks::{self, Key};

use super::BuildError;
use super::kind::{CheckCx, Edges, StepKind, build_error};
use crate::resources::Resources;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Options of `verify_signature`: the signature `jws` is a compact JWS with a detached
/// payload, `BASE64URL(header)..BASE64URL(signature)`, over `BASE64URL(header) + "." +
/// BASE64URL(payload)`; the header names the algorithm (EdDSA, RS256 or ES256, the one its
/// key is for) and the key (`kid`). The message goes on unchanged, with the header
/// `knut-signature-kid` naming the key that signed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifySignatureSpec {
    /// jq expression giving the compact detached JWS, e.g. `.catalogue.signature`; null or
    /// nothing means the message is unsigned.
    pub jws: String,
    /// jq expression giving the signed text exactly as signed (a string), e.g.
    /// `.catalogue.document`.
    pub payload: String,
    /// The trusted public keys (a JSON Web Key Set).
    pub keys: SignatureKeys,
    /// jq expression giving the key id (`kid`) that must have signed, e.g.
    /// `.gradingTeacher.id`; without it any key of the set may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<String>,
}

/// Where `verify_signature` gets its JSON Web Key Set: exactly one of an adapter operation
/// (called for each message, so a new key is seen at once; unreachable is transient) and a
/// file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignatureKeys {
    /// Adapter name (a file `adapters/<name>.yaml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// Operation of the adapter answering the key set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// A JWKS file (relative to the root), read when the route starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl StepKind for VerifySignatureSpec {
    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        cx.jq(&format!("{at}.jws"), &self.jws);
        cx.jq(&format!("{at}.payload"), &self.payload);
        if let Some(s) = &self.signer {
            cx.jq(&format!("{at}.signer"), s);
        }
        let k = &self.keys;
        match (&k.adapter, &k.operation, &k.file) {
            (Some(a), Some(o), None) => {
                cx.adapter(&format!("{at}.keys"), "operation", a, o);
            }
            (None, None, Some(_)) => {}
            _ => cx.problem(
                &format!("{at}.keys"),
                "`keys` needs either `adapter` with `operation`, or `file`".into(),
                Some("`{adapter: <name>, operation: <name>}` (a JWKS) or `{file: <path>}`"),
            ),
        }
    }

    fn edges(&self, g: &mut dyn Edges) {
        if let (Some(adapter), Some(op)) = (&self.keys.adapter, &self.keys.operation) {
            g.adapter(adapter, op);
        }
    }

    fn build(&self, at: &str, res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(
            VerifySignature::new(self, &res.root).map_err(|e| build_error(at, e))?,
        ))
    }
}

/// Header naming the key (`kid`) whose signature verified.
pub const SIGNATURE_KID: &str = "knut-signature-kid";

/// Where the trusted keys come from.
enum Keys {
    /// An adapter operation answering a JWKS, called for each message.
    Adapter { adapter: String, operation: String },
    /// A JWKS file read when the route was built.
    Loaded(Vec<Key>),
}

/// The `verify_signature` step.
pub struct VerifySignature {
    jws: Program,
    payload: Program,
    signer: Option<Program>,
    keys: Keys,
}

impl VerifySignature {
    /// Build; a key file (relative to `root`) is read now.
    pub fn new(spec: &VerifySignatureSpec, root: &Path) -> Result<Self, String> {
        let k = &spec.keys;
        let keys = match (&k.adapter, &k.operation, &k.file) {
            (Some(adapter), Some(operation), None) => Keys::Adapter {
                adapter: adapter.clone(),
                operation: operation.clone(),
            },
            (None, None, Some(file)) => {
                let path = root.join(file);
                let text = std::fs::read(&path)
                    .map_err(|e| format!("keys.file {}: {e}", path.display()))?;
                Keys::Loaded(
                    jwks::parse_set(&text)
                        .map_err(|e| format!("keys.file {}: {e}", path.display()))?,
                )
            }
            _ => return Err("`keys` needs either `adapter` with `operation`, or `file`".into()),
        };
        Ok(VerifySignature {
            jws: compile("jws", &spec.jws)?,
            payload: compile("payload", &spec.payload)?,
            signer: spec
                .signer
                .as_deref()
                .map(|s| compile("signer", s))
                .transpose()?,
            keys,
        })
    }
}

/// The JWS header fields that matter here.
#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    /// RFC 7797: `false` would mean an unencoded payload, which is not accepted.
    #[serde(default)]
    b64: Option<bool>,
}

fn refused(why: &str) -> StepError {
    StepError::permanent(format!("verify_signature: {why}"))
}

/// Verify the detached JWS `jws` over `payload` with a key of `keys`; when `signer` is given
/// the header's `kid` must be it. The key id that signed, when all is well.
pub fn verify_detached(
    jws: &Value,
    payload: &Value,
    keys: &[Key],
    signer: Option<&Value>,
) -> Result<Option<String>, StepError> {
    let jws = match jws {
        Value::Null => return Err(refused("the message is unsigned (no signature)")),
        Value::String(s) if s.trim().is_empty() => {
            return Err(refused("the message is unsigned (an empty signature)"));
        }
        Value::String(s) => s.trim(),
        _ => return Err(refused("`jws` must give the signature as a string")),
    };
    let Value::String(payload) = payload else {
        return Err(refused(
            "`payload` must give the signed text as a string, exactly as signed",
        ));
    };
    let parts: Vec<&str> = jws.split('.').collect();
    let [header_b64, middle, signature] = parts.as_slice() else {
        return Err(refused(
            "the signature is not a compact JWS (header..signature)",
        ));
    };
    if !middle.is_empty() {
        return Err(refused(
            "the signature carries its payload: a detached JWS (header..signature) is expected",
        ));
    }
    if header_b64.is_empty() || signature.is_empty() {
        return Err(refused("the signature has no header or no signature part"));
    }
    let header: Header = URL_SAFE_NO_PAD
        .decode(header_b64)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| refused("the signature's header cannot be read"))?;
    if header.b64 == Some(false) {
        return Err(refused("an unencoded payload (b64: false) is not accepted"));
    }
    let alg = match header.alg.as_str() {
        "EdDSA" => Algorithm::EdDSA,
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        _ => {
            return Err(refused(
                "the signature's algorithm is not accepted (EdDSA, RS256 or ES256 only)",
            ));
        }
    };
    if let Some(signer) = signer {
        let Value::String(required) = signer else {
            return Err(refused(
                "`signer` must give the key id of the required signer as a string",
            ));
        };
        if header.kid.as_deref() != Some(required.as_str()) {
            return Err(refused(
                "the document was not signed by the required signer (another key id)",
            ));
        }
    }
    let key = jwks::find(keys, header.kid.as_deref())
        .ok_or_else(|| refused("no trusted key has the signature's key id"))?;
    if key.algorithm != alg {
        return Err(refused(
            "the signature's algorithm is not the one its key is for",
        ));
    }
    let input = format!(
        "{header_b64}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes())
    );
    match jsonwebtoken::crypto::verify(signature, input.as_bytes(), &key.key, alg) {
        Ok(true) => Ok(key.kid.clone()),
        Ok(false) => Err(refused(
            "the signature does not verify: the document or the header was changed after \
             signing, or another key signed it",
        )),
        Err(_) => Err(refused("the signature cannot be read (not base64url)")),
    }
}

#[async_trait]
impl Step for VerifySignature {
    async fn apply(&self, mut m: Envelope, cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let (jws, payload, signer) = {
            let body = m.json_body()?;
            let jws = self
                .jws
                .first(&body, &super::vars(&m))
                .map_err(|e| StepError::permanent(format!("jws: {e}")))?
                .unwrap_or(Value::Null);
            let payload = eval_one(&self.payload, "payload", &body, &m)?;
            let signer = match &self.signer {
                Some(p) => Some(eval_one(p, "signer", &body, &m)?),
                None => None,
            };
            (jws, payload, signer)
        };
        let fetched;
        let keys: &[Key] = match &self.keys {
            Keys::Loaded(k) => k,
            Keys::Adapter { adapter, operation } => {
                let r = cx.effects.call(adapter, operation, &m).await?;
                let text = match r.body {
                    Body::Json(v) => serde_json::to_vec(&v).unwrap_or_default(),
                    Body::Bytes(b) => b.to_vec(),
                };
                fetched = jwks::parse_set(&text).map_err(|e| {
                    StepError::transient(format!("verify_signature: {adapter}.{operation}: {e}"))
                })?;
                &fetched
            }
        };
        if let Some(kid) = verify_detached(&jws, &payload, keys, signer.as_ref())? {
            m.headers.insert(SIGNATURE_KID.to_string(), kid);
        }
        Ok(vec![m])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use knut_sandbox::idp::ed25519_key;

    /// A key set of two signers, and a detached JWS by `kid` over `doc`.
    fn setup() -> (
        Vec<Key>,
        jsonwebtoken::EncodingKey,
        jsonwebtoken::EncodingKey,
    ) {
        let (a, ax) = ed25519_key().expect("key");
        let (b, bx) = ed25519_key().expect("key");
        let set = json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": ax, "kid": "teacher-a", "alg": "EdDSA"},
            {"kty": "OKP", "crv": "Ed25519", "x": bx, "kid": "teacher-b", "alg": "EdDSA"},
        ]});
        let keys = jwks::parse_set(set.to_string().as_bytes()).expect("set");
        (keys, a, b)
    }

    fn sign(header: &Value, doc: &str, key: &jsonwebtoken::EncodingKey) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let input = format!("{h}.{}", URL_SAFE_NO_PAD.encode(doc));
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), key, Algorithm::EdDSA).expect("signed");
        format!("{h}..{sig}")
    }

    const DOC: &str = r#"{"type":"Betygskatalog","grades":[{"gradeValue":"C"}]}"#;

    fn reason(r: Result<Option<String>, StepError>) -> String {
        let e = r.expect_err("refused");
        assert_eq!(e.kind, crate::step::FailureKind::Permanent, "{}", e.message);
        e.message
    }

    #[test]
    fn a_valid_signature_names_its_signer() {
        let (keys, a, _) = setup();
        let jws = sign(&json!({"alg": "EdDSA", "kid": "teacher-a"}), DOC, &a);
        let kid = verify_detached(&json!(jws), &json!(DOC), &keys, Some(&json!("teacher-a")))
            .expect("verifies");
        assert_eq!(kid.as_deref(), Some("teacher-a"));
        // Without a required signer any key of the set may have signed.
        assert!(verify_detached(&json!(jws), &json!(DOC), &keys, None).is_ok());
    }

    #[test]
    fn a_tampered_payload_does_not_verify() {
        let (keys, a, _) = setup();
        let jws = sign(&json!({"alg": "EdDSA", "kid": "teacher-a"}), DOC, &a);
        let changed = DOC.replace("\"C\"", "\"A\"");
        let why = reason(verify_detached(&json!(jws), &json!(changed), &keys, None));
        assert!(why.contains("does not verify"), "{why}");
        assert!(
            !why.contains("gradeValue"),
            "the reason holds no content: {why}"
        );
    }

    #[test]
    fn a_tampered_header_does_not_verify() {
        let (keys, a, _) = setup();
        let jws = sign(&json!({"alg": "EdDSA", "kid": "teacher-a"}), DOC, &a);
        let sig = jws.split("..").nth(1).expect("sig");
        // The header says another signer of the set: the signature is not theirs.
        let other = URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "kid": "teacher-b"}).to_string());
        let why = reason(verify_detached(
            &json!(format!("{other}..{sig}")),
            &json!(DOC),
            &keys,
            None,
        ));
        assert!(why.contains("does not verify"), "{why}");
        // A header with a field added is not the header that was signed.
        let extra = URL_SAFE_NO_PAD.encode(
            json!({"alg": "EdDSA", "kid": "teacher-a", "x5u": "https://x.example"}).to_string(),
        );
        let why = reason(verify_detached(
            &json!(format!("{extra}..{sig}")),
            &json!(DOC),
            &keys,
            None,
        ));
        assert!(why.contains("does not verify"), "{why}");
        // alg none, HMAC and a header that is not JSON are refused before any key is tried.
        for alg in ["none", "HS256"] {
            let h = URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": "teacher-a"}).to_string());
            let why = reason(verify_detached(
                &json!(format!("{h}..{sig}")),
                &json!(DOC),
                &keys,
                None,
            ));
            assert!(why.contains("algorithm is not accepted"), "{why}");
        }
        let why = reason(verify_detached(
            &json!(format!("bm90IGpzb24..{sig}")),
            &json!(DOC),
            &keys,
            None,
        ));
        assert!(why.contains("header cannot be read"), "{why}");
    }

    #[test]
    fn an_unsigned_document_is_refused() {
        let (keys, _, _) = setup();
        for unsigned in [Value::Null, json!(""), json!("  ")] {
            let why = reason(verify_detached(&unsigned, &json!(DOC), &keys, None));
            assert!(why.contains("unsigned"), "{why}");
        }
        let why = reason(verify_detached(&json!("abc"), &json!(DOC), &keys, None));
        assert!(why.contains("not a compact JWS"), "{why}");
        let (_, a, _) = setup();
        let attached = sign(&json!({"alg": "EdDSA", "kid": "teacher-a"}), DOC, &a)
            .replace("..", &format!(".{}.", URL_SAFE_NO_PAD.encode(DOC)));
        let why = reason(verify_detached(&json!(attached), &json!(DOC), &keys, None));
        assert!(why.contains("detached"), "{why}");
        let why = reason(verify_detached(
            &json!("x..y"),
            &json!({"not": "text"}),
            &keys,
            None,
        ));
        assert!(why.contains("as a string"), "{why}");
    }

    #[test]
    fn the_wrong_signer_or_an_unknown_key_is_refused() {
        let (keys, a, b) = setup();
        // Teacher b signed validly, but teacher a had to.
        let by_b = sign(&json!({"alg": "EdDSA", "kid": "teacher-b"}), DOC, &b);
        assert!(verify_detached(&json!(by_b), &json!(DOC), &keys, None).is_ok());
        let why = reason(verify_detached(
            &json!(by_b),
            &json!(DOC),
            &keys,
            Some(&json!("teacher-a")),
        ));
        assert!(why.contains("required signer"), "{why}");
        // A key id the set lacks; a key of the set that did not sign.
        let stranger = sign(&json!({"alg": "EdDSA", "kid": "teacher-x"}), DOC, &a);
        let why = reason(verify_detached(&json!(stranger), &json!(DOC), &keys, None));
        assert!(why.contains("no trusted key"), "{why}");
        let forged = sign(&json!({"alg": "EdDSA", "kid": "teacher-a"}), DOC, &b);
        let why = reason(verify_detached(
            &json!(forged),
            &json!(DOC),
            &keys,
            Some(&json!("teacher-a")),
        ));
        assert!(why.contains("does not verify"), "{why}");
        // Without a kid only a one-key set can say which key.
        let no_kid = sign(&json!({"alg": "EdDSA"}), DOC, &a);
        let why = reason(verify_detached(&json!(no_kid), &json!(DOC), &keys, None));
        assert!(why.contains("no trusted key"), "{why}");
        assert!(verify_detached(&json!(no_kid), &json!(DOC), &keys[..1], None).is_ok());
    }
}
