//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1, RFC 6750 §3), read on the client side.
//!
//! A 401 or 403 from the gateway says in its challenge what went wrong: no token at all, a token
//! that is unknown, expired or revoked, or a token without a scope the resource needs. A client
//! reads it to decide whether to log in, refresh, or ask for more scope ([`NextStep`]).

use crate::oauth::scope::ScopeSet;

/// One challenge: an auth-scheme and either a token68 or auth-params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme as sent (`Bearer`, `Basic`, …); compare it case-insensitively.
    pub scheme: String,
    /// The token68 form (`Newauth abc==`), rare in practice.
    pub token68: Option<String>,
    /// Auth-params with lower-cased names, in the order sent; each name appears once.
    pub params: Vec<(String, String)>,
}

/// What a client should do about a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// No usable credentials were sent: get a token (or, for Basic, send the client's key and
    /// secret).
    Authenticate,
    /// The token is unknown, expired or revoked: refresh it, and log in again if that fails.
    Refresh,
    /// The token is valid but lacks a scope the resource needs (listed in `scope`): get a token
    /// with that scope.
    RequestScope,
    /// The request itself is malformed: no token will help.
    FixRequest,
    /// A scheme or error code this package does not know.
    Unknown,
}

impl NextStep {
    pub fn as_str(self) -> &'static str {
        match self {
            NextStep::Authenticate => "authenticate",
            NextStep::Refresh => "refresh",
            NextStep::RequestScope => "request_scope",
            NextStep::FixRequest => "fix_request",
            NextStep::Unknown => "unknown",
        }
    }
}

/// Why a `WWW-Authenticate` value could not be read; the text says where it went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedChallenge(pub &'static str);

impl Challenge {
    /// An auth-param by name, case-insensitively.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    pub fn is_scheme(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    pub fn realm(&self) -> Option<&str> {
        self.param("realm")
    }

    pub fn error(&self) -> Option<&str> {
        self.param("error")
    }

    pub fn error_description(&self) -> Option<&str> {
        self.param("error_description")
    }

    pub fn scope(&self) -> Option<&str> {
        self.param("scope")
    }

    /// The scopes named by a Bearer challenge's `scope` (RFC 6750 §3): with
    /// `insufficient_scope`, the scopes the resource needs. Empty when there is none.
    pub fn scopes(&self) -> ScopeSet {
        // `parse_challenges` has checked a Bearer scope, so this only drops what it let pass
        // for other schemes.
        self.scope().and_then(|scope| ScopeSet::parse(scope).ok()).unwrap_or_default()
    }

    pub fn next_step(&self) -> NextStep {
        if self.is_scheme("basic") {
            return NextStep::Authenticate;
        }
        if !self.is_scheme("bearer") {
            return NextStep::Unknown;
        }
        match self.error() {
            None => NextStep::Authenticate,
            Some("invalid_token") => NextStep::Refresh,
            Some("insufficient_scope") => NextStep::RequestScope,
            Some("invalid_request") => NextStep::FixRequest,
            Some(_) => NextStep::Unknown,
        }
    }
}

/// Parses a `WWW-Authenticate` field value: one or more comma-separated challenges.
///
/// Strict where a lenient reading could mislead: a parameter named twice in one challenge
/// (RFC 9110 §11.2, RFC 6750 §3), an unterminated quoted string, or a Bearer `scope` that is not
/// a space-separated list of scope-tokens are errors rather than guesses.
pub fn parse_challenges(value: &str) -> Result<Vec<Challenge>, MalformedChallenge> {
    let mut cursor = Cursor { text: value.as_bytes(), at: 0 };
    let mut challenges = Vec::new();
    loop {
        cursor.skip_list_separators();
        if cursor.at_end() {
            break;
        }
        let scheme = cursor.token().ok_or(MalformedChallenge("expected an auth-scheme"))?;
        let mut challenge = Challenge { scheme: scheme.to_owned(), token68: None, params: Vec::new() };
        let had_space = cursor.skip_whitespace();
        let mut at_next_challenge = false;
        if had_space && !cursor.at_end() && cursor.peek() != Some(b',') {
            if let Some(token68) = cursor.token68() {
                challenge.token68 = Some(token68.to_owned());
            } else {
                at_next_challenge = read_params(&mut cursor, &mut challenge)?;
            }
        } else if !cursor.at_end() && cursor.peek() != Some(b',') {
            return Err(MalformedChallenge("expected a space after the auth-scheme"));
        }
        check_bearer_scope(&challenge)?;
        challenges.push(challenge);
        if at_next_challenge {
            continue;
        }
        cursor.skip_whitespace();
        match cursor.peek() {
            None | Some(b',') => {}
            Some(_) => return Err(MalformedChallenge("expected a comma between challenges")),
        }
    }
    if challenges.is_empty() {
        return Err(MalformedChallenge("no challenge"));
    }
    Ok(challenges)
}

