//! A running knut for the guardian-access tests (issue 12): the shipped access routes
//! ([`FILES`]) behind the `residents` scheme configured as production would be — the
//! sandbox's test issuer's key set, its issuer and an audience — with the sandbox, and
//! tokens good and bad. People are the sandbox's fictional ones.
//!
//! Use it with `#[path = "support/access.rs"] mod access;`.

#![allow(dead_code)]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Datelike, NaiveDate};
use knutpunkt::core::envelope::Envelope;
use serde_json::{Value, json};

pub const PERSONAL_NUMBER: &str = "https://claims.oidc.se/1.0/personalNumber";
pub const AUDIENCE: &str = "knutpunkt-mina-sidor";
/// Åsa Sandberg: joint custody of Elin (born 2012-05-03) and Viktor (born 2010-02-14).
pub const ASA: &str = "198006112463";
/// Maria Sjöberg: both her children have skyddad folkbokföring.
pub const MARIA: &str = "198402276649";
/// Mikael Sandberg: joint custody of Elin and Viktor with Åsa.
pub const MIKAEL: &str = "197802144571";
/// Elin Sandberg, 14, and Viktor Sandberg, 16.
pub const ELIN: &str = "201205032426";
pub const VIKTOR: &str = "201002144572";

/// The files of the root the access tests run: the access routes, what they include and
/// the adapters they call (no polls or timers: nothing runs that a test did not ask for).
pub const FILES: &[&str] = &[
    "routes/me-dependants.yaml",
    "routes/me-cases.yaml",
    "routes/case-view.yaml",
    "fragments/resident.yaml",
    "fragments/dependants.yaml",
    "fragments/my-cases.yaml",
    "transforms/me/cases.jq",
    "adapters/elevregister.yaml",
    "adapters/citizen.yaml",
    "adapters/casedata.yaml",
    "adapters/oep-integrator.yaml",
    "routes/me-delegations-create.yaml",
    "routes/me-delegations.yaml",
    "routes/me-delegations-revoke.yaml",
    "schemas/delegation-request.v1.json",
    "adapters/minaombud.yaml",
    "routes/guardian-rights.yaml",
    "routes/case-approval.yaml",
    "routes/guardian-approval-notify.yaml",
    "schemas/case-opened.v1.json",
    "schemas/guardian-approval.v1.json",
    "settings/guardians.yaml",
    "adapters/messaging.yaml",
    "routes/case-link-create.yaml",
    "routes/case-link-view.yaml",
    "schemas/case-link-request.v1.json",
    "schemas/settings/case-links.json",
    "settings/case-links.yaml",
    "fragments/guardian-approval-decide.yaml",
    "fragments/staff-role.yaml",
    "routes/case-approval-paper.yaml",
    "schemas/guardian-paper-approval.v1.json",
    "routes/me-sessions.yaml",
    "routes/me-subscriptions-create.yaml",
    "routes/me-subscriptions.yaml",
    "routes/me-subscriptions-delete.yaml",
    "schemas/subscription-request.v1.json",
    "routes/guardian-subscription-notify.yaml",
    "routes/report-guardian-views.yaml",
];

/// A running knut over a root of the access routes, with its sandbox.
pub struct Access {
    pub system: knutpunkt::runtime::System,
    pub http: reqwest::Client,
    pub api: String,
    pub sandbox: String,
    _root: tempfile::TempDir,
}

impl Access {
    /// A knut with the `residents` scheme only, as production would configure it.
    pub async fn start() -> Access {
        Access::start_with_schemes(&[("residents", AUDIENCE)]).await
    }

