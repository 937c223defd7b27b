//! A message as a client sends it (socket `message:send`, its legacy alias, or REST),
//! parsed into a value that cannot be invalid.

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{error::AppError, storage::models::ContentType};

pub const CONTENT_MAX_CHARS: usize = 4000;
pub const CLIENT_ID_MAX_CHARS: usize = 128;
pub const MEDIA_MAX_ITEMS: usize = 10;
/// The longest `encryptedContent`, in base64 characters (64 KiB).
pub const CIPHERTEXT_MAX_CHARS: usize = 64 * 1024;
const URL_MAX_BYTES: usize = 2048;
const TEXT_FIELD_MAX_CHARS: usize = 255;

#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingMessage {
    pub conversation_id: Uuid,
    pub content: String,
    pub client_message_id: String,
    pub content_type: ContentType,
    /// A validated array of media objects, or none.
    pub media: Option<Value>,
    /// End-to-end encrypted (`isEncrypted: true`): the ciphertext, and `content` is empty.
    pub encrypted_content: Option<Ciphertext>,
    /// `replyToId`: the message it answers.
    pub reply_to_id: Option<Uuid>,
}

/// The raw fields, as any transport received them.
#[derive(Default)]
pub struct RawMessage<'a> {
    pub conversation_id: Option<&'a Value>,
    pub content: Option<&'a Value>,
    pub client_message_id: Option<&'a Value>,
    pub content_type: Option<&'a Value>,
    pub media: Option<&'a Value>,
    pub is_encrypted: Option<&'a Value>,
    pub encrypted_content: Option<&'a Value>,
    pub reply_to_id: Option<&'a Value>,
}

impl OutgoingMessage {
    /// A socket payload: `{conversationId, content, clientMessageId, contentType?, media?}`.
    /// The legacy `message.send` spells the key `tempId` and the type `type`.
    pub fn from_payload(payload: &Value) -> Result<Self, AppError> {
        let object = payload.as_object().ok_or_else(|| AppError::validation("the payload must be an object"))?;
        let pick = |names: &[&str]| names.iter().find_map(|n| object.get(*n)).filter(|v| !v.is_null());
        Self::parse(RawMessage {
            conversation_id: pick(&["conversationId", "conversation_id"]),
            content: pick(&["content"]),
            client_message_id: pick(&["clientMessageId", "tempId"]),
            content_type: pick(&["contentType", "type"]),
            media: pick(&["media"]),
            is_encrypted: pick(&["isEncrypted"]),
            encrypted_content: pick(&["encryptedContent"]),
            reply_to_id: pick(&["replyToId", "reply_to_id"]),
        })
    }

    /// Text needs 1 to 4000 characters of content; a media message may come without a
    /// caption (seed 002: "content OR media required"; SPEC §4.2), stored as "".
    ///
    /// An encrypted message (`isEncrypted: true`) carries `encryptedContent` instead of
    /// `content`, which must then be absent or empty: plaintext beside the ciphertext would
    /// defeat the encryption.
    pub fn parse(raw: RawMessage<'_>) -> Result<Self, AppError> {
        let conversation_id = parse_uuid("conversationId", raw.conversation_id)?;
        let encrypted_content = parse_encryption(raw.is_encrypted, raw.encrypted_content)?;
        let media_type = !matches!(text("contentType", raw.content_type)?, None | Some("text"));
        let no_caption = match raw.content {
            None => true,
            Some(Value::String(caption)) => caption.trim().is_empty(),
            Some(_) => false,
        };
        let captionless = raw.media.is_some() && media_type && no_caption;
        let content = match &encrypted_content {
            Some(_) if no_caption => String::new(),
            Some(_) => return Err(AppError::invalid_field("content", "must be empty in an encrypted message")),
            None if captionless => String::new(),
            None => parse_content(raw.content)?,
        };
        let client_message_id = text("clientMessageId", raw.client_message_id)?
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| AppError::invalid_field("clientMessageId", "is required"))?;
        if client_message_id.chars().count() > CLIENT_ID_MAX_CHARS || client_message_id.chars().any(char::is_control) {
            return Err(AppError::invalid_field("clientMessageId", "must be at most 128 printable characters"));
        }
        let content_type = match text("contentType", raw.content_type)? {
            None => ContentType::Text,
            Some(t) => ContentType::try_from(t.to_owned())
                .map_err(|_| AppError::invalid_field("contentType", "must be text, image, video or file"))?,
        };
        let media = raw.media.map(parse_media).transpose()?;
        match (content_type, &media) {
            (ContentType::Text, Some(_)) => {
                return Err(AppError::invalid_field("media", "text messages carry no media"));
            }
            (ContentType::Image | ContentType::Video | ContentType::File, None) => {
                return Err(AppError::invalid_field("media", "is required for image, video and file messages"));
            }
            _ => {}
        }
        let reply_to_id = raw.reply_to_id.map(|id| parse_uuid("replyToId", Some(id))).transpose()?;
        Ok(Self {
            conversation_id,
            content,
            client_message_id: client_message_id.to_owned(),
            content_type,
            media,
            encrypted_content,
            reply_to_id,
        })
    }
}