/// Auth-params of one challenge, up to the end or the next challenge: then true, with the
/// cursor on that challenge's scheme (the comma before it consumed).
fn read_params(cursor: &mut Cursor, challenge: &mut Challenge) -> Result<bool, MalformedChallenge> {
    loop {
        let start = cursor.at;
        let Some(name) = cursor.token() else {
            return Err(MalformedChallenge("expected an auth-param name"));
        };
        cursor.skip_whitespace();
        if cursor.peek() != Some(b'=') {
            // `Bearer realm="a", Basic realm="b"`: a token not followed by `=` starts the next
            // challenge. It is only allowed after at least one parameter.
            if challenge.params.is_empty() {
                return Err(MalformedChallenge("expected `=` after an auth-param name"));
            }
            cursor.at = start;
            return Ok(true);
        }
        cursor.at += 1;
        cursor.skip_whitespace();
        let value = if cursor.peek() == Some(b'"') {
            cursor.quoted_string()?
        } else {
            cursor.token().map(str::to_owned).ok_or(MalformedChallenge("expected an auth-param value"))?
        };
        let name = name.to_ascii_lowercase();
        if challenge.params.iter().any(|(existing, _)| *existing == name) {
            return Err(MalformedChallenge("an auth-param appears twice in one challenge"));
        }
        challenge.params.push((name, value));
        cursor.skip_whitespace();
        if cursor.peek() != Some(b',') {
            return Ok(false);
        }
        cursor.skip_list_separators();
        if cursor.at_end() {
            return Ok(false);
        }
    }
}

fn check_bearer_scope(challenge: &Challenge) -> Result<(), MalformedChallenge> {
    match challenge.scope() {
        Some(scope) if challenge.is_scheme("bearer") && ScopeSet::parse(scope).is_err() => {
            Err(MalformedChallenge("the scope attribute is not a list of scope-tokens"))
        }
        _ => Ok(()),
    }
}

struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn at_end(&self) -> bool {
        self.at >= self.text.len()
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    /// Skips spaces and tabs; true when there was any.
    fn skip_whitespace(&mut self) -> bool {
        let start = self.at;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
        self.at > start
    }

    /// Skips `OWS "," OWS`, repeated: the #rule allows empty list elements.
    fn skip_list_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.at += 1;
        }
    }

    fn slice(&self, start: usize, end: usize) -> &'a str {
        // Only ASCII bytes are ever sliced here, so the range is on char boundaries.
        self.text.get(start..end).and_then(|bytes| std::str::from_utf8(bytes).ok()).unwrap_or_default()
    }

    /// RFC 9110 §5.6.2 token: 1*tchar.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        (self.at > start).then(|| self.slice(start, self.at))
    }

    /// A token68 (RFC 9110 §11.2) standing alone: followed by the end or a comma. Leaves the
    /// cursor untouched when what follows is an auth-param instead.
    fn token68(&mut self) -> Option<&'a str> {
        let start = self.at;
        let mut end = start;
        while self.text.get(end).is_some_and(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        }) {
            end += 1;
        }
        if end == start {
            return None;
        }
        while self.text.get(end) == Some(&b'=') {
            end += 1;
        }
        let mut after = end;
        while matches!(self.text.get(after), Some(b' ' | b'\t')) {
            after += 1;
        }
        // `realm="x"` is a token followed by `=` and a value, not a token68; a token68 ends
        // the challenge.
        if !matches!(self.text.get(after), None | Some(b',')) {
            return None;
        }
        self.at = end;
        Some(self.slice(start, end))
    }

    /// RFC 9110 §5.6.4 quoted-string, unescaped.
    fn quoted_string(&mut self) -> Result<String, MalformedChallenge> {
        self.at += 1; // the opening quote
        let mut value = Vec::new();
        loop {
            match self.peek() {
                None => return Err(MalformedChallenge("a quoted string is not terminated")),
                Some(b'"') => {
                    self.at += 1;
                    break;
                }
                Some(b'\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(b) if b == b'\t' || b >= 0x20 && b != 0x7f => {
                            value.push(b);
                            self.at += 1;
                        }
                        _ => return Err(MalformedChallenge("a quoted string has a bad escape")),
                    }
                }
                Some(b) if b == b'\t' || b >= 0x20 && b != 0x7f => {
                    value.push(b);
                    self.at += 1;
                }
                Some(_) => return Err(MalformedChallenge("a quoted string has a control character")),
            }
        }
        String::from_utf8(value).map_err(|_| MalformedChallenge("a quoted string is not UTF-8"))
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: &str) -> Challenge {
        let mut all = parse_challenges(value).unwrap();
        assert_eq!(all.len(), 1, "{value:?}");
        all.remove(0)
    }

    #[test]
    fn token68_and_params_are_told_apart() {
        let c = one("Newauth abc+/==");
        assert_eq!(c.token68.as_deref(), Some("abc+/=="));
        assert!(c.params.is_empty());
        let c = one("Bearer realm=tokengate");
        assert_eq!(c.token68, None);
        assert_eq!(c.realm(), Some("tokengate"));
    }

    #[test]
    fn the_cursor_never_slices_inside_a_character() {
        // Non-ASCII bytes are neither tchar nor token68 characters, so they stop the parse.
        assert!(parse_challenges("Bearer réalm=\"x\"").is_err());
        assert_eq!(one("Bearer realm=\"réalm\"").realm(), Some("réalm"));
    }
}
