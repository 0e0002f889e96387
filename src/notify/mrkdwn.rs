//! Slack text formatting: Slack reads `&`, `<` and `>` as control characters and only
//! notifies for `<!here>`-style mentions, so the rendered template text is adapted before
//! it is posted.

/// Broadcast mentions Slack understands as `<!name>`.
const BROADCASTS: [&str; 3] = ["here", "channel", "everyone"];

/// Prefixes of Slack control sequences an operator may write on purpose
/// (`<!subteam^S123>`, `<@U123>`, `<#C123>`, `<https://…|label>`).
const CONTROL_PREFIXES: [&str; 6] = ["!", "@", "#", "http://", "https://", "mailto:"];

/// The text as Slack should receive it: `@here`, `@channel`, `@everyone` become real
/// mentions, Slack control sequences already in the text are kept, and every other `&`,
/// `<`, `>` is escaped.
pub fn slack_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    let mut previous: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let mut consumed = c.len_utf8();
        match c {
            '<' => match control_sequence(rest) {
                Some(len) => {
                    out.push_str(&rest[..len]);
                    consumed = len;
                }
                None => out.push_str("&lt;"),
            },
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '@' if !previous.is_some_and(is_word) => match broadcast(&rest[1..]) {
                Some(name) => {
                    out.push_str("<!");
                    out.push_str(name);
                    out.push('>');
                    consumed = 1 + name.len();
                }
                None => out.push('@'),
            },
            _ => out.push(c),
        }
        previous = rest[..consumed].chars().last();
        rest = &rest[consumed..];
    }
    out
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The length of a `<…>` control sequence at the start of `text`, if it is one.
fn control_sequence(text: &str) -> Option<usize> {
    let end = text.find('>')?;
    let inner = &text[1..end];
    let plausible = !inner.is_empty()
        && !inner.contains(['<', '\n'])
        && CONTROL_PREFIXES.iter().any(|p| inner.starts_with(p));
    plausible.then_some(end + 1)
}

/// The broadcast name at the start of `text` (after an `@`), if whole.
fn broadcast(text: &str) -> Option<&'static str> {
    BROADCASTS.into_iter().find(|name| {
        text.starts_with(name) && !text[name.len()..].chars().next().is_some_and(is_word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_broadcasts_into_mentions() {
        assert_eq!(slack_text("@here ROLLBACK"), "<!here> ROLLBACK");
        assert_eq!(slack_text("hi @channel."), "hi <!channel>.");
        assert_eq!(slack_text("@everyone"), "<!everyone>");
        assert_eq!(slack_text("@hereafter"), "@hereafter");
        assert_eq!(slack_text("ops@here.io"), "ops@here.io");
        assert_eq!(slack_text("@alice"), "@alice");
    }

    #[test]
    fn escapes_control_characters_but_keeps_sequences() {
        assert_eq!(slack_text("v1.2.5 -> v1.2.4"), "v1.2.5 -&gt; v1.2.4");
        assert_eq!(slack_text("a < b & c"), "a &lt; b &amp; c");
        assert_eq!(slack_text("<!subteam^S1> look"), "<!subteam^S1> look");
        assert_eq!(
            slack_text("see <https://status.example|status>"),
            "see <https://status.example|status>"
        );
        assert_eq!(slack_text("<@U123> <#C9>"), "<@U123> <#C9>");
        assert_eq!(slack_text("<b>"), "&lt;b&gt;");
        assert_eq!(slack_text("<"), "&lt;");
        assert_eq!(slack_text("é<@U1>ü"), "é<@U1>ü");
    }
}
