//! Outlets: exchanges and queues that a system outside Knutpunkt consumes — a legacy system
//! that reads XML in Latin-1 from its own RabbitMQ queue, say. One file per outlet,
//! `outlets/<name>.yaml`:
//!
//! ```yaml
//! outlet: skolskjuts-legacy            # the file's name
//! description: The transport planner's old system reads decisions from its own queue
//! plane: internal                      # default internal
//! exchange: legacy.transport           # a topic exchange only this outlet binds
//! queue: { name: transport.decisions, type: classic }   # quorum or classic (default: broker.queue_type)
//! bindings: ['decision.#']
//! format: { xml: { root: Beslut, encoding: ISO-8859-1 } }   # or `json` (default)
//! ```
//!
//! A route publishes to the outlet's exchange like to any other; `knut check` accepts a key
//! the outlet binds, `knut run` declares the exchange, the queue and its bindings, and
//! `knut topology` lists them. What is published there is written in the outlet's format:
//! a JSON body as XML (`root` names the root element when the body is not an object with
//! one key), an XML body (from a template) re-encoded, in the outlet's encoding with the
//! prolog naming it and `content_type` `application/xml; charset=…`. Knutpunkt's own
//! headers (`knut-…`) stay inside; headers a route set go along. Nothing of Knutpunkt
//! consumes an outlet's queue, so no route may bind its exchange. The queue's type is the
//! outlet's `queue.type`, else `broker.queue_type`. On the embedded broker (development) an
//! outlet's messages stay in memory until the process ends.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use serde::Deserialize;

use crate::broker::amqp::QueueType;
use crate::codec::charset::{XmlEncoding, decode_xml, encode_xml};
use crate::codec::json_to_xml;
use crate::core::envelope::{Body, Envelope};
use crate::core::vocab::Plane;

/// An outlet file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutletSpec {
    outlet: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    plane: Plane,
    exchange: String,
    queue: QueueSpec,
    bindings: Vec<String>,
    #[serde(default)]
    format: FormatSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueSpec {
    name: String,
    #[serde(default, rename = "type")]
    kind: Option<QueueType>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum FormatSpec {
    #[default]
    Json,
    Xml {
        #[serde(default)]
        root: Option<String>,
        #[serde(default)]
        encoding: Option<String>,
    },
}

/// How an outlet's consumer reads its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// JSON, UTF-8 (as Knutpunkt's own queues).
    Json,
    /// XML in `encoding`; a JSON body's root element is `root` (or its one key).
    Xml {
        /// Root element name for a JSON body that is not an object with one key.
        root: Option<String>,
        /// The character encoding the consumer reads.
        encoding: XmlEncoding,
    },
}

impl Format {
    /// `json`, or `xml (ISO-8859-1)`.
    pub fn describe(&self) -> String {
        match self {
            Format::Json => "json".into(),
            Format::Xml { encoding, .. } => format!("xml ({})", encoding.name()),
        }
    }
}

/// An outlet, checked.
#[derive(Debug, Clone)]
pub struct Outlet {
    /// Its name (the file's).
    pub name: String,
    /// What consumes it and why.
    pub description: Option<String>,
    /// The plane whose broker holds it.
    pub plane: Plane,
    /// The topic exchange routes publish to.
    pub exchange: String,
    /// The queue the outside system reads.
    pub queue: String,
    /// The queue's type; `None`: the broker's configured type.
    pub queue_type: Option<QueueType>,
    /// Routing key patterns binding the queue to the exchange.
    pub bindings: Vec<String>,
    /// The consumer's format.
    pub format: Format,
    /// The file, relative to the root.
    pub file: String,
}

/// A problem with an outlet file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {message}")]
pub struct OutletError {
    /// The file, relative to the root.
    pub file: String,
    /// What is wrong, with line and column where known.
    pub message: String,
}

