// Signing in from a browser, end to end: the real Envoy with the tokengate filter and the demo
// config (tests/browser/e2e/gateway.py), Debian's headless Chromium through playwright-core.
//
// 1. The API console's "Sign in" button: the authorization code flow with PKCE as the public
//    client demo-spa, clicking through the gateway's own login page, back to the console's
//    callback, and the user's token then used, refreshed and revoked like the key-pair form's.
//    Screenshots of the login page and of the signed-in console go to target/browser/.
// 2. oauth4webapi (a well-known browser OAuth library, from npm) completing the same flow from
//    a page on another origin (its own loopback port, registered), so CORS and the login page's
//    form-action are exercised as a real single-page app meets them.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdirSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { SHOTS, consoleAct, launchChromium, reportFailure, startGateway, stopGateway } from "./rig.mjs";

const OAUTH4WEBAPI = fileURLToPath(new URL("../node_modules/oauth4webapi/build/index.js", import.meta.url));
const CLIENT_ID = "demo-spa";
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let gateway;
let base;
let envoyLog;
let browser;
let spaServer;
let spaBase;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  gateway = await startGateway();
  ({ url: base, log: envoyLog } = gateway);
  browser = await launchChromium();
  // On the port the gateway registered for it: demo-spa is a web client, whose loopback
  // redirect URIs keep their port (RFC 9700 §4.1.3).
  spaServer = await startSpa(gateway.spaPort);
  spaBase = `http://127.0.0.1:${spaServer.address().port}`;
});

after(async () => {
  await browser?.close();
  spaServer?.close();
  await stopGateway(gateway);
});

/** Runs `body`; on failure prints the end of Envoy's log and saves a screenshot of `page`. */
async function withLog(page, name, body) {
  try {
    await body();
  } catch (error) {
    await reportFailure(page, name, envoyLog);
    throw error;
  }
}

