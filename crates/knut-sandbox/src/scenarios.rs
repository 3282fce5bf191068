//! Scenarios loaded on demand, on top of the seed (which stays as it is: other tests count
//! on it).
//!
//! `POST /sandbox/_scenarios/skolresekollen` loads, in one call, fictional cases for all
//! four checks of Skolresekollen (seed 001, `docs/skolresekollen.md`) and answers 200 with
//! what it loaded and what a run should report of each:
//!
//! ```json
//! {"scenarios": [{"name": "moved guardian, child stays", "check": "guardian-moved",
//!                 "expect": "…", "people": [{"name", "personNumber", "role"}],
//!                 "errands": [930001]}, …],
//!  "istExport": "/sandbox/elevregister/_export/placeringar.xlsx"}
//! ```
//!
//! What it loads, through the systems' own functions (the same `POST /sandbox/citizen/_persons`
//! and `_move`, `POST /sandbox/oep/_submit[?withheld=true]`, `POST
//! /sandbox/elevregister/placements` and `POST /sandbox/csn/_deliver` do):
//!
//! - people (Metakatalogen and the elevregister), none of them in the seed, with custody;
//! - OeP errands of family 136 (skolskjuts, status `Beviljat`, version 28) and 261
//!   (elevresa, status `Klart`, version 22), FlowInstanceIDs 930001–930099 (920001 is the
//!   elevresa fixture's), in the shapes of `tests/fixtures/oep/skolskjuts-valdbarn.xml` and
//!   `elevresa.xml`: submitted 60 days ago (one in 2020), decision period from 30 days ago
//!   to two years from today;
//! - moves, dated today;
//! - fritidshem placements with their owners (the guardian the place is registered on),
//!   which IST's export (`istExport`) lists;
//! - one CSN delivery, `inackorderingstillagg-scenarier.csv`.
//!
//! Loading again replaces all of it — the same people, errands (status and messages
//! included), placements and delivery — so a second call changes nothing more: moves are
//! not doubled, nothing is listed twice. The dates follow the day of the call.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{Days, Months, NaiveDate};
use serde_json::{Value, json};

use crate::citizen::{self, Move, NewAddress, NewPerson};
use crate::control::problem;
use crate::elevregister::{self, NewPlacement, Reference};
use crate::personnummer::with_check_digit;
use crate::{World, lock, write};

/// Where IST's placement export is served.
pub const IST_EXPORT: &str = "/sandbox/elevregister/_export/placeringar.xlsx";

/// The name of the scenarios' CSN delivery.
pub const CSN_DELIVERY: &str = "inackorderingstillagg-scenarier.csv";

/// The scenario sets, for `GET /sandbox`: (path, what).
pub const INDEX: &[(&str, &str)] = &[(
    "/sandbox/_scenarios/skolresekollen",
    "POST: loads Skolresekollen's scenarios (moves, a protected child, an emigrated guardian, a cohabiting couple, part-time→full-time places, a CSN hit, a too-early errand, one OeP will not return); answers what each should report",
)];

/// The routes, relative to `/sandbox/_scenarios`.
pub fn routes(world: Arc<World>) -> Router {
    Router::new()
        .route("/skolresekollen", post(skolresekollen))
        .with_state(world)
}

async fn skolresekollen(State(w): State<Arc<World>>) -> Response {
    match load_skolresekollen(&w, chrono::Local::now().date_naive()) {
        Ok(answer) => (StatusCode::OK, Json(answer)).into_response(),
        Err(detail) => problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Scenarios not loaded",
            detail,
        ),
    }
}

/// A person of a scenario: the first eleven digits of the personnummer, names, role.
struct Who {
    pnr11: &'static str,
    given: &'static str,
    family: &'static str,
    role: &'static str,
    protected: bool,
}

impl Who {
    const fn new(
        pnr11: &'static str,
        given: &'static str,
        family: &'static str,
        role: &'static str,
    ) -> Who {
        Who {
            pnr11,
            given,
            family,
            role,
            protected: false,
        }
    }

    const fn protected(self) -> Who {
        Who {
            protected: true,
            ..self
        }
    }

    /// The 12 digits (the check digit computed).
    fn pnr(&self) -> Result<String, String> {
        with_check_digit(self.pnr11)
            .ok_or_else(|| format!("scenario person {} has no valid number", self.given))
    }

    fn name(&self) -> String {
        format!("{} {}", self.given, self.family)
    }
}

