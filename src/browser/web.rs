//! wasm-bindgen glue for the browser package (feature `web`, target `wasm32-unknown-unknown`).
//!
//! Thin on purpose: every rule lives in [`crate::browser`] and [`crate::browser::challenge`], which are
//! plain Rust with native tests. This module only turns JavaScript values into Rust values and
//! back, names things in camelCase, and turns every failure into a real JS `Error` carrying a
//! stable `code` (serde-wasm-bindgen's one-error-type pattern).

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::browser::challenge;
use crate::browser::id_token;
use crate::browser::sign_in::{self, AuthorizationInput, Pkce, RANDOM_BYTES};
use crate::browser::{self, ClientError, GrantRequest, GrantRequestInput, JsonField, ScopeInput};
use crate::oauth::scope::ScopeSet;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** The fields of a `/token` request; empty strings count as absent. */
export interface TokenRequestInput {
  grantType: "client_credentials" | "password" | "refresh_token" | "authorization_code";
  username?: string;
  password?: string;
  refreshToken?: string;
  /** authorization_code: the callback's code, the redirect URI it was asked for, the PKCE verifier. */
  code?: string;
  redirectUri?: string;
  codeVerifier?: string;
  /** A public client names itself in the body (it has no secret for Basic). */
  clientId?: string;
  /** A space-separated string or a list of scope names; absent means the server's default. */
  scope?: string | string[];
}

/** A PKCE pair (RFC 7636, S256): keep `codeVerifier` secret until the code is redeemed. */
export interface Pkce {
  codeVerifier: string;
  codeChallenge: string;
  codeChallengeMethod: "S256";
}

/** What `authorizeUrl` needs. `state` and `codeVerifier` are made at random when absent. */
export interface AuthorizeUrlInput {
  /** The gateway's `/authorize` (absolute, or a path on the page's origin). */
  authorizationEndpoint: string;
  clientId: string;
  redirectUri: string;
  /** A space-separated string or a list of scope names; absent: the application's default. */
  scope?: string | string[];
  state?: string;
  codeVerifier?: string;
  /** OpenID Connect's nonce; made at random when absent, and always sent. */
  nonce?: string;
}

/** Where to send the user, and what to keep (e.g. in sessionStorage) until the callback. */
export interface AuthorizationRequest {
  url: string;
  state: string;
  codeVerifier: string;
  redirectUri: string;
  /** Pass it to `verifyIdToken` with the ID token the code brings back. */
  nonce: string;
}

/** A callback that carried a code. */
export interface CallbackResult {
  code: string;
  state: string;
  /** The `iss` the server sent (RFC 9207), if any. */
  iss?: string;
}

/** What to send to `/token`: `fetch(url, { method: "POST", headers: { "Content-Type": contentType, Authorization }, body })`. */
export interface TokenRequestBody {
  body: string;
  contentType: string;
}

export interface Credentials {
  consumerKey: string;
  consumerSecret: string;
}

/** A JWT's protected header, as the token spells it. */
export interface JwtHeader {
  alg: string;
  kid?: string;
  typ?: string;
}

/** What `decodeJwtUnverified` returns: NOT verified, anyone could have written it. */
export interface UnverifiedJwt {
  header: JwtHeader;
  claims: Record<string, unknown>;
}

/** The claims of an ID token that `verifyIdToken` checked (OpenID Connect Core §2), and any
 * others the issuer added (`name`, `email`, …). */
export interface IdTokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  nonce?: string;
  azp?: string;
  auth_time?: number;
  name?: string;
  email?: string;
  [claim: string]: unknown;
}

/** What an ID token must match. */
export interface VerifyIdTokenOptions {
  /** The issuer identifier, compared exactly (the metadata's `issuer`). */
  issuer: string;
  clientId: string;
  /** The nonce sent to `/authorize`; leave it out only if none was sent (a token with one is then refused). */
  nonce?: string;
  /** Milliseconds since the epoch; `Date.now()` when absent. */
  nowMs?: number;
  /** The `max_age` sent to `/authorize`, in seconds: `auth_time` must then be that recent. */
  maxAge?: number;
  /** Seconds of clock difference tolerated on `exp`, `iat` and `auth_time` (default 30). */
  leewaySeconds?: number;
}

/** What every function throws: a real `Error` with a stable `code`. Server errors (RFC 6749 §5.2)
 * carry the server's `error` as `code`, and its `error_description` and `scope` when sent. */
