//! The sandbox's fictional municipality: one coherent set of people, schools and
//! placements that every simulated system reads (and writes) so that what the elevregister
//! says about a child matches what Metakatalogen says about the child's guardians.
//!
//! Everyone here is invented. Personnummer are valid by Luhn (built with
//! [`with_check_digit`]); the seed tests check every one. The families:
//!
//! | family | guardians | children | what it exercises |
//! |---|---|---|---|
//! | Lindqvist | Anna + Erik, joint custody, same address | Märta (13, GR åk 7), Olle (8, GR + fritidshem) | the ordinary case |
//! | Nilsson | Sara, single custody | Leo (10, independent school + fritidshem) | independent operator |
//! | Berg | Johan and Lina, joint custody, apart | Ebba (17, GY) | two addresses; guardian of a 15–17-year-old |
//! | Hassan | Fatima, cohabiting with Karl Ek (not a guardian) | Yusuf (11, samordningsnummer) | samordningsnummer; cohabiting second adult |
//! | Sjöberg | Maria (skyddad folkbokföring) | Alva (12), Nora (17), both with skyddad folkbokföring | protected identity: no address may be shown; a guardian gets nothing of a protected child |
//! | Sandberg | Åsa + Mikael, joint custody, same address | Elin (14), Viktor (16), no placement here | guardian access: approve (under 15) and view (15–17) |
//! | Karlsson | — | Noah (20, adult student) | of age; IKE |
//! | Öberg | Per (single custody) | Vera (4, independent förskola) | förskola |
//!
//! The teachers (adults without children in the seed), each holding a signing key in the
//! elevregister simulation:
//!
//! | teacher | school unit | groups | what it exercises |
//! |---|---|---|---|
//! | Karin Ström | Björkhagens skola (38120001) | 7B: Märta Lindqvist, Alva Sjöberg (skyddad folkbokföring), Yusuf Hassan (samordningsnummer) | grading teacher of a class with a protected student; signs its grade catalogues |
//! | Lars Nordin | Norrvikens gymnasium (38120003) | NA24A: Ebba Berg | upper-secondary courses; a second signer |
//! | Lars Ek | Björkhagens skola (38120001) | — | registers attendance in lärplattform (use case 4) |

use chrono::NaiveDate;
use serde::Serialize;
use uuid::Uuid;

use crate::personnummer::with_check_digit;

/// The namespace of the sandbox's deterministic ids (UUIDv5 of a civic number or code).
const NAMESPACE: Uuid = Uuid::from_u128(0x6b6e_7574_2d73_616e_6462_6f78_2d69_6473);

/// A deterministic id for a key (the same on every start).
pub fn id_for(key: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, key.as_bytes())
}

/// A postal address.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    /// Street and number.
    pub street: String,
    /// Postal code (`852 30`).
    pub postal_code: String,
    /// Town.
    pub city: String,
    /// Municipality code (`2281` = Sundsvall).
    pub municipality: String,
    /// Since when the person lives here.
    pub since: NaiveDate,
    /// Local grid coordinates (metres, SWEREF 99 TM) of the address: people at the same
    /// address have the same coordinates.
    pub x: f64,
    /// See `x`.
    pub y: f64,
}

/// A person.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// Stable id (SS 12000 person id, Citizen personId).
    pub id: Uuid,
    /// Personnummer or samordningsnummer, 12 digits.
    pub civic_no: String,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// `F` or `M`.
    pub gender: &'static str,
    /// Skyddad folkbokföring: the address must never be shown.
    pub protected: bool,
    /// Where the person is registered.
    pub address: Address,
    /// Guardians (ids), for children.
    pub guardians: Vec<Uuid>,
    /// The address before the last move (Metakatalogen's `Previous`), once moved.
    pub previous: Option<Address>,
    /// Deregistered from the population register: `UV` (emigrated) or `AV` (deceased), and
    /// when.
    pub deregistered: Option<(String, NaiveDate)>,
    /// E-mail, for adults.
    pub email: Option<String>,
    /// Mobile number, for adults.
    pub phone: Option<String>,
}

impl Person {
    /// `given family`.
    pub fn display_name(&self) -> String {
        format!("{} {}", self.given_name, self.family_name)
    }
}

