//! The client's side of the gateway: what a front-end app sends to `/token` and what it makes of
//! the answer. [`challenge`] reads `WWW-Authenticate`; [`sign_in`] is the authorization code
//! flow's trip to `/authorize` and back; `web` (feature `web`) is the browser package's thin
//! wasm-bindgen wrapper over all three.
//!
//! Everything here is built from the gateway's own pieces (Basic decoding, form encoding, scope
//! grammar, grant names, the token response structs), so an app using the package and the
//! gateway can never disagree on the wire format.

pub mod challenge;
pub mod id_token;
pub mod sign_in;
#[cfg(feature = "web")]
pub mod web;

use crate::oauth::credentials::{self, is_b64token, CredentialsError};
use crate::oauth::grant_type::{GrantType, TokenParam};
use crate::oauth::messages::{ErrorResponse, TokenResponse};
use crate::oauth::pkce;
use crate::oauth::scope::MALFORMED_SCOPE;
use crate::oauth::scope::{is_scope_token, ScopeSet};
use id_token::IdTokenError;
use sign_in::SignInError;

/// The content type of a `/token` request body.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Every way a client-side call can fail.
///
/// [`ClientError::code`] is stable and meant for programs; the package's own codes never collide
/// with RFC 6749 §5.2 error codes, so a code such as `invalid_grant` always means the server said
/// so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// Basic credentials that cannot be encoded or decoded.
    Credentials(CredentialsError),
    /// Not an RFC 6750 b64token.
    MalformedBearerToken,
    /// A token request without a parameter its grant needs.
    MissingParameter { grant: Option<GrantType>, parameter: &'static str },
    /// A token request with a parameter its grant does not take.
    UnexpectedParameter { grant: GrantType, parameter: &'static str },
    /// A grant type the gateway does not implement.
    UnknownGrantType,
    /// A revocation `token_type_hint` other than `access_token` or `refresh_token`.
    UnknownTokenTypeHint,
    /// A scope that is not scope-tokens separated by single spaces (RFC 6749 §3.3).
    MalformedScope,
    /// A token endpoint response that is not JSON.
    NotJson,
    /// JSON that is neither a token response nor an error response, or one with a bad field.
    InvalidTokenResponse(&'static str),
    /// A token type other than Bearer.
    UnsupportedTokenType,
    /// The server's own error response (RFC 6749 §5.2).
    Server(ErrorResponse),
    /// A step of the authorization code flow: building the `/authorize` URL, reading the
    /// callback (whose server errors come back here too, with the server's code).
    SignIn(SignInError),
    /// A JWT that cannot be read, or an ID token that does not verify (see [`id_token`]).
    IdToken(IdTokenError),
}

impl ClientError {
    pub fn code(&self) -> &str {
        match self {
            ClientError::Credentials(error) => match error {
                CredentialsError::BadBase64 => "bad_base64",
                CredentialsError::NoColon => "no_colon",
                CredentialsError::NotUtf8 => "not_utf8",
                CredentialsError::BadPercentEncoding => "bad_percent_encoding",
                CredentialsError::EmptyKey => "empty_consumer_key",
                CredentialsError::EmptySecret => "empty_consumer_secret",
                CredentialsError::ControlCharacter => "control_character",
            },
            ClientError::MalformedBearerToken => "malformed_bearer_token",
            ClientError::MissingParameter { .. } => "missing_parameter",
            ClientError::UnexpectedParameter { .. } => "unexpected_parameter",
            ClientError::UnknownGrantType => "unknown_grant_type",
            ClientError::UnknownTokenTypeHint => "unknown_token_type_hint",
            ClientError::MalformedScope => "malformed_scope",
            ClientError::NotJson => "not_json",
            ClientError::InvalidTokenResponse(_) => "invalid_token_response",
            ClientError::UnsupportedTokenType => "unsupported_token_type",
            ClientError::Server(response) => &response.error,
            ClientError::SignIn(error) => error.code(),
            ClientError::IdToken(error) => error.code(),
        }
    }

    /// A sentence for people. Never contains a secret or a token.
    pub fn message(&self) -> String {
        match self {
            ClientError::Credentials(error) => match error {
                CredentialsError::BadBase64 => "the credentials are not standard base64".to_owned(),
                CredentialsError::NoColon => {
                    "the decoded credentials have no ':' between consumer key and secret".to_owned()
                }
                CredentialsError::NotUtf8 => "the decoded credentials are not UTF-8 text".to_owned(),
                CredentialsError::BadPercentEncoding => {
                    "the decoded credentials have a '%' not followed by two hex digits".to_owned()
                }
                CredentialsError::EmptyKey => "the consumer key is empty".to_owned(),
                CredentialsError::EmptySecret => "the consumer secret is empty".to_owned(),
                CredentialsError::ControlCharacter => {
                    "the consumer key or secret contains a control character".to_owned()
                }
            },
            ClientError::MalformedBearerToken => {
                "an access token is letters, digits and -._~+/ with optional trailing '='".to_owned()
            }
            ClientError::MissingParameter { grant: None, parameter } => format!("{parameter} is required"),
            ClientError::MissingParameter { grant: Some(grant), parameter } => {
                format!("a {} grant needs {parameter}", grant.as_str())
            }
            ClientError::UnexpectedParameter { grant, parameter } => {
                format!("a {} grant does not take {parameter}", grant.as_str())
            }
            ClientError::UnknownGrantType => {
                format!("the grant type must be one of {}", GrantType::ALL.map(GrantType::as_str).join(", "))
            }
            ClientError::UnknownTokenTypeHint => {
                "the token type hint must be access_token or refresh_token".to_owned()
            }
            ClientError::MalformedScope => MALFORMED_SCOPE.to_owned(),
            ClientError::NotJson => "the token endpoint's response is not JSON".to_owned(),
            ClientError::InvalidTokenResponse(what) => format!("the token response is invalid: {what}"),
            ClientError::UnsupportedTokenType => "the token type is not Bearer".to_owned(),
            ClientError::Server(response) => response.refusal(),
            ClientError::SignIn(error) => error.message(),
            ClientError::IdToken(error) => error.message(),
        }
    }
}

impl From<SignInError> for ClientError {
    fn from(error: SignInError) -> Self {
        ClientError::SignIn(error)
    }
}

impl From<CredentialsError> for ClientError {
    fn from(error: CredentialsError) -> Self {
        ClientError::Credentials(error)
    }
}

// ---------------------------------------------------------------------------------------------
// Credentials and Authorization headers

/// What goes after `Basic `: RFC 6749 §2.3.1 form-encodes key and secret, joins them with `:`
/// and base64s the result. For keys and secrets made of `A-Z a-z 0-9 - . _ ~` (what tokengate
/// issues) that is plain base64 of `key:secret`.
///
/// Refuses what the gateway would refuse (empty halves, control characters), so a pair that
/// encodes is a pair the gateway can decode.
pub fn encode_credentials(consumer_key: &str, consumer_secret: &str) -> Result<String, ClientError> {
    let encoded = credentials::encode_basic_credentials(consumer_key, consumer_secret);
    decode_credentials(&encoded)?;
    Ok(encoded)
}

/// The reverse of [`encode_credentials`], with the gateway's own decoder.
pub fn decode_credentials(encoded: &str) -> Result<(String, String), ClientError> {
    let decoded = credentials::decode_basic_credentials(encoded)?;
    Ok((decoded.consumer_key, decoded.consumer_secret))
}

pub fn basic_authorization(consumer_key: &str, consumer_secret: &str) -> Result<String, ClientError> {
    Ok(format!("Basic {}", encode_credentials(consumer_key, consumer_secret)?))
}

pub fn bearer_authorization(access_token: &str) -> Result<String, ClientError> {
    if !is_b64token(access_token) {
        return Err(ClientError::MalformedBearerToken);
    }
    Ok(format!("Bearer {access_token}"))
}

/// The form body of an RFC 7009 revocation request (`POST /revoke`, authenticated with Basic
/// like `/token`): `token` and an optional `token_type_hint`.
pub fn revocation_body(token: &str, token_type_hint: Option<&str>) -> Result<String, ClientError> {
    if !is_b64token(token) {
        return Err(ClientError::MalformedBearerToken);
    }
    let mut body = format!("token={}", credentials::form_encode(token));
    match present(token_type_hint) {
        None => {}
        Some(hint @ ("access_token" | "refresh_token")) => {
            body.push_str("&token_type_hint=");
            body.push_str(hint);
        }
        Some(_) => return Err(ClientError::UnknownTokenTypeHint),
    }
    Ok(body)
}

// ---------------------------------------------------------------------------------------------
// Token requests

/// A grant as the client asks for it.
#[derive(Clone, PartialEq, Eq)]
pub enum Grant {
    ClientCredentials,
    Password {
        username: String,
        password: String,
    },
    RefreshToken {
        refresh_token: String,
    },
    /// RFC 6749 §4.1.3 with RFC 7636 §4.5: the code, the redirect URI it was asked for, and
    /// the PKCE verifier.
    AuthorizationCode {
        code: String,
        redirect_uri: String,
        code_verifier: String,
    },
}

/// A complete `/token` request: a grant, optionally a narrower scope than the default, and
/// for a public client its `client_id` in the body (RFC 6749 §4.1.3: a client that does not
/// authenticate names itself). Deliberately not `Debug`: it holds a password, a refresh token
/// or a code.
#[derive(Clone, PartialEq, Eq)]
pub struct GrantRequest {
    pub grant: Grant,
    pub scope: Option<ScopeSet>,
    pub client_id: Option<String>,
}

/// Loose input, as a form or a JavaScript object gives it. Empty strings count as absent, as
/// they do on the server (RFC 6749 §3.2).
#[derive(Default, Clone, Copy)]
pub struct GrantRequestInput<'a> {
    pub grant_type: Option<&'a str>,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub refresh_token: Option<&'a str>,
    pub code: Option<&'a str>,
    pub redirect_uri: Option<&'a str>,
    pub code_verifier: Option<&'a str>,
    /// A public client's id, sent in the body (confidential clients use Basic instead).
    pub client_id: Option<&'a str>,
    pub scope: Option<ScopeInput<'a>>,
}

/// A scope given as one space-separated string or as a list of names.
#[derive(Clone, Copy)]
pub enum ScopeInput<'a> {
    Text(&'a str),
    Names(&'a [String]),
}

impl ScopeInput<'_> {
    /// `None` for an empty scope (the server's default applies).
    pub fn parse(self) -> Result<Option<ScopeSet>, ClientError> {
        let set = match self {
            ScopeInput::Text("") => return Ok(None),
            ScopeInput::Text(text) => ScopeSet::parse(text).map_err(|_| ClientError::MalformedScope)?,
            ScopeInput::Names(names) => {
                // Each name must be one scope-token: "a b" in a list is two names the caller
                // did not mean. Joined and parsed, the list then goes through the one parser.
                if !names.iter().all(|name| is_scope_token(name)) {
                    return Err(ClientError::MalformedScope);
                }
                if names.is_empty() {
                    return Ok(None);
                }
                ScopeSet::parse(&names.join(" ")).map_err(|_| ClientError::MalformedScope)?
            }
        };
        Ok((!set.is_empty()).then_some(set))
    }
}

impl GrantRequestInput<'_> {
    /// The input's value of a grant-specific parameter; the scope is not text and is checked
    /// on its own ([`ScopeInput::parse`]).
    fn value(&self, param: TokenParam) -> Option<&str> {
        match param {
            TokenParam::Username => self.username,
            TokenParam::Password => self.password,
            TokenParam::RefreshToken => self.refresh_token,
            TokenParam::Code => self.code,
            TokenParam::RedirectUri => self.redirect_uri,
            TokenParam::CodeVerifier => self.code_verifier,
            TokenParam::Scope => None,
        }
    }
}