export interface TokengateError extends Error {
  name: "TokengateError";
  code: string;
  errorDescription?: string;
  scope?: string;
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "TokenRequestInput")]
    pub type TokenRequestInput;
    #[wasm_bindgen(typescript_type = "TokenRequestBody")]
    pub type TokenRequestBody;
    #[wasm_bindgen(typescript_type = "Credentials")]
    pub type Credentials;
    #[wasm_bindgen(typescript_type = "Pkce")]
    pub type PkceObject;
    #[wasm_bindgen(typescript_type = "AuthorizeUrlInput")]
    pub type AuthorizeUrlInput;
    #[wasm_bindgen(typescript_type = "AuthorizationRequest")]
    pub type AuthorizationRequestObject;
    #[wasm_bindgen(typescript_type = "CallbackResult")]
    pub type CallbackResult;
    #[wasm_bindgen(typescript_type = "UnverifiedJwt")]
    pub type UnverifiedJwtObject;
    #[wasm_bindgen(typescript_type = "IdTokenClaims")]
    pub type IdTokenClaims;
    #[wasm_bindgen(typescript_type = "VerifyIdTokenOptions")]
    pub type VerifyIdTokenOptions;
}

/// The one error type: a JS `Error` named `TokengateError` with a `code` property.
pub struct Error(JsValue);

impl From<Error> for JsValue {
    fn from(error: Error) -> JsValue {
        error.0
    }
}

impl Error {
    fn new(code: &str, message: &str) -> Error {
        let error = js_sys::Error::new(message);
        error.set_name("TokengateError");
        set(&error, "code", &code.into());
        Error(error.into())
    }

    /// A JavaScript caller passed a value of the wrong type.
    fn argument(message: &str) -> Error {
        Error::new("invalid_argument", message)
    }
}

impl From<ClientError> for Error {
    fn from(error: ClientError) -> Error {
        let js = Error::new(error.code(), &error.message());
        if let ClientError::Server(response) | ClientError::SignIn(sign_in::SignInError::Server(response)) =
            &error
        {
            if let Some(description) = &response.error_description {
                set(&js.0, "errorDescription", &description.into());
            }
            if let Some(scope) = &response.scope {
                set(&js.0, "scope", &scope.into());
            }
        }
        js
    }
}

impl From<sign_in::SignInError> for Error {
    fn from(error: sign_in::SignInError) -> Error {
        ClientError::SignIn(error).into()
    }
}

fn set(target: &JsValue, key: &str, value: &JsValue) {
    // Reflect.set only fails on frozen objects or proxies, never on the fresh ones set here.
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

/// A string argument; `undefined` or a number would otherwise reach Rust as the text
/// "undefined" or "42".
fn string_arg(value: &JsValue, name: &str) -> Result<String, Error> {
    value.as_string().ok_or_else(|| Error::argument(&format!("{name} must be a string")))
}

/// An optional string field of an options object: absent, `undefined` and `null` are `None`.
fn optional_string(object: &JsValue, name: &str) -> Result<Option<String>, Error> {
    let value = Reflect::get(object, &JsValue::from_str(name))
        .map_err(|_| Error::argument("the options must be an object"))?;
    optional_string_arg(&value, name)
}

/// An optional string argument: `undefined` and `null` are `None`.
fn optional_string_arg(value: &JsValue, name: &str) -> Result<Option<String>, Error> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    string_arg(value, name).map(Some)
}

/// An options object whose every key is one of `fields` (a misspelt or snake_case field is
/// caught, not ignored).
fn options_object(input: &JsValue, function: &str, fields: &[&str]) -> Result<(), Error> {
    if !input.is_object() {
        return Err(Error::argument(&format!("{function} takes an object")));
    }
    for key in Object::keys(input.unchecked_ref::<Object>()).iter() {
        let key = key.as_string().unwrap_or_default();
        if !fields.contains(&key.as_str()) {
            return Err(Error::argument(&format!(
                "{function} has no field \"{key}\"; the fields are {}",
                fields.join(", ")
            )));
        }
    }
    Ok(())
}

/// 32 bytes from `crypto.getRandomValues` (getrandom's `wasm_js` backend).
fn random_bytes() -> Result<[u8; RANDOM_BYTES], Error> {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|_| Error::new("randomness_unavailable", "crypto.getRandomValues is not available"))?;
    Ok(bytes)
}

/// A scope given as `"a b"` or `["a", "b"]`.
fn scope_arg(value: &JsValue, name: &str) -> Result<Option<Result<String, Vec<String>>>, Error> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    if let Some(text) = value.as_string() {
        return Ok(Some(Ok(text)));
    }
    if Array::is_array(value) {
        let names = Array::from(value)
            .iter()
            .map(|item| string_arg(&item, &format!("every item of {name}")))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Some(Err(names)));
    }
    Err(Error::argument(&format!("{name} must be a string or an array of strings")))
}