/// A school unit (skolenhet) and its operator (huvudman).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchoolUnit {
    /// Stable id.
    pub id: Uuid,
    /// Skolenhetskod (8 digits).
    pub school_unit_code: String,
    /// Name.
    pub display_name: String,
    /// SS 12000 school types offered (`FS`, `FTH`, `GR`, `GY`, `VUX`).
    pub school_types: Vec<&'static str>,
    /// The operator's name.
    pub operator: String,
    /// The operator's organisationsnummer (10 digits with `-`).
    pub operator_org_no: String,
    /// True for an independent (fristående) operator.
    pub independent: bool,
}

/// A placement (SS 12000 Placement) of a child at a school unit.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Stable id.
    pub id: Uuid,
    /// The child.
    pub child: Uuid,
    /// The school unit.
    pub placed_at: Uuid,
    /// SS 12000 school type (`FS`, `FTH`, `GR`, `GY`, `VUX`).
    pub school_type: String,
    /// First day.
    pub start_date: NaiveDate,
    /// Last day, if ended.
    pub end_date: Option<NaiveDate>,
    /// Weekly hours (fritidshem/förskola scope), if known.
    pub max_weekly_schedule_hours: Option<f64>,
    /// Why the placement was made or changed, as reported.
    pub reason: Option<String>,
    /// The guardians the place is registered on (SS 12000 `owners`); the seed's
    /// placements have none.
    pub owners: Vec<Uuid>,
}

/// A teacher (SS 12000 Duty `Lärare`) at a school unit.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Teacher {
    /// The person.
    pub person: Uuid,
    /// The school unit the duty is at.
    pub duty_at: Uuid,
    /// The teacher's signature (initials), as on a grade catalogue.
    pub signature: String,
}

/// A group (SS 12000 Group, a class) at a school unit, with its members and the teacher who
/// grades it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// Stable id.
    pub id: Uuid,
    /// Name, e.g. `7B`.
    pub display_name: String,
    /// SS 12000 group type (`Klass`).
    pub group_type: String,
    /// SS 12000 school type (`GR`, `GY`).
    pub school_type: String,
    /// The school unit.
    pub organisation: Uuid,
    /// First day.
    pub start_date: NaiveDate,
    /// The students (person ids).
    pub members: Vec<Uuid>,
    /// The grading teacher (person id).
    pub grading_teacher: Uuid,
}

/// The whole fictional municipality.
#[derive(Debug, Clone)]
pub struct Population {
    /// Everyone.
    pub persons: Vec<Person>,
    /// The school units.
    pub units: Vec<SchoolUnit>,
    /// The placements.
    pub placements: Vec<Placement>,
    /// The teachers.
    pub teachers: Vec<Teacher>,
    /// The groups (classes).
    pub groups: Vec<Group>,
}

impl Population {
    /// The person with this id.
    pub fn person(&self, id: Uuid) -> Option<&Person> {
        self.persons.iter().find(|p| p.id == id)
    }

    /// The person with this civic number (12 digits, or with `-`; 10 digits not accepted).
    pub fn person_by_civic_no(&self, civic_no: &str) -> Option<&Person> {
        let digits: String = civic_no.chars().filter(char::is_ascii_digit).collect();
        self.persons.iter().find(|p| p.civic_no == digits)
    }

    /// The children whose guardian `guardian` is.
    pub fn children_of(&self, guardian: Uuid) -> impl Iterator<Item = &Person> {
        self.persons
            .iter()
            .filter(move |p| p.guardians.contains(&guardian))
    }

    /// The school unit with this id or skolenhetskod.
    pub fn unit(&self, id_or_code: &str) -> Option<&SchoolUnit> {
        self.units
            .iter()
            .find(|u| u.school_unit_code == id_or_code || u.id.to_string() == id_or_code)
    }

    /// The teacher who is this person, if the person is one.
    pub fn teacher(&self, person: Uuid) -> Option<&Teacher> {
        self.teachers.iter().find(|t| t.person == person)
    }