    /// A knut with these `bearer_jwt` schemes (name, audience), each trusting the sandbox's
    /// test issuer as production would trust its identity provider.
    pub async fn start_with_schemes(schemes: &[(&str, &str)]) -> Access {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = tempfile::tempdir().expect("root");
        for file in FILES {
            let to = root.path().join(file);
            std::fs::create_dir_all(to.parent().expect("a folder")).expect("dir");
            std::fs::copy(repo.join(file), &to).expect(file);
        }
        let sandbox_port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
            l.local_addr().expect("its address").port()
        };
        let auth: String = schemes
            .iter()
            .map(|(name, audience)| {
                format!(
                    "[http.auth.{name}]\ntype = \"bearer_jwt\"\n\
                     jwks_url = \"http://127.0.0.1:{sandbox_port}/sandbox/idp/jwks\"\n\
                     issuer = \"knut-sandbox-idp\"\naudience = \"{audience}\"\n"
                )
            })
            .collect();
        let config = knutpunkt::config::Config::from_toml_str(&format!(
            "profile = \"development\"\n\
             [external]\nhttp_bind = \"127.0.0.1:0\"\nadmin_bind = \"127.0.0.1:0\"\n\
             [http]\nbind = \"127.0.0.1:0\"\n{auth}\
             [admin]\nbind = \"127.0.0.1:0\"\n\
             [sandbox]\nenabled = true\nbind = \"127.0.0.1:{sandbox_port}\"\n\
             [store]\nurl = \"sqlite://{}/knut.db?mode=rwc\"\n",
            root.path().display()
        ))
        .expect("config");
        let system = knutpunkt::runtime::System::start(root.path(), &config)
            .await
            .expect("starts");
        Access {
            api: format!("http://{}", system.http_addr),
            sandbox: format!("http://127.0.0.1:{sandbox_port}/sandbox"),
            system,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            _root: root,
        }
    }

    /// A token of the sandbox's test issuer with these claims.
    pub async fn token(&self, claims: Value) -> String {
        let r: Value = self
            .http
            .post(format!("{}/idp/token", self.sandbox))
            .json(&claims)
            .send()
            .await
            .expect("token")
            .json()
            .await
            .expect("token JSON");
        r["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }

    /// A valid sign-in of `person`.
    pub async fn signed_in(&self, person: &str) -> String {
        self.token(json!({"sub": format!("bankid-{}", &person[8..]), "aud": AUDIENCE, PERSONAL_NUMBER: person}))
            .await
    }

    /// Metakatalogen's personId of a person, as the sandbox's citizen API gives it.
    pub async fn person_id(&self, person: &str) -> String {
        let id: Value = self
            .http
            .get(format!(
                "{}/citizen/api/v3/citizen/2281/{person}/guid",
                self.sandbox
            ))
            .send()
            .await
            .expect("guid")
            .json()
            .await
            .expect("guid JSON");
        id.as_str().expect("a personId").to_string()
    }

    /// POST a JSON body to the sandbox: status and body.
    pub async fn sandbox_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.sandbox))
            .json(body)
            .send()
            .await
            .expect("sandbox POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// The access audit's rows of `who` as actor, newest first.
    pub async fn audit_of(&self, who: &str) -> Vec<knutpunkt::store::AccessAuditEntry> {
        let store = &self.system.store;
        store
            .access_audit_query(&knutpunkt::store::AccessAuditQuery {
                actor: Some(store.audit_hash(who).expect("a hash")),
                ..Default::default()
            })
            .await
            .expect("the audit")
    }

    /// GET `path` with `token` (none: anonymous): status, content type and JSON body.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, String, Value) {
        let mut req = self.http.get(format!("{}{path}", self.api));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("GET");
        let status = r.status().as_u16();
        let kind = content_type(&r);
        let body = r.json().await.unwrap_or(Value::Null);
        (status, kind, body)
    }

    /// A request to the API with `token` and, when given, a JSON body: the answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let kind = content_type(&r);
        Answer {
            status,
            kind,
            text: r.text().await.expect("a body"),
        }
    }

    /// POST a JSON body to `path` with `token`: status, content type and JSON body.
    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (u16, String, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
            .parts()
    }

    /// GET from the sandbox: the JSON answer.
    pub async fn sandbox_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.sandbox))
            .send()
            .await
            .expect("sandbox GET")
            .json()
            .await
            .expect("sandbox JSON")
    }

    /// The errand in the sandbox's case data.
    pub async fn errand(&self, id: u64) -> Value {
        self.sandbox_get(&format!("/casedata/2281/SBK_SCHOOL/errands/{id}"))
            .await
    }

    /// An errand in the sandbox's case data about `child` (as the leave intake opens it:
    /// transforms/casedata/leave-errand.json.tera, the child by personId among the
    /// stakeholders and by personnummer in the extra parameters), announced by case-open's
    /// event `case.opened.leave`: its id and errand number.
    pub async fn leave_case(&self, child: &str, n: u32) -> (u64, String) {
        let child_id = self.person_id(child).await;
        let external = format!("OEP-412-{n}");
        let (status, body) = self
            .sandbox_post(
                "/casedata/2281/SBK_SCHOOL/errands",
                &json!({"caseType": "LEAVE_OF_ABSENCE", "channel": "ESERVICE", "priority": "MEDIUM",
                        "externalCaseId": external,
                        "stakeholders": [
                            {"type": "PERSON", "roles": ["APPLICANT"], "firstName": "Åsa", "lastName": "Sandberg",
                             "contactInformation": [{"contactType": "EMAIL", "value": "asa.sandberg@exempel.se"}]},
                            {"type": "PERSON", "roles": ["STUDENT"], "personId": child_id}],
                        "extraParameters": [
                            {"key": "flow", "values": ["leave"]},
                            {"key": "flowInstanceId", "values": [n.to_string()]},
                            {"key": "student.civicNo", "values": [child]}]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let found = self
            .sandbox_get(&format!(
                "/casedata/2281/SBK_SCHOOL/errands?filter=externalCaseId:'{external}'"
            ))
            .await;
        let errand = &found["content"][0];
        let id = errand["id"].as_u64().expect("an errand id");
        let number = errand["errandNumber"]
            .as_str()
            .expect("an errand number")
            .to_string();
        let today = chrono::Local::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        let opened = json!({"flow": "leave", "errandId": id, "errandNumber": number,
                            "externalCaseId": external, "flowInstanceId": n.to_string(),
                            "subject": {"flowInstanceId": n.to_string(), "posted": today,
                                        "applicant": {"email": "asa.sandberg@exempel.se"},
                                        "student": {"civicNo": child},
                                        "period": {"start": "2027-03-08", "end": "2027-03-10"},
                                        "reason": "Familjeresa"}});
        self.system
            .broker
            .publish("case.events", "case.opened.leave", &Envelope::json(opened))
            .await
            .expect("published");
        (id, number)
    }

    /// The errand's extra parameters (key → values).
    pub async fn parameters(&self, errand: u64) -> Value {
        let e = self.errand(errand).await;
        let params: serde_json::Map<String, Value> = e["extraParameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p["key"].as_str()?.to_string(), p["values"].clone())))
            .collect();
        Value::Object(params)
    }

    /// The errand's extra parameters once `key` is among them (guardian-rights has run).
    pub async fn parameters_once(&self, errand: u64, key: &str) -> Value {
        for _ in 0..150 {
            let p = self.parameters(errand).await;
            if p.get(key).is_some() {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("errand {errand} never got {key}");
    }

    /// An errand about Elin in the sandbox's case data (as the leave intake opens it, no
    /// event announced): its id as the API names it.
    pub async fn elins_case(&self) -> String {
        let elin_id = self.person_id(ELIN).await;
        let (status, _) = self
            .sandbox_post(
                "/casedata/2281/SBK_SCHOOL/errands",
                &json!({"caseType": "LEAVE_OF_ABSENCE", "channel": "ESERVICE", "priority": "MEDIUM",
                        "description": "Ansökan om ledighet 2027-03-08–2027-03-10",
                        "stakeholders": [{"type": "PERSON", "roles": ["STUDENT"], "personId": elin_id}]}),
            )
            .await;
        assert_eq!(status, 201);
        let errands = self.sandbox_get("/casedata/2281/SBK_SCHOOL/errands").await;
        let errand = errands["content"]
            .as_array()
            .and_then(|l| {
                l.iter()
                    .find(|e| e["stakeholders"][0]["personId"] == json!(elin_id))
            })
            .expect("the errand")["id"]
            .clone();
        format!("casedata-{errand}")
    }

    /// An e-service application `poster` posted in the sandbox's OeP: its id as the API
    /// names it.
    pub async fn oep_case(&self, poster: &str) -> String {
        let xml = "<FlowInstance><Header><Flow><FamilyID>412</FamilyID><Version>4</Version></Flow>\
                   <Status><ID>77</ID><Name>Inkommen</Name></Status><Posted>2026-12-01T19:02:11</Posted>\
                   </Header><Values/></FlowInstance>";
        let r = self
            .http
            .post(format!("{}/oep/_submit?poster={poster}", self.sandbox))
            .body(xml)
            .send()
            .await
            .expect("submit");
        assert_eq!(r.status().as_u16(), 201);
        format!(
            "oep-{}",
            r.json::<Value>().await.expect("submitted")["flowInstanceID"]
        )
    }
}

/// An HTTP answer: status, content type, the body as text.
pub struct Answer {
    pub status: u16,
    pub kind: String,
    pub text: String,
}

impl Answer {
    /// The body as JSON (null when it is none).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The problem's `type` ends with `kind`.
    pub fn is_problem(&self, status: u16, kind: &str) -> bool {
        self.status == status
            && self.kind.starts_with("application/problem+json")
            && self.json()["type"]
                .as_str()
                .unwrap_or_default()
                .ends_with(kind)
    }

    /// Status, content type and JSON body, as [`Access::get`] answers.
    pub fn parts(&self) -> (u16, String, Value) {
        (self.status, self.kind.clone(), self.json())
    }
}

/// The response's content type (empty when it has none).
fn content_type(r: &reqwest::Response) -> String {
    r.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// No personnummer of the family (in any common spelling) in `text`.
pub fn assert_no_personnummer(what: &str, text: &str) {
    for p in [ASA, MIKAEL, MARIA, ELIN, VIKTOR] {
        for shape in [
            p.to_string(),
            p[2..].to_string(),
            format!("{}-{}", &p[..8], &p[8..]),
        ] {
            assert!(!text.contains(&shape), "{what} holds {shape}: {text}");
        }
    }
}

/// Whole years from `born` to today.
pub fn age(born: NaiveDate) -> i32 {
    let today = chrono::Local::now().date_naive();
    let mut years = today.year() - born.year();
    if (today.month(), today.day()) < (born.month(), born.day()) {
        years -= 1;
    }
    years
}

/// The date `y`-`m`-`d`.
pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a date")
}

/// A token with `alg: none`: the claims of a valid one, no signature.
pub fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// `token` with its payload's personal number changed, the signature kept.
pub fn forged(token: &str, person: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(parts[1])
            .expect("the payload is base64url"),
    )
    .expect("the payload is JSON");
    claims[PERSONAL_NUMBER] = json!(person);
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}

/// A token signed by a key of another issuer (its own Ed25519 key, its own `iss`).
pub fn other_issuer(person: &str) -> String {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("a key");
    let key = jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("elsewhere-1".into());
    let exp = chrono::Utc::now().timestamp() + 600;
    jsonwebtoken::encode(
        &header,
        &json!({"sub": "x", "iss": "https://idp.elsewhere.example", "aud": AUDIENCE,
                "exp": exp, PERSONAL_NUMBER: person}),
        &key,
    )
    .expect("signed")
}

/// A 401 problem+json with a detail and no personnummer of Åsa or Maria.
pub fn assert_refused(what: &str, (status, kind, body): &(u16, String, Value)) {
    assert_eq!(*status, 401, "{what}: {body}");
    assert!(
        kind.starts_with("application/problem+json"),
        "{what}: {kind}"
    );
    assert!(body["detail"].is_string(), "{what}: {body}");
    let text = body.to_string();
    for person in [ASA, MARIA] {
        assert!(
            !text.contains(person),
            "{what} echoes a personnummer: {text}"
        );
    }
}