fn scope_input(scope: &Option<Result<String, Vec<String>>>) -> Option<ScopeInput<'_>> {
    match scope {
        None => None,
        Some(Ok(text)) => Some(ScopeInput::Text(text)),
        Some(Err(names)) => Some(ScopeInput::Names(names)),
    }
}

/// Milliseconds since the epoch from JS (`Date.now()` when absent).
fn millis_arg(value: Option<f64>, name: &str) -> Result<u64, Error> {
    let millis = value.unwrap_or_else(js_sys::Date::now);
    // 2^53: past it a JS number no longer counts milliseconds exactly.
    if !millis.is_finite() || !(0.0..=9_007_199_254_740_992.0).contains(&millis) {
        return Err(Error::argument(&format!("{name} must be a non-negative number of milliseconds")));
    }
    Ok(millis as u64)
}

// ---------------------------------------------------------------------------------------------
// Credentials and headers

/// Base64 of `form-encode(consumerKey) ":" form-encode(consumerSecret)` (RFC 6749 §2.3.1). For
/// keys and secrets made only of `A-Z a-z 0-9 - . _ ~` this is exactly `btoa(key + ":" + secret)`;
/// other characters are form-encoded first (space as `+`, the rest as `%XX` of their UTF-8), which
/// the gateway decodes back. Throws `empty_consumer_key`, `empty_consumer_secret` or
/// `control_character` for a pair the gateway would refuse.
#[wasm_bindgen(js_name = encodeCredentials)]
pub fn encode_credentials(
    #[wasm_bindgen(js_name = consumerKey, unchecked_param_type = "string")] consumer_key: JsValue,
    #[wasm_bindgen(js_name = consumerSecret, unchecked_param_type = "string")] consumer_secret: JsValue,
) -> Result<String, Error> {
    let key = string_arg(&consumer_key, "consumerKey")?;
    let secret = string_arg(&consumer_secret, "consumerSecret")?;
    Ok(browser::encode_credentials(&key, &secret)?)
}

/// The reverse of `encodeCredentials`, with the gateway's own decoder. Throws `bad_base64`,
/// `no_colon`, `not_utf8`, `bad_percent_encoding`, `empty_consumer_key`, `empty_consumer_secret`
/// or `control_character`.
#[wasm_bindgen(js_name = decodeCredentials)]
pub fn decode_credentials(
    #[wasm_bindgen(unchecked_param_type = "string")] encoded: JsValue,
) -> Result<Credentials, Error> {
    let (key, secret) = browser::decode_credentials(&string_arg(&encoded, "encoded")?)?;
    let object = Object::new();
    set(&object, "consumerKey", &key.into());
    set(&object, "consumerSecret", &secret.into());
    Ok(object.unchecked_into())
}

/// `"Basic " + encodeCredentials(consumerKey, consumerSecret)`, for the `/token` request.
#[wasm_bindgen(js_name = basicAuthorization)]
pub fn basic_authorization(
    #[wasm_bindgen(js_name = consumerKey, unchecked_param_type = "string")] consumer_key: JsValue,
    #[wasm_bindgen(js_name = consumerSecret, unchecked_param_type = "string")] consumer_secret: JsValue,
) -> Result<String, Error> {
    let key = string_arg(&consumer_key, "consumerKey")?;
    let secret = string_arg(&consumer_secret, "consumerSecret")?;
    Ok(browser::basic_authorization(&key, &secret)?)
}

/// `"Bearer " + accessToken`, for API calls. Throws `malformed_bearer_token` for a token that
/// is not an RFC 6750 b64token (the gateway would answer 400).
#[wasm_bindgen(js_name = bearerAuthorization)]
pub fn bearer_authorization(
    #[wasm_bindgen(js_name = accessToken, unchecked_param_type = "string")] access_token: JsValue,
) -> Result<String, Error> {
    Ok(browser::bearer_authorization(&string_arg(&access_token, "accessToken")?)?)
}

