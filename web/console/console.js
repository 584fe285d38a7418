// The API console: get a token from this gateway and try its APIs, using only the tokengate
// browser package (served from ./pkg/, built by `make build-web`). Every request goes to the
// page's own origin, the gateway itself, so there is no CORS to set up.
//
// Nothing from the network is ever put into the page as HTML: only textContent.

import init, {
  authorizeUrl,
  basicAuthorization,
  bearerAuthorization,
  parseCallback,
  parseChallenge,
  parseTokenResponse,
  revocationRequest,
  tokenRequest,
  verifyIdToken,
  version,
} from "./pkg/tokengate.js";

const TOKEN_ENDPOINT = "/token";
const REVOCATION_ENDPOINT = "/revoke";
const INTROSPECTION_ENDPOINT = "/introspect";
/** How long the access token box must stay still before a pasted token is looked up. */
const PASTE_SETTLE_MS = 400;
/** Signing in: the demo's public client, the console's own callback (a registered redirect URI,
 * port included: demo-spa is a web client, RFC 9700 §4.1.3), and where the pending sign-in waits
 * for it. */
const SIGN_IN_CLIENT = "demo-spa";
const CALLBACK_PATH = "/console/callback";
const SIGN_IN_STORAGE = "tokengate-console-sign-in";
const METADATA = "/.well-known/oauth-authorization-server";

const $ = (id) => document.getElementById(id);

/** The TokenSet of the last successful /token call (a wasm object: freed when replaced). */
let tokenSet = null;
let countdownTimer = null;
/** True while the token came from signing in: refresh and revoke then name the public client
 * in the body instead of sending the keys' Basic credentials. */
let signedIn = false;

// ------------------------------------------------------------------------------------------
// Output

/** Counts messages, so a script driving the page (the browser test) can wait for the next one. */
let said = 0;

function say(kind, text) {
  const message = $("message");
  message.dataset.kind = kind;
  message.textContent = text;
  document.body.dataset.said = String(++said);
}

function showResponse(label, response, text) {
  $("status").textContent = `${label} → ${response.status} ${response.statusText}`;
  $("status").dataset.status = String(response.status);
  const lines = [];
  for (const [name, value] of response.headers) lines.push(`${name}: ${value}`);
  $("headers").textContent = lines.join("\n") || "(none)";
  let body = text;
  try {
    body = JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    // not JSON: shown as it came
  }
  $("body").textContent = body || "(empty)";
}

/** A TokengateError from the package: thrown before sending (the package's own codes) or
 * read from the server's answer (RFC 6749 §5.2 codes, with their description). */
function sayError(error, status) {
  if (error?.name !== "TokengateError") {
    say("error", `Unexpected error: ${error}`);
    return;
  }
  if (status === undefined) {
    say("error", `Not sent: ${error.message} [${error.code}]`);
  } else if (status === 401 && error.code === "invalid_client") {
    // The gateway's description is addressed to programs ("send Authorization: Basic ...");
    // a person at this form has typed a wrong key or secret.
    say("denied", "401 invalid_client: the consumer key or secret is wrong (or this application is locked out after too many failures).");
  } else {
    const description = error.errorDescription ? `: ${error.errorDescription}` : "";
    say("denied", `${status} ${error.code}${description}`);
  }
}

// ------------------------------------------------------------------------------------------
// The token

