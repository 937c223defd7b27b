//! `@username` mentions (SPEC §4.2): the names a message's text mentions. They are resolved
//! against the conversation's participants when the message is sent (`Message.mentions`), and
//! a mention lets a push through a muted conversation.

/// Distinct names one message may mention (the rest are plain text).
pub const MENTIONS_MAX: usize = 50;

/// The usernames `@`-mentioned in `content`, lower case, in order of first mention: an `@` at
/// the start or after a character that cannot be part of a username (so `ann@example.com`
/// mentions nobody), then 3 to 32 of `a-z 0-9 _ .` (a trailing `.` ends the sentence, not the
/// name).
pub fn mentioned_names(content: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut previous: Option<char> = None;
    for (at, c) in content.char_indices() {
        let starts = c == '@' && !previous.is_some_and(is_name_char);
        previous = Some(c);
        if !starts {
            continue;
        }
        let rest = &content[at + 1..];
        let end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
        let name = rest[..end].trim_end_matches('.').to_ascii_lowercase();
        let valid = (3..=32).contains(&name.len()) && name.starts_with(|c: char| c.is_ascii_alphanumeric());
        if valid && !names.contains(&name) && names.len() < MENTIONS_MAX {
            names.push(name);
        }
    }
    names
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_in_order_once() {
        assert_eq!(mentioned_names("@Ann and @bob.smith, @ann again. Thanks @cat."), ["ann", "bob.smith", "cat"]);
        assert_eq!(mentioned_names("(@dan_1)"), ["dan_1"]);
    }

    #[test]
    fn addresses_short_names_and_bare_signs_are_not_mentions() {
        assert!(mentioned_names("mail ann@example.com or @ or @@ or @ab or @.ann").is_empty());
        assert!(mentioned_names("no mentions here").is_empty());
    }
}