/// The form body and content type of an RFC 7009 revocation request (`POST /revoke`, with
/// `basicAuthorization` like `/token`). `tokenTypeHint` is `"access_token"` or
/// `"refresh_token"`. Throws `malformed_bearer_token` or `unknown_token_type_hint`.
#[wasm_bindgen(js_name = revocationRequest)]
pub fn revocation_request(
    #[wasm_bindgen(unchecked_param_type = "string")] token: JsValue,
    #[wasm_bindgen(js_name = tokenTypeHint, unchecked_optional_param_type = "\"access_token\" | \"refresh_token\"")]
    token_type_hint: JsValue,
    #[wasm_bindgen(js_name = clientId, unchecked_optional_param_type = "string")] client_id: JsValue,
) -> Result<TokenRequestBody, Error> {
    let token = string_arg(&token, "token")?;
    let hint = optional_string_arg(&token_type_hint, "tokenTypeHint")?;
    let mut body = browser::revocation_body(&token, hint.as_deref())?;
    // A public client names itself in the body (RFC 7009 §2.1 with RFC 6749 §2.3).
    if let Some(client_id) = optional_string_arg(&client_id, "clientId")?.filter(|id| !id.is_empty()) {
        body.push_str("&client_id=");
        body.push_str(&crate::oauth::credentials::form_encode(&client_id));
    }
    Ok(form_request(body))
}

/// `{ body, contentType }` for a form POST.
fn form_request(body: String) -> TokenRequestBody {
    let object = Object::new();
    set(&object, "body", &body.into());
    set(&object, "contentType", &browser::FORM_CONTENT_TYPE.into());
    object.unchecked_into()
}

// ---------------------------------------------------------------------------------------------
// Token requests and responses

/// The form body and content type of a `/token` request, checked before anything is sent.
/// Throws `missing_parameter` (a password grant without a username, …), `unexpected_parameter`
/// (a password on a client_credentials grant, …), `unknown_grant_type`, `malformed_scope`, or
/// `invalid_argument` for a field of the wrong type or an unknown field name.
#[wasm_bindgen(js_name = tokenRequest)]
pub fn token_request(input: &TokenRequestInput) -> Result<TokenRequestBody, Error> {
    const FIELDS: [&str; 9] = [
        "grantType",
        "username",
        "password",
        "refreshToken",
        "code",
        "redirectUri",
        "codeVerifier",
        "clientId",
        "scope",
    ];
    options_object(input, "tokenRequest", &FIELDS)?;
    let field = |name| optional_string(input, name);
    let [grant_type, username, password, refresh_token, code, redirect_uri, code_verifier, client_id] = [
        field("grantType")?,
        field("username")?,
        field("password")?,
        field("refreshToken")?,
        field("code")?,
        field("redirectUri")?,
        field("codeVerifier")?,
        field("clientId")?,
    ];
    let scope_value = Reflect::get(input, &JsValue::from_str("scope"))
        .map_err(|_| Error::argument("tokenRequest takes an object"))?;
    let scope = scope_arg(&scope_value, "scope")?;
    let request = GrantRequest::from_input(&GrantRequestInput {
        grant_type: grant_type.as_deref(),
        username: username.as_deref(),
        password: password.as_deref(),
        refresh_token: refresh_token.as_deref(),
        code: code.as_deref(),
        redirect_uri: redirect_uri.as_deref(),
        code_verifier: code_verifier.as_deref(),
        client_id: client_id.as_deref(),
        scope: scope_input(&scope),
    })?;
    Ok(form_request(request.form_body()))
}

/// Reads a `/token` response body (success or error, whatever the status): the text, or the
/// object `response.json()` gave. `nowMs` is when it arrived (default `Date.now()`). Throws the
/// server's `error` as `code` for an RFC 6749 §5.2 error body, or `not_json`,
/// `invalid_token_response`, `unsupported_token_type`.
#[wasm_bindgen(js_name = parseTokenResponse)]
pub fn parse_token_response(
    #[wasm_bindgen(unchecked_param_type = "string | object")] body: JsValue,
    #[wasm_bindgen(js_name = nowMs)] now_ms: Option<f64>,
) -> Result<TokenSet, Error> {
    let now = millis_arg(now_ms, "nowMs")?;
    // The browser's own JSON parser: the package then carries none.
    let value = match body.as_string() {
        Some(text) => js_sys::JSON::parse(&text).map_err(|_| ClientError::NotJson)?,
        None => body,
    };
    if !value.is_object() || Array::is_array(&value) {
        return Err(ClientError::InvalidTokenResponse("it is not a JSON object").into());
    }
    Ok(TokenSet(browser::read_token_response(&JsObject(value.unchecked_into()), now)?))
}

/// A parsed JSON object seen through [`browser::JsonObject`]: own properties only.
struct JsObject(Object);