/// `isEncrypted` and `encryptedContent`: the ciphertext when the message is encrypted.
fn parse_encryption(flag: Option<&Value>, ciphertext: Option<&Value>) -> Result<Option<Ciphertext>, AppError> {
    let encrypted = match flag {
        None => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => return Err(AppError::invalid_field("isEncrypted", "must be a boolean")),
    };
    match (encrypted, ciphertext) {
        (true, Some(value)) => {
            let raw = text("encryptedContent", Some(value))?.unwrap_or_default();
            Ok(Some(Ciphertext::parse(raw)?))
        }
        (true, None) => Err(AppError::invalid_field("encryptedContent", "is required when isEncrypted is true")),
        (false, Some(_)) => Err(AppError::invalid_field("encryptedContent", "needs isEncrypted: true")),
        (false, None) => Ok(None),
    }
}

/// A message's new body (`PATCH …/messages/:id`): text, or an encrypted message's new
/// ciphertext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageEdit {
    Text(MessageText),
    Encrypted(Ciphertext),
}

impl MessageEdit {
    /// `{content}` or `{encryptedContent}`, exactly one of them.
    pub fn parse(content: Option<&str>, encrypted_content: Option<&str>) -> Result<Self, AppError> {
        match (content, encrypted_content) {
            (Some(text), None) => Ok(Self::Text(MessageText::parse(text)?)),
            (None, Some(ciphertext)) => Ok(Self::Encrypted(Ciphertext::parse(ciphertext)?)),
            (Some(_), Some(_)) => Err(AppError::invalid_field("content", "send content or encryptedContent, not both")),
            (None, None) => Err(AppError::invalid_field("content", "is required")),
        }
    }
}

/// The ciphertext of an end-to-end encrypted message: base64 (standard or URL-safe, padded
/// or not) of at most [`CIPHERTEXT_MAX_CHARS`] characters. The server stores and delivers
/// it untouched; that it is base64 is all it can check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ciphertext(String);