impl Outlet {
    /// The message as the outlet's consumer reads it: without Knutpunkt's own headers
    /// (`knut-…`: token claims, reply addresses, the request's path stay inside), and for an
    /// XML outlet the body written as XML in its encoding. Errors name what could not be
    /// written (never a body value).
    pub fn encode(&self, m: &Envelope) -> Result<Envelope, String> {
        let mut out = match &self.format {
            Format::Json => {
                m.json_body()
                    .map_err(|e| format!("outlet `{}` takes JSON: {e}", self.name))?;
                m.with_body(m.body.clone(), m.content_type.clone())
            }
            Format::Xml { root, encoding } => {
                let text = if m.content_type.contains("xml") {
                    let bytes = m.body.to_bytes();
                    let (text, _) = decode_xml(&bytes)
                        .map_err(|e| format!("outlet `{}`: the XML body: {e}", self.name))?;
                    strip_prolog(&text).to_string()
                } else {
                    let json = m
                        .json_body()
                        .map_err(|e| format!("outlet `{}`: {e}", self.name))?;
                    let xml = json_to_xml(&json, root.as_deref()).map_err(|e| {
                        format!("outlet `{}`: cannot write the body as XML: {e}", self.name)
                    })?;
                    let text = String::from_utf8(xml)
                        .map_err(|_| format!("outlet `{}`: the XML is not UTF-8", self.name))?;
                    strip_prolog(&text).to_string()
                };
                let name = encoding.name();
                let doc = format!("<?xml version=\"1.0\" encoding=\"{name}\"?>{text}");
                m.with_body(
                    Body::Bytes(Bytes::from(encode_xml(&doc, *encoding))),
                    format!("application/xml; charset={name}"),
                )
            }
        };
        out.headers.retain(|name, _| !name.starts_with("knut-"));
        Ok(out)
    }
}

/// `text` without its XML declaration.
fn strip_prolog(text: &str) -> &str {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with("<?xml")
        && let Some(end) = t.find("?>")
    {
        return t[end + 2..].trim_start();
    }
    t
}

/// The outlets of a root, by exchange.
#[derive(Debug, Clone, Default)]
pub struct Outlets {
    by_exchange: BTreeMap<String, Outlet>,
}

impl Outlets {
    /// The outlet that owns `exchange`.
    pub fn by_exchange(&self, exchange: &str) -> Option<&Outlet> {
        self.by_exchange.get(exchange)
    }

    /// Every outlet, by exchange.
    pub fn iter(&self) -> impl Iterator<Item = &Outlet> {
        self.by_exchange.values()
    }

    /// No outlets.
    pub fn is_empty(&self) -> bool {
        self.by_exchange.is_empty()
    }