impl browser::JsonObject for JsObject {
    fn field(&self, name: &str) -> JsonField {
        let key = JsValue::from_str(name);
        if !Object::has_own(&self.0, &key) {
            return JsonField::Absent;
        }
        let value = Reflect::get(&self.0, &key).unwrap_or(JsValue::UNDEFINED);
        if value.is_null() {
            JsonField::Null
        } else if let Some(text) = value.as_string() {
            JsonField::String(text)
        } else if let Some(number) = value.as_f64() {
            JsonField::Number(number)
        } else {
            JsonField::Other
        }
    }
}

/// A successful token response. `expiresAt` is in milliseconds since the epoch, like
/// `Date.now()`; it and `expiresIn` are absent for a token that never expires.
#[wasm_bindgen]
pub struct TokenSet(browser::TokenSet);

#[wasm_bindgen]
impl TokenSet {
    #[wasm_bindgen(getter, js_name = accessToken)]
    pub fn access_token(&self) -> String {
        self.0.access_token.clone()
    }

    #[wasm_bindgen(getter, js_name = tokenType)]
    pub fn token_type(&self) -> String {
        self.0.token_type.clone()
    }

    #[wasm_bindgen(getter, js_name = expiresIn)]
    pub fn expires_in(&self) -> Option<f64> {
        self.0.expires_in.map(|secs| secs as f64)
    }

    #[wasm_bindgen(getter, js_name = expiresAt)]
    pub fn expires_at(&self) -> Option<f64> {
        self.0.expires_at_ms.map(|ms| ms as f64)
    }

    #[wasm_bindgen(getter, js_name = refreshToken)]
    pub fn refresh_token(&self) -> Option<String> {
        self.0.refresh_token.clone()
    }

    /// The OpenID Connect ID token, when the server sent one; not verified: `verifyIdToken`.
    #[wasm_bindgen(getter, js_name = idToken)]
    pub fn id_token(&self) -> Option<String> {
        self.0.id_token.clone()
    }

    /// The granted scope names, sorted; empty when the server did not list them.
    #[wasm_bindgen(getter)]
    pub fn scopes(&self) -> Vec<String> {
        self.0.scope.iter().flat_map(|set| set.iter().map(str::to_owned)).collect()
    }

    /// The granted scope as the space-separated string the server sent (sorted).
    #[wasm_bindgen(getter)]
    pub fn scope(&self) -> Option<String> {
        self.0.scope.as_ref().map(ScopeSet::to_string)
    }

    /// True when the token holds every scope in `required` (`"a b"` or `["a", "b"]`).
    #[wasm_bindgen(js_name = hasScopes)]
    pub fn has_scopes(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | string[]")] required: JsValue,
    ) -> Result<bool, Error> {
        let scope = scope_arg(&required, "required")?
            .ok_or_else(|| Error::argument("required must be a string or an array of strings"))?;
        let required =
            scope_input(&Some(scope)).map(ScopeInput::parse).transpose()?.flatten().unwrap_or_default();
        Ok(self.0.has_scopes(&required))
    }

    /// True once the token has expired at `nowMs` (default `Date.now()`), or will within
    /// `skewMs` (default 0). Never true for a token that never expires.
    #[wasm_bindgen(js_name = isExpired)]
    pub fn is_expired(
        &self,
        #[wasm_bindgen(js_name = nowMs)] now_ms: Option<f64>,
        #[wasm_bindgen(js_name = skewMs)] skew_ms: Option<f64>,
    ) -> Result<bool, Error> {
        Ok(self
            .0
            .is_expired(millis_arg(now_ms, "nowMs")?, millis_arg(Some(skew_ms.unwrap_or(0.0)), "skewMs")?))
    }

    /// Milliseconds left at `nowMs` (default `Date.now()`), 0 once expired; `undefined` for a
    /// token that never expires. What a countdown shows.
    #[wasm_bindgen(js_name = remainingMs)]
    pub fn remaining_ms(
        &self,
        #[wasm_bindgen(js_name = nowMs)] now_ms: Option<f64>,
    ) -> Result<Option<f64>, Error> {
        Ok(self.0.remaining_ms(millis_arg(now_ms, "nowMs")?).map(|ms| ms as f64))
    }

    /// The `/token` request that trades the refresh token for a new set (`scope` narrows the new
    /// access token only; a public client passes its `clientId`, sent in the body). Throws
    /// `missing_parameter` when the set has no refresh token.
    #[wasm_bindgen(js_name = refreshRequest)]
    pub fn refresh_request(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "string | string[]")] scope: JsValue,
        #[wasm_bindgen(js_name = clientId, unchecked_optional_param_type = "string")] client_id: JsValue,
    ) -> Result<TokenRequestBody, Error> {
        let scope = scope_arg(&scope, "scope")?;
        let scope = scope_input(&scope).map(ScopeInput::parse).transpose()?.flatten();
        let mut request = self.0.refresh_request(scope).ok_or(ClientError::MissingParameter {
            grant: Some(crate::oauth::grant_type::GrantType::RefreshToken),
            parameter: "a refresh token",
        })?;
        request.client_id = optional_string_arg(&client_id, "clientId")?.filter(|id| !id.is_empty());
        Ok(form_request(request.form_body()))
    }
}

