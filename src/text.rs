//! Cutting text that comes from outside (HTTP bodies, Job logs, alert labels, kube
//! messages) to a size: always on a character boundary, so a cut never panics and never
//! splits a multi-byte character.

/// The longest prefix of `s` that is at most `max_bytes` long and ends on a character
/// boundary.
pub fn truncate_chars(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Shortens `s` in place to at most `max_bytes`, on a character boundary.
pub fn truncate_in_place(s: &mut String, max_bytes: usize) {
    let end = truncate_chars(s, max_bytes).len();
    s.truncate(end);
}

/// `s` capped at `max_bytes`, followed by `… (N bytes cut)` when anything was cut, so a
/// reader knows the text is incomplete and by how much.
pub fn cap(s: &str, max_bytes: usize) -> String {
    let kept = truncate_chars(s, max_bytes);
    if kept.len() == s.len() {
        return s.to_string();
    }
    format!("{kept}… ({} bytes cut)", s.len() - kept.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_before_a_multi_byte_character() {
        // "é" is two bytes: a cut at 3 would land inside the second one
        assert_eq!(truncate_chars("éé", 3), "é");
        assert_eq!(truncate_chars("aé", 1), "a");
        assert_eq!(truncate_chars("€", 2), "");
        assert_eq!(truncate_chars("abc", 10), "abc");
        assert_eq!(truncate_chars("abc", 0), "");
    }

    #[test]
    fn truncates_in_place_on_a_boundary() {
        let mut s = "x".repeat(1999) + "日本";
        truncate_in_place(&mut s, 2000);
        assert_eq!(s, "x".repeat(1999));
    }

    #[test]
    fn cap_says_how_much_was_cut() {
        assert_eq!(cap("short", 16), "short");
        assert_eq!(cap("abcdéf", 5), "abcd… (3 bytes cut)");
        let capped = cap(&"🔥".repeat(10), 6);
        assert_eq!(capped, "🔥… (36 bytes cut)");
    }
}
