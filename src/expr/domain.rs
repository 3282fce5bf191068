//! Domain functions for jq programs, implemented as jaq native functions on top of
//! [`super::personnummer`].
//!
//! | function | input | output |
//! |---|---|---|
//! | `personnummer_valid` | any value | `true` if it is a string holding a valid personnummer or samordningsnummer, else `false` |
//! | `personnummer_canonical` | personnummer string | its 12 digits (`"130412-2383"` → `"201304122383"`: the century from the separator and today) |
//! | `personnummer_birthdate` | personnummer string | birth date `"YYYY-MM-DD"` (samordningsnummer: day − 60) |
//! | `age($date)` | personnummer string | whole years on `$date` (`"YYYY-MM-DD"`) |
//! | `is_adult($date)` | personnummer string | `age($date) >= 18` |
//! | `mask_personnummer` | string (or `null`) | the string with every personnummer-shaped value masked (`20100101-****`) |
//! | `spring_filter` | object `{field: value, …}` | a case-data `filter` query: `field:'value' and …` in spring-filter syntax, every value quoted and escaped (`'` and `\\`), so a value can never change the filter; `null` gives `field is null`. Field names are letters, digits, `_` and `.` |
//! | `to_stockholm` | seconds since the epoch (`now`) or an RFC 3339 time | that instant as Swedish wall-clock time, RFC 3339 with its offset (`now \| to_stockholm \| .[0:10]` is today's date in Sweden) |
//! | `stockholm_time($hhmm)` | date `"YYYY-MM-DD"` | that date and wall-clock time in Sweden as RFC 3339 with its offset (`"2027-02-15" \| stockholm_time("08:00")` → `"2027-02-15T08:00:00+01:00"`; summer time `+02:00`) |
//!
//! Accepted forms are those of [`super::personnummer::parse`]. Errors say what is wrong
//! (not a string, not a valid personnummer, bad date) and never contain the value.

use jaq_core::box_iter::box_once;
use jaq_core::native::{Fun, bome, run, v};
use jaq_core::{Cv, Error, ValXs};
use jaq_json::Val;

use super::Data;
use super::personnummer::{self, Personnummer};

/// Age of majority in Sweden (myndig).
const ADULT_AGE: u32 = 18;

/// The native functions of this module, ready for the compiler.
pub(crate) fn funs() -> impl Iterator<Item = Fun<Data>> {
    let funs: [jaq_core::native::Filter<jaq_core::RunPtr<Data>>; 9] = [
        ("spring_filter", v(0), |cv| bome(spring_filter(&cv.1))),
        ("personnummer_valid", v(0), |cv| {
            let valid = as_str(&cv.1).is_some_and(|s| personnummer::parse(s).is_ok());
            box_once(Ok(Val::Bool(valid)))
        }),
        ("personnummer_canonical", v(0), |cv| {
            bome(pnr("personnummer_canonical", &cv.1).map(|p| Val::utf8_str(p.canonical())))
        }),
        ("personnummer_birthdate", v(0), |cv| {
            bome(
                pnr("personnummer_birthdate", &cv.1)
                    .map(|p| Val::utf8_str(p.birth_date().format("%Y-%m-%d").to_string())),
            )
        }),
        ("age", v(1), |cv| {
            age_fn(cv, "age", |age| Val::from(age as usize))
        }),
        ("is_adult", v(1), |cv| {
            age_fn(cv, "is_adult", |age| Val::Bool(age >= ADULT_AGE))
        }),
        ("to_stockholm", v(0), |cv| bome(to_stockholm(&cv.1))),
        ("stockholm_time", v(1), |mut cv| {
            let time = cv.0.pop_var();
            bome(stockholm_time(&cv.1, &time))
        }),
        ("mask_personnummer", v(0), |cv| {
            bome(match &cv.1 {
                Val::Null => Ok(Val::Null),
                v => match as_str(v) {
                    Some(s) => Ok(Val::utf8_str(personnummer::mask(s))),
                    None => Err(Error::str(format!(
                        "mask_personnummer: input must be a string, not {}",
                        type_name(v)
                    ))),
                },
            })
        }),
    ];
    funs.into_iter().map(run::<Data>)
}