impl Ciphertext {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let invalid = |why: &str| AppError::invalid_field("encryptedContent", why.to_owned());
        if raw.is_empty() || raw.len() > CIPHERTEXT_MAX_CHARS {
            return Err(invalid("must be 1 to 65536 characters of base64"));
        }
        if crate::domain::public_key::decode_base64(raw).is_none() {
            return Err(invalid("must be base64"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

fn text<'a>(field: &str, value: Option<&'a Value>) -> Result<Option<&'a str>, AppError> {
    match value {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(AppError::invalid_field(field, "must be a string")),
    }
}

pub fn parse_uuid(field: &str, value: Option<&Value>) -> Result<Uuid, AppError> {
    let raw = text(field, value)?.ok_or_else(|| AppError::invalid_field(field, "is required"))?;
    Uuid::parse_str(raw).map_err(|_| AppError::invalid_field(field, "must be a UUID"))
}

/// Message content: 1 to 4000 characters, not only whitespace, without NUL (U+0000, which
/// PostgreSQL cannot store in text or jsonb: it failed the whole group commit with a 500).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(content: &str) -> Result<Self, AppError> {
        if content.trim().is_empty() || content.chars().count() > CONTENT_MAX_CHARS {
            return Err(AppError::invalid_field("content", "must be 1 to 4000 characters"));
        }
        if content.contains('\0') {
            return Err(AppError::invalid_field("content", "must not contain NUL characters"));
        }
        Ok(Self(content.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// The `content` field of a JSON payload, as [`MessageText`] requires it.
pub fn parse_content(value: Option<&Value>) -> Result<String, AppError> {
    let content = text("content", value)?.ok_or_else(|| AppError::invalid_field("content", "is required"))?;
    Ok(MessageText::parse(content)?.into_inner())
}

/// Media: up to 10 objects `{url, type?, thumbnail?, width?, height?, size?, duration?,
/// mimeType?, name?}`; URLs are http(s); nothing else is kept. No string may hold NUL
/// (PostgreSQL's jsonb refuses U+0000). An item may instead name an upload, `{uploadId,
/// name?, duration?}`: the send fills in the rest from the upload (`domain::uploads`).
fn parse_media(value: &Value) -> Result<Value, AppError> {
    let invalid = |why: &str| AppError::invalid_field("media", why.to_owned());
    let items = value.as_array().ok_or_else(|| invalid("must be an array"))?;
    if items.is_empty() || items.len() > MEDIA_MAX_ITEMS {
        return Err(invalid("must hold 1 to 10 items"));
    }
    let mut parsed = Vec::with_capacity(items.len());
    for item in items {
        let object = item.as_object().ok_or_else(|| invalid("items must be objects"))?;
        if let Some(upload) = object.get("uploadId") {
            parsed.push(parse_upload_item(object, upload)?);
            continue;
        }
        let mut clean = Map::new();
        for (key, value) in object {
            let ok = match key.as_str() {
                "url" | "thumbnail" => value.as_str().is_some_and(is_http_url),
                "type" => matches!(value.as_str(), Some("image" | "video" | "file" | "audio")),
                "width" | "height" | "size" | "duration" => {
                    value.as_u64().is_some() || value.as_f64().is_some_and(|f| f >= 0.0)
                }
                "mimeType" | "name" => {
                    value.as_str().is_some_and(|s| s.chars().count() <= TEXT_FIELD_MAX_CHARS && !s.contains('\0'))
                }
                _ => return Err(invalid(&format!("unknown media field `{key}`"))),
            };
            if !ok {
                return Err(invalid(&format!("`{key}` has an invalid value")));
            }
            clean.insert(key.clone(), value.clone());
        }
        if !clean.contains_key("url") {
            return Err(invalid("every item needs a url"));
        }
        parsed.push(Value::Object(clean));
    }
    Ok(Value::Array(parsed))
}

/// `{uploadId, name?, duration?}`: what the upload does not say is all a client may add.
fn parse_upload_item(object: &Map<String, Value>, upload: &Value) -> Result<Value, AppError> {
    let invalid = |why: &str| AppError::invalid_field("media", why.to_owned());
    let id =
        upload.as_str().and_then(|s| s.parse::<Uuid>().ok()).ok_or_else(|| invalid("`uploadId` must be a UUID"))?;
    let mut clean = Map::new();
    clean.insert("uploadId".into(), Value::String(id.to_string()));
    for (key, value) in object {
        let ok = match key.as_str() {
            "uploadId" => continue,
            "name" => value.as_str().is_some_and(|s| s.chars().count() <= TEXT_FIELD_MAX_CHARS && !s.contains('\0')),
            "duration" => value.as_u64().is_some() || value.as_f64().is_some_and(|f| f >= 0.0),
            // What the upload says (url, type, size, dimensions, thumbnail) is filled in from it.
            "type" | "url" | "contentType" | "mimeType" | "size" | "width" | "height" | "thumbnail"
            | "thumbnailUrl" => continue,
            _ => return Err(invalid(&format!("unknown media field `{key}`"))),
        };
        if !ok {
            return Err(invalid(&format!("`{key}` has an invalid value")));
        }
        clean.insert(key.clone(), value.clone());
    }
    Ok(Value::Object(clean))
}

fn is_http_url(url: &str) -> bool {
    (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= URL_MAX_BYTES
        && url.len() > "https://".len()
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn conversation() -> String {
        Uuid::now_v7().to_string()
    }

    #[test]
    fn a_text_message_parses_with_defaults() {
        let id = conversation();
        let parsed =
            OutgoingMessage::from_payload(&json!({"conversationId": id, "content": "hi", "clientMessageId": "c-1"}))
                .unwrap();
        assert_eq!(parsed.content_type, ContentType::Text);
        assert_eq!(parsed.client_message_id, "c-1");
        assert!(parsed.media.is_none());
    }

    #[test]
    fn legacy_names_are_accepted() {
        let payload = json!({"conversationId": conversation(), "content": "see", "tempId": "temp-1", "type": "image",
            "media": [{"url": "https://cdn.example/a.png", "width": 10, "height": 20, "size": 300, "type": "image"}]});
        let parsed = OutgoingMessage::from_payload(&payload).unwrap();
        assert_eq!(parsed.client_message_id, "temp-1");
        assert_eq!(parsed.content_type, ContentType::Image);
    }

    #[test]
    fn every_bad_field_is_a_validation_error_naming_it() {
        let id = conversation();
        let cases = [
            (json!("text"), ""),
            (json!({"content": "x", "clientMessageId": "c"}), "conversationId"),
            (json!({"conversationId": "nope", "content": "x", "clientMessageId": "c"}), "conversationId"),
            (json!({"conversationId": id, "clientMessageId": "c"}), "content"),
            (json!({"conversationId": id, "content": "", "clientMessageId": "c"}), "content"),
            (json!({"conversationId": id, "content": "   ", "clientMessageId": "c"}), "content"),
            (json!({"conversationId": id, "content": "x".repeat(4001), "clientMessageId": "c"}), "content"),
            (json!({"conversationId": id, "content": 5, "clientMessageId": "c"}), "content"),
            (json!({"conversationId": id, "content": "x"}), "clientMessageId"),
            (json!({"conversationId": id, "content": "x", "clientMessageId": "c".repeat(129)}), "clientMessageId"),
            (
                json!({"conversationId": id, "content": "x", "clientMessageId": "c", "contentType": "gif"}),
                "contentType",
            ),
            (json!({"conversationId": id, "content": "x", "clientMessageId": "c", "contentType": "image"}), "media"),
            (
                json!({"conversationId": id, "content": "x", "clientMessageId": "c", "media": [{"url": "https://a.b/c"}]}),
                "media",
            ),
            (
                json!({"conversationId": id, "content": "x", "clientMessageId": "c", "contentType": "file", "media": [{"url": "ftp://x"}]}),
                "media",
            ),
            (
                json!({"conversationId": id, "content": "x", "clientMessageId": "c", "contentType": "file", "media": [{"url": "https://a.b/c", "evil": 1}]}),
                "media",
            ),
            (
                json!({"conversationId": id, "content": "x", "clientMessageId": "c", "contentType": "file", "media": []}),
                "media",
            ),
            // NUL, which PostgreSQL cannot store (it was a 500 failing the whole group commit).
            (json!({"conversationId": id, "content": "a\u{0}b", "clientMessageId": "c"}), "content"),
            (
                json!({"conversationId": id, "content": "x", "clientMessageId": "c", "contentType": "file", "media": [{"url": "https://a.b/\u{0}"}]}),
                "media",
            ),
            (
                json!({"conversationId": id, "content": "x", "clientMessageId": "c", "contentType": "file", "media": [{"url": "https://a.b/c", "name": "\u{0}"}]}),
                "media",
            ),
        ];
        for (payload, field) in cases {
            let err = OutgoingMessage::from_payload(&payload).unwrap_err();
            assert_eq!(err.code(), "VALIDATION_ERROR", "{payload}");
            assert!(err.to_string().contains(field), "{payload}: {err}");
        }
        let photo = json!({"conversationId": id, "clientMessageId": "c", "contentType": "image",
            "media": [{"url": "https://cdn.example/a.png"}]});
        assert_eq!(OutgoingMessage::from_payload(&photo).unwrap().content, "", "a photo needs no caption");
        let blank = json!({"conversationId": id, "clientMessageId": "c", "type": "image", "content": " ",
            "media": [{"url": "https://cdn.example/a.png"}]});
        assert!(OutgoingMessage::from_payload(&blank).is_ok(), "nor a blank one");
        let bare = json!({"conversationId": id, "clientMessageId": "c", "contentType": "text", "content": ""});
        assert!(OutgoingMessage::from_payload(&bare).is_err(), "text still needs content");
        let max = json!({"conversationId": id, "content": "é".repeat(4000), "clientMessageId": "c"});
        let multiline = json!({"conversationId": id, "content": "a\n\tb", "clientMessageId": "c"});
        assert!(OutgoingMessage::from_payload(&multiline).is_ok(), "newlines and tabs are content");
        assert!(OutgoingMessage::from_payload(&max).is_ok(), "4000 characters, not bytes");
    }
}