    /// The group with this id.
    pub fn group(&self, id: Uuid) -> Option<&Group> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// The group of this name at the school unit `unit` (id).
    pub fn group_named(&self, unit: Uuid, name: &str) -> Option<&Group> {
        self.groups
            .iter()
            .find(|g| g.organisation == unit && g.display_name == name)
    }
}

fn pnr(first_eleven: &str) -> String {
    // The seed is a constant table: a bad entry is caught by the seed test.
    with_check_digit(first_eleven).unwrap_or_else(|| first_eleven.to_string())
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

fn address(
    street: &str,
    postal_code: &str,
    city: &str,
    since: NaiveDate,
    (x, y): (f64, f64),
) -> Address {
    Address {
        street: street.into(),
        postal_code: postal_code.into(),
        city: city.into(),
        municipality: if city == "Timrå" { "2262" } else { "2281" }.into(),
        since,
        x,
        y,
    }
}

struct NewPerson<'a> {
    pnr11: &'a str,
    given: &'a str,
    family: &'a str,
    gender: &'static str,
    address: &'a Address,
    guardians: &'a [&'a str],
    protected: bool,
}

fn person(p: NewPerson<'_>) -> Person {
    let civic_no = pnr(p.pnr11);
    let adult = p.guardians.is_empty();
    let login = format!("{}.{}", p.given, p.family)
        .to_lowercase()
        .replace(['å', 'ä'], "a")
        .replace('ö', "o");
    Person {
        id: id_for(&civic_no),
        given_name: p.given.into(),
        family_name: p.family.into(),
        gender: p.gender,
        protected: p.protected,
        address: p.address.clone(),
        guardians: p.guardians.iter().map(|g| id_for(&pnr(g))).collect(),
        previous: None,
        deregistered: None,
        email: adult.then(|| format!("{login}@exempel.se")),
        phone: adult.then(|| "+46700000000".to_string()),
        civic_no,
    }
}