/// `{field: value, …} | spring_filter`: a spring-filter expression where every value is a
/// quoted, escaped literal (a value never becomes filter syntax).
fn spring_filter(input: &Val) -> Result<Val, Error<Val>> {
    let serde_json::Value::Object(fields) = super::from_val(input) else {
        return Err(Error::str(format!(
            "spring_filter: input must be an object of fields and values, not {}",
            type_name(input)
        )));
    };
    let mut parts = Vec::new();
    for (field, value) in &fields {
        let valid = field
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && field
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !valid {
            return Err(Error::str(
                "spring_filter: a field name is letters, digits, `_` and `.`",
            ));
        }
        let part = match value {
            serde_json::Value::Null => format!("{field} is null"),
            serde_json::Value::Bool(b) => format!("{field}:{b}"),
            serde_json::Value::Number(n) => format!("{field}:{n}"),
            serde_json::Value::String(s) => {
                format!("{field}:'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
            }
            _ => {
                return Err(Error::str(
                    "spring_filter: a value is a string, number, boolean or null",
                ));
            }
        };
        parts.push(part);
    }
    if parts.is_empty() {
        return Err(Error::str("spring_filter: give at least one field"));
    }
    Ok(Val::utf8_str(parts.join(" and ")))
}

/// `instant | to_stockholm`: the instant (seconds since the epoch, or RFC 3339) as Swedish
/// wall-clock time, RFC 3339 with its offset.
fn to_stockholm(instant: &Val) -> Result<Val, Error<Val>> {
    let utc = match super::from_val(instant) {
        serde_json::Value::Number(n) => n.as_f64().and_then(|secs| {
            let whole = secs.floor();
            // Whole seconds within chrono's range; the fraction is dropped.
            (whole.abs() < 1e14)
                .then(|| chrono::DateTime::from_timestamp(whole as i64, 0))
                .flatten()
        }),
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(&s)
            .ok()
            .map(|t| t.to_utc()),
        _ => None,
    }
    .ok_or_else(|| {
        Error::str(
            "to_stockholm: input must be seconds since the epoch (`now`) or an RFC 3339 time",
        )
    })?;
    Ok(Val::utf8_str(
        utc.with_timezone(&chrono_tz::Europe::Stockholm)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
    ))
}

/// `date | stockholm_time(time)`: the RFC 3339 form of a Swedish wall-clock time.
fn stockholm_time(date: &Val, time: &Val) -> Result<Val, Error<Val>> {
    use chrono::TimeZone;
    let date = as_str(date)
        .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .ok_or_else(|| Error::str("stockholm_time: input must be a date string \"YYYY-MM-DD\""))?;
    let time = as_str(time)
        .and_then(|s| {
            chrono::NaiveTime::parse_from_str(s, "%H:%M")
                .or_else(|_| chrono::NaiveTime::parse_from_str(s, "%H:%M:%S"))
                .ok()
        })
        .ok_or_else(|| {
            Error::str("stockholm_time($time): $time must be \"HH:MM\" or \"HH:MM:SS\"")
        })?;
    // A time that does not exist (the hour skipped in spring) is refused; one that exists
    // twice (autumn) is taken the first time.
    let local = chrono_tz::Europe::Stockholm
        .from_local_datetime(&date.and_time(time))
        .earliest()
        .ok_or_else(|| {
            Error::str("stockholm_time: that time does not exist in Sweden (summer time begins)")
        })?;
    Ok(Val::utf8_str(
        local.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
    ))
}

fn age_fn<'a>(mut cv: Cv<'a, Data>, name: &str, out: impl Fn(u32) -> Val) -> ValXs<'a, Val> {
    let date = cv.0.pop_var();
    let result = pnr(name, &cv.1).and_then(|p| {
        let date = as_str(&date)
            .and_then(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .ok_or_else(|| {
                Error::str(format!(
                    "{name}($date): $date must be a date string \"YYYY-MM-DD\""
                ))
            })?;
        Ok(out(p.age_on(date)))
    });
    bome(result)
}

fn pnr(name: &str, v: &Val) -> Result<Personnummer, Error<Val>> {
    let s = as_str(v).ok_or_else(|| {
        Error::str(format!(
            "{name}: input must be a personnummer string, not {}",
            type_name(v)
        ))
    })?;
    personnummer::parse(s).map_err(|e| Error::str(format!("{name}: {e}")))
}