// ---------------------------------------------------------------------------------------------
// Signing in: the authorization code flow with PKCE

/// A fresh PKCE pair: a 256-bit verifier from `crypto.getRandomValues` and its `S256`
/// challenge, computed by the gateway's own code (RFC 7636 §4.1-4.2). Throws
/// `randomness_unavailable`.
#[wasm_bindgen(js_name = createPkce)]
pub fn create_pkce() -> Result<PkceObject, Error> {
    let pkce = Pkce::from_random(&random_bytes()?);
    let object = Object::new();
    set(&object, "codeVerifier", &pkce.verifier.as_str().into());
    set(&object, "codeChallenge", &pkce.challenge.as_str().into());
    set(&object, "codeChallengeMethod", &crate::oauth::pkce::S256.into());
    Ok(object.unchecked_into())
}

/// The URL that starts a sign-in at `/authorize` (RFC 6749 §4.1.1, RFC 7636 §4.3), with a
/// random `state` and a fresh PKCE pair unless given; returns it with the `state` and
/// `codeVerifier` the app must keep for `parseCallback` and the token request. Throws
/// `missing_parameter`, `malformed_redirect_uri`, `malformed_endpoint`, `malformed_scope`,
/// `malformed_code_verifier`, `randomness_unavailable` or `invalid_argument`.
#[wasm_bindgen(js_name = authorizeUrl)]
pub fn authorize_url(input: &AuthorizeUrlInput) -> Result<AuthorizationRequestObject, Error> {
    const FIELDS: [&str; 7] =
        ["authorizationEndpoint", "clientId", "redirectUri", "scope", "state", "codeVerifier", "nonce"];
    options_object(input, "authorizeUrl", &FIELDS)?;
    let endpoint = optional_string(input, "authorizationEndpoint")?;
    let client_id = optional_string(input, "clientId")?;
    let redirect_uri = optional_string(input, "redirectUri")?;
    let scope_value = Reflect::get(input, &JsValue::from_str("scope"))
        .map_err(|_| Error::argument("authorizeUrl takes an object"))?;
    let scope = scope_arg(&scope_value, "scope")?;
    let scope = scope_input(&scope).map(ScopeInput::parse).transpose()?.flatten().map(|set| set.to_string());
    let pkce = match optional_string(input, "codeVerifier")?.filter(|verifier| !verifier.is_empty()) {
        Some(verifier) => Pkce::from_verifier(&verifier)?,
        None => Pkce::from_random(&random_bytes()?),
    };
    let state = match optional_string(input, "state")?.filter(|state| !state.is_empty()) {
        Some(state) => state,
        None => sign_in::state_from_random(&random_bytes()?),
    };
    // Always sent: it costs nothing, and an ID token (if the server issues one) is then bound
    // to this sign-in for `verifyIdToken`.
    let nonce = match optional_string(input, "nonce")?.filter(|nonce| !nonce.is_empty()) {
        Some(nonce) => nonce,
        None => sign_in::state_from_random(&random_bytes()?),
    };
    let request = sign_in::authorization_request(
        &AuthorizationInput {
            authorization_endpoint: endpoint.as_deref(),
            client_id: client_id.as_deref(),
            redirect_uri: redirect_uri.as_deref(),
            scope: scope.as_deref(),
            nonce: Some(&nonce),
        },
        pkce,
        state,
    )?;
    let object = Object::new();
    set(&object, "url", &request.url.into());
    set(&object, "state", &request.state.into());
    set(&object, "codeVerifier", &request.code_verifier.into());
    set(&object, "redirectUri", &request.redirect_uri.into());
    set(&object, "nonce", &nonce.into());
    Ok(object.unchecked_into())
}