/// A parameter's value, or `None` when it is missing or empty.
fn present(value: Option<&str>) -> Option<&str> {
    value.filter(|value| !value.is_empty())
}

impl GrantRequest {
    /// Checks the input before anything is sent: a grant type the gateway knows, the
    /// parameters that grant needs, none it does not take, and a well-formed scope.
    pub fn from_input(input: &GrantRequestInput) -> Result<GrantRequest, ClientError> {
        let grant_type = present(input.grant_type)
            .ok_or(ClientError::MissingParameter { grant: None, parameter: "the grant type" })?;
        let grant_type = GrantType::from_param(grant_type).ok_or(ClientError::UnknownGrantType)?;
        let spec = grant_type.spec();
        for &param in spec.refuses.iter().filter(|&&param| param != TokenParam::Scope) {
            if present(input.value(param)).is_some() {
                return Err(ClientError::UnexpectedParameter { grant: grant_type, parameter: param.label() });
            }
        }
        let need = |param: TokenParam| {
            present(input.value(param))
                .map(str::to_owned)
                .ok_or(ClientError::MissingParameter { grant: Some(grant_type), parameter: param.label() })
        };
        for &param in spec.requires {
            need(param)?;
        }
        let grant = match grant_type {
            GrantType::ClientCredentials => Grant::ClientCredentials,
            GrantType::Password => Grant::Password {
                username: need(TokenParam::Username)?,
                password: need(TokenParam::Password)?,
            },
            GrantType::RefreshToken => Grant::RefreshToken { refresh_token: need(TokenParam::RefreshToken)? },
            GrantType::AuthorizationCode => {
                let code_verifier = need(TokenParam::CodeVerifier)?;
                if !pkce::is_valid_verifier(&code_verifier) {
                    return Err(SignInError::MalformedCodeVerifier.into());
                }
                Grant::AuthorizationCode {
                    code: need(TokenParam::Code)?,
                    redirect_uri: need(TokenParam::RedirectUri)?,
                    code_verifier,
                }
            }
        };
        let scope = match input.scope {
            Some(scope) => scope.parse()?,
            None => None,
        };
        // The scope is checked once parsed: a malformed scope is reported as such first.
        if spec.refuses(TokenParam::Scope) && scope.is_some() {
            return Err(ClientError::UnexpectedParameter {
                grant: grant_type,
                parameter: TokenParam::Scope.label(),
            });
        }
        let client_id = present(input.client_id).map(str::to_owned);
        Ok(GrantRequest { grant, scope, client_id })
    }

