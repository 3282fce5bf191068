//! Robustness of the codecs against mutated input: a deterministic mutation fuzzer.
//!
//! Seeds are small documents in the shapes Knutpunkt receives (fictional data only); each
//! is mutated thousands of times (byte flips, insertions of markup fragments, deletions,
//! truncations, splices). The properties checked:
//! - the codecs never panic;
//! - every XML error except `TooLarge` has a line and column, every error text is free of
//!   the (fictional) personnummer in the input;
//! - whatever `xml_to_json` accepts and `json_to_xml` can write reads back to the same JSON.

use knutpunkt::codec::{
    CodecErrorKind, JsonLimits, XmlToJsonOptions, json_to_xml, parse_json, xml_to_json,
};

/// Fictional personnummer (born 2011, Luhn-valid); it must never appear in an error.
const FICTIONAL_PNR: &str = "201107242399";

/// xorshift64*: deterministic, so a failure is reproducible from the printed case number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const XML_FRAGMENTS: &[&[u8]] = &[
    b"<",
    b">",
    b"</",
    b"/>",
    b"&",
    b"&amp;",
    b"&#229;",
    b"&#x0;",
    b"&lol;",
    b"<![CDATA[",
    b"]]>",
    b"<!--",
    b"-->",
    b"<?pi x?>",
    b"<!DOCTYPE a>",
    b"\"",
    b"'",
    b"=",
    b" x=\"1\"",
    b"xmlns:p=\"u\"",
    b"p:",
    b"<b>",
    b"</b>",
    b"<c/>",
    b"\xE5",
    b"\xC3",
    b"\xC3\xA5",
    b"\x80",
    b"\r\n",
    b"\x00",
    b"\xEF\xBB\xBF",
];

fn xml_seeds() -> Vec<Vec<u8>> {
    vec![
        format!(
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<FlowInstance xmlns=\"urn:x\">\
             <Header><Flow><FamilyID>261</FamilyID><Name>\n  <![CDATA[Ans\u{f6}kan]]>\n  </Name>\
             </Flow></Header><Values><applicant QueryID=\"1\" ort=\"\u{c5}n\u{e4}s\">\
             <citizenIdentifier><![CDATA[{FICTIONAL_PNR}]]></citizenIdentifier>\
             <firstname>\u{c5}sa</firstname></applicant><empty/></Values></FlowInstance>"
        )
        .chars()
        .map(|c| c as u8)
        .collect(),
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<e:Leveransobjekt xmlns:e=\"urn:fgs\">\
             <e:Arende id=\"{FICTIONAL_PNR}\"><e:Handling>a</e:Handling><e:Handling>b</e:Handling>\
             <e:Bilaga Namn=\"x.pdf\"/>text &amp; more<!-- c --></e:Arende></e:Leveransobjekt>"
        )
        .into_bytes(),
        b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><p a=\"\x80\">\x93x\x94</p>".to_vec(),
        format!("<r><i>1</i><i>2</i><pnr>{FICTIONAL_PNR}</pnr><x a='1'> t </x></r>").into_bytes(),
    ]
}

fn json_seeds() -> Vec<Vec<u8>> {
    vec![
        format!(
            "{{\"student\": {{\"pnr\": \"{FICTIONAL_PNR}\", \"namn\": \"\u{c5}sa\"}}, \
             \"list\": [1, 2.5, true, null, {{\"a\": [\"x\\\"y\"]}}]}}"
        )
        .into_bytes(),
        b"[[[[[[[[1]]]]]]]]".to_vec(),
    ]
}

const JSON_FRAGMENTS: &[&[u8]] = &[
    b"{", b"}", b"[", b"]", b"\"", b"\\", b",", b":", b"null", b"1e999", b"\xC3", b"\xE5", b" x",
];

fn mutate(rng: &mut Rng, seed: &[u8], fragments: &[&[u8]]) -> Vec<u8> {
    let mut doc = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(doc.len() + 1);
        match rng.below(5) {
            0 if !doc.is_empty() => {
                let i = at.min(doc.len() - 1);
                doc[i] = rng.next() as u8;
            }
            1 => {
                let frag = fragments[rng.below(fragments.len())];
                doc.splice(at..at, frag.iter().copied());
            }
            2 if !doc.is_empty() => {
                let end = (at + rng.below(8)).min(doc.len());
                doc.drain(at.min(end)..end);
            }
            3 => doc.truncate(at),
            _ => {
                // Duplicate a slice of the document somewhere else.
                let from = rng.below(doc.len() + 1);
                let to = (from + rng.below(32)).min(doc.len());
                let piece: Vec<u8> = doc[from..to].to_vec();
                let at = at.min(doc.len());
                doc.splice(at..at, piece);
            }
        }
    }
    doc
}

#[test]
fn xml_codec_survives_mutations() {
    let opts = XmlToJsonOptions::default();
    let mut rng = Rng(0x5EED_C0DE_2281);
    let (mut accepted, mut rejected, mut round_trips) = (0, 0, 0);
    for seed in xml_seeds() {
        // The seeds themselves are valid.
        assert!(
            xml_to_json(&seed, &opts).is_ok(),
            "{}",
            String::from_utf8_lossy(&seed)
        );
        for case in 0..3000 {
            let doc = mutate(&mut rng, &seed, XML_FRAGMENTS);
            match xml_to_json(&doc, &opts) {
                Ok(value) => {
                    accepted += 1;
                    match json_to_xml(&value, None) {
                        Ok(xml) => {
                            round_trips += 1;
                            let again = xml_to_json(&xml, &opts).unwrap_or_else(|e| {
                                panic!("case {case}: written XML does not read back: {e}")
                            });
                            assert_eq!(value, again, "case {case}");
                        }
                        // E.g. an element name quick-xml accepts but XML does not (`<1a>`).
                        Err(e) => assert!(e.path().is_some(), "case {case}: no key path: {e}"),
                    }
                }
                Err(e) => {
                    rejected += 1;
                    let text = format!("{e} {e:?}");
                    assert!(!text.contains(FICTIONAL_PNR), "case {case}: {text}");
                    if e.kind() != CodecErrorKind::TooLarge {
                        assert!(e.position().is_some(), "case {case}: no position: {e}");
                    }
                }
            }
        }
    }
    eprintln!("xml: {accepted} accepted ({round_trips} round trips), {rejected} rejected");
    // The fuzzer must exercise both paths, or it proves nothing.
    assert!(
        accepted > 100 && rejected > 100,
        "{accepted} accepted, {rejected} rejected"
    );
}

#[test]
fn json_parser_survives_mutations() {
    let limits = JsonLimits::default();
    let mut rng = Rng(0xFACE_2281);
    let (mut accepted, mut rejected) = (0, 0);
    for seed in json_seeds() {
        assert!(parse_json(&seed, &limits).is_ok());
        for case in 0..3000 {
            let doc = mutate(&mut rng, &seed, JSON_FRAGMENTS);
            match parse_json(&doc, &limits) {
                Ok(_) => accepted += 1,
                Err(e) => {
                    rejected += 1;
                    let text = format!("{e} {e:?}");
                    assert!(!text.contains(FICTIONAL_PNR), "case {case}: {text}");
                    assert!(e.position().is_some(), "case {case}: no position: {e}");
                }
            }
        }
    }
    eprintln!("json: {accepted} accepted, {rejected} rejected");
    assert!(
        accepted > 50 && rejected > 100,
        "{accepted} accepted, {rejected} rejected"
    );
}