/// Reads the redirect back from `/authorize` (`location.href`): checks `state` against the
/// one sent and, when `expectedIssuer` is given, `iss` (RFC 9207), then returns the code.
/// Throws `state_mismatch`, `issuer_mismatch`, `malformed_callback`, `missing_parameter` (no
/// code), or the server's redirected `error` as `code` (with `errorDescription`), such as
/// `access_denied` or `invalid_scope`.
#[wasm_bindgen(js_name = parseCallback)]
pub fn parse_callback(
    #[wasm_bindgen(unchecked_param_type = "string")] url: JsValue,
    #[wasm_bindgen(js_name = expectedState, unchecked_param_type = "string")] expected_state: JsValue,
    #[wasm_bindgen(js_name = expectedIssuer, unchecked_optional_param_type = "string")]
    expected_issuer: JsValue,
) -> Result<CallbackResult, Error> {
    let url = string_arg(&url, "url")?;
    let expected_state = string_arg(&expected_state, "expectedState")?;
    let expected_issuer = optional_string_arg(&expected_issuer, "expectedIssuer")?;
    let callback = sign_in::parse_callback(&url, &expected_state, expected_issuer.as_deref())?;
    let object = Object::new();
    set(&object, "code", &callback.code.into());
    set(&object, "state", &callback.state.into());
    if let Some(issuer) = callback.issuer {
        set(&object, "iss", &issuer.into());
    }
    Ok(object.unchecked_into())
}

// ---------------------------------------------------------------------------------------------
// JWTs and ID tokens

/// The header and claims of a JWT, **without verifying its signature** (the name says so):
/// for showing what a token says, never for trusting it. Throws `malformed_jwt`.
#[wasm_bindgen(js_name = decodeJwtUnverified)]
pub fn decode_jwt_unverified(
    #[wasm_bindgen(unchecked_param_type = "string")] token: JsValue,
) -> Result<UnverifiedJwtObject, Error> {
    let token = string_arg(&token, "token")?;
    let jwt = id_token::decode_jwt_unverified(&token).map_err(ClientError::IdToken)?;
    let header = Object::new();
    set(&header, "alg", &jwt.header.alg.into());
    if let Some(kid) = jwt.header.kid {
        set(&header, "kid", &kid.into());
    }
    if let Some(typ) = jwt.header.typ {
        set(&header, "typ", &typ.into());
    }
    let object = Object::new();
    set(&object, "header", &header);
    set(&object, "claims", &json_object_to_js(&jwt.claims));
    Ok(object.unchecked_into())
}

/// The claims of an OpenID Connect ID token once its signature verifies with a key of `jwks`
/// (the issuer's `jwks_uri` document, as text or parsed) and its `iss`, `aud`, `azp`, `exp`,
/// `iat`, `nonce` and `auth_time` meet `options`. Throws `malformed_jwt`, `unsecured_jwt`,
/// `unsupported_jwt_algorithm`, `unknown_signing_key`, `bad_jwt_signature`, `invalid_jwks`,
/// `missing_claim`, `wrong_issuer`, `wrong_audience`, `wrong_authorized_party`,
/// `id_token_expired`, `issued_in_the_future`, `wrong_nonce` or `authentication_too_old`.
#[wasm_bindgen(js_name = verifyIdToken)]
pub fn verify_id_token(
    #[wasm_bindgen(js_name = idToken, unchecked_param_type = "string")] id_token: JsValue,
    #[wasm_bindgen(unchecked_param_type = "string | { keys: object[] }")] jwks: JsValue,
    options: &VerifyIdTokenOptions,
) -> Result<IdTokenClaims, Error> {
    let token = string_arg(&id_token, "idToken")?;
    let jwks = match jwks.as_string() {
        Some(text) => text,
        None => js_sys::JSON::stringify(&jwks)
            .ok()
            .and_then(|text| text.as_string())
            .ok_or_else(|| Error::argument("jwks must be a string or a JSON object"))?,
    };
    let expected = id_token_expectations(options)?;
    let claims = id_token::verify_id_token(&token, &jwks, &expected).map_err(ClientError::IdToken)?;
    Ok(json_object_to_js(&claims).unchecked_into())
}

fn id_token_expectations(options: &JsValue) -> Result<id_token::IdTokenExpectations, Error> {
    const FIELDS: &[&str] = &["issuer", "clientId", "nonce", "nowMs", "maxAge", "leewaySeconds"];
    options_object(options, "verifyIdToken", FIELDS)?;
    let required = |name: &str| {
        optional_string(options, name)?.ok_or_else(|| Error::argument(&format!("{name} is required")))
    };
    let seconds = |name: &str| -> Result<Option<u64>, Error> {
        let value = Reflect::get(options, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED);
        if value.is_undefined() || value.is_null() {
            return Ok(None);
        }
        match value.as_f64() {
            Some(secs) if secs.fract() == 0.0 && (0.0..=browser::MAX_EXACT_F64).contains(&secs) => {
                Ok(Some(secs as u64))
            }
            _ => Err(Error::argument(&format!("{name} must be a whole non-negative number of seconds"))),
        }
    };
    let now_ms = Reflect::get(options, &JsValue::from_str("nowMs")).ok().and_then(|value| value.as_f64());
    Ok(id_token::IdTokenExpectations {
        issuer: required("issuer")?,
        client_id: required("clientId")?,
        nonce: optional_string(options, "nonce")?,
        now: millis_arg(now_ms, "nowMs")? / 1000,
        max_age: seconds("maxAge")?,
        leeway: seconds("leewaySeconds")?.unwrap_or(id_token::DEFAULT_LEEWAY_SECONDS),
    })
}