    pub fn grant_type(&self) -> GrantType {
        match self.grant {
            Grant::ClientCredentials => GrantType::ClientCredentials,
            Grant::Password { .. } => GrantType::Password,
            Grant::RefreshToken { .. } => GrantType::RefreshToken,
            Grant::AuthorizationCode { .. } => GrantType::AuthorizationCode,
        }
    }

    /// The `application/x-www-form-urlencoded` body, `grant_type` first.
    pub fn form_body(&self) -> String {
        let mut params: Vec<(&str, String)> = vec![("grant_type", self.grant_type().as_str().to_owned())];
        match &self.grant {
            Grant::ClientCredentials => {}
            Grant::Password { username, password } => {
                params.push(("username", username.clone()));
                params.push(("password", password.clone()));
            }
            Grant::RefreshToken { refresh_token } => params.push(("refresh_token", refresh_token.clone())),
            Grant::AuthorizationCode { code, redirect_uri, code_verifier } => {
                params.push(("code", code.clone()));
                params.push(("redirect_uri", redirect_uri.clone()));
                params.push(("code_verifier", code_verifier.clone()));
            }
        }
        if let Some(scope) = &self.scope {
            params.push(("scope", scope.to_string()));
        }
        if let Some(client_id) = &self.client_id {
            params.push(("client_id", client_id.clone()));
        }
        let mut body = String::new();
        for (name, value) in params {
            if !body.is_empty() {
                body.push('&');
            }
            body.push_str(name);
            body.push('=');
            body.push_str(&credentials::form_encode(&value));
        }
        body
    }
}

