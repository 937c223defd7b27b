//! Property tests of the input parsers (issue 8, bad input): whatever a client sends — any
//! JSON value, any string, any bytes — the parsers either accept it or answer the
//! documented `VALIDATION_ERROR` naming the field; they never panic. Where a round trip
//! exists (cursors, a generated valid message) it is exact, and the size limits hold at
//! their boundaries.
//!
//! The socket handlers (`src/realtime/*`) parse through the same functions
//! (`OutgoingMessage::from_payload`, `parse_uuid`), so these cover both transports.
//!
//! Case counts: `CASES` per property (proptest's default is 256); `PROPTEST_CASES` in the
//! environment overrides it.

use parley::{
    domain::{
        conversations::page_limit,
        cursor,
        input::{AvatarUrl, DisplayName, Email, Password, Username, search_prefix},
        message_input::{
            CLIENT_ID_MAX_CHARS, CONTENT_MAX_CHARS, MEDIA_MAX_ITEMS, OutgoingMessage, parse_content, parse_uuid,
        },
    },
    error::AppError,
    storage::models::ContentType,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Cases per property: the parsers are pure and cheap, so sixteen times proptest's default.
const CASES: u32 = 4096;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(CASES),
        ..ProptestConfig::default()
    }
}

/// The documented failure: a `VALIDATION_ERROR` (400) whose message names `field`
/// (`field: reason`), or any field when `field` is empty.
fn is_validation_error(err: &AppError, field: &str) -> bool {
    err.code() == "VALIDATION_ERROR" && err.status().as_u16() == 400 && err.to_string().contains(field)
}

/// Any JSON value, nested a few levels, with keys drawn mostly from the message fields so
/// that generated objects reach past the first check.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        Just(Value::String(Uuid::now_v7().to_string())),
        Just(Value::String("https://cdn.example/a.png".into())),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
            prop::collection::vec((json_key(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "conversationId",
            "conversation_id",
            "content",
            "clientMessageId",
            "tempId",
            "contentType",
            "type",
            "media",
            "url",
            "thumbnail",
            "width",
            "height",
            "size",
            "duration",
            "mimeType",
            "name",
        ])
        .prop_map(str::to_owned),
        ".{0,12}",
    ]
}

/// A UUID in any of the textual forms `Uuid::parse_str` accepts (hyphenated, simple,
/// braced, URN, upper case) — all parse to the same id.
fn uuid_forms() -> impl Strategy<Value = (Uuid, String)> {
    (any::<u128>(), 0..5usize).prop_map(|(bits, form)| {
        let id = Uuid::from_u128(bits);
        let text = match form {
            0 => id.hyphenated().to_string(),
            1 => id.simple().to_string(),
            2 => id.braced().to_string(),
            3 => id.urn().to_string(),
            _ => id.hyphenated().to_string().to_uppercase(),
        };
        (id, text)
    })
}

/// Content the parser accepts: 1..=4000 characters (any Unicode but NUL), not only whitespace.
fn valid_content() -> impl Strategy<Value = String> {
    ("[^\\x00]{0,60}", "[^\\s\\x00]", 0..=CONTENT_MAX_CHARS).prop_map(|(text, anchor, pad): (String, String, usize)| {
        let mut content: String = format!("{anchor}{text}");
        let have = content.chars().count();
        if have < pad {
            content.extend(std::iter::repeat_n('é', pad - have));
        }
        content.chars().take(CONTENT_MAX_CHARS).collect()
    })
}

/// A client message id the parser accepts: 1..=128 printable characters, not blank.
fn valid_client_id() -> impl Strategy<Value = String> {
    ("[^\\s\\p{Cc}]", "[^\\p{Cc}]{0,127}").prop_map(|(first, rest)| format!("{first}{rest}"))
}

/// A valid media list: 1..=10 items with a URL and optional well-formed extras.
fn valid_media() -> impl Strategy<Value = Value> {
    let item = ("[a-z0-9./_-]{1,40}", prop::option::of(0u64..10_000_000), prop::option::of("[a-z]{1,10}/[a-z]{1,10}"))
        .prop_map(|(path, size, mime)| {
            let mut item = json!({ "url": format!("https://cdn.example/{path}") });
            if let Some(size) = size {
                item["size"] = json!(size);
            }
            if let Some(mime) = mime {
                item["mimeType"] = json!(mime);
            }
            item
        });
    prop::collection::vec(item, 1..=MEDIA_MAX_ITEMS).prop_map(Value::Array)
}

