//! AMQP topic matching: words separated by `.`; `*` matches exactly one word, `#` zero or more.

/// Does routing key `key` match binding pattern `pattern`?
pub fn matches(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = if key.is_empty() {
        Vec::new()
    } else {
        key.split('.').collect()
    };
    match_words(&p, &k)
}

/// Marks a word of a routing key that is only known when a message is published (a
/// `{jq}` placeholder of a `publish` key): it may be any one word.
pub const ANY_WORD: char = '\u{0}';

/// Could `pattern` match a key made from `key`, where every word holding [`ANY_WORD`]
/// stands for any one word? (`knut check` asks this of a publish key with placeholders.)
pub fn may_match(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    may_match_words(&p, &k)
}

fn may_match_words(p: &[&str], k: &[&str]) -> bool {
    let any = |w: &str| w.contains(ANY_WORD);
    match p.split_first() {
        None => k.is_empty(),
        Some((&"#", rest)) => (0..=k.len()).any(|i| may_match_words(rest, &k[i..])),
        Some((&"*", rest)) => !k.is_empty() && may_match_words(rest, &k[1..]),
        Some((w, rest)) => {
            k.first().is_some_and(|f| f == w || any(f)) && may_match_words(rest, &k[1..])
        }
    }
}

fn match_words(p: &[&str], k: &[&str]) -> bool {
    match p.split_first() {
        None => k.is_empty(),
        Some((&"#", rest)) => (0..=k.len()).any(|i| match_words(rest, &k[i..])),
        Some((&"*", rest)) => !k.is_empty() && match_words(rest, &k[1..]),
        Some((w, rest)) => k.first() == Some(w) && match_words(rest, &k[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::{ANY_WORD, matches, may_match};

    #[test]
    fn keys_with_unknown_words() {
        let key = format!("application.{ANY_WORD}.submitted");
        assert!(may_match("application.412.#", &key));
        assert!(may_match("application.#", &key));
        assert!(may_match("application.*.submitted", &key));
        assert!(!may_match("application.412.decided", &key));
        assert!(!may_match("placement.#", &key));
        assert!(may_match("placement.changed", "placement.changed"));
    }

    #[test]
    fn topic_patterns() {
        assert!(matches("placement.changed", "placement.changed"));
        assert!(!matches("placement.changed", "placement.ended"));
        assert!(matches("placement.*", "placement.ended"));
        assert!(!matches("placement.*", "placement.ended.late"));
        assert!(matches("placement.#", "placement.ended.late"));
        assert!(matches("placement.#", "placement"));
        assert!(matches("#", "anything.at.all"));
        assert!(matches("*.changed", "grade.changed"));
        assert!(!matches("*.changed", "changed"));
        assert!(matches("a.#.z", "a.z"));
        assert!(matches("a.#.z", "a.b.c.z"));
    }
}
