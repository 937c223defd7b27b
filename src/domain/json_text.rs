//! JSON text that parses as JSON but not into Rust strings: an escape of half a UTF-16
//! surrogate pair (`"\ud83d"`, an emoji cut in two by JavaScript's `String.slice`) is valid
//! JSON syntax, and `JSON.stringify` writes it, but it is no Unicode text, so serde refuses
//! the whole document. [`lone_surrogate`] finds where it is, so that REST, the socket events
//! and the raw gateway refuse it naming the field, like every other invalid value.

use serde_json::Value;

use crate::error::AppError;

/// Put in place of each lone surrogate to find it again after parsing (a noncharacter).
const MARK: char = '\u{FFFF}';

/// Why a string with a lone surrogate is refused.
pub const LONE_SURROGATE: &str =
    "contains half of a UTF-16 surrogate pair (a character such as an emoji cut in two); send whole characters";

/// One step of the way to a value: an object key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// The way to the first string (or key) of `json` that holds a lone surrogate escape; `None`
/// when there is none (or the text is not JSON for another reason).
pub fn lone_surrogate(json: &str) -> Option<Vec<Step>> {
    let value: Value = serde_json::from_str(&mark_lone_surrogates(json)?).ok()?;
    let mut path = Vec::new();
    find_mark(&value, &mut path).then_some(path)
}

/// `VALIDATION_ERROR` for a lone surrogate at `path` (leading steps already dropped by the
/// caller: the event name of a socket event, `payload` of a raw envelope).
pub fn lone_surrogate_error(path: &[Step]) -> AppError {
    AppError::invalid_field(&field_name(path), LONE_SURROGATE)
}

/// `media[0].caption`; `payload` for the payload itself.
pub fn field_name(path: &[Step]) -> String {
    let mut name = String::new();
    for step in path {
        match step {
            Step::Key(key) if name.is_empty() => name.push_str(key),
            Step::Key(key) => {
                name.push('.');
                name.push_str(key);
            }
            Step::Index(index) => name.push_str(&format!("[{index}]")),
        }
    }
    if name.is_empty() { "payload".to_owned() } else { name }
}

/// `json` with every lone surrogate escape replaced by an escape of [`MARK`]; `None` when it
/// has none. Only ASCII escapes are replaced by ASCII, so the rest stays as it was.
fn mark_lone_surrogates(json: &str) -> Option<String> {
    let bytes = json.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let (mut i, mut in_string, mut found) = (0, false, false);
    while i < bytes.len() {
        let byte = bytes[i];
        if !in_string {
            in_string = byte == b'"';
            out.push(byte);
            i += 1;
            continue;
        }
        match byte {
            b'"' => in_string = false,
            b'\\' if bytes.get(i + 1) == Some(&b'u') => {
                let Some(unit) = hex_unit(bytes, i + 2) else {
                    out.push(byte);
                    i += 1;
                    continue;
                };
                let paired = (0xD800..0xDC00).contains(&unit)
                    && bytes.get(i + 6) == Some(&b'\\')
                    && bytes.get(i + 7) == Some(&b'u')
                    && hex_unit(bytes, i + 8).is_some_and(|low| (0xDC00..0xE000).contains(&low));
                let take = if paired { 12 } else { 6 };
                if (0xD800..0xE000).contains(&unit) && !paired {
                    out.extend_from_slice(b"\\uffff");
                    found = true;
                } else {
                    out.extend_from_slice(&bytes[i..i + take]);
                }
                i += take;
                continue;
            }
            b'\\' => {
                out.extend_from_slice(&bytes[i..(i + 2).min(bytes.len())]);
                i += 2;
                continue;
            }
            _ => {}
        }
        out.push(byte);
        i += 1;
    }
    found.then(|| String::from_utf8(out).ok()).flatten()
}

/// The four hex digits at `at`, as a UTF-16 code unit.
fn hex_unit(bytes: &[u8], at: usize) -> Option<u32> {
    let digits = std::str::from_utf8(bytes.get(at..at + 4)?).ok()?;
    u32::from_str_radix(digits, 16).ok().filter(|_| digits.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn find_mark(value: &Value, path: &mut Vec<Step>) -> bool {
    match value {
        Value::String(text) => text.contains(MARK),
        Value::Array(items) => items.iter().enumerate().any(|(index, item)| {
            path.push(Step::Index(index));
            find_mark(item, path) || {
                path.pop();
                false
            }
        }),
        Value::Object(fields) => fields.iter().any(|(key, item)| {
            path.push(Step::Key(key.replace(MARK, "\u{FFFD}")));
            key.contains(MARK) || find_mark(item, path) || {
                path.pop();
                false
            }
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(json: &str) -> Option<String> {
        lone_surrogate(json).map(|path| field_name(&path))
    }

    #[test]
    fn a_lone_half_is_found_and_named() {
        assert_eq!(field(r#"{"content":"hi \ud83d","tempId":"t"}"#).as_deref(), Some("content"));
        assert_eq!(field(r#"{"content":"\ude00 after"}"#).as_deref(), Some("content"), "a lone low half");
        assert_eq!(field(r#"{"media":[{"url":"x"},{"caption":"a\ud83d"}]}"#).as_deref(), Some("media[1].caption"));
        assert_eq!(field(r#"["message:send",{"content":"\ud83dx"}]"#).as_deref(), Some("[1].content"));
        assert!(field(r#"{"a\ud83d":1}"#).is_some(), "in a key");
        assert_eq!(field(r#""\ud83d""#).as_deref(), Some("payload"));
    }

    #[test]
    fn whole_pairs_and_other_escapes_are_not() {
        assert_eq!(field(r#"{"content":"\ud83d\ude00 ok"}"#), None);
        assert_eq!(field(r#"{"content":"\\ud83d is text, \"quoted\", \u00e9"}"#), None);
        assert_eq!(field(r#"{"content":"ok"}"#), None);
        assert_eq!(field("not json \\ud83d"), None);
    }

    #[test]
    fn what_serde_refuses_is_what_is_found() {
        for json in [r#"{"c":"\ud83d"}"#, r#"{"c":"\ud83d\u0041"}"#, r#"{"c":"\udfff\ud800"}"#] {
            assert!(serde_json::from_str::<Value>(json).is_err(), "{json}");
            assert!(lone_surrogate(json).is_some(), "{json}");
        }
    }
}