proptest! {
    #![proptest_config(config())]

    /// Any JSON payload: parsed, or a validation error — never a panic, never another code.
    #[test]
    fn any_message_payload_parses_or_is_a_validation_error(payload in any_json()) {
        if let Err(err) = OutgoingMessage::from_payload(&payload) {
            prop_assert!(is_validation_error(&err, ""), "{payload}: {err:?}");
        }
    }

    /// Objects with a valid conversation, content and id plus arbitrary other fields reach
    /// the later checks (content type, media) and still only fail with validation errors.
    #[test]
    fn almost_valid_payloads_fail_only_with_validation_errors(
        extra in prop::collection::vec((json_key(), any_json()), 0..4),
        content in valid_content(),
        id in valid_client_id(),
    ) {
        let mut object = Map::new();
        object.insert("conversationId".into(), json!(Uuid::now_v7()));
        object.insert("content".into(), json!(content));
        object.insert("clientMessageId".into(), json!(id));
        object.extend(extra);
        let payload = Value::Object(object);
        if let Err(err) = OutgoingMessage::from_payload(&payload) {
            prop_assert!(is_validation_error(&err, ""), "{payload}: {err:?}");
        }
    }

    /// A generated valid payload (modern or legacy field names) becomes exactly the
    /// message it describes.
    #[test]
    fn a_valid_payload_round_trips_into_the_outgoing_message(
        (conversation, conversation_text) in uuid_forms(),
        content in valid_content(),
        client_id in valid_client_id(),
        media in prop::option::of(valid_media()),
        kind in prop::sample::select(vec![ContentType::Image, ContentType::Video, ContentType::File]),
        legacy in any::<bool>(),
    ) {
        let (id_key, type_key) = if legacy { ("tempId", "type") } else { ("clientMessageId", "contentType") };
        let content_type = if media.is_some() { kind } else { ContentType::Text };
        let mut payload = json!({ "conversationId": conversation_text, "content": content, id_key: client_id });
        if let Some(media) = &media {
            payload[type_key] = json!(content_type.as_str());
            payload["media"] = media.clone();
        }
        let parsed = OutgoingMessage::from_payload(&payload).map_err(|e| TestCaseError::fail(format!("{payload}: {e}")))?;
        prop_assert_eq!(parsed, OutgoingMessage { conversation_id: conversation, content, client_message_id: client_id, content_type, media, encrypted_content: None, reply_to_id: None });
    }

    /// Content: accepted exactly when 1..=4000 characters (not bytes) and not blank.
    #[test]
    fn content_length_boundary(ch in "[^\\s\\x00]", len in 0usize..=CONTENT_MAX_CHARS + 2, blank in any::<bool>()) {
        let content: String = if blank { " ".repeat(len) } else { ch.repeat(len) };
        let result = parse_content(Some(&json!(content)));
        let should_pass = !blank && (1..=CONTENT_MAX_CHARS).contains(&len);
        prop_assert_eq!(result.is_ok(), should_pass, "len {} blank {}", len, blank);
        if let Err(err) = result {
            prop_assert!(is_validation_error(&err, "content"));
        }
    }

    /// Content holding NUL anywhere is refused (PostgreSQL cannot store it: it was a 500).
    #[test]
    fn content_with_nul_is_refused(before in "[^\\x00]{0,40}", after in "[^\\x00]{0,40}") {
        let err = parse_content(Some(&json!(format!("x{before}\u{0}{after}")))).unwrap_err();
        prop_assert!(is_validation_error(&err, "content"));
    }

    /// clientMessageId: 1..=128 characters; more, blank or with control characters is refused.
    #[test]
    fn client_message_id_boundary(ch in "[^\\s\\p{Cc}]", len in 0usize..=CLIENT_ID_MAX_CHARS + 2, control in any::<bool>()) {
        let mut id = ch.repeat(len);
        if control && len > 0 {
            id.push('\u{7}');
        }
        let payload = json!({"conversationId": Uuid::now_v7(), "content": "hi", "clientMessageId": id});
        let result = OutgoingMessage::from_payload(&payload);
        let should_pass = (1..=CLIENT_ID_MAX_CHARS).contains(&len) && !control;
        prop_assert_eq!(result.is_ok(), should_pass, "len {} control {}", len, control);
        if let Err(err) = result {
            prop_assert!(is_validation_error(&err, "clientMessageId"));
        }
    }

    /// Every textual UUID form parses to the same id; any other string is a validation error.
    #[test]
    fn uuids_in_every_form_parse_and_other_strings_do_not((id, text) in uuid_forms(), junk in ".{0,64}") {
        prop_assert_eq!(parse_uuid("conversationId", Some(&json!(text))).unwrap(), id);
        match parse_uuid("conversationId", Some(&json!(junk))) {
            Ok(parsed) => prop_assert_eq!(Some(parsed), Uuid::parse_str(&junk).ok()),
            Err(err) => prop_assert!(is_validation_error(&err, "conversationId")),
        }
    }

    /// Any JSON value as a UUID field: a UUID or a validation error naming the field.
    #[test]
    fn any_json_as_a_uuid_field(value in any_json()) {
        if let Err(err) = parse_uuid("messageId", Some(&value)) {
            prop_assert!(is_validation_error(&err, "messageId"));
        }
    }

    /// Cursors: what the server encodes decodes to the same position.
    #[test]
    fn cursors_round_trip(s in any::<i64>(), t in any::<i64>(), id in any::<u128>()) {
        let history = HistoryPosition { s };
        prop_assert_eq!(cursor::decode::<HistoryPosition>(&cursor::encode(&history)).unwrap(), history);
        let list = ListPosition { t, id: Uuid::from_u128(id) };
        prop_assert_eq!(cursor::decode::<ListPosition>(&cursor::encode(&list)).unwrap(), list);
    }

    /// Any string as a cursor — printable junk, base64url of arbitrary bytes, base64url of
    /// arbitrary JSON: a position or the cursor validation error.
    #[test]
    fn any_cursor_string_decodes_or_is_a_validation_error(
        junk in ".{0,300}",
        bytes in prop::collection::vec(any::<u8>(), 0..200),
        value in any_json(),
    ) {
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let candidates = [junk, URL_SAFE_NO_PAD.encode(&bytes), URL_SAFE_NO_PAD.encode(value.to_string())];
        for candidate in &candidates {
            let errors = [cursor::decode::<HistoryPosition>(candidate).err(), cursor::decode::<ListPosition>(candidate).err()];
            for err in errors.into_iter().flatten() {
                prop_assert!(is_validation_error(&err, "cursor"), "{candidate}: {err:?}");
            }
        }
    }

    /// Account and profile fields: any string is accepted or refused with the validation
    /// error naming its field; what is accepted satisfies the documented bounds.
    #[test]
    fn account_fields_parse_or_name_the_field(raw in ".{0,300}") {
        match Email::parse(&raw) {
            Ok(email) => {
                prop_assert!(email.as_str().len() <= 254 && email.as_str().contains('@'));
                let slug = Username::slug_from(&email);
                prop_assert!(Username::parse(slug.as_str()).is_ok(), "slug {}", slug.as_str());
                prop_assert!(Username::parse(slug.with_suffix(u32::MAX).as_str()).is_ok());
            }
            Err(err) => prop_assert!(is_validation_error(&err, "email")),
        }
        match Password::parse(raw.clone()) {
            Ok(password) => prop_assert!(password.expose().chars().count() >= 8 && password.expose().len() <= 1024),
            Err(err) => prop_assert!(is_validation_error(&err, "password")),
        }
        match DisplayName::parse(&raw) {
            Ok(name) => prop_assert!((2..=64).contains(&name.into_inner().chars().count())),
            Err(err) => prop_assert!(is_validation_error(&err, "displayName")),
        }
        match Username::parse(&raw) {
            Ok(name) => prop_assert!((3..=32).contains(&name.as_str().len())),
            Err(err) => prop_assert!(is_validation_error(&err, "username")),
        }
        match AvatarUrl::parse(&raw) {
            Ok(url) => prop_assert!(url.into_inner().starts_with("http")),
            Err(err) => prop_assert!(is_validation_error(&err, "avatarUrl")),
        }
        match search_prefix(&raw) {
            Ok(query) => prop_assert!((1..=64).contains(&query.chars().count())),
            Err(err) => prop_assert!(is_validation_error(&err, "query")),
        }
    }

    /// Emails built from a valid local part and domain always parse, lower-cased.
    #[test]
    fn well_formed_emails_parse(local in "[A-Za-z0-9._+-]{1,64}", host in "[A-Za-z0-9-]{1,20}", tld in "[A-Za-z]{2,10}") {
        let raw = format!(" {local}@{host}.{tld} ");
        let email = Email::parse(&raw).map_err(|e| TestCaseError::fail(format!("{raw}: {e}")))?;
        prop_assert_eq!(email.as_str(), raw.trim().to_lowercase());
    }

    /// Page sizes: 1..=100 or absent; anything else is a validation error naming `limit`.
    #[test]
    fn page_limits(limit in prop::option::of(any::<i64>())) {
        match page_limit(limit) {
            Ok(n) => prop_assert!((1..=100).contains(&n)),
            Err(err) => prop_assert!(is_validation_error(&err, "limit")),
        }
    }
}

/// Mirrors of the server's private cursor positions (`domain::messages::HistoryPosition`,
/// `domain::conversations::ListPosition`): same field names and types, so the same JSON.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct HistoryPosition {
    s: i64,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct ListPosition {
    t: i64,
    id: Uuid,
}