// Applying guardians, second guardians, children and students of the scenarios. Everyone is
// invented; none is in the seed (a unit test holds it so).
const HELENA: Who = Who::new("19810214246", "Helena", "Wikström", "applying guardian");
const AXEL: Who = Who::new("20150403235", "Axel", "Wikström", "child");
const TOBIAS: Who = Who::new("19790921431", "Tobias", "Lund", "applying guardian");
const ELSA: Who = Who::new("20161011224", "Elsa", "Lund", "child");
const SOFIA: Who = Who::new("19870330282", "Sofia", "Dahl", "applying guardian").protected();
const NILS: Who = Who::new("20170119313", "Nils", "Dahl", "child").protected();
const MAGNUS: Who = Who::new("19760608457", "Magnus", "Berglund", "applying guardian");
const IDA: Who = Who::new("20140527268", "Ida", "Berglund", "child");
const JONAS: Who = Who::new("19821102391", "Jonas", "Strand", "applying guardian");
const LENA: Who = Who::new(
    "19840716340",
    "Lena",
    "Strand",
    "second guardian, same address, owner of the place",
);
const WILMA: Who = Who::new("20170824246", "Wilma", "Strand", "child");
const EMMA: Who = Who::new("19860112524", "Emma", "Ekström", "applying guardian");
const ANDERS: Who = Who::new(
    "19831205179",
    "Anders",
    "Ekström",
    "second guardian, another address, owner of the place",
);
const HUGO: Who = Who::new("20180315411", "Hugo", "Ekström", "child");
const JENNY: Who = Who::new(
    "19890422362",
    "Jenny",
    "Forsberg",
    "applying guardian, owner of the place",
);
const LIAM: Who = Who::new("20171130535", "Liam", "Forsberg", "child");
const PETER: Who = Who::new(
    "19800809473",
    "Peter",
    "Sandberg",
    "applying guardian, owner of the place",
);
const MAJA: Who = Who::new("20160204290", "Maja", "Sandberg", "child");
const MALIN: Who = Who::new("19781010402", "Malin", "Lindberg", "applicant");
const OSKAR: Who = Who::new("20090317387", "Oskar", "Lindberg", "student");
const MATS: Who = Who::new("19750525315", "Mats", "Nyberg", "applicant");
const ALICE: Who = Who::new("20080905274", "Alice", "Nyberg", "student");
const GUSTAV: Who = Who::new("19811224481", "Gustav", "Holmberg", "applying guardian");
const SAGA: Who = Who::new("20150909338", "Saga", "Holmberg", "child");
const LINNEA: Who = Who::new("19900228214", "Linnea", "Öst", "applying guardian");
const ELIAS: Who = Who::new("20160606373", "Elias", "Öst", "child");

/// Everyone the scenarios add.
const EVERYONE: [&Who; 26] = [
    &HELENA, &AXEL, &TOBIAS, &ELSA, &SOFIA, &NILS, &MAGNUS, &IDA, &JONAS, &LENA, &WILMA, &EMMA,
    &ANDERS, &HUGO, &JENNY, &LIAM, &PETER, &MAJA, &MALIN, &OSKAR, &MATS, &ALICE, &GUSTAV, &SAGA,
    &LINNEA, &ELIAS,
];

/// Where the fritidshem places are (Björkhagens skola: GR and FTH).
const FRITIDSHEM_UNIT: &str = "38120001";
/// The upper-secondary school of the students (Norrvikens gymnasium).
const GYMNASIUM_UNIT: &str = "38120003";

/// One scenario as answered.
struct Scenario {
    name: &'static str,
    check: &'static str,
    expect: String,
    people: Vec<&'static Who>,
    errands: Vec<u64>,
}

/// The dates of the scenarios' errands, relative to the day they are loaded.
struct Dates {
    posted: NaiveDate,
    from: NaiveDate,
    to: NaiveDate,
}

impl Dates {
    fn of(today: NaiveDate) -> Dates {
        Dates {
            posted: today - Days::new(60),
            from: today - Days::new(30),
            to: today
                .checked_add_months(Months::new(24))
                .unwrap_or(today + Days::new(730)),
        }
    }
}

/// Text for a CDATA section (a `]]>` in it split, though no scenario has one).
fn cdata(s: &str) -> String {
    format!("<![CDATA[{}]]>", s.replace("]]>", "]]]]><![CDATA[>"))
}