/// A JSON object as a plain JS object (what `JSON.parse` would give for its text).
fn json_object_to_js(object: &serde_json::Map<String, serde_json::Value>) -> JsValue {
    let target = Object::new();
    for (name, value) in object {
        set(&target, name, &json_to_js(value));
    }
    target.into()
}

fn json_to_js(value: &serde_json::Value) -> JsValue {
    use serde_json::Value;
    match value {
        Value::Null => JsValue::NULL,
        Value::Bool(flag) => JsValue::from_bool(*flag),
        Value::Number(number) => number.as_f64().map_or(JsValue::NULL, JsValue::from_f64),
        Value::String(text) => JsValue::from_str(text),
        Value::Array(items) => items.iter().map(json_to_js).collect::<Array>().into(),
        Value::Object(members) => json_object_to_js(members),
    }
}

// ---------------------------------------------------------------------------------------------
// Challenges

/// The first challenge of a `WWW-Authenticate` value. Throws `malformed_challenge`.
#[wasm_bindgen(js_name = parseChallenge)]
pub fn parse_challenge(
    #[wasm_bindgen(unchecked_param_type = "string")] value: JsValue,
) -> Result<Challenge, Error> {
    parse_challenges(value)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::new("malformed_challenge", "no challenge"))
}

/// Every challenge of a `WWW-Authenticate` value, in order. Throws `malformed_challenge`.
#[wasm_bindgen(js_name = parseChallenges)]
pub fn parse_challenges(
    #[wasm_bindgen(unchecked_param_type = "string")] value: JsValue,
) -> Result<Vec<Challenge>, Error> {
    let text = string_arg(&value, "wwwAuthenticate")?;
    let challenges = challenge::parse_challenges(&text).map_err(|error| {
        Error::new("malformed_challenge", &format!("the WWW-Authenticate value is malformed: {}", error.0))
    })?;
    Ok(challenges.into_iter().map(Challenge).collect())
}

/// One `WWW-Authenticate` challenge, e.g. `Bearer realm="tokengate", error="insufficient_scope",
/// scope="orders:write"`.
#[wasm_bindgen]
pub struct Challenge(challenge::Challenge);

#[wasm_bindgen]
impl Challenge {
    /// The scheme as sent (`Bearer`, `Basic`, …): compare it case-insensitively.
    #[wasm_bindgen(getter)]
    pub fn scheme(&self) -> String {
        self.0.scheme.clone()
    }

    #[wasm_bindgen(getter)]
    pub fn realm(&self) -> Option<String> {
        self.0.realm().map(str::to_owned)
    }

    #[wasm_bindgen(getter)]
    pub fn error(&self) -> Option<String> {
        self.0.error().map(str::to_owned)
    }

    #[wasm_bindgen(getter, js_name = errorDescription)]
    pub fn error_description(&self) -> Option<String> {
        self.0.error_description().map(str::to_owned)
    }

    #[wasm_bindgen(getter)]
    pub fn scope(&self) -> Option<String> {
        self.0.scope().map(str::to_owned)
    }

    /// The scope names of a Bearer challenge (with `insufficient_scope`: what the resource needs).
    #[wasm_bindgen(getter)]
    pub fn scopes(&self) -> Vec<String> {
        self.0.scopes().iter().map(str::to_owned).collect()
    }

    /// What to do: `"authenticate"` (no usable credentials were sent), `"refresh"` (the token is
    /// unknown, expired or revoked: refresh, or log in again), `"request_scope"` (get a token
    /// with `scopes`), `"fix_request"` (the request is malformed) or `"unknown"`.
    #[wasm_bindgen(getter, js_name = nextStep)]
    pub fn next_step(&self) -> String {
        self.0.next_step().as_str().to_owned()
    }

    /// Any auth-param by name, case-insensitively.
    pub fn param(&self, name: &str) -> Option<String> {
        self.0.param(name).map(str::to_owned)
    }
}

/// The package's version (the crate's).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
