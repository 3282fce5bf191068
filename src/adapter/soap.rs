//! SOAP faults in adapter answers. A system answering with a SOAP 1.1 or 1.2 `Fault`
//! (OeP's callback answers an unknown instance so, with HTTP 500) has refused the request:
//! the call fails with the fault's text instead of "HTTP 500", and it is a permanent
//! failure (retrying the same request gives the same fault) unless the HTTP status says the
//! system is overloaded or down (429, 502, 503, 504).

use serde_json::Value;

use crate::core::error::FailureKind;

/// A SOAP fault: its code and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// `faultcode` (1.1) or `Code/Value` (1.2), e.g. `S:Server`.
    pub code: String,
    /// `faultstring` (1.1) or `Reason/Text` (1.2).
    pub reason: String,
}

/// Longest fault text carried into an error.
const MAX_REASON: usize = 300;

/// The SOAP fault of an answer already converted to JSON (`xml_to_json`), if it is one.
pub fn fault(answer: &Value) -> Option<Fault> {
    let f = answer.get("Envelope")?.get("Body")?.get("Fault")?;
    let (code, reason) = if f.get("faultstring").is_some() || f.get("faultcode").is_some() {
        (text(f.get("faultcode")), text(f.get("faultstring")))
    } else {
        (
            text(f.get("Code").and_then(|c| c.get("Value"))),
            text(f.get("Reason").and_then(|r| r.get("Text"))),
        )
    };
    let mut reason = crate::core::redact::mask(&reason).into_owned();
    if reason.len() > MAX_REASON {
        let mut cut = MAX_REASON;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
        reason.push('…');
    }
    Some(Fault { code, reason })
}

/// The text of a converted element: a string, an element's `#text`, or the first of
/// several.
fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Object(m)) => text(m.get("#text")),
        Some(Value::Array(a)) => text(a.first()),
        _ => String::new(),
    }
}

/// How a fault answered with `status` is retried.
pub fn kind(status: u16) -> FailureKind {
    match status {
        429 | 502 | 503 | 504 => FailureKind::Transient,
        _ => FailureKind::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{XmlToJsonOptions, xml_to_json};

    fn json(xml: &str) -> Value {
        xml_to_json(xml.as_bytes(), &XmlToJsonOptions::default()).unwrap()
    }

    #[test]
    fn soap_11_and_12_faults_are_read() {
        let f = fault(&json(
            "<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body><S:Fault>\
             <faultcode>S:Server</faultcode><faultstring> No flow instance with ID 999 found \
             </faultstring></S:Fault></S:Body></S:Envelope>",
        ))
        .unwrap();
        assert_eq!(f.code, "S:Server");
        assert_eq!(f.reason, "No flow instance with ID 999 found");
        let f = fault(&json(
            "<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\"><env:Body>\
             <env:Fault><env:Code><env:Value>env:Sender</env:Value></env:Code><env:Reason>\
             <env:Text xml:lang=\"sv\">Ogiltig begäran för 20130412-2383</env:Text></env:Reason>\
             </env:Fault></env:Body></env:Envelope>",
        ))
        .unwrap();
        assert_eq!(f.code, "env:Sender");
        assert!(f.reason.starts_with("Ogiltig begäran"), "{}", f.reason);
        assert!(
            !f.reason.contains("2383"),
            "personnummer masked: {}",
            f.reason
        );
        assert!(fault(&json("<Envelope><Body><ok/></Body></Envelope>")).is_none());
        let long = "x".repeat(1000);
        let f = fault(&json(&format!(
            "<Envelope><Body><Fault><faultstring>{long}</faultstring></Fault></Body></Envelope>"
        )))
        .unwrap();
        assert!(f.reason.chars().count() <= MAX_REASON + 1);
    }

    #[test]
    fn a_fault_is_permanent_unless_the_system_is_down() {
        assert_eq!(kind(500), FailureKind::Permanent);
        assert_eq!(kind(200), FailureKind::Permanent);
        assert_eq!(kind(503), FailureKind::Transient);
    }
}