/// A skolskjuts export (family 136, version 28), in the shape of
/// `tests/fixtures/oep/skolskjuts-valdbarn.xml`: applicants under
/// `Values/ValdBarn/Guardians/Guardian/citizenIdentifier`.
fn skolskjuts(id: u64, d: &Dates, applicants: &[&Who], child: &Who) -> Result<String, String> {
    let posted = d.posted;
    let first = applicants.first().ok_or("an errand needs an applicant")?;
    let mut guardians = String::new();
    for g in applicants {
        guardians.push_str(&format!(
            "\t\t\t\t<Guardian>\n\t\t\t\t\t<firstname>{}</firstname>\n\t\t\t\t\t<lastname>{}</lastname>\n\
             \t\t\t\t\t<citizenIdentifier>{}</citizenIdentifier>\n\t\t\t\t</Guardian>\n",
            cdata(g.given),
            cdata(g.family),
            cdata(&g.pnr()?),
        ));
    }
    let email = format!(
        "{}.{}@exempel.se",
        first.given.to_lowercase(),
        first.family.to_lowercase()
    );
    Ok(format!(
        "<FlowInstance>\n\t<Header>\n\t\t<Flow>\n\t\t\t<FamilyID>136</FamilyID>\n\t\t\t<Version>28</Version>\n\
         \t\t\t<FlowID>2177</FlowID>\n\t\t\t<Name>\n\t\t\t\t{service}\n\t\t\t</Name>\n\t\t</Flow>\n\
         \t\t<FlowInstanceID>{id}</FlowInstanceID>\n\t\t<Status>\n\t\t\t<ID>14070</ID>\n\t\t\t<Name>\n\
         \t\t\t\t{status}\n\t\t\t</Name>\n\t\t</Status>\n\t\t<Poster>\n\t\t\t<Firstname>{pg}</Firstname>\n\
         \t\t\t<Lastname>{pf}</Lastname>\n\t\t\t<Email>{pe}</Email>\n\t\t\t<ID>{poster}</ID>\n\t\t</Poster>\n\
         \t\t<Posted>{posted}T09:12:00</Posted>\n\t\t<FirstSubmitted>{posted}T09:14:31</FirstSubmitted>\n\
         \t\t<LastSubmitted>{posted}T09:14:31</LastSubmitted>\n\t</Header>\n\t<Values>\n\
         \t\t<Handlaggare>\n\t\t\t<QueryID>60087</QueryID>\n\t\t\t<Name>{hq}</Name>\n\t\t\t<Value>{hv}</Value>\n\t\t</Handlaggare>\n\
         \t\t<ValdBarn>\n\t\t\t<QueryID>60090</QueryID>\n\t\t\t<Name>{vq}</Name>\n\
         \t\t\t<CitizenIdentifier>{cpnr}</CitizenIdentifier>\n\t\t\t<Firstname>{cg}</Firstname>\n\
         \t\t\t<Lastname>{cf}</Lastname>\n\t\t\t<Guardians>\n{guardians}\t\t\t</Guardians>\n\t\t</ValdBarn>\n\
         \t\t<SkolaAnsokan>\n\t\t\t<QueryID>60101</QueryID>\n\t\t\t<Name>{sq}</Name>\n\t\t\t<Value>{sv}</Value>\n\t\t</SkolaAnsokan>\n\
         \t\t<OmFritidsplats>\n\t\t\t<QueryID>60105</QueryID>\n\t\t\t<Name>{fq}</Name>\n\t\t\t<Value>{fv}</Value>\n\t\t</OmFritidsplats>\n\
         \t\t<BeslutPeriod>\n\t\t\t<QueryID>60110</QueryID>\n\t\t\t<Name>{pq}</Name>\n\
         \t\t\t<StartDate>{from}</StartDate>\n\t\t\t<EndDate>{to}</EndDate>\n\t\t</BeslutPeriod>\n\
         \t\t<Beslut>\n\t\t\t<QueryID>60111</QueryID>\n\t\t\t<Name>{bq}</Name>\n\t\t\t<Value>{bv}</Value>\n\t\t</Beslut>\n\
         \t</Values>\n</FlowInstance>\n",
        service = cdata("Ansökan om skolskjuts"),
        status = cdata("Beviljat"),
        pg = cdata(first.given),
        pf = cdata(first.family),
        pe = cdata(&email),
        poster = id - 900_000,
        hq = cdata("Handläggare"),
        hv = cdata("Handläggare, Fiktiv"),
        vq = cdata("Välj barn"),
        cpnr = cdata(&child.pnr()?),
        cg = cdata(child.given),
        cf = cdata(child.family),
        sq = cdata("Skola"),
        sv = cdata("Björkhagens skola"),
        fq = cdata("Har eleven fritidsplats? Ange i så fall namn på fritidsplatsen"),
        fv = cdata("Björkhagens fritidshem"),
        pq = cdata("Beslutet gäller för perioden"),
        from = d.from,
        to = d.to,
        bq = cdata("Beslut"),
        bv = cdata("Beviljad"),
    ))
}