// ---------------------------------------------------------------------------------------------
// Token responses

/// A successful token response, checked, with its expiry pinned to a clock.
/// Deliberately not `Debug`: it holds tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSet {
    pub access_token: String,
    pub token_type: String,
    /// Seconds the token was valid for when issued; `None` for a token that never expires.
    pub expires_in: Option<u64>,
    /// Milliseconds since the Unix epoch at which the access token expires.
    pub expires_at_ms: Option<u64>,
    pub refresh_token: Option<String>,
    /// The granted scope; `None` when the server left it out (RFC 6749 §5.1 allows that when
    /// it equals the requested scope; tokengate always sends it).
    pub scope: Option<ScopeSet>,
    /// The OpenID Connect ID token, when the server sent one (scope `openid`): not verified
    /// here; [`id_token::verify_id_token`] does that against the issuer's JWKS.
    pub id_token: Option<String>,
}

/// One member of a parsed JSON object, as a client needs to tell them apart.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonField {
    Absent,
    Null,
    String(String),
    Number(f64),
    /// A boolean, array or object.
    Other,
}

/// A parsed JSON object: serde_json's natively, the result of the browser's own `JSON.parse`
/// in the package (which then needs no JSON parser of its own: that is 60 KB of wasm saved).
pub trait JsonObject {
    fn field(&self, name: &str) -> JsonField;
}