fn as_str(v: &Val) -> Option<&str> {
    match v {
        Val::TStr(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

fn type_name(v: &Val) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "a boolean",
        Val::Num(_) => "a number",
        Val::TStr(_) | Val::BStr(_) => "a string",
        Val::Arr(_) => "an array",
        Val::Obj(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::{ExprError, Program, Vars};
    use serde_json::{Value, json};

    // Fictional personnummer, constructed with valid Luhn digits:
    // 20071022-1235 born 2007-10-22; 20130361-1238 samordningsnummer born 2013-03-01;
    // 20120229-1231 born on the leap day 2012-02-29.
    fn run(src: &str, input: Value) -> Result<Vec<Value>, ExprError> {
        Program::compile(src).unwrap().run(&input, &Vars::default())
    }

    #[test]
    fn spring_filter_quotes_every_value() {
        let out = run(
            "spring_filter",
            json!({"externalCaseId": "OEP-412-90017", "errandNumber": "x' or 1=1 or 'y"}),
        )
        .unwrap();
        assert_eq!(
            out,
            vec![json!(
                "externalCaseId:'OEP-412-90017' and errandNumber:'x\\' or 1=1 or \\'y'"
            )]
        );
        let out = run("spring_filter", json!({"a.b": null, "n": 3, "t": true})).unwrap();
        assert_eq!(out, vec![json!("a.b is null and n:3 and t:true")]);
        let out = run("spring_filter", json!({"back": "a\\b"})).unwrap();
        assert_eq!(out, vec![json!("back:'a\\\\b'")]);
        assert!(run("spring_filter", json!({"bad field": "x"})).is_err());
        assert!(run("spring_filter", json!({"a": [1]})).is_err());
        assert!(run("spring_filter", json!({})).is_err());
        assert!(run("spring_filter", json!("a:'b'")).is_err());
    }

    #[test]
    fn valid_and_birthdate() {
        let out = run(
            "map(personnummer_valid)",
            json!([
                "200710221235",
                "20071022-1235",
                "200710221236",
                200710221235u64,
                null
            ]),
        )
        .unwrap();
        assert_eq!(out, vec![json!([true, true, false, false, false])]);
        let out = run(
            ".[] | personnummer_birthdate",
            json!(["201303611238", "201202291231"]),
        );
        assert_eq!(out.unwrap(), vec![json!("2013-03-01"), json!("2012-02-29")]);
    }

    #[test]
    fn age_around_18th_birthday() {
        let p = "200710221235";
        let out = run(
            r#"[age("2025-10-21"), age("2025-10-22"), is_adult("2025-10-21"), is_adult("2025-10-22")]"#,
            json!(p),
        )
        .unwrap();
        assert_eq!(out, vec![json!([17, 18, false, true])]);
        // Leap-day birth: the birthday is 1 March in non-leap years.
        let out = run(
            r#"[age("2013-02-28"), age("2013-03-01")]"#,
            json!("201202291231"),
        );
        assert_eq!(out.unwrap(), vec![json!([0, 1])]);
    }

    #[test]
    fn errors_name_the_problem_not_the_value() {
        let err = run("personnummer_birthdate", json!("200710221236")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("check digit"), "{text}");
        assert!(!text.contains("2007102"), "{text}");
        let err = run(r#"age("22 oktober")"#, json!("200710221235")).unwrap_err();
        assert!(err.to_string().contains("YYYY-MM-DD"), "{err}");
        let err = run(r#"is_adult("2025-01-01")"#, json!(5)).unwrap_err();
        assert!(err.to_string().contains("not a number"), "{err}");
    }

    #[test]
    fn swedish_wall_clock_times_carry_their_offset() {
        let out = run(
            r#"[.[] | stockholm_time("08:00")] + [.[0] | stockholm_time("23:59:59")]"#,
            json!(["2027-02-15", "2027-06-15"]),
        )
        .unwrap();
        assert_eq!(
            out,
            vec![json!([
                "2027-02-15T08:00:00+01:00",
                "2027-06-15T08:00:00+02:00",
                "2027-02-15T23:59:59+01:00"
            ])]
        );
        assert!(run(r#"stockholm_time("02:30")"#, json!("2027-03-28")).is_err());
        assert!(run(r#"stockholm_time("8")"#, json!("2027-03-28")).is_err());
        assert!(run(r#"stockholm_time("08:00")"#, json!("15 feb")).is_err());
    }

    #[test]
    fn canonical_personnummer_has_twelve_digits() {
        let out = run(
            "map(personnummer_canonical)",
            json!(["20130412-2383", "201304122383", "130412-2383"]),
        )
        .unwrap();
        assert_eq!(
            out,
            vec![json!(["201304122383", "201304122383", "201304122383"])]
        );
        let err = run("personnummer_canonical", json!("201304122384")).unwrap_err();
        assert!(!err.to_string().contains("2013041"), "{err}");
    }

    #[test]
    fn instants_in_swedish_wall_clock_time() {
        // 2027-01-04T05:00:00Z is 06:00 in winter; 2027-06-15T04:00:00Z is 06:00 in summer.
        let out = run(
            "map(to_stockholm)",
            json!([
                1_799_038_800.5,
                "2027-06-15T04:00:00Z",
                "2027-06-15T06:00:00+02:00"
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            vec![json!([
                "2027-01-04T06:00:00+01:00",
                "2027-06-15T06:00:00+02:00",
                "2027-06-15T06:00:00+02:00"
            ])]
        );
        for bad in [json!("monday"), json!(null), json!(1e300)] {
            let err = run("to_stockholm", bad).unwrap_err();
            assert!(err.to_string().contains("RFC 3339"), "{err}");
        }
    }

    #[test]
    fn mask() {
        let out = run(
            "map(mask_personnummer)",
            json!(["Elev 20071022-1235 och 201303611238", null]),
        )
        .unwrap();
        assert_eq!(
            out,
            vec![json!(["Elev 20071022-**** och 20130361****", null])]
        );
        assert!(run("mask_personnummer", json!({})).is_err());
    }
}