/// An elevresa export (family 261, version 22, status Klart), in the shape of
/// `tests/fixtures/oep/elevresa.xml`.
fn elevresa(id: u64, d: &Dates, applicant: &Who, student: &Who) -> Result<String, String> {
    Ok(format!(
        "<FlowInstance>\n\t<Header>\n\t\t<Flow>\n\t\t\t<FamilyID>261</FamilyID>\n\t\t\t<Version>22</Version>\n\
         \t\t\t<FlowID>3120</FlowID>\n\t\t\t<Name>{service}</Name>\n\t\t</Flow>\n\
         \t\t<FlowInstanceID>{id}</FlowInstanceID>\n\t\t<Status>\n\t\t\t<ID>15010</ID>\n\
         \t\t\t<Name>{status}</Name>\n\t\t</Status>\n\t\t<Posted>{posted}T14:00:00</Posted>\n\
         \t\t<FirstSubmitted>{posted}T14:03:00</FirstSubmitted>\n\t</Header>\n\t<Values>\n\
         \t\t<ValAvVemSoker>\n\t\t\t<QueryID>61001</QueryID>\n\t\t\t<Name>{wq}</Name>\n\t\t\t<Value>{wv}</Value>\n\t\t</ValAvVemSoker>\n\
         \t\t<UppgifterSokande>\n\t\t\t<QueryID>61002</QueryID>\n\t\t\t<Name>{aq}</Name>\n\
         \t\t\t<Firstname>{ag}</Firstname>\n\t\t\t<Lastname>{af}</Lastname>\n\
         \t\t\t<SocialSecurityNumber>{apnr}</SocialSecurityNumber>\n\t\t</UppgifterSokande>\n\
         \t\t<UppgifterBarn>\n\t\t\t<QueryID>61003</QueryID>\n\t\t\t<Name>{sq}</Name>\n\
         \t\t\t<CitizenIdentifier>{spnr}</CitizenIdentifier>\n\t\t\t<Firstname>{sg}</Firstname>\n\
         \t\t\t<Lastname>{sf}</Lastname>\n\t\t</UppgifterBarn>\n\
         \t\t<Skola>\n\t\t\t<QueryID>61004</QueryID>\n\t\t\t<Name>{kq}</Name>\n\t\t\t<Value>{kv}</Value>\n\t\t</Skola>\n\
         \t\t<Enhet>\n\t\t\t<QueryID>61005</QueryID>\n\t\t\t<Name>{eq}</Name>\n\t\t\t<Value>{ev}</Value>\n\t\t</Enhet>\n\
         \t\t<IntygarOmEjInackorderingstillagg>\n\t\t\t<QueryID>61006</QueryID>\n\t\t\t<Name>{iq}</Name>\n\
         \t\t\t<Value>{iv}</Value>\n\t\t</IntygarOmEjInackorderingstillagg>\n\
         \t\t<BeslutetGallerForPerioden>\n\t\t\t<QueryID>61010</QueryID>\n\t\t\t<Name>{pq}</Name>\n\
         \t\t\t<StartDate>{from}</StartDate>\n\t\t\t<EndDate>{to}</EndDate>\n\t\t</BeslutetGallerForPerioden>\n\
         \t\t<Besked>\n\t\t\t<QueryID>61011</QueryID>\n\t\t\t<Name>{bq}</Name>\n\t\t\t<Value>{bv}</Value>\n\t\t</Besked>\n\
         \t</Values>\n</FlowInstance>\n",
        service = cdata("Busskortsansökan för gymnasieelever"),
        status = cdata("Klart"),
        posted = d.posted,
        wq = cdata("Vem söker?"),
        wv = cdata("Mitt barn"),
        aq = cdata("Uppgifter om dig som söker"),
        ag = cdata(applicant.given),
        af = cdata(applicant.family),
        apnr = cdata(&applicant.pnr()?),
        sq = cdata("Uppgifter om eleven"),
        spnr = cdata(&student.pnr()?),
        sg = cdata(student.given),
        sf = cdata(student.family),
        kq = cdata("Skola"),
        kv = cdata("Norrvikens gymnasium"),
        eq = cdata("Program"),
        ev = cdata("Naturvetenskapsprogrammet, Norrvikens gymnasium"),
        iq = cdata("Jag intygar att eleven inte har inackorderingstillägg"),
        iv = cdata("NEJ"),
        pq = cdata("Beslutet gäller för perioden"),
        from = d.from,
        to = d.to,
        bq = cdata("Besked"),
        bv = cdata("Eleven har rätt till elevresa med busskort till/från folkbokföringsadressen."),
    ))
}

