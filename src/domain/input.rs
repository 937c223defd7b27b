//! "Parse, don't validate": client input becomes these types, which cannot hold an invalid
//! value. Each parser returns the SPEC's `VALIDATION_ERROR` naming the field.

use crate::error::AppError;

/// Who a deletion or a clear applies to: the caller only, or every participant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Me,
    Everyone,
}

impl Scope {
    /// `?scope=me|everyone`; `default` when absent.
    pub fn parse(raw: Option<&str>, default: Self) -> Result<Self, AppError> {
        match raw {
            None => Ok(default),
            Some("me") => Ok(Self::Me),
            Some("everyone") => Ok(Self::Everyone),
            Some(_) => Err(AppError::invalid_field("scope", "must be `me` or `everyone`")),
        }
    }
}

/// A lower-cased, plausibly deliverable email address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let email = raw.trim().to_lowercase();
        let invalid = || AppError::invalid_field("email", "must be a valid email address");
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.contains('@')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

/// A password of 8 to 1024 bytes (the upper bound keeps hashing cost bounded).
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    const MAX_BYTES: usize = 1024;

    pub fn parse(raw: String) -> Result<Self, AppError> {
        if raw.chars().count() < Self::MIN_CHARS {
            return Err(AppError::invalid_field("password", "must be at least 8 characters"));
        }
        if raw.len() > Self::MAX_BYTES {
            return Err(AppError::invalid_field("password", "must be at most 1024 bytes"));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// 2 to 64 characters, trimmed, without control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let name = raw.trim();
        let len = name.chars().count();
        if !(2..=64).contains(&len) {
            return Err(AppError::invalid_field("displayName", "must be 2 to 64 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(AppError::invalid_field("displayName", "must not contain control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A lower-case handle: 3 to 32 of `a-z 0-9 _ .`, starting with a letter or digit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    const MAX: usize = 32;

    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let name = raw.trim().to_lowercase();
        let valid_chars = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        let starts_well = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !(3..=Self::MAX).contains(&name.len()) || !valid_chars || !starts_well {
            return Err(AppError::invalid_field(
                "username",
                "must be 3 to 32 characters of a-z, 0-9, '_' or '.', starting with a letter or digit",
            ));
        }
        Ok(Self(name))
    }

    /// The base username derived from an email's local part (`John.Doe+x` → `john.doex`);
    /// callers add a suffix when it is taken.
    pub fn slug_from(email: &Email) -> Self {
        let mut slug: String = email
            .local_part()
            .chars()
            .filter_map(|c| match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9' | '_' | '.') => Some(c),
                '-' => Some('_'),
                _ => None,
            })
            .skip_while(|c| !c.is_ascii_alphanumeric())
            .take(Self::MAX - 5)
            .collect();
        if slug.len() < 3 {
            slug = format!("user{slug}");
        }
        Self(slug)
    }

    /// `base` plus a numeric suffix, still within the length limit.
    pub fn with_suffix(&self, suffix: u32) -> Self {
        let suffix = suffix.to_string();
        let keep = Self::MAX.saturating_sub(suffix.len()).min(self.0.len());
        Self(format!("{}{suffix}", &self.0[..keep]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An `http(s)` URL of at most 2048 bytes, without whitespace or control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvatarUrl(String);

impl AvatarUrl {
    pub fn parse(raw: &str) -> Result<Self, AppError> {
        let url = raw.trim();
        let has_scheme = url.starts_with("https://") || url.starts_with("http://");
        let host_present = url.split("://").nth(1).is_some_and(|rest| !rest.is_empty());
        if !has_scheme || !host_present || url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(AppError::invalid_field("avatarUrl", "must be an http(s) URL"));
        }
        Ok(Self(url.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A search prefix: trimmed, lower-cased, 1 to 64 characters, no control characters (a NUL
/// reached PostgreSQL and was a 500; no name holds one, so nothing is lost).
pub fn search_prefix(raw: &str) -> Result<String, AppError> {
    let query = raw.trim().to_lowercase();
    if query.is_empty() || query.chars().count() > 64 || query.chars().any(char::is_control) {
        return Err(AppError::invalid_field("query", "must be 1 to 64 characters"));
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_checked() {
        assert_eq!(Email::parse(" Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "ann@.com", "a@b@c.com"] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        assert!(Password::parse("x".repeat(2000)).is_err());
        assert_eq!(format!("{:?}", Password::parse("secret-password".into()).unwrap()), "Password([redacted])");
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert!(DisplayName::parse(" A ").is_err());
        assert_eq!(DisplayName::parse("  Ann Lee ").unwrap().into_inner(), "Ann Lee");
        assert!(DisplayName::parse(&"x".repeat(65)).is_err());
        assert!(DisplayName::parse("bad\u{0}name").is_err());
    }

    #[test]
    fn usernames_are_lower_case_slugs() {
        assert_eq!(Username::parse("Ann_Lee").unwrap().as_str(), "ann_lee");
        for bad in ["ab", "_ann", "ann lee", "ann-lee", "ännchen", &"a".repeat(33)] {
            assert!(Username::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn slugs_come_from_the_email_local_part() {
        let slug = |e: &str| Username::slug_from(&Email::parse(e).unwrap()).as_str().to_owned();
        assert_eq!(slug("John.Doe+news@example.com"), "john.doenews");
        assert_eq!(slug("jo@example.com"), "userjo");
        assert_eq!(slug("__x-y@example.com"), "x_y");
        assert!(Username::parse(&slug("a@example.com")).is_ok());
        let long = Username::slug_from(&Email::parse(&format!("{}@example.com", "a".repeat(60))).unwrap());
        assert!(Username::parse(long.with_suffix(123456).as_str()).is_ok());
    }

    #[test]
    fn search_prefixes_refuse_control_characters() {
        assert_eq!(search_prefix(" Ann ").unwrap(), "ann");
        for bad in ["", "   ", "a\u{0}b", "a\u{7}", &"a".repeat(65)] {
            assert!(search_prefix(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn avatar_urls_must_be_http() {
        assert!(AvatarUrl::parse("https://cdn.example.com/a.png").is_ok());
        for bad in ["ftp://x", "javascript:alert(1)", "https://", "https://a b", "https://a.b/\u{0}"] {
            assert!(AvatarUrl::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
