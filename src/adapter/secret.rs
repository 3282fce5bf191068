//! Secrets of adapter files: always a reference, `{ env: NAME }` or `{ file: PATH }`, read
//! when knut starts. A literal value in the file is refused by `knut check` and `knut run`
//! (a committed adapter file must not hold a password), and a resolved secret never shows
//! in `Debug`, logs or error texts.

use std::fmt;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a secret comes from.
#[derive(Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Secret {
    /// `{ env: NAME }` or `{ file: PATH }`.
    Ref(SecretRef),
    /// A literal value: refused at load with the suggestion to use a reference.
    Literal(String),
}

/// A reference to a secret kept outside the adapter file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SecretRef {
    /// The value of an environment variable.
    Env(String),
    /// The content of a file (trailing line breaks removed), e.g. a mounted secret.
    File(PathBuf),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Ref(r) => r.fmt(f),
            Secret::Literal(_) => f.write_str("Literal(<redacted>)"),
        }
    }
}

/// A secret's value, read at start. `Debug` and `Display` print `<redacted>`.
#[derive(Clone)]
pub struct SecretValue(String);

impl SecretValue {
    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Secret {
    /// Read the secret. The error names the variable or file, never a value.
    pub fn resolve(&self) -> Result<SecretValue, String> {
        match self {
            Secret::Ref(SecretRef::Env(name)) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(SecretValue(v)),
                Ok(_) => Err(format!("the environment variable `{name}` is empty")),
                Err(_) => Err(format!(
                    "the environment variable `{name}` is not set: set it before starting knut"
                )),
            },
            Secret::Ref(SecretRef::File(path)) => match std::fs::read_to_string(path) {
                Ok(v) => {
                    let v = v.trim_end_matches(['\r', '\n']).to_string();
                    if v.is_empty() {
                        Err(format!("the secret file `{}` is empty", path.display()))
                    } else {
                        Ok(SecretValue(v))
                    }
                }
                Err(e) => Err(format!(
                    "cannot read the secret file `{}`: {}",
                    path.display(),
                    e.kind()
                )),
            },
            Secret::Literal(_) => Err(
                "a literal secret: write `{ env: NAME }` or `{ file: PATH }` instead".to_string(),
            ),
        }
    }

    /// Is this a literal value (refused)?
    pub fn is_literal(&self) -> bool {
        matches!(self, Secret::Literal(_))
    }
}

/// Headers whose value is a credential: they belong in `auth`, not in `headers`.
pub fn is_credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "x-api-key" | "api-key" | "apikey"
    ) || n.ends_with("-token")
        || n.ends_with("-secret")
        || n.contains("api-key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_references_and_never_printed() {
        let s: Secret =
            serde_json::from_value(serde_json::json!({"env": "KNUT_TEST_SECRET_X"})).unwrap();
        assert!(!s.is_literal());
        let err = s.resolve().unwrap_err();
        assert!(err.contains("KNUT_TEST_SECRET_X"), "{err}");
        let lit: Secret = serde_json::from_value(serde_json::json!("hunter2")).unwrap();
        assert!(lit.is_literal());
        assert!(!format!("{lit:?}").contains("hunter2"));
        assert!(!lit.resolve().unwrap_err().contains("hunter2"));

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        let f = Secret::Ref(SecretRef::File(p));
        let v = f.resolve().unwrap();
        assert_eq!(v.expose(), "s3cret");
        assert_eq!(format!("{v:?} {v}"), "<redacted> <redacted>");
        let missing = Secret::Ref(SecretRef::File(dir.path().join("nope")));
        assert!(missing.resolve().unwrap_err().contains("nope"));
    }

    #[test]
    fn credential_headers() {
        for h in [
            "Authorization",
            "x-api-key",
            "X-Auth-Token",
            "client-secret",
            "cookie",
        ] {
            assert!(is_credential_header(h), "{h}");
        }
        for h in ["accept", "content-type", "x-correlation-id"] {
            assert!(!is_credential_header(h), "{h}");
        }
    }
}