/// A person at an address, guardian of `children`.
fn person(
    who: &Who,
    address: (&str, &str),
    children: &[&Who],
    since: NaiveDate,
) -> Result<NewPerson, String> {
    Ok(NewPerson {
        person_number: who.pnr()?,
        givenname: who.given.into(),
        lastname: who.family.into(),
        classified: Some(if who.protected { "J" } else { "N" }.into()),
        address: NewAddress::new(address.0, address.1, "Sundsvall"),
        since: Some(since),
        custodian_for: children.iter().map(|c| c.pnr()).collect::<Result<_, _>>()?,
    })
}

/// A move on `today` (the day of the call, as `_move`'s default).
fn moves(
    today: NaiveDate,
    who: &Who,
    address: NewAddress,
    emigrated: bool,
) -> Result<Move, String> {
    Ok(Move {
        person_number: who.pnr()?,
        address,
        date: Some(today),
        emigrated,
        deceased: false,
    })
}

/// A fritidshem placement of `child` at [`FRITIDSHEM_UNIT`], registered on `owner`.
fn fritidshem(
    child: &Who,
    owner: &Who,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    hours: Option<f64>,
) -> Result<NewPlacement, String> {
    Ok(NewPlacement {
        child: Reference::civic_no(&child.pnr()?),
        placed_at: Reference::school_unit_code(FRITIDSHEM_UNIT),
        school_type: "FTH".into(),
        start_date: start,
        end_date: end,
        max_weekly_schedule_hours: hours,
        reason: None,
        owners: Some(vec![Reference::civic_no(&owner.pnr()?)]),
    })
}

