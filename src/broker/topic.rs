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
    use super::matches;

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
