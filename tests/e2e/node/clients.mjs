// openid-client (v6) against the gateway, with its default settings, driven by
// tests/e2e/test_openid_client.py: one JSON command in argv[2], one JSON result on stdout.
//
// The gateway's demo listens on plain http on loopback: openid-client v6 refuses http unless
// the documented `allowInsecureRequests` execute option is given, which every call here does.
// The OAuth actions discover from RFC 8414's /.well-known/oauth-authorization-server
// (`algorithm: "oauth2"`); `oidc_sign_in` uses openid-client's default, OpenID Connect's
// /.well-known/openid-configuration, served when signing keys and the issuer are configured. Every request is recorded (method, URL, whether it had an Authorization header and
// which scheme, and the form body's parameter names), never its credentials.
import * as client from "openid-client";

const command = JSON.parse(process.argv[2]);
const sent = [];

function recordingFetch(extraHeaders = {}) {
  return async (url, options) => {
    const headers = { ...options.headers, ...extraHeaders };
    const authorization = Object.entries(headers).find(([name]) => name.toLowerCase() === "authorization");
    const body = typeof options.body === "string" ? options.body : options.body?.toString();
    const form = body && !body.startsWith("{") ? [...new URLSearchParams(body).keys()] : null;
    sent.push({
      method: options.method,
      url: String(url),
      authorization_scheme: authorization ? authorization[1].split(" ")[0] : null,
      form_parameters: form,
    });
    return fetch(url, { ...options, headers });
  };
}

const discoveryOptions = (fetchImpl) => ({
  algorithm: "oauth2",
  execute: [client.allowInsecureRequests],
  [client.customFetch]: fetchImpl,
});

async function clientCredentials(config, scope) {
  const tokens = await client.clientCredentialsGrant(config, scope ? { scope } : {});
  return { access_token: tokens.access_token, token_type: tokens.token_type, scope: tokens.scope,
           expires_in: tokens.expires_in, refresh_token: tokens.refresh_token ?? null };
}

async function run() {
  const issuer = new URL(command.issuer);
  if (command.action === "client_credentials") {
    // A confidential client whose secret is a string: openid-client picks client_secret_post.
    const config = await client.discovery(issuer, command.client_id, command.client_secret, undefined,
                                          discoveryOptions(recordingFetch()));
    return { tokens: await clientCredentials(config, command.scope),
             metadata_auth_methods: config.serverMetadata().token_endpoint_auth_methods_supported };
  }
  if (command.action === "register") {
    // RFC 7591 registration. openid-client sends an initial access token as Bearer; this
    // gateway wants an administrator's Basic instead, added by a customFetch.
    const basic = "Basic " + Buffer.from(`${command.admin[0]}:${command.admin[1]}`).toString("base64");
    const registered = await client.dynamicClientRegistration(issuer, command.metadata, undefined, {
      ...discoveryOptions(recordingFetch({ authorization: basic })),
    });
    const metadata = registered.clientMetadata();
    // The new client at once, at /token, with openid-client's default method again.
    const config = await client.discovery(issuer, metadata.client_id, metadata.client_secret, undefined,
                                          discoveryOptions(recordingFetch()));
    const tokens = await clientCredentials(config, command.scope);
    return { registered: { ...metadata, client_secret: typeof metadata.client_secret === "string" ? "(a string)" : null },
             tokens };
  }
  if (command.action === "register_public_and_sign_in") {
    // RFC 7591 registration with no credentials at all (open registration) as a public client
    // (client.None(): token_endpoint_auth_method none), then the code flow with PKCE S256. The
    // script plays the user: it GETs the login page, posts the form, and reads the redirect.
    const config = await client.dynamicClientRegistration(issuer, command.metadata, client.None(),
                                                          discoveryOptions(recordingFetch()));
    const metadata = config.clientMetadata();
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: command.redirect_uri, scope: command.scope, state,
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256",
    });
    const page = await fetch(url, { redirect: "manual" });
    const handle = /name="handle" value="([^"]+)"/.exec(await page.text())?.[1];
    if (page.status !== 200 || !handle) throw new Error(`login page: ${page.status}`);
    const back = await fetch(new URL("/authorize", issuer), {
      method: "POST", redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ handle, username: command.user[0], password: command.user[1] }).toString(),
    });
    const location = back.headers.get("location");
    if (back.status !== 302 || !location) throw new Error(`login form: ${back.status}`);
    const tokens = await client.authorizationCodeGrant(config, new URL(location),
                                                       { pkceCodeVerifier: verifier, expectedState: state });
    const renewed = await client.refreshTokenGrant(config, tokens.refresh_token);
    return { registered: { client_id: metadata.client_id, token_endpoint_auth_method: metadata.token_endpoint_auth_method,
                           has_secret: metadata.client_secret !== undefined, scope: metadata.scope,
                           redirect_uris: metadata.redirect_uris },
             callback: location.split("?")[0],
             tokens: { access_token: tokens.access_token, scope: tokens.scope, refresh_token: tokens.refresh_token ? "(a string)" : null },
             renewed: { access_token: renewed.access_token, rotated: renewed.refresh_token !== tokens.refresh_token } };
  }
  if (command.action === "oidc_sign_in") {
    // OpenID Connect: discovery from /.well-known/openid-configuration (openid-client's default
    // algorithm), a public client whose ID tokens are signed with the configured key's alg
    // (id_token_signed_response_alg, OpenID Connect Registration §2), the code flow with PKCE and
    // a nonce, the ID token's signature checked against jwks_uri (enableNonRepudiationChecks),
    // then UserInfo with the subject the ID token named.
    const fetchImpl = recordingFetch();
    const config = await client.discovery(issuer, command.client_id,
                                          { id_token_signed_response_alg: command.alg }, client.None(),
                                          { execute: [client.allowInsecureRequests], [client.customFetch]: fetchImpl });
    client.enableNonRepudiationChecks(config);
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: command.redirect_uri, scope: command.scope, state, nonce, max_age: "300",
      code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: "S256",
    });
    const page = await fetch(url, { redirect: "manual" });
    const handle = /name="handle" value="([^"]+)"/.exec(await page.text())?.[1];
    if (page.status !== 200 || !handle) throw new Error(`login page: ${page.status}`);
    const back = await fetch(new URL("/authorize", issuer), {
      method: "POST", redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ handle, username: command.user[0], password: command.user[1] }).toString(),
    });
    const location = back.headers.get("location");
    if (back.status !== 302 || !location) throw new Error(`login form: ${back.status}`);
    const tokens = await client.authorizationCodeGrant(config, new URL(location),
      { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, maxAge: 300 });
    const claims = tokens.claims();
    const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
    return { metadata: config.serverMetadata(), claims, nonce_matches: claims.nonce === nonce,
             userinfo, id_token: tokens.id_token, access_token: tokens.access_token };
  }
  throw new Error(`unknown action ${command.action}`);
}

try {
  const result = await run();
  process.stdout.write(JSON.stringify({ ok: true, result, sent }));
} catch (error) {
  process.stdout.write(JSON.stringify({
    ok: false, sent,
    error: { name: error.name, code: error.code, message: error.message, error: error.error,
             status: error.status,
             // A WWWAuthenticateChallengeError carries the parsed challenges as its cause.
             challenges: Array.isArray(error.cause) ? error.cause.map((c) => c.scheme) : null },
  }));
}