/// Load Skolresekollen's scenarios into `w` as of `today` (see the module docs); the
/// answer of `POST /sandbox/_scenarios/skolresekollen`. An error is the sandbox's own
/// fault (a scenario its systems refuse), never the caller's.
pub fn load_skolresekollen(w: &World, today: NaiveDate) -> Result<Value, String> {
    let d = Dates::of(today);
    let since = today - Days::new(365);
    let part_time_from = today - Days::new(365);
    let full_time_from = today - Days::new(7);
    // Within the polls' 1,100 days, so that only the cut-off can leave it out.
    let early = today - Days::new(700);

    let people = vec![
        person(&HELENA, ("Lönnvägen 8", "852 37"), &[&AXEL], since)?,
        person(&AXEL, ("Lönnvägen 8", "852 37"), &[], since)?,
        person(&TOBIAS, ("Aspvägen 2", "852 39"), &[&ELSA], since)?,
        person(&ELSA, ("Aspvägen 2", "852 39"), &[], since)?,
        person(&SOFIA, ("Vallmovägen 6", "856 33"), &[&NILS], since)?,
        person(&NILS, ("Vallmovägen 6", "856 33"), &[], since)?,
        person(&MAGNUS, ("Granbacken 14", "856 45"), &[&IDA], since)?,
        person(&IDA, ("Granbacken 14", "856 45"), &[], since)?,
        person(&JONAS, ("Björkstigen 9", "852 36"), &[&WILMA], since)?,
        person(&LENA, ("Björkstigen 9", "852 36"), &[&WILMA], since)?,
        person(&WILMA, ("Björkstigen 9", "852 36"), &[], since)?,
        person(&EMMA, ("Tallstigen 4", "856 41"), &[&HUGO], since)?,
        person(&ANDERS, ("Sjögatan 21", "852 34"), &[&HUGO], since)?,
        person(&HUGO, ("Tallstigen 4", "856 41"), &[], since)?,
        person(&JENNY, ("Rönnvägen 17", "853 56"), &[&LIAM], since)?,
        person(&LIAM, ("Rönnvägen 17", "853 56"), &[], since)?,
        person(&PETER, ("Hagvägen 5", "853 58"), &[&MAJA], since)?,
        person(&MAJA, ("Hagvägen 5", "853 58"), &[], since)?,
        person(&MALIN, ("Sörbyvägen 30", "853 57"), &[&OSKAR], since)?,
        person(&OSKAR, ("Sörbyvägen 30", "853 57"), &[], since)?,
        person(&MATS, ("Bergsvägen 11", "854 60"), &[&ALICE], since)?,
        person(&ALICE, ("Bergsvägen 11", "854 60"), &[], since)?,
        person(&GUSTAV, ("Lingonvägen 3", "856 50"), &[&SAGA], since)?,
        person(&SAGA, ("Lingonvägen 3", "856 50"), &[], since)?,
        person(&LINNEA, ("Blåbärsvägen 1", "856 54"), &[&ELIAS], since)?,
        person(&ELIAS, ("Blåbärsvägen 1", "856 54"), &[], since)?,
    ];
    let today_moves = vec![
        // a: the applying guardian moves; the child stays.
        moves(
            today,
            &HELENA,
            NewAddress::new("Ekbacken 3", "856 52", "Sundsvall"),
            false,
        )?,
        // b: together, the same address written differently.
        moves(
            today,
            &TOBIAS,
            NewAddress::new("Ekvägen 7", "853 50", "Sundsvall"),
            false,
        )?,
        moves(
            today,
            &ELSA,
            NewAddress::new("EKVÄGEN 7", "85350", "Sundsvall"),
            false,
        )?,
        // c: both protected.
        moves(
            today,
            &SOFIA,
            NewAddress::new("Gömda gränd 5", "855 92", "Sundsvall"),
            false,
        )?,
        moves(
            today,
            &NILS,
            NewAddress::new("Gömda gränd 5", "855 92", "Sundsvall"),
            false,
        )?,
        // d: emigrated.
        moves(
            today,
            &MAGNUS,
            NewAddress {
                address: "Strandgata 12".into(),
                postal_code: "9008".into(),
                city: "Tromsø".into(),
                municipality: None,
            },
            true,
        )?,
        // i: the student moves on her own address; the applicant's move does not count.
        moves(
            today,
            &ALICE,
            NewAddress::new("Storgatan 40", "852 30", "Sundsvall"),
            false,
        )?,
        moves(
            today,
            &MATS,
            NewAddress::new("Åkervägen 3", "854 62", "Sundsvall"),
            false,
        )?,
        // j: a guardian of an errand from before the cut-off.
        moves(
            today,
            &GUSTAV,
            NewAddress::new("Hjortronvägen 8", "856 51", "Sundsvall"),
            false,
        )?,
    ];
    // e, f, g: part time (15 h) until eight days ago, full time (40 h) from seven days ago;
    // l: a new place that stays part time.
    let mut placements = Vec::new();
    for (child, owner) in [(&WILMA, &LENA), (&HUGO, &ANDERS), (&LIAM, &JENNY)] {
        placements.push(fritidshem(
            child,
            owner,
            Some(part_time_from),
            None,
            Some(15.0),
        )?);
        placements.push(fritidshem(
            child,
            owner,
            None,
            Some(full_time_from - Days::new(1)),
            None,
        )?);
        placements.push(fritidshem(
            child,
            owner,
            Some(full_time_from),
            None,
            Some(40.0),
        )?);
    }
    placements.push(fritidshem(
        &MAJA,
        &PETER,
        Some(full_time_from),
        None,
        Some(15.0),
    )?);

    let early_dates = Dates {
        posted: early,
        ..Dates::of(today)
    };
    // (FlowInstanceID, export, withheld): the skolskjuts errands (one applicant each), the
    // elevresa ones; 930012 is the one OeP withholds.
    let mut errands: Vec<(u64, String, bool)> = Vec::new();
    for (id, dates, applicant, child) in [
        (930001, &d, &HELENA, &AXEL),
        (930002, &d, &TOBIAS, &ELSA),
        (930003, &d, &SOFIA, &NILS),
        (930004, &d, &MAGNUS, &IDA),
        (930005, &d, &JONAS, &WILMA),
        (930006, &d, &EMMA, &HUGO),
        (930007, &d, &JENNY, &LIAM),
        (930008, &d, &PETER, &MAJA),
        (930011, &early_dates, &GUSTAV, &SAGA),
        (930012, &d, &LINNEA, &ELIAS),
    ] {
        errands.push((
            id,
            skolskjuts(id, dates, &[applicant], child)?,
            id == 930012,
        ));
    }
    for (id, applicant, student) in [(930009, &MALIN, &OSKAR), (930010, &MATS, &ALICE)] {
        errands.push((id, elevresa(id, &d, applicant, student)?, false));
    }
    let csn_rows = vec![json!({
        "personnummer": OSKAR.pnr()?,
        "efternamn": OSKAR.family,
        "fornamn": OSKAR.given,
        "beslutsdatum": (today - Days::new(20)).to_string(),
        "fran": d.from.to_string(),
        "till": (d.from + Days::new(300)).to_string(),
        "belopp": "1190,00",
        "skolenhetskod": GYMNASIUM_UNIT,
        "skolort": "Härnösand",
    })];
    crate::csn::check_rows(&csn_rows)?;

    // The people, their moves and places: replaced as a whole (a placement of a scenario
    // child from an earlier load is taken away first).
    {
        let mut pop = write(&w.population);
        citizen::add_people(&mut pop, people)?;
        let children: Vec<uuid::Uuid> = EVERYONE
            .iter()
            .filter_map(|p| p.pnr().ok())
            .filter_map(|n| pop.person_by_civic_no(&n).map(|p| p.id))
            .collect();
        pop.placements.retain(|p| !children.contains(&p.child));
        for m in today_moves {
            citizen::move_person(&mut pop, m).map_err(|e| e.to_string())?;
        }
        for p in placements {
            elevregister::place(&mut pop, p)?;
        }
    }
    {
        let mut oep = lock(&w.oep);
        for (id, export, withheld) in &errands {
            oep.replace(export.as_bytes(), *withheld)
                .map_err(|e| format!("errand {id}: {e}"))?;
        }
    }
    lock(&w.csn).put(CSN_DELIVERY, &csn_rows);

    let scenarios = described(&d, full_time_from, early)?;
    Ok(json!({
        "scenarios": scenarios,
        "istExport": IST_EXPORT,
    }))
}

