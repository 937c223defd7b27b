//! Full-text search of the caller's messages (SPEC §4.2): every word of the query must start a
//! word of the message, in any language; newest first; only what the caller may see (their
//! conversations, never deleted, cleared, hidden or from before they joined). Both backends
//! index the same words (see the `message_extras` migrations); the matches are highlighted
//! here, the same way for both.

use std::{collections::HashMap, sync::Arc};

use serde::{Deserialize, Serialize};
use unicode_normalization::char::is_combining_mark;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Deps, access::membership, conversations::page_limit, cursor, reactions::reader_views, views::Message};
use crate::{
    error::{AppError, AppResult},
    storage::{
        Storage,
        extras::{SearchQuery, SearchScope},
    },
};

/// Words of a query that count (the rest are ignored).
pub const MAX_TERMS: usize = 8;
/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// One result: the message, and where in its `content` the query's words match, as
/// `[start, end)` offsets in UTF-16 code units (as JavaScript counts them).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SearchHit {
    pub message: Message,
    pub highlights: Vec<[usize; 2]>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    pub results: Vec<SearchHit>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Serialize, Deserialize)]
struct SearchPosition {
    /// The last message of the page before.
    b: Uuid,
}

pub struct SearchService {
    storage: Arc<dyn Storage>,
}

impl SearchService {
    pub fn new(deps: &Deps) -> Self {
        Self { storage: deps.storage.clone() }
    }

    pub async fn messages(
        &self,
        user: Uuid,
        query: &str,
        conversation: Option<Uuid>,
        page_cursor: Option<&str>,
        limit: Option<i64>,
    ) -> AppResult<SearchPage> {
        let limit = page_limit(limit)?;
        let terms = terms(query)?;
        if let Some(id) = conversation {
            membership(self.storage.as_ref(), user, id).await?;
        }
        let scopes: Vec<SearchScope> = self
            .storage
            .search_scope(user)
            .await?
            .into_iter()
            .filter(|scope| conversation.is_none_or(|id| id == scope.conversation_id))
            .collect();
        let after = page_cursor.map(cursor::decode::<SearchPosition>).transpose()?.map(|p| p.b);
        let search = SearchQuery { scopes, terms, after, limit: limit + 1 };
        let mut records = self.storage.search_messages(&search).await?;
        let has_more = records.len() as i64 > limit;
        records.truncate(limit as usize);
        let next_cursor =
            records.last().filter(|_| has_more).map(|last| cursor::encode(&SearchPosition { b: last.id }));
        let floors: HashMap<Uuid, i64> =
            search.scopes.iter().map(|scope| (scope.conversation_id, scope.floor)).collect();
        let messages = reader_views(self.storage.as_ref(), user, &records, |row| floors[&row.conversation_id]).await?;
        let results = messages
            .into_iter()
            .map(|message| {
                let highlights = highlights(message.content.as_deref().unwrap_or_default(), &search.terms);
                SearchHit { message, highlights }
            })
            .collect();
        Ok(SearchPage { results, next_cursor, has_more })
    }
}

/// A word character: a letter, a digit or a combining mark (so a Thai word's vowel signs
/// and tone marks stay in it), as the full-text indexes see words.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// The query's words, lower case, at most [`MAX_TERMS`]; `VALIDATION_ERROR` when it has none.
pub fn terms(query: &str) -> AppResult<Vec<String>> {
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(AppError::invalid_field("q", "must be at most 200 characters"));
    }
    let mut terms: Vec<String> = Vec::new();
    for word in query.split(|c: char| !is_word(c)).filter(|w| !w.is_empty()) {
        let word = word.to_lowercase();
        if !terms.contains(&word) && terms.len() < MAX_TERMS {
            terms.push(word);
        }
    }
    if terms.is_empty() {
        return Err(AppError::invalid_field("q", "must contain a word to search for"));
    }
    Ok(terms)
}

/// Where `terms` start words of `content`: the matched beginning of each such word, as
/// `[start, end)` in UTF-16 code units.
pub fn highlights(content: &str, terms: &[String]) -> Vec<[usize; 2]> {
    let mut found = Vec::new();
    let mut words = Vec::new();
    let (mut at, mut start) = (0usize, None::<(usize, usize)>);
    for (byte, c) in content.char_indices() {
        match (is_word(c), start) {
            (true, None) => start = Some((byte, at)),
            (false, Some(word)) => {
                words.push((word, byte));
                start = None;
            }
            _ => {}
        }
        at += c.len_utf16();
    }
    if let Some(word) = start {
        words.push((word, content.len()));
    }
    for ((from, from16), to) in words {
        let word = &content[from..to];
        let lower = word.to_lowercase();
        let Some(term) = terms.iter().filter(|t| lower.starts_with(t.as_str())).max_by_key(|t| t.len()) else {
            continue;
        };
        // How much of the word its lower-case prefix `term` covers.
        let (mut folded, mut units) = (0, 0);
        for c in word.chars() {
            if folded >= term.len() {
                break;
            }
            folded += c.to_lowercase().map(char::len_utf8).sum::<usize>();
            units += c.len_utf16();
        }
        found.push([from16, from16 + units]);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms_of(query: &str) -> Vec<String> {
        terms(query).unwrap()
    }

    #[test]
    fn queries_become_lower_case_words() {
        assert_eq!(terms_of("Release  notes!"), ["release", "notes"]);
        assert_eq!(terms_of("hello-world e-mail"), ["hello", "world", "e", "mail"]);
        assert_eq!(terms_of("สวัสดีครับ"), ["สวัสดีครับ"], "a Thai word keeps its marks");
        assert_eq!(terms_of("ไม่ ได้"), ["ไม่", "ได้"], "tone marks too");
        for empty in ["", "  ", "!!! --", "😀"] {
            assert_eq!(terms(empty).unwrap_err().code(), "VALIDATION_ERROR", "{empty:?}");
        }
        assert_eq!(terms(&"a ".repeat(150)).unwrap_err().code(), "VALIDATION_ERROR");
    }

    #[test]
    fn highlights_are_utf16_offsets_of_the_matched_beginnings() {
        let t = |q: &str| terms_of(q);
        assert_eq!(highlights("Deploy the release tonight", &t("releas")), [[11, 17]]);
        assert_eq!(highlights("RELEASE notes, release", &t("release notes")), [[0, 7], [8, 13], [15, 22]]);
        assert_eq!(highlights("prerelease", &t("release")), Vec::<[usize; 2]>::new(), "not inside a word");
        // 😀 is two UTF-16 code units.
        assert_eq!(highlights("😀 café", &t("caf")), [[3, 6]]);
        assert_eq!(highlights("สวัสดีครับ ทดสอบ", &t("ทดสอบ")), [[11, 16]]);
    }
}