    /// Read `outlets/*.yaml` under `root` (none when the folder is missing); every problem
    /// is returned together.
    pub fn load(root: &Path) -> Result<Outlets, Vec<OutletError>> {
        let dir = root.join("outlets");
        let mut out = Outlets::default();
        let mut errors = Vec::new();
        let mut queues: BTreeMap<String, String> = BTreeMap::new();
        for path in crate::core::files::yaml_files(&dir) {
            let file = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            match read(&path, &file) {
                Ok(outlet) => {
                    let fail = |message: String| OutletError {
                        file: file.clone(),
                        message,
                    };
                    if let Some(other) = out.by_exchange.get(&outlet.exchange) {
                        errors.push(fail(format!(
                            "exchange `{}` is already outlet `{}`'s ({}): an outlet owns its \
                             exchange, so give this one another",
                            outlet.exchange, other.name, other.file
                        )));
                    } else if let Some(other) = queues.get(&outlet.queue) {
                        errors.push(fail(format!(
                            "queue `{}` is already outlet `{other}`'s",
                            outlet.queue
                        )));
                    } else {
                        queues.insert(outlet.queue.clone(), outlet.name.clone());
                        out.by_exchange.insert(outlet.exchange.clone(), outlet);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

fn read(path: &Path, file: &str) -> Result<Outlet, OutletError> {
    let fail = |message: String| OutletError {
        file: file.to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let spec: OutletSpec =
        serde_saphyr::from_str(&text).map_err(|e| fail(crate::core::files::yaml_error(&e)))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    if spec.outlet != stem {
        return Err(fail(format!(
            "`outlet: {}` must be the file's name, `{stem}`",
            spec.outlet
        )));
    }
    for (what, name) in [
        ("exchange", &spec.exchange),
        ("queue.name", &spec.queue.name),
    ] {
        if name.is_empty() || name.len() > 255 || name.starts_with("knut.") {
            return Err(fail(format!(
                "`{what}: {name}` must be 1 to 255 bytes and not start with `knut.` \
                 (Knutpunkt's own names)"
            )));
        }
    }
    if spec.bindings.is_empty() {
        return Err(fail(
            "`bindings` is empty: name at least one routing key pattern (e.g. `'decision.#'`)"
                .into(),
        ));
    }
    for key in &spec.bindings {
        if key.is_empty() || key.len() > 255 {
            return Err(fail(format!("binding `{key}` must be 1 to 255 bytes")));
        }
    }
    let format = match spec.format {
        FormatSpec::Json => Format::Json,
        FormatSpec::Xml { root, encoding } => {
            let encoding = match encoding.as_deref() {
                None => XmlEncoding::Utf8,
                Some(label) => XmlEncoding::from_label(label).ok_or_else(|| {
                    fail(format!(
                        "`format.xml.encoding: {label}` is not one Knutpunkt writes: use \
                         UTF-8, ISO-8859-1, windows-1252 or US-ASCII"
                    ))
                })?,
            };
            Format::Xml { root, encoding }
        }
    };
    Ok(Outlet {
        name: spec.outlet,
        description: spec.description,
        plane: spec.plane,
        exchange: spec.exchange,
        queue: spec.queue.name,
        queue_type: spec.queue.kind,
        bindings: spec.bindings,
        format,
        file: file.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir.join("outlets")).unwrap();
        std::fs::write(dir.join("outlets").join(name), text).unwrap();
    }

    fn latin1_outlet() -> Outlet {
        Outlet {
            name: "legacy".into(),
            description: None,
            plane: Plane::Internal,
            exchange: "legacy.x".into(),
            queue: "legacy.q".into(),
            queue_type: None,
            bindings: vec!["#".into()],
            format: Format::Xml {
                root: Some("Beslut".into()),
                encoding: XmlEncoding::Latin1,
            },
            file: "outlets/legacy.yaml".into(),
        }
    }

    #[test]
    fn loads_an_outlet_and_refuses_mistakes() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "legacy.yaml",
            "outlet: legacy\nexchange: legacy.x\nqueue: { name: legacy.q, type: classic }\n\
             bindings: ['decision.#']\nformat: { xml: { root: Beslut, encoding: latin1 } }\n",
        );
        let outlets = Outlets::load(dir.path()).unwrap();
        let o = outlets.by_exchange("legacy.x").unwrap();
        assert_eq!(o.queue, "legacy.q");
        assert_eq!(o.queue_type, Some(QueueType::Classic));
        assert_eq!(o.format.describe(), "xml (ISO-8859-1)");

        write(
            dir.path(),
            "other.yaml",
            "outlet: other\nexchange: legacy.x\nqueue: { name: q2 }\nbindings: ['#']\n",
        );
        write(
            dir.path(),
            "typo.yaml",
            "outlet: typo\nexchange: t.x\nqueue: { name: q3 }\nbinding: ['#']\n",
        );
        write(
            dir.path(),
            "enc.yaml",
            "outlet: enc\nexchange: e.x\nqueue: { name: q4 }\nbindings: ['#']\nformat: { xml: { encoding: KOI8-R } }\n",
        );
        let errors = Outlets::load(dir.path()).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{text:?}");
        assert!(
            text[0].contains("enc.yaml") && text[0].contains("KOI8-R"),
            "{text:?}"
        );
        assert!(text[1].contains("already outlet `legacy`"), "{text:?}");
        assert!(text[2].contains("typo.yaml: 4:"), "{text:?}");
    }

    #[test]
    fn writes_json_as_latin1_xml() {
        let mut m = Envelope::json(json!({"elev": "Åsa Öberg", "belopp": "12 €"}));
        m.headers
            .insert("knut-claim-sub".into(), "a token's subject".into());
        m.headers.insert("kortTyp".into(), "elevkort".into());
        m = latin1_outlet().encode(&m).unwrap();
        assert_eq!(m.content_type, "application/xml; charset=ISO-8859-1");
        assert_eq!(
            m.headers.keys().collect::<Vec<_>>(),
            ["kortTyp"],
            "Knutpunkt's own headers stay inside"
        );
        let Body::Bytes(b) = &m.body else {
            panic!("bytes")
        };
        assert_eq!(
            b.as_ref(),
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><Beslut><elev>\xC5sa \xD6berg</elev><belopp>12 &#x20AC;</belopp></Beslut>"
                .as_slice()
        );
    }

    #[test]
    fn reencodes_an_xml_body() {
        let mut m = Envelope::json(json!({}));
        m.body = Body::Bytes(Bytes::from_static(
            "\n  <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a>å</a>".as_bytes(),
        ));
        m.content_type = "application/xml".into();
        let m = latin1_outlet().encode(&m).unwrap();
        let Body::Bytes(b) = &m.body else {
            panic!("bytes")
        };
        assert_eq!(
            b.as_ref(),
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>\xE5</a>".as_slice()
        );
    }
}