/// What each scenario is and what a run reports of it.
fn described(d: &Dates, full_time_from: NaiveDate, early: NaiveDate) -> Result<Vec<Value>, String> {
    let period = format!("{} – {}", d.from, d.to);
    let list = vec![
        Scenario {
            name: "moved guardian, child stays",
            check: "guardian-moved",
            expect: format!(
                "guardian-moved: one row for 930001 ({period}), Helena Wikström as Vårdnadshavare at her new address Ekbacken 3, 856 52 SUNDSVALL; none for Axel, who stays"
            ),
            people: vec![&HELENA, &AXEL],
            errands: vec![930001],
        },
        Scenario {
            name: "guardian and child move together",
            check: "guardian-moved",
            expect: "guardian-moved: one row for 930002, Tobias Lund as Vårdnadshavare at Ekvägen 7, 853 50 SUNDSVALL; none for Elsa, who moved to the same address (written EKVÄGEN 7, 85350)".into(),
            people: vec![&TOBIAS, &ELSA],
            errands: vec![930002],
        },
        Scenario {
            name: "protected child",
            check: "guardian-moved",
            expect: "guardian-moved: Sofia Dahl's row for 930003 says Skyddad adress and J (Nils's row, if any, too); nothing of their new address is in any report".into(),
            people: vec![&SOFIA, &NILS],
            errands: vec![930003],
        },
        Scenario {
            name: "emigrated guardian",
            check: "guardian-moved",
            expect: "guardian-moved: one row for 930004, Magnus Berglund as Vårdnadshavare, U, at Strandgata 12, 9008 TROMSØ".into(),
            people: vec![&MAGNUS, &IDA],
            errands: vec![930004],
        },
        Scenario {
            name: "cohabiting couple, full-time place registered on the second guardian",
            check: "fritids-fulltime",
            expect: format!(
                "fritids-fulltime: one row for 930005, Fritidsplats finns Lena Strand, Heltid från {full_time_from}: Wilma's place went from 15 to 40 h/week, registered on Lena, who lives with the applying Jonas"
            ),
            people: vec![&JONAS, &LENA, &WILMA],
            errands: vec![930005],
        },
        Scenario {
            name: "full-time place registered on a guardian living elsewhere",
            check: "fritids-fulltime",
            expect: "fritids-fulltime: no row for 930006: Hugo's full-time place is registered on Anders, who does not live with the applying Emma".into(),
            people: vec![&EMMA, &ANDERS, &HUGO],
            errands: vec![930006],
        },
        Scenario {
            name: "part-time to full-time place on the applying guardian",
            check: "fritids-fulltime",
            expect: format!(
                "fritids-fulltime: one row for 930007, Fritidsplats finns Jenny Forsberg, Heltid från {full_time_from}"
            ),
            people: vec![&JENNY, &LIAM],
            errands: vec![930007],
        },
        Scenario {
            name: "place that stays part time",
            check: "fritids-fulltime",
            expect: "fritids-fulltime: no row for 930008: Maja's new place is 15 h/week, below full time".into(),
            people: vec![&PETER, &MAJA],
            errands: vec![930008],
        },
        Scenario {
            name: "CSN hit",
            check: "boarding-allowance",
            expect: format!(
                "boarding-allowance: one row for 930009, Källa Inläst fil från CSN: CSN's delivery {CSN_DELIVERY} grants Oskar Lindberg inackorderingstillägg within his elevresa decision"
            ),
            people: vec![&MALIN, &OSKAR],
            errands: vec![930009],
        },
        Scenario {
            name: "student moved",
            check: "student-moved",
            expect: "student-moved: one row for 930010, Alice Nyberg's new address Storgatan 40, 852 30 SUNDSVALL; Mats's move (the applicant) gives none".into(),
            people: vec![&MATS, &ALICE],
            errands: vec![930010],
        },
        Scenario {
            name: "errand from before the e-service's cut-off",
            check: "guardian-moved",
            expect: format!("guardian-moved: no row for 930011, submitted {early}, once the e-service's cut-off (settings/skolresekollen.yaml, eservices.\"136\".submitted_from) is after that day, though Gustav Holmberg moved; with the shipped cut-off, 2021-01-01, it is checked like any other"),
            people: vec![&GUSTAV, &SAGA],
            errands: vec![930011],
        },
        Scenario {
            name: "errand OeP fails to return",
            check: "guardian-moved",
            expect: "guardian-moved and fritids-fulltime: 930012 is listed under unchecked, OeP lämnade inte ut ärendet… (OeP lists it, its export answers 500)".into(),
            people: vec![&LINNEA, &ELIAS],
            errands: vec![930012],
        },
    ];
    list.into_iter()
        .map(|s| {
            let people = s
                .people
                .iter()
                .map(|p| Ok(json!({"name": p.name(), "personNumber": p.pnr()?, "role": p.role})))
                .collect::<Result<Vec<Value>, String>>()?;
            Ok(json!({
                "name": s.name,
                "check": s.check,
                "expect": s.expect,
                "people": people,
                "errands": s.errands,
            }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::Population;

    #[test]
    fn every_scenario_person_is_valid_new_and_once() {
        let seed = Population::seed();
        let mut seen = std::collections::BTreeSet::new();
        for p in EVERYONE {
            let n = p.pnr().expect("a number");
            assert!(crate::personnummer::is_valid(&n), "{}", p.given);
            assert!(
                seed.person_by_civic_no(&n).is_none(),
                "{} is in the seed",
                p.given
            );
            seen.insert(n);
        }
        assert_eq!(seen.len(), EVERYONE.len(), "someone is listed twice");
    }

    #[test]
    fn loading_twice_is_loading_once() {
        let w = World::default();
        let today = NaiveDate::from_ymd_opt(2026, 12, 7).expect("a date");
        let first = load_skolresekollen(&w, today).expect("loaded");
        let count = |w: &World| {
            let pop = crate::read(&w.population);
            (
                pop.persons.len(),
                pop.placements.len(),
                pop.persons
                    .iter()
                    .filter(|p| p.address.since == today)
                    .count(),
                lock(&w.oep).list.len(),
                crate::ist_export::rows(&pop, today).len(),
            )
        };
        let once = count(&w);
        let second = load_skolresekollen(&w, today).expect("loaded again");
        assert_eq!(first, second);
        assert_eq!(count(&w), once);
        // Nine moves today; four open fritidshem places of the scenarios beside the seed's.
        assert_eq!(once.2, 9);
        let seed_places = crate::ist_export::rows(&Population::seed(), today).len();
        assert_eq!(once.4, seed_places + 4);
        let oep = lock(&w.oep);
        let withheld: Vec<u64> = oep
            .list
            .iter()
            .filter(|i| i.withheld)
            .map(|i| i.id)
            .collect();
        assert_eq!(withheld, vec![930012]);
        let early = oep.list.iter().find(|i| i.id == 930011).expect("930011");
        assert_eq!(early.added.date(), today - Days::new(700));
    }

    #[test]
    fn the_exports_read_as_the_fixtures_do() {
        let d = Dates::of(NaiveDate::from_ymd_opt(2026, 12, 7).expect("a date"));
        let doc = skolskjuts(930001, &d, &[&HELENA], &AXEL).expect("built");
        let root = crate::xml::parse(doc.as_bytes()).expect("XML");
        assert_eq!(root.text_at(&["Header", "Flow", "FamilyID"]), Some("136"));
        assert_eq!(
            root.text_at(&["Header", "Status", "Name"]).map(str::trim),
            Some("Beviljat")
        );
        assert_eq!(
            root.text_at(&[
                "Values",
                "ValdBarn",
                "Guardians",
                "Guardian",
                "citizenIdentifier"
            ]),
            Some(HELENA.pnr().expect("a number").as_str())
        );
        assert_eq!(
            root.text_at(&["Values", "BeslutPeriod", "EndDate"]),
            Some("2028-12-07")
        );
        let doc = elevresa(930010, &d, &MATS, &ALICE).expect("built");
        let root = crate::xml::parse(doc.as_bytes()).expect("XML");
        assert_eq!(root.text_at(&["Header", "Flow", "FamilyID"]), Some("261"));
        assert_eq!(root.text_at(&["Header", "Status", "Name"]), Some("Klart"));
        assert_eq!(
            root.text_at(&["Values", "UppgifterBarn", "CitizenIdentifier"]),
            Some(ALICE.pnr().expect("a number").as_str())
        );
    }
}