function formatRemaining(ms) {
  if (ms === undefined) return "never";
  if (ms <= 0) return "expired";
  const total = Math.ceil(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mm = String(m).padStart(2, "0");
  const ss = String(s).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function tick() {
  $("token-expiry").textContent = tokenSet ? formatRemaining(tokenSet.remainingMs()) : "–";
}

/** Forgets the token the panel describes: after a revocation, or when the box no longer holds
 * it. The box itself is left as it is. */
function forget() {
  if (tokenSet) tokenSet.free();
  tokenSet = null;
  clearInterval(countdownTimer);
  countdownTimer = null;
  for (const id of ["token-scopes", "token-expiry", "token-refresh"]) $(id).textContent = "–";
  $("refresh-token").disabled = true;
  $("revoke-token").disabled = true;
  showSignedIn(false);
}

function showSignedIn(yes) {
  signedIn = yes;
  $("signed-in").hidden = !yes;
  $("signed-in").textContent = yes ? `Signed in through ${SIGN_IN_CLIENT}: the token below is the user's.` : "";
  if (!yes) {
    $("signed-in-user").hidden = true;
    $("signed-in-user").textContent = "";
  }
}

function adopt(set, viaSignIn = false) {
  if (tokenSet) tokenSet.free();
  tokenSet = set;
  showSignedIn(viaSignIn);
  $("access-token").value = set.accessToken;
  $("token-scopes").textContent = set.scopes.join(" ") || "(not listed)";
  $("token-refresh").textContent = set.refreshToken
    ? "yes (it rotates: each one works once)"
    : "none (this grant has no refresh token)";
  $("refresh-token").disabled = !set.refreshToken;
  $("revoke-token").disabled = false;
  clearInterval(countdownTimer);
  tick();
  countdownTimer = setInterval(tick, 1000);
}

/** The application's Basic credentials (throws, before anything is sent, for a pair the
 * gateway would refuse). */
function clientAuthorization() {
  return basicAuthorization($("consumer-key").value, $("consumer-secret").value);
}

/** Sends `request`; `null` (and says why) when the network failed, so no caller needs its own
 * handler for that. */
async function send(url, options) {
  try {
    const response = await fetch(url, { cache: "no-store", credentials: "omit", ...options });
    return { response, text: await response.text() };
  } catch (error) {
    say("error", `Network error: ${error.message}`);
    return null;
  }
}

/** POSTs a form to a token endpoint, with the application's Basic credentials unless
 * `authorization` is absent (a public client names itself in the body). */
function postForm(url, request, authorization) {
  const headers = { "Content-Type": request.contentType };
  if (authorization) headers.Authorization = authorization;
  return send(url, { method: "POST", headers, body: request.body });
}

/** One /token call: build the request (the package refuses incomplete input before anything
 * is sent), send it, and read the answer, success or error. `asPublicClient`: no Basic
 * credentials (the request names the public client itself). */
async function tokenCall(label, makeRequest, asPublicClient = false) {
  let request, authorization;
  try {
    request = makeRequest();
    authorization = asPublicClient ? undefined : clientAuthorization();
  } catch (error) {
    sayError(error);
    return;
  }
  const sent = await postForm(TOKEN_ENDPOINT, request, authorization);
  if (!sent) return;
  const { response, text } = sent;
  showResponse(`POST ${TOKEN_ENDPOINT}`, response, text);
  try {
    const set = parseTokenResponse(text);
    adopt(set, asPublicClient);
    say("ok", `${label}: scopes ${set.scopes.join(" ") || "(not listed)"}, expires in ${formatRemaining(set.remainingMs())}.`);
  } catch (error) {
    sayError(error, response.status);
  }
}

function getToken(event) {
  event.preventDefault();
  const grantType = $("grant-type").value;
  const input = { grantType, scope: $("scope").value.trim() };
  if (grantType === "password") {
    input.username = $("username").value;
    input.password = $("password").value;
  }
  return tokenCall("Token issued", () => tokenRequest(input));
}

function refresh() {
  if (!tokenSet) return;
  const publicClient = signedIn ? SIGN_IN_CLIENT : undefined;
  return tokenCall("Token refreshed", () => tokenSet.refreshRequest(undefined, publicClient), signedIn);
}

async function revoke() {
  let request, authorization;
  try {
    const publicClient = signedIn ? SIGN_IN_CLIENT : undefined;
    request = revocationRequest($("access-token").value.trim(), "access_token", publicClient);
    authorization = signedIn ? undefined : clientAuthorization();
  } catch (error) {
    sayError(error);
    return;
  }
  const sent = await postForm(REVOCATION_ENDPOINT, request, authorization);
  if (!sent) return;
  const { response, text } = sent;
  showResponse(`POST ${REVOCATION_ENDPOINT}`, response, text);
  if (response.ok) {
    forget();
    say("ok", "Revoked: the access token no longer works (try it out to see the 401).");
  } else {
    try {
      parseTokenResponse(text);
      say("error", `${response.status} ${response.statusText}`);
    } catch (error) {
      sayError(error, response.status);
    }
  }
}

// ------------------------------------------------------------------------------------------
// A token typed or pasted into the box

let pasteTimer = null;

/** The box changed: a token the console did not get itself is described by introspection
 * (RFC 7662) with the application's keys, which sees only that application's own tokens. */
function tokenEdited() {
  const token = $("access-token").value.trim();
  if (tokenSet && token === tokenSet.accessToken) return;
  forget();
  clearTimeout(pasteTimer);
  if (token) pasteTimer = setTimeout(() => describe(token), PASTE_SETTLE_MS);
}

async function describe(token) {
  let request, authorization;
  try {
    // An introspection request has the revocation request's form: token and token_type_hint.
    request = revocationRequest(token, "access_token");
    authorization = clientAuthorization();
  } catch (error) {
    $("token-scopes").textContent = "(cannot look it up: fill in the application keys)";
    return;
  }
  const sent = await postForm(INTROSPECTION_ENDPOINT, request, authorization);
  if (!sent || $("access-token").value.trim() !== token) return;
  let answer = {};
  try {
    answer = JSON.parse(sent.text);
  } catch {
    // not JSON: said below
  }
  if (sent.response.ok && answer.active === true) {
    $("token-scopes").textContent = answer.scope || "(none)";
    $("token-expiry").textContent = answer.exp ? formatRemaining(answer.exp * 1000 - Date.now()) : "never";
    $("token-refresh").textContent = "unknown (a pasted token)";
    $("revoke-token").disabled = false;
  } else if (sent.response.ok) {
    $("token-scopes").textContent = "not active for this application (unknown, expired, revoked, or another application's)";
  } else {
    $("token-scopes").textContent = `cannot look it up: ${sent.response.status} ${answer.error ?? sent.response.statusText}`;
  }
}

// ------------------------------------------------------------------------------------------
// Subscriptions and tiers

/** The IETF ratelimit-headers draft's `"Name";q=3;w=60` / `"Name";r=2;t=7`, as an object. */
function parseRateLimit(value) {
  if (!value) return null;
  const [name, ...params] = value.split(";");
  const fields = { name: name.trim().replace(/^"|"$/g, "") };
  for (const param of params) {
    const [key, number] = param.trim().split("=");
    fields[key] = Number(number);
  }
  return fields;
}

function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

/** Seconds as a person reads a window: 60 → "minute", 3600 → "hour". */
function windowName(seconds) {
  return { 1: "second", 60: "minute", 3600: "hour", 86400: "day" }[seconds] ?? `${seconds} s`;
}

/** What the console has learnt of the application's subscriptions, by API. */
const subscriptions = new Map();

function showSubscriptions() {
  const rows = $("subscriptions").tBodies[0];
  rows.replaceChildren();
  for (const [api, seen] of subscriptions) {
    const row = rows.insertRow();
    // The gateway sends RateLimit once half of a window is used: until then, plenty is left.
    let remaining = seen.remaining === undefined ? "over half of the window" : `${seen.remaining} of ${seen.quota}`;
    if (seen.tier === "Unlimited") remaining = "unlimited";
    const resets = seen.resetsAt === undefined ? "–" : formatRemaining(seen.resetsAt - Date.now());
    for (const text of [api, seen.tier ?? "–", remaining, resets]) row.insertCell().textContent = text;
  }
  $("subscriptions").hidden = subscriptions.size === 0;
  $("subscriptions-none").hidden = subscriptions.size > 0;
}

/** The API a path belongs to, from the gateway's answer (the demo upstream echoes the
 * x-tokengate-api header the gateway set) or, for a refusal, what the console last saw. */
function learnSubscription(path, response, answer) {
  const policy = parseRateLimit(response.headers.get("ratelimit-policy"));
  const left = parseRateLimit(response.headers.get("ratelimit"));
  const echoed = answer?.headers?.["x-tokengate-api"];
  const api = echoed ?? [...subscriptions.keys()].find((name) => subscriptions.get(name).path === path);
  if (!api) return;
  const seen = subscriptions.get(api) ?? { path };
  seen.tier = answer?.headers?.["x-tokengate-tier"] ?? policy?.name ?? seen.tier;
  if (policy) seen.quota = policy.q;
  if (left) {
    seen.remaining = left.r;
    seen.resetsAt = Date.now() + left.t * 1000;
  } else {
    seen.remaining = undefined; // Unlimited, or a window less than half used
    seen.resetsAt = undefined;
  }
  subscriptions.set(api, seen);
  showSubscriptions();
}

/** A refusal of the subscription checks, which come as JSON without a Bearer challenge. */
function explainSubscription(response, answer) {
  const status = response.status;
  const description = answer?.error_description ? ` (${answer.error_description})` : "";
  switch (answer?.error) {
    case "throttled": {
      const policy = parseRateLimit(response.headers.get("ratelimit-policy"));
      const wait = Number(response.headers.get("retry-after"));
      const allowance = policy ? ` allows ${plural(policy.q, "request", "requests")} per ${windowName(policy.w)}, and` : "";
      say("denied", `${status} throttled: this application's ${policy?.name ?? ""} tier${allowance} this window's requests are used up. Try again in ${plural(wait, "second", "seconds")}.`);
      return true;
    }
    case "subscription_required":
      say("denied", `${status} subscription_required${description}: subscribe the application to this API first.`);
      return true;
    case "subscription_blocked":
    case "sandbox_not_served":
      say("denied", `${status} ${answer.error}${description}.`);
      return true;
    default:
      return false;
  }
}

// ------------------------------------------------------------------------------------------
// Try it out

/** Explains a refusal from the WWW-Authenticate challenge: what went wrong and what to do. */
function explain(response) {
  const header = response.headers.get("www-authenticate");
  if (!header) {
    say(response.ok ? "ok" : "error", response.ok
      ? `${response.status}: the gateway let the request through.`
      : `${response.status} ${response.statusText}`);
    return;
  }
  let challenge;
  try {
    challenge = parseChallenge(header);
  } catch (error) {
    say("error", `${response.status}: unreadable challenge (${error.message})`);
    return;
  }
  const status = response.status;
  const description = challenge.errorDescription ? ` (${challenge.errorDescription})` : "";
  switch (challenge.nextStep) {
    case "authenticate":
      say("denied", `${status}: no access token was sent. Get a token first.`);
      break;
    case "refresh":
      say("denied", `${status} ${challenge.error}${description}: the token is unknown, expired or revoked. Refresh it, or get a new one.`);
      break;
    case "request_scope": {
      const needed = challenge.scopes;
      const held = tokenSet && tokenSet.accessToken === $("access-token").value.trim()
        ? ` The token has: ${tokenSet.scopes.join(" ") || "(not listed)"}.`
        : "";
      say("denied", `${status} ${challenge.error}: this resource needs scope ${needed.join(" ")}.${held} Get a token with ${needed.join(" ")}.`);
      break;
    }
    case "fix_request":
      say("error", `${status} ${challenge.error}${description}: the request is malformed.`);
      break;
    default:
      say("error", `${status} ${challenge.error ?? challenge.scheme}${description}`);
  }
  challenge.free();
}

async function tryIt(event) {
  event.preventDefault();
  const [method, path] = $("resource").value.split(" ");
  const token = $("access-token").value.trim();
  const headers = {};
  if (token) {
    try {
      headers.Authorization = bearerAuthorization(token);
    } catch (error) {
      sayError(error);
      return;
    }
  }
  const options = { method, headers };
  if (method === "POST") {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify({ item: "demo", quantity: 1 });
  }
  const sent = await send(path, options);
  if (!sent) return;
  showResponse(`${method} ${path}`, sent.response, sent.text);
  let answer = null;
  try {
    answer = JSON.parse(sent.text);
  } catch {
    // not JSON: nothing to learn from it
  }
  learnSubscription(path, sent.response, answer);
  if (!explainSubscription(sent.response, answer)) explain(sent.response);
}

// ------------------------------------------------------------------------------------------
// Signing in: the authorization code flow with PKCE, as the public client demo-spa

/** The authorization endpoint and issuer from the gateway's metadata (RFC 8414); the issuer
 * is what the callback's `iss` must be (RFC 9207). The endpoint's path is used on this very
 * origin: the metadata names the issuer's (TLS) listener, and the console stays on its own. */
async function authorizationServer() {
  try {
    const response = await fetch(METADATA, { cache: "no-store", credentials: "omit" });
    if (response.ok) {
      const metadata = await response.json();
      const endpoint = metadata.authorization_endpoint ? new URL(metadata.authorization_endpoint).pathname : "/authorize";
      const jwksPath = metadata.jwks_uri ? new URL(metadata.jwks_uri).pathname : undefined;
      return { endpoint, issuer: metadata.issuer, jwksPath };
    }
  } catch {
    // no metadata: the default endpoint, and iss is not checked
  }
  return { endpoint: "/authorize", issuer: undefined, jwksPath: undefined };
}

/** "Sign in": keep the state and verifier for the callback, then go to the login page. */
async function signIn() {
  const server = await authorizationServer();
  let request;
  try {
    request = authorizeUrl({
      authorizationEndpoint: server.endpoint,
      clientId: SIGN_IN_CLIENT,
      redirectUri: `${location.origin}${CALLBACK_PATH}`,
      scope: $("scope").value.trim(),
    });
  } catch (error) {
    if (error?.code === "malformed_redirect_uri") {
      say("error", `Signing in needs the console on http://127.0.0.1:${location.port || 80}/console/ (a registered redirect URI), not ${location.hostname}.`);
    } else {
      sayError(error);
    }
    return;
  }
  const pending = {
    state: request.state,
    codeVerifier: request.codeVerifier,
    redirectUri: request.redirectUri,
    nonce: request.nonce,
    issuer: server.issuer,
    jwksPath: server.jwksPath,
  };
  sessionStorage.setItem(SIGN_IN_STORAGE, JSON.stringify(pending));
  location.assign(request.url);
}

/** Back at /console/callback: check state and iss, then trade the code for tokens. */
async function finishSignIn() {
  const callbackUrl = location.href;
  // The code leaves the address bar (and the history) at once.
  history.replaceState(null, "", "/console/");
  const stored = sessionStorage.getItem(SIGN_IN_STORAGE);
  sessionStorage.removeItem(SIGN_IN_STORAGE);
  if (!stored) {
    say("error", "This sign-in was not started here (or was already finished): press Sign in again.");
    return;
  }
  const pending = JSON.parse(stored);
  let callback;
  try {
    callback = parseCallback(callbackUrl, pending.state, pending.issuer);
  } catch (error) {
    // The server's redirected error (access_denied, …) or a callback that is not ours.
    say("denied", `Not signed in: ${error.message} [${error.code}]`);
    return;
  }
  await tokenCall(
    "Signed in",
    () =>
      tokenRequest({
        grantType: "authorization_code",
        code: callback.code,
        redirectUri: pending.redirectUri,
        codeVerifier: pending.codeVerifier,
        clientId: SIGN_IN_CLIENT,
      }),
    true,
  );
  if (signedIn && tokenSet?.idToken) await showUser(tokenSet.idToken, pending);
}

/** OpenID Connect: the user an ID token names, shown only once the package has verified it
 * against the gateway's JWKS (signature, iss, aud, exp, iat, and the nonce this sign-in sent). */
async function showUser(idToken, pending) {
  const line = $("signed-in-user");
  line.hidden = false;
  try {
    if (!pending.jwksPath) throw new Error("the gateway's metadata names no jwks_uri");
    const response = await fetch(pending.jwksPath, { cache: "no-store", credentials: "omit" });
    const claims = verifyIdToken(idToken, await response.text(), {
      issuer: pending.issuer,
      clientId: SIGN_IN_CLIENT,
      nonce: pending.nonce,
    });
    const details = [claims.name, claims.email].filter((value) => typeof value === "string");
    line.textContent = `User: ${claims.sub}${details.length ? ` (${details.join(", ")})` : ""}, from a verified ID token.`;
  } catch (error) {
    line.textContent = `The ID token was refused: ${error.message}${error.code ? ` [${error.code}]` : ""}`;
  }
}

// ------------------------------------------------------------------------------------------

function wire() {
  $("grant-type").addEventListener("change", () => {
    $("user-fields").hidden = $("grant-type").value !== "password";
  });
  $("token-form").addEventListener("submit", getToken);
  $("try-form").addEventListener("submit", tryIt);
  $("refresh-token").addEventListener("click", refresh);
  $("revoke-token").addEventListener("click", revoke);
  $("access-token").addEventListener("input", tokenEdited);
  $("sign-in").addEventListener("click", signIn);
}

async function start() {
  const status = $("package-status");
  try {
    await init();
    // Said only when it goes wrong: a working console needs no word about its package.
    status.textContent = "";
    status.hidden = true;
    status.dataset.state = "ready";
    status.dataset.version = version();
  } catch (error) {
    status.textContent = `The package did not load: ${error}. Run \`make build-web\`.`;
    status.dataset.state = "failed";
    return;
  }
  wire();
  for (const id of ["get-token", "try-it", "sign-in"]) $(id).disabled = false;
  if (location.pathname === CALLBACK_PATH) await finishSignIn();
  document.body.dataset.ready = "true";
}

start();