/// Reads a `/token` response body. `now_ms` (milliseconds since the Unix epoch) is when it
/// arrived, to turn `expires_in` into an instant.
///
/// An RFC 6749 §5.2 error body becomes [`ClientError::Server`] with the server's code, whatever
/// the HTTP status was, so a caller can hand over the body without looking at the status first.
pub fn parse_token_response(json: &str, now_ms: u64) -> Result<TokenSet, ClientError> {
    let value: serde_json::Value = serde_json::from_str(json).map_err(|_| ClientError::NotJson)?;
    let object = value.as_object().ok_or(ClientError::InvalidTokenResponse("it is not a JSON object"))?;
    read_token_response(object, now_ms)
}

impl JsonObject for serde_json::Map<String, serde_json::Value> {
    fn field(&self, name: &str) -> JsonField {
        match self.get(name) {
            None => JsonField::Absent,
            Some(serde_json::Value::Null) => JsonField::Null,
            Some(serde_json::Value::String(text)) => JsonField::String(text.clone()),
            Some(serde_json::Value::Number(number)) => {
                number.as_f64().map_or(JsonField::Other, JsonField::Number)
            }
            Some(_) => JsonField::Other,
        }
    }
}

/// [`parse_token_response`] on an already parsed object. The field names and types are those
/// of [`TokenResponse`] and [`ErrorResponse`], whose serde derives write what the gateway sends;
/// a test round-trips every field through both, so the two cannot drift apart. As with serde's
/// `Option`, `null` counts as absent.
pub fn read_token_response(body: &impl JsonObject, now_ms: u64) -> Result<TokenSet, ClientError> {
    // An error body has `error`; a success never does. Reading the error first means a body
    // with both is treated as the failure it claims to be.
    if let Some(error) = optional_string(body, "error", "error is not a string")? {
        return Err(ClientError::Server(ErrorResponse {
            error,
            error_description: optional_string(
                body,
                "error_description",
                "error_description is not a string",
            )?,
            scope: optional_string(body, "scope", "scope is not a string")?,
        }));
    }
    let response = TokenResponse {
        access_token: optional_string(body, "access_token", "access_token is not a string")?
            .ok_or(ClientError::InvalidTokenResponse("access_token is missing"))?,
        token_type: optional_string(body, "token_type", "token_type is not a string")?
            .ok_or(ClientError::InvalidTokenResponse("token_type is missing"))?,
        expires_in: match body.field("expires_in") {
            JsonField::Absent | JsonField::Null => None,
            // Integral and exact in an f64: what a JSON number of seconds can be.
            JsonField::Number(secs) if secs.fract() == 0.0 && (0.0..=MAX_EXACT_F64).contains(&secs) => {
                Some(secs as u64)
            }
            _ => {
                return Err(ClientError::InvalidTokenResponse("expires_in is not a whole number of seconds"))
            }
        },
        refresh_token: optional_string(body, "refresh_token", "refresh_token is not a string")?,
        scope: optional_string(body, "scope", "scope is not a string")?,
        id_token: optional_string(body, "id_token", "id_token is not a string")?,
    };
    let id_token = optional_string(body, "id_token", "id_token is not a string")?;
    Ok(TokenSet { id_token, ..TokenSet::from_response(response, now_ms)? })
}

/// 2^53: the largest integer up to which every integer is exact in an f64 (and a JS number).
pub const MAX_EXACT_F64: f64 = 9_007_199_254_740_992.0;

fn optional_string(
    body: &impl JsonObject,
    name: &str,
    wrong_type: &'static str,
) -> Result<Option<String>, ClientError> {
    match body.field(name) {
        JsonField::Absent | JsonField::Null => Ok(None),
        JsonField::String(text) => Ok(Some(text)),
        _ => Err(ClientError::InvalidTokenResponse(wrong_type)),
    }
}

