//! Small value types that route, adapter and outlet files share: HTTP methods, byte sizes
//! and planes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl HttpMethod {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }
}

/// A size such as `512KiB`, `2MiB` or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[schemars(with = "String")]
pub struct ByteSize(pub usize);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n as usize)),
            Raw::S(s) => parse_byte_size(&s).map(ByteSize).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a size: write a number of bytes or e.g. `512KiB`, `2MiB`"
                ))
            }),
        }
    }
}

/// Parse `512`, `512B`, `64KiB`, `2MiB`, `1GiB` (also `KB`, `MB`, `GB` as powers of 1000).
pub fn parse_byte_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "GiB" => 1024 * 1024 * 1024,
        "KB" | "kB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// A plane: which side of the external/internal separation a route runs on.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Deserialize,
    Serialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Plane {
    /// The municipality's own side (case management, registers, archive).
    #[default]
    Internal,
    /// Traffic from outside: citizens' e-services, independent operators.
    External,
}

impl Plane {
    /// `internal` or `external`.
    pub fn as_str(self) -> &'static str {
        match self {
            Plane::Internal => "internal",
            Plane::External => "external",
        }
    }

    /// True for the internal plane.
    pub fn is_internal(&self) -> bool {
        *self == Plane::Internal
    }
}

impl std::fmt::Display for Plane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