fn unit(
    code: &str,
    name: &str,
    types: &[&'static str],
    operator: (&str, &str),
    independent: bool,
) -> SchoolUnit {
    SchoolUnit {
        id: id_for(code),
        school_unit_code: code.into(),
        display_name: name.into(),
        school_types: types.to_vec(),
        operator: operator.0.into(),
        operator_org_no: operator.1.into(),
        independent,
    }
}

fn placement(
    child: &str,
    unit_code: &str,
    school_type: &str,
    start: NaiveDate,
    hours: Option<f64>,
) -> Placement {
    let child = id_for(&pnr(child));
    Placement {
        id: id_for(&format!("{child}/{unit_code}/{school_type}")),
        child,
        placed_at: id_for(unit_code),
        school_type: school_type.into(),
        start_date: start,
        end_date: None,
        max_weekly_schedule_hours: hours,
        reason: None,
        owners: Vec::new(),
    }
}

impl Default for Population {
    fn default() -> Self {
        Population::seed()
    }
}

impl Population {
    /// The seeded municipality (see the module docs).
    pub fn seed() -> Population {
        let kommunen = ("Sundsvalls kommun", "212000-2411");
        let units = vec![
            unit(
                "38120001",
                "Björkhagens skola",
                &["GR", "FTH"],
                kommunen,
                false,
            ),
            unit(
                "38120002",
                "Tallbackens friskola",
                &["GR", "FTH"],
                ("Tallbacken Utbildning AB", "559999-9991"),
                true,
            ),
            unit("38120003", "Norrvikens gymnasium", &["GY"], kommunen, false),
            unit(
                "38120004",
                "Lillskogens förskola",
                &["FS"],
                ("Lillskogen Förskolor AB", "559000-1235"),
                true,
            ),
            unit(
                "38120005",
                "Sundsvalls lärcenter",
                &["VUX"],
                kommunen,
                false,
            ),
            // Another municipality's adult education (IKE: Sundsvall pays when one of its
            // residents studies there).
            unit(
                "22620001",
                "Timrå vuxenutbildning",
                &["VUX"],
                ("Timrå kommun", "212000-2262"),
                false,
            ),
        ];
        // Sara and Leo Nilsson moved this autumn, as did Johan Berg with Ebba: the
        // address-change checks have something to find.
        let lindqvist = address(
            "Granvägen 4",
            "852 38",
            "Sundsvall",
            date(2015, 6, 1),
            (616_820.0, 6_921_410.0),
        );
        let nilsson = address(
            "Storgatan 17 lgh 1102",
            "852 30",
            "Sundsvall",
            date(2026, 11, 2),
            (617_450.0, 6_920_870.0),
        );
        let berg_johan = address(
            "Lasarettsvägen 9",
            "856 43",
            "Sundsvall",
            date(2026, 10, 15),
            (615_990.0, 6_923_140.0),
        );
        let berg_lina = address(
            "Norra vägen 31",
            "861 36",
            "Timrå",
            date(2021, 1, 15),
            (620_310.0, 6_931_560.0),
        );
        let hassan = address(
            "Bergsgatan 112",
            "852 35",
            "Sundsvall",
            date(2018, 8, 1),
            (617_120.0, 6_921_980.0),
        );
        // The real address of the Sjöbergs (skyddad folkbokföring): only Metakatalogen
        // gives it, and only when asked with ShowClassified=true; nothing may show it.
        let hidden = address(
            "Skogsstigen 2",
            "855 90",
            "Sundsvall",
            date(2022, 1, 1),
            (612_700.0, 6_925_300.0),
        );
        let karlsson = address(
            "Esplanaden 3",
            "852 31",
            "Sundsvall",
            date(2025, 8, 1),
            (617_300.0, 6_920_500.0),
        );
        let oberg = address(
            "Sidsjövägen 20",
            "856 53",
            "Sundsvall",
            date(2021, 5, 1),
            (615_400.0, 6_920_100.0),
        );
        let strom = address(
            "Tallvägen 11",
            "856 31",
            "Sundsvall",
            date(2012, 3, 1),
            (616_050.0, 6_922_770.0),
        );
        let nordin = address(
            "Köpmangatan 5",
            "852 32",
            "Sundsvall",
            date(2008, 9, 1),
            (617_380.0, 6_920_640.0),
        );
        let sandberg = address(
            "Vallmovägen 6",
            "856 34",
            "Sundsvall",
            date(2016, 4, 1),
            (615_870.0, 6_922_410.0),
        );
        let p = |pnr11, given, family, gender, address, guardians, protected| {
            person(NewPerson {
                pnr11,
                given,
                family,
                gender,
                address,
                guardians,
                protected,
            })
        };
        let persons = vec![
            p(
                "19850312238",
                "Anna",
                "Lindqvist",
                "F",
                &lindqvist,
                &[],
                false,
            ),
            p(
                "19830921457",
                "Erik",
                "Lindqvist",
                "M",
                &lindqvist,
                &[],
                false,
            ),
            p(
                "20130412238",
                "Märta",
                "Lindqvist",
                "F",
                &lindqvist,
                &["19850312238", "19830921457"],
                false,
            ),
            p(
                "20180103411",
                "Olle",
                "Lindqvist",
                "M",
                &lindqvist,
                &["19850312238", "19830921457"],
                false,
            ),
            p("19900715862", "Sara", "Nilsson", "F", &nilsson, &[], false),
            p(
                "20160220131",
                "Leo",
                "Nilsson",
                "M",
                &nilsson,
                &["19900715862"],
                false,
            ),
            p("19800101931", "Johan", "Berg", "M", &berg_johan, &[], false),
            p(
                "19820505782",
                "Lina",
                "Berg Holm",
                "F",
                &berg_lina,
                &[],
                false,
            ),
            p(
                "20090818342",
                "Ebba",
                "Berg",
                "F",
                &berg_johan,
                &["19800101931", "19820505782"],
                false,
            ),
            p("19881130246", "Fatima", "Hassan", "F", &hassan, &[], false),
            p("19860604119", "Karl", "Ek", "M", &hassan, &[], false),
            // Samordningsnummer: day of birth + 60 (born the 9th → 69).
            p(
                "20150369271",
                "Yusuf",
                "Hassan",
                "M",
                &hassan,
                &["19881130246"],
                false,
            ),
            p("19840227664", "Maria", "Sjöberg", "F", &hidden, &[], true),
            p(
                "20140909322",
                "Alva",
                "Sjöberg",
                "F",
                &hidden,
                &["19840227664"],
                true,
            ),
            p(
                "20060514335",
                "Noah",
                "Karlsson",
                "M",
                &karlsson,
                &[],
                false,
            ),
            p("19790823513", "Per", "Öberg", "M", &oberg, &[], false),
            p(
                "20220401224",
                "Vera",
                "Öberg",
                "F",
                &oberg,
                &["19790823513"],
                false,
            ),
            // Guardian access (issue 12): Åsa and Mikael Sandberg have joint custody of Elin
            // (14: her guardians approve her applications) and Viktor (16: they may view his);
            // Nora Sjöberg (17) has skyddad folkbokföring like her mother, so her guardian
            // gets nothing of hers.
            p("19800611246", "Åsa", "Sandberg", "F", &sandberg, &[], false),
            p(
                "19780214457",
                "Mikael",
                "Sandberg",
                "M",
                &sandberg,
                &[],
                false,
            ),
            p(
                "20120503242",
                "Elin",
                "Sandberg",
                "F",
                &sandberg,
                &["19800611246", "19780214457"],
                false,
            ),
            p(
                "20100214457",
                "Viktor",
                "Sandberg",
                "M",
                &sandberg,
                &["19800611246", "19780214457"],
                false,
            ),
            p(
                "20090321248",
                "Nora",
                "Sjöberg",
                "F",
                &hidden,
                &["19840227664"],
                true,
            ),
            // The teachers.
            p("19790315248", "Karin", "Ström", "F", &strom, &[], false),
            p("19720611357", "Lars", "Nordin", "M", &nordin, &[], false),
        ];
        let mut persons = persons;
        // Teacher for attendance (use case 4): Lars Ek teaches at Björkhagens skola 38120001.
        let ek = address(
            "Bruksgatan 8",
            "852 33",
            "Sundsvall",
            date(2012, 3, 1),
            (617_010.0, 6_921_150.0),
        );
        persons.push(p("19760415123", "Lars", "Ek", "M", &ek, &[], false));
        let placements = vec![
            placement("20130412238", "38120001", "GR", date(2019, 8, 19), None),
            placement("20180103411", "38120001", "GR", date(2024, 8, 19), None),
            placement(
                "20180103411",
                "38120001",
                "FTH",
                date(2024, 8, 19),
                Some(15.0),
            ),
            placement("20160220131", "38120002", "GR", date(2022, 8, 22), None),
            placement(
                "20160220131",
                "38120002",
                "FTH",
                date(2022, 8, 22),
                Some(20.0),
            ),
            placement("20090818342", "38120003", "GY", date(2025, 8, 18), None),
            placement("20150369271", "38120001", "GR", date(2021, 8, 16), None),
            placement(
                "20150369271",
                "38120001",
                "FTH",
                date(2021, 8, 16),
                Some(10.0),
            ),
            placement("20140909322", "38120001", "GR", date(2020, 8, 17), None),
            placement("20060514335", "38120005", "VUX", date(2026, 1, 12), None),
            placement(
                "20220401224",
                "38120004",
                "FS",
                date(2023, 8, 1),
                Some(30.0),
            ),
        ];
        let teachers = vec![
            teacher("19790315248", "38120001", "KS"),
            teacher("19720611357", "38120003", "LN"),
            teacher("19760415123", "38120001", "LE"),
        ];
        let groups = vec![
            group(
                "7B",
                "38120001",
                "GR",
                &["20130412238", "20140909322", "20150369271"],
                "19790315248",
            ),
            group("NA24A", "38120003", "GY", &["20090818342"], "19720611357"),
        ];
        Population {
            persons,
            units,
            placements,
            teachers,
            groups,
        }
    }
}

fn teacher(pnr11: &str, unit_code: &str, signature: &str) -> Teacher {
    Teacher {
        person: id_for(&pnr(pnr11)),
        duty_at: id_for(unit_code),
        signature: signature.into(),
    }
}

fn group(
    name: &str,
    unit_code: &str,
    school_type: &str,
    members: &[&str],
    grading_teacher: &str,
) -> Group {
    Group {
        id: id_for(&format!("group/{unit_code}/{name}")),
        display_name: name.into(),
        group_type: "Klass".into(),
        school_type: school_type.into(),
        organisation: id_for(unit_code),
        start_date: date(2026, 8, 17),
        members: members.iter().map(|m| id_for(&pnr(m))).collect(),
        grading_teacher: id_for(&pnr(grading_teacher)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::personnummer::is_valid;

    /// (Knutpunkt's tests also parse every seeded number with its own personnummer module.)
    #[test]
    fn every_civic_number_is_valid_and_unique() {
        let pop = Population::seed();
        let mut seen = std::collections::HashSet::new();
        for p in &pop.persons {
            assert!(is_valid(&p.civic_no), "{} {}", p.given_name, p.family_name);
            assert!(seen.insert(p.civic_no.clone()));
            let coordination = p.civic_no[6..8].parse::<u32>().is_ok_and(|d| d > 60);
            assert_eq!(coordination, p.given_name == "Yusuf", "{}", p.given_name);
        }
    }

    #[test]
    fn the_families_are_coherent() {
        let pop = Population::seed();
        for child in pop.persons.iter().filter(|p| !p.guardians.is_empty()) {
            for g in &child.guardians {
                assert!(pop.person(*g).is_some(), "guardian of {}", child.given_name);
            }
        }
        let ebba = pop
            .person_by_civic_no("20090818342")
            .map(|p| p.guardians.len());
        assert!(ebba.is_none(), "a civic number needs its check digit");
        let marta = pop
            .persons
            .iter()
            .find(|p| p.given_name == "Märta")
            .expect("Märta");
        assert_eq!(marta.guardians.len(), 2, "joint custody");
        assert!(
            pop.persons
                .iter()
                .any(|p| p.protected && !p.guardians.is_empty())
        );
        for pl in &pop.placements {
            assert!(pop.person(pl.child).is_some());
            assert!(pop.units.iter().any(|u| u.id == pl.placed_at));
        }
        assert_eq!(pop.children_of(marta.guardians[0]).count(), 2);
        assert!(pop.unit("38120002").is_some_and(|u| u.independent));
    }

    #[test]
    fn the_attendance_teacher_is_an_adult_of_no_family() {
        let pop = Population::seed();
        let lars = pop.person_by_civic_no("197604151238").expect("Lars Ek");
        assert_eq!(lars.display_name(), "Lars Ek");
        assert!(lars.guardians.is_empty() && lars.email.is_some() && !lars.protected);
        assert_eq!(pop.children_of(lars.id).count(), 0);
        assert!(pop.placements.iter().all(|p| p.child != lars.id));
        assert!(pop.teacher(lars.id).is_some(), "a teacher of the register");
    }

    #[test]
    fn every_group_has_its_teacher_and_students_at_its_unit() {
        let pop = Population::seed();
        assert!(!pop.groups.is_empty());
        for g in &pop.groups {
            let unit = pop.units.iter().find(|u| u.id == g.organisation);
            assert!(unit.is_some(), "{}", g.display_name);
            let t = pop.teacher(g.grading_teacher).expect("a seeded teacher");
            assert_eq!(t.duty_at, g.organisation, "{}", g.display_name);
            let person = pop.person(t.person).expect("the teacher is a person");
            assert!(person.guardians.is_empty(), "a teacher is an adult");
            for m in &g.members {
                let child = pop.person(*m).expect("a member is a person");
                assert!(!child.guardians.is_empty(), "{}", child.given_name);
                assert!(
                    pop.placements.iter().any(|p| p.child == *m
                        && p.placed_at == g.organisation
                        && p.school_type == g.school_type),
                    "{} is placed at the group's unit",
                    child.given_name
                );
            }
        }
        let b7 = pop
            .group_named(id_for("38120001"), "7B")
            .expect("7B at Björkhagens skola");
        assert_eq!(b7.members.len(), 3);
        assert!(
            b7.members
                .iter()
                .any(|m| pop.person(*m).is_some_and(|p| p.protected)),
            "7B has a student with skyddad folkbokföring"
        );
        let karin = pop.person(b7.grading_teacher).expect("Karin");
        assert_eq!(karin.display_name(), "Karin Ström");
        assert_eq!(karin.civic_no, "197903152481");
        assert_eq!(pop.teachers.len(), 3);
    }
}
