//! Suggestions for a misspelt name, and whether a name may be shown at all (a value that
//! could be data never is).

/// The candidate closest to `given`, when it is close enough to be a likely misspelling.
///
/// Closeness is Jaro-Winkler similarity ≥ 0.8, or an edit distance (Levenshtein with
/// transpositions) of at most 2 (1 for names of three characters or fewer). An exact match is not a suggestion.
pub fn did_you_mean<S: AsRef<str>>(given: &str, candidates: &[S]) -> Option<String> {
    let given_l = given.to_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let c = c.as_ref();
        if c == given {
            return None;
        }
        let cl = c.to_lowercase();
        let jw = strsim::jaro_winkler(&given_l, &cl);
        let lev = strsim::osa_distance(&given_l, &cl);
        let max_lev = if given.chars().count() <= 3 { 1 } else { 2 };
        let close = jw >= 0.8 || lev <= max_lev;
        if close && best.is_none_or(|(score, _)| jw > score) {
            best = Some((jw, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// `name` when it reads as a name (a key or an identifier), so that it may appear in a
/// message; `None` when it could be data (digits first, spaces, long text).
pub fn printable_name(name: &str) -> Option<&str> {
    let mut chars = name.chars();
    let first = chars.next()?;
    let ok = (first.is_alphabetic() || first == '_' || first == '$')
        && name.chars().count() <= 64
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '$'));
    ok.then_some(name)
}