impl TokenSet {
    pub fn from_response(response: TokenResponse, now_ms: u64) -> Result<TokenSet, ClientError> {
        if !response.token_type.eq_ignore_ascii_case("bearer") {
            return Err(ClientError::UnsupportedTokenType);
        }
        if !is_b64token(&response.access_token) {
            return Err(ClientError::InvalidTokenResponse("access_token is not a b64token"));
        }
        if response.refresh_token.as_deref().is_some_and(|token| !is_b64token(token)) {
            return Err(ClientError::InvalidTokenResponse("refresh_token is not a b64token"));
        }
        let scope = match response.scope.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                ScopeSet::parse(text)
                    .map_err(|_| ClientError::InvalidTokenResponse("scope is not a list of scope-tokens"))?,
            ),
        };
        Ok(TokenSet {
            expires_at_ms: response.expires_in.map(|secs| now_ms.saturating_add(secs.saturating_mul(1000))),
            access_token: response.access_token,
            token_type: response.token_type,
            expires_in: response.expires_in,
            refresh_token: response.refresh_token,
            scope,
            id_token: None,
        })
    }

    /// True when the token holds every scope in `required` (always for an empty `required`).
    pub fn has_scopes(&self, required: &ScopeSet) -> bool {
        required.is_empty() || self.scope.as_ref().is_some_and(|granted| required.is_subset(granted))
    }

    /// True when the token has expired at `now_ms`, or will within `skew_ms` (refresh a little
    /// early to allow for clock skew and the request's own travel time).
    pub fn is_expired(&self, now_ms: u64, skew_ms: u64) -> bool {
        self.expires_at_ms.is_some_and(|at| now_ms.saturating_add(skew_ms) >= at)
    }

    /// Milliseconds left at `now_ms` (0 once expired); `None` for a token that never expires.
    pub fn remaining_ms(&self, now_ms: u64) -> Option<u64> {
        self.expires_at_ms.map(|at| at.saturating_sub(now_ms))
    }

    /// The request that trades this set's refresh token for a new set, keeping `scope` (or the
    /// grant's original scope when `None`).
    pub fn refresh_request(&self, scope: Option<ScopeSet>) -> Option<GrantRequest> {
        let refresh_token = self.refresh_token.clone()?;
        Some(GrantRequest { grant: Grant::RefreshToken { refresh_token }, scope, client_id: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::form::FormParams;

    #[test]
    fn every_grant_type_the_gateway_knows_is_accepted() {
        const VERIFIER: &str = crate::oauth::pkce::APPENDIX_B_VERIFIER;
        for grant in GrantType::ALL {
            let code_flow = grant == GrantType::AuthorizationCode;
            let input = GrantRequestInput {
                grant_type: Some(grant.as_str()),
                username: (grant == GrantType::Password).then_some("u"),
                password: (grant == GrantType::Password).then_some("p"),
                refresh_token: (grant == GrantType::RefreshToken).then_some("r"),
                code: code_flow.then_some("c"),
                redirect_uri: code_flow.then_some("http://127.0.0.1/cb"),
                code_verifier: code_flow.then_some(VERIFIER),
                ..Default::default()
            };
            let request = GrantRequest::from_input(&input).unwrap();
            assert_eq!(request.grant_type(), grant);
        }
    }

    /// The whole matrix of the grant table: each grant's request is refused with each
    /// parameter it refuses added, and without each one it requires.
    #[test]
    fn each_grant_refuses_and_requires_the_parameters_its_row_names() {
        for grant in GrantType::ALL {
            let spec = grant.spec();
            let complete = complete_input(grant);
            assert!(GrantRequest::from_input(&complete).is_ok(), "{grant:?}");
            for &param in spec.refuses {
                let mut input = complete;
                let scope = ["extra".to_owned()];
                match param {
                    TokenParam::Scope => input.scope = Some(ScopeInput::Names(&scope)),
                    _ => set(&mut input, param, Some("x")),
                }
                let expected = ClientError::UnexpectedParameter { grant, parameter: param.label() };
                assert_eq!(
                    GrantRequest::from_input(&input).err(),
                    Some(expected),
                    "{grant:?} with {param:?}"
                );
            }
            for &param in spec.requires {
                let mut input = complete;
                set(&mut input, param, None);
                let expected = ClientError::MissingParameter { grant: Some(grant), parameter: param.label() };
                assert_eq!(
                    GrantRequest::from_input(&input).err(),
                    Some(expected),
                    "{grant:?} without {param:?}"
                );
            }
        }
    }

    fn complete_input(grant: GrantType) -> GrantRequestInput<'static> {
        let mut input = GrantRequestInput { grant_type: Some(grant.as_str()), ..Default::default() };
        for &param in grant.spec().requires {
            let value = match param {
                TokenParam::CodeVerifier => crate::oauth::pkce::APPENDIX_B_VERIFIER,
                TokenParam::RedirectUri => "http://127.0.0.1/cb",
                _ => "v",
            };
            set(&mut input, param, Some(value));
        }
        input
    }

    fn set<'a>(input: &mut GrantRequestInput<'a>, param: TokenParam, value: Option<&'a str>) {
        match param {
            TokenParam::Username => input.username = value,
            TokenParam::Password => input.password = value,
            TokenParam::RefreshToken => input.refresh_token = value,
            TokenParam::Code => input.code = value,
            TokenParam::RedirectUri => input.redirect_uri = value,
            TokenParam::CodeVerifier => input.code_verifier = value,
            TokenParam::Scope => {}
        }
    }

    #[test]
    fn the_gateways_form_parser_reads_back_every_body() {
        let names = ["orders:write".to_owned(), "orders:read".to_owned()];
        let input = GrantRequestInput {
            grant_type: Some("password"),
            username: Some("ädmin & co"),
            password: Some("p=a+s%s w:d"),
            scope: Some(ScopeInput::Names(&names)),
            ..Default::default()
        };
        let body = GrantRequest::from_input(&input).unwrap().form_body();
        let params = FormParams::parse(body.as_bytes()).unwrap();
        assert_eq!(params.get("grant_type"), Some("password"));
        assert_eq!(params.get("username"), Some("ädmin & co"));
        assert_eq!(params.get("password"), Some("p=a+s%s w:d"));
        assert_eq!(params.get("scope"), Some("orders:read orders:write"));
    }

    #[test]
    fn a_refresh_request_keeps_the_refresh_token() {
        let set =
            parse_token_response(r#"{"access_token":"a","token_type":"Bearer","refresh_token":"r-1"}"#, 0)
                .unwrap();
        let body = set.refresh_request(None).unwrap().form_body();
        assert_eq!(body, "grant_type=refresh_token&refresh_token=r-1");
        let no_refresh = parse_token_response(r#"{"access_token":"a","token_type":"Bearer"}"#, 0).unwrap();
        assert!(no_refresh.refresh_request(None).is_none());
    }

    /// The reader and the gateway's serde derives agree on every field name and type.
    #[test]
    fn every_token_response_field_round_trips_through_the_reader() {
        let full = TokenResponse {
            access_token: "AQAA-x_y.z~1+2/3==".to_owned(),
            token_type: "Bearer".to_owned(),
            expires_in: Some(3600),
            refresh_token: Some("AgAA".to_owned()),
            scope: Some("a b".to_owned()),
            id_token: Some("eyJ.eyJ.sig".to_owned()),
        };
        let sparse = TokenResponse {
            expires_in: None,
            refresh_token: None,
            scope: None,
            id_token: None,
            ..full.clone()
        };
        for response in [full, sparse] {
            let json = serde_json::to_string(&response).unwrap();
            let set = parse_token_response(&json, 5_000).unwrap();
            assert_eq!(set.access_token, response.access_token);
            assert_eq!(set.token_type, response.token_type);
            assert_eq!(set.expires_in, response.expires_in);
            assert_eq!(set.expires_at_ms, response.expires_in.map(|secs| 5_000 + secs * 1000));
            assert_eq!(set.refresh_token, response.refresh_token);
            assert_eq!(set.scope.map(|scope| scope.to_string()), response.scope);
        }
        let error = ErrorResponse { scope: Some("orders:write".to_owned()), ..ErrorResponse::new("e", "d") };
        let json = String::from_utf8(error.to_json()).unwrap();
        assert_eq!(parse_token_response(&json, 0).err(), Some(ClientError::Server(error)));
        let bare = ErrorResponse::bare("invalid_client");
        let json = String::from_utf8(bare.to_json()).unwrap();
        assert_eq!(parse_token_response(&json, 0).err(), Some(ClientError::Server(bare)));
    }

    #[test]
    fn remaining_time_counts_down_and_stops_at_zero() {
        let set = parse_token_response(r#"{"access_token":"a","token_type":"Bearer","expires_in":2}"#, 1_000)
            .unwrap();
        assert_eq!(set.remaining_ms(1_000), Some(2_000));
        assert_eq!(set.remaining_ms(2_500), Some(500));
        assert_eq!(set.remaining_ms(9_000), Some(0));
    }
}