/** Saves a full-page screenshot and checks it is a non-empty PNG file. */
async function screenshot(page, name) {
  const path = `${SHOTS}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  const bytes = readFileSync(path);
  assert.ok(statSync(path).size > 1000, `${path} is too small to be a screenshot`);
  assert.deepEqual(bytes.subarray(0, 8), PNG_SIGNATURE, `${path} is not a PNG`);
  return path;
}

// ------------------------------------------------------------------------------------------
// 1. The console

test("the console signs in through the gateway's login page and uses the user's token", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  await withLog(page, "console-sign-in", async () => {
    await page.goto(`${base}/console/`);
    await page.waitForSelector("body[data-ready=true]");
    assert.ok(await page.isHidden("#signed-in"), "not signed in yet");

    // Sign in: the browser leaves for /authorize, whose answer is the filter's login page.
    const loginAnswer = page.waitForResponse((response) => new URL(response.url()).pathname === "/authorize");
    await page.click("#sign-in");
    const login = await loginAnswer;
    assert.equal(login.status(), 200);
    const headers = login.headers();
    assert.equal(headers["cache-control"], "no-store");
    assert.match(headers["content-security-policy"], /frame-ancestors 'none'/);
    const authorize = new URL(login.url());
    assert.equal(authorize.searchParams.get("client_id"), CLIENT_ID);
    assert.equal(authorize.searchParams.get("code_challenge_method"), "S256");
    assert.equal(authorize.searchParams.get("redirect_uri"), `${base}/console/callback`);
    assert.equal(authorize.searchParams.get("state").length, 43, "a 256-bit random state");
    await page.waitForSelector("input[name=password]");
    assert.equal(await page.title(), "Sign in");
    assert.match(await page.textContent("body"), /Demo console/);
    await screenshot(page, "sign-in-1-login-page");

    // A wrong password: the page again, with a message, the password not echoed.
    await page.fill("input[name=username]", "admin");
    await page.fill("input[name=password]", "not-the-password");
    await Promise.all([page.waitForLoadState("load"), page.click("button[type=submit]")]);
    await page.waitForSelector("p.error");
    assert.match(await page.textContent("p.error"), /username or password is wrong/);
    assert.equal(await page.inputValue("input[name=password]"), "");
    assert.doesNotMatch(await page.content(), /not-the-password/);

    // The right one: a 302 to the console's callback, which trades the code for tokens.
    await page.fill("input[name=password]", "admin");
    await page.click("button[type=submit]");
    await page.waitForURL(`${base}/console/`);
    await page.waitForSelector("body[data-ready=true]");
    await page.waitForSelector("#signed-in:not([hidden])");
    const message = await page.textContent("#message");
    assert.match(message, /^Signed in: scopes orders:read orders:write, expires in (1:00:00|59:[56]\d)\.$/);
    assert.equal(new URL(page.url()).search, "", "the code left the address bar");
    assert.match(await page.textContent("#signed-in"), /demo-spa/);
    assert.match(await page.textContent("#token-refresh"), /yes/);
    assert.ok((await page.inputValue("#access-token")).length > 20);
    await screenshot(page, "sign-in-2-signed-in-console");

    // The user's token calls the API like any other, with the user's identity upstream.
    await page.selectOption("#resource", "GET /api/orders/42");
    const tried = await consoleAct(page, () => page.click("#try-it"));
    assert.equal(tried.status, "200", tried.message);
    const echoed = JSON.parse(tried.body);
    assert.equal(echoed.headers["x-tokengate-client-id"], CLIENT_ID);
    assert.equal(echoed.headers["x-tokengate-username"], "admin");

    // Refresh and revoke as the public client: client_id in the body, no Basic.
    const before = await page.inputValue("#access-token");
    const refreshed = await consoleAct(page, () => page.click("#refresh-token"));
    assert.equal(refreshed.kind, "ok", refreshed.message);
    assert.match(refreshed.message, /^Token refreshed: scopes orders:read orders:write/);
    assert.notEqual(await page.inputValue("#access-token"), before);
    const revoked = await consoleAct(page, () => page.click("#revoke-token"));
    assert.equal(revoked.status, "200", revoked.message);
    assert.match(revoked.message, /Revoked/);
    const after = await consoleAct(page, () => page.click("#try-it"));
    assert.equal(after.status, "401");
    assert.deepEqual(pageErrors, []);
  });
  await page.close();
});

test("a callback the console did not start, or a refused sign-in, signs nobody in", async () => {
  const page = await browser.newPage();
  await withLog(page, "console-callback", async () => {
    // No sign-in pending in this tab: a forged or replayed callback does nothing.
    await page.goto(`${base}/console/callback?code=forged&state=forged`);
    await page.waitForSelector("body[data-ready=true]");
    assert.match(await page.textContent("#message"), /not started here/);
    assert.equal(await page.inputValue("#access-token"), "");
    assert.equal(new URL(page.url()).pathname, "/console/");

    // A sign-in asking for a scope demo-spa may not have: the gateway redirects back with
    // invalid_scope, which the console shows (after checking state and iss).
    await page.fill("#scope", "admin:everything");
    await Promise.all([page.waitForURL(/\/console\/callback\?/), page.click("#sign-in")]);
    await page.waitForSelector("body[data-ready=true]");
    const message = await page.textContent("#message");
    assert.match(message, /^Not signed in: .*invalid_scope/);
    assert.equal(await page.inputValue("#access-token"), "");
  });
  await page.close();
});

// ------------------------------------------------------------------------------------------
// 2. oauth4webapi in a page on another origin

/** The single-page app: one HTML page (the start page and its callback) and its module, which
 * imports oauth4webapi from the installed npm package. */
const SPA_PAGE = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>oauth4webapi app</title>
<script type="module" src="/app.js"></script></head><body><pre id="out">loading</pre></body></html>`;

const SPA_APP = `
import * as oauth from "/oauth4webapi.js";
const config = await (await fetch("/config.json")).json();
const as = config.as;
const client = { client_id: config.clientId };
const redirectUri = location.origin + "/console/callback";
const out = document.getElementById("out");
const insecure = { [oauth.allowInsecureRequests]: true };

window.signIn = async () => {
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  sessionStorage.setItem("pending", JSON.stringify({ codeVerifier, state }));
  const url = new URL(as.authorization_endpoint);
  url.searchParams.set("client_id", client.client_id);
  url.searchParams.set("redirect_uri", redirectUri);
  url.searchParams.set("response_type", "code");
  url.searchParams.set("scope", "orders:read");
  url.searchParams.set("state", state);
  url.searchParams.set("code_challenge", await oauth.calculatePKCECodeChallenge(codeVerifier));
  url.searchParams.set("code_challenge_method", "S256");
  location.assign(url.href);
};

if (location.pathname === "/console/callback") {
  try {
    const { codeVerifier, state } = JSON.parse(sessionStorage.getItem("pending"));
    const params = oauth.validateAuthResponse(as, client, new URL(location.href), state);
    const response = await oauth.authorizationCodeGrantRequest(
      as, client, oauth.None(), params, redirectUri, codeVerifier, insecure);
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, response);
    const refreshed = await oauth.processRefreshTokenResponse(as, client,
      await oauth.refreshTokenGrantRequest(as, client, oauth.None(), tokens.refresh_token, insecure));
    out.textContent = JSON.stringify({ ok: true, tokens, refreshed, iss: params.get("iss") });
  } catch (error) {
    out.textContent = JSON.stringify({ ok: false, error: String(error), code: error.code, cause: String(error.cause?.error ?? "") });
  }
} else {
  out.textContent = "ready";
}
`;

function startSpa(port) {
  const server = createServer(async (request, response) => {
    const path = new URL(request.url, "http://x").pathname;
    const send = (type, body) => response.writeHead(200, { "Content-Type": type }).end(body);
    if (path === "/" || path === "/console/callback") return send("text/html; charset=utf-8", SPA_PAGE);
    if (path === "/app.js") return send("text/javascript", SPA_APP);
    if (path === "/oauth4webapi.js") return send("text/javascript", readFileSync(OAUTH4WEBAPI));
    if (path === "/config.json") {
      // The gateway's real metadata (RFC 8414), its endpoints on the listener this test reaches
      // (the metadata names the issuer's TLS listener, which the e2e rig does not run).
      const metadata = await (await fetch(`${base}/.well-known/oauth-authorization-server`)).json();
      const as = { ...metadata, authorization_endpoint: `${base}/authorize`, token_endpoint: `${base}/token` };
      return send("application/json", JSON.stringify({ as, clientId: CLIENT_ID }));
    }
    response.writeHead(404).end();
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

test("oauth4webapi completes the flow from another origin: login page, code, token, refresh", async () => {
  const page = await browser.newPage();
  const tokenAnswers = [];
  page.on("response", (response) => {
    if (new URL(response.url()).pathname === "/token") tokenAnswers.push(response);
  });
  await withLog(page, "oauth4webapi", async () => {
    assert.notEqual(new URL(spaBase).origin, new URL(base).origin, "the app is on an origin of its own");
    await page.goto(`${spaBase}/`);
    await page.waitForFunction(() => document.getElementById("out").textContent === "ready");
    await page.evaluate(() => window.signIn());
    await page.waitForSelector("input[name=password]");
    await page.fill("input[name=username]", "admin");
    await page.fill("input[name=password]", "admin");
    await page.click("button[type=submit]");
    await page.waitForURL((url) => url.origin === spaBase && url.pathname === "/console/callback");
    await page.waitForFunction(() => document.getElementById("out").textContent.startsWith("{"));
    const result = JSON.parse(await page.textContent("#out"));
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.iss, "https://127.0.0.1:8243", "RFC 9207 iss, checked by the library");
    assert.equal(result.tokens.token_type.toLowerCase(), "bearer");
    assert.equal(result.tokens.scope, "orders:read");
    assert.ok(result.tokens.refresh_token, "a refresh token for the public client");
    assert.notEqual(result.refreshed.access_token, result.tokens.access_token);
    // The browser let the app read /token's answers: CORS for the redirect URI's origin.
    assert.ok(tokenAnswers.length >= 2);
    for (const answer of tokenAnswers.filter((a) => a.request().method() === "POST")) {
      assert.equal(answer.headers()["access-control-allow-origin"], spaBase);
    }
    // The library's access token calls the API (from here: the demo API has no CORS).
    const api = await fetch(`${base}/api/orders/42`, {
      headers: { Authorization: `Bearer ${result.refreshed.access_token}` },
    });
    assert.equal(api.status, 200);
    const echoed = await api.json();
    assert.equal(echoed.headers["x-tokengate-client-id"], CLIENT_ID);
    assert.equal(echoed.headers["x-tokengate-username"], "admin");
  });
  await page.close();
});
