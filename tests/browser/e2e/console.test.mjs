// The API console end to end: the real Envoy with the tokengate filter and the demo config,
// the console served from the same origin, driven in Debian's headless Chromium through
// playwright-core. `make test-web` runs it (node --test) after building everything it needs.
//
// A screenshot of each step goes to target/browser/ on every run, and failure-<step>.png with
// Envoy's log on failure.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";

import { SHOTS, consoleAct, launchChromium, reportFailure, startGateway, stopGateway } from "./rig.mjs";

// WSO2 API Manager's documented example pair, and what `base64` of "key:secret" gives for it.
const SEED_KEY = "wU62DjlyDBnq87GlBwplfqvmAbAa";
const SEED_SECRET = "ksdSdoefDDP7wpaElfqvmjDue";
const SEED_BASE64 = "d1U2MkRqbHlEQm5xODdHbEJ3cGxmcXZtQWJBYTprc2RTZG9lZkREUDd3cGFFbGZxdm1qRHVl";

let gateway;
let base;
let envoyLog;
let browser;
let page;
let shot = 0;
const pageErrors = [];
const tokenPosts = [];
const missing = [];

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  gateway = await startGateway();
  ({ url: base, log: envoyLog } = gateway);
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.on("response", (response) => {
    if (response.status() === 404) missing.push(new URL(response.url()).pathname);
  });
  page.on("request", (request) => {
    if (request.method() === "POST" && new URL(request.url()).pathname === "/token") tokenPosts.push(request);
  });
});

after(async () => {
  await browser?.close();
  await stopGateway(gateway);
});

/** A test step: a screenshot after it, whether it passed or failed; Envoy's log on failure. */
function step(name, body) {
  test(name, async () => {
    const slug = `${String(++shot).padStart(2, "0")}-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}`;
    try {
      await body();
      await page.screenshot({ path: `${SHOTS}/${slug}.png`, fullPage: true });
    } catch (error) {
      await reportFailure(page, slug, envoyLog);
      throw error;
    }
  });
}

const act = (action) => consoleAct(page, action);

async function tryResource(resource) {
  await page.selectOption("#resource", resource);
  return act(() => page.click("#try-it"));
}

async function getToken({ grantType = "client_credentials", scope = "", username, password } = {}) {
  await page.selectOption("#grant-type", grantType);
  await page.fill("#scope", scope);
  if (username !== undefined) await page.fill("#username", username);
  if (password !== undefined) await page.fill("#password", password);
  return act(() => page.click("#get-token"));
}

// ------------------------------------------------------------------------------------------

step("the console loads the package from the gateway's origin", async () => {
  await page.goto(`${base}/console`);
  assert.equal(new URL(page.url()).pathname, "/console/", "/console redirects to /console/");
  await page.waitForSelector("body[data-ready=true]");
  assert.equal(await page.getAttribute("#package-status", "data-state"), "ready");
  assert.match(await page.getAttribute("#package-status", "data-version"), /^0\.\d+\.\d+$/);
  assert.ok(await page.isHidden("#package-status"), "a working console says nothing about its package");
  assert.deepEqual(missing, [], "nothing the page asked for (its icon included) was missing");
});

step("first call latency and the package API in the page", async () => {
  // A fresh page on the same origin, so init() really loads and compiles the module.
  const fresh = await browser.newPage();
  await fresh.goto(`${base}/console/not-a-page`);
  const result = await fresh.evaluate(
    async ([key, secret]) => {
      const started = performance.now();
      const module = await import("/console/pkg/tokengate.js");
      await module.default();
      const initialised = performance.now();
      const encoded = module.encodeCredentials(key, secret);
      const firstCall = performance.now();
      module.encodeCredentials(key, secret);
      const secondCall = performance.now();
      const thrown = (f) => {
        try {
          f();
          return null;
        } catch (error) {
          return { isError: error instanceof Error, name: error.name, code: error.code, message: error.message };
        }
      };
      return {
        encoded,
        btoa: btoa(`${key}:${secret}`),
        initMs: initialised - started,
        firstCallMs: firstCall - initialised,
        secondCallMs: secondCall - firstCall,
        noColon: thrown(() => module.decodeCredentials(btoa("client"))),
        incomplete: thrown(() => module.tokenRequest({ grantType: "password", username: "admin" })),
        serverError: thrown(() => module.parseTokenResponse('{"error":"invalid_grant","error_description":"x"}')),
        challenge: (() => {
          const c = module.parseChallenge('Bearer realm="tokengate", error="insufficient_scope", scope="orders:write"');
          return { scheme: c.scheme, realm: c.realm, error: c.error, scopes: c.scopes, nextStep: c.nextStep };
        })(),
      };
    },
    [SEED_KEY, SEED_SECRET],
  );
  await fresh.close();
  assert.equal(result.encoded, SEED_BASE64);
  assert.equal(result.encoded, result.btoa);
  assert.deepEqual(result.noColon, {
    isError: true,
    name: "TokengateError",
    code: "no_colon",
    message: result.noColon.message,
  });
  assert.match(result.noColon.message, /no ':'/);
  assert.equal(result.incomplete.code, "missing_parameter");
  assert.match(result.incomplete.message, /password grant needs a password/);
  assert.equal(result.serverError.code, "invalid_grant");
  assert.deepEqual(result.challenge, {
    scheme: "Bearer",
    realm: "tokengate",
    error: "insufficient_scope",
    scopes: ["orders:write"],
    nextStep: "request_scope",
  });
  const latency = {
    initMs: +result.initMs.toFixed(2),
    firstCallMs: +result.firstCallMs.toFixed(3),
    secondCallMs: +result.secondCallMs.toFixed(3),
  };
  writeFileSync(`${SHOTS}/latency.json`, JSON.stringify(latency, null, 2) + "\n");
  console.log(`# first-call latency in Chromium: ${JSON.stringify(latency)}`);
  assert.ok(result.firstCallMs < 50, `first encodeCredentials call took ${result.firstCallMs} ms`);
});

step("a client_credentials token with a narrow scope, and a live countdown", async () => {
  const result = await getToken({ scope: "orders:read" });
  assert.equal(result.kind, "ok", result.message);
  assert.equal(result.status, "200");
  assert.match(result.message, /Token issued: scopes orders:read, expires in (1:00:00|59:[56]\d)\./);
  assert.equal(await page.textContent("#token-scopes"), "orders:read");
  assert.match(await page.textContent("#token-refresh"), /none/);
  assert.ok(await page.isDisabled("#refresh-token"), "no refresh token, no refresh button");
  const first = await page.textContent("#token-expiry");
  assert.match(first, /^(1:00:00|59:[56]\d)$/);
  await page.waitForFunction((shown) => document.getElementById("token-expiry").textContent !== shown, first, {
    timeout: 5_000,
  });
  assert.match(await page.textContent("#token-expiry"), /^59:[56]\d$/);
});

step("an allowed resource answers 200 with the identity the gateway added", async () => {
  const result = await tryResource("GET /api/orders/42");
  assert.equal(result.status, "200");
  assert.equal(result.kind, "ok", result.message);
  const echoed = JSON.parse(result.body);
  assert.equal(echoed.path, "/api/orders/42");
  assert.equal(echoed.headers["x-tokengate-client-id"], "demo-app");
  assert.equal(echoed.headers["x-tokengate-scope"], "orders:read");
  assert.equal(echoed.authorization_forwarded, false);
});

step("a forbidden resource shows 403 and the missing scope", async () => {
  const result = await tryResource("POST /api/orders");
  assert.equal(result.status, "403");
  assert.equal(result.kind, "denied");
  assert.match(result.message, /403 insufficient_scope: this resource needs scope orders:write\. The token has: orders:read\./);
  assert.match(await page.textContent("#headers"), /www-authenticate: Bearer realm="tokengate", error="insufficient_scope"/);
});

step("a subscribed API shows its tier and what is left, then a 429 in plain words", async () => {
  assert.ok(await page.isHidden("#subscriptions"), "no subscription seen yet");
  const first = await tryResource("GET /orders/1.0.0/items");
  assert.equal(first.status, "200", first.message);
  const row = async () => (await page.$$eval("#subscriptions tbody td", (cells) => cells.map((c) => c.textContent)));
  const [api, tier, remaining] = await row();
  assert.deepEqual([api, tier], ["Orders", "Tiny"]);
  assert.equal(remaining, "1 of 2");
  // The tier's hour may roll over between requests: go on until the gateway throttles.
  let result;
  for (let tries = 0; tries < 6; tries++) {
    result = await tryResource("GET /orders/1.0.0/items");
    if (result.status === "429") break;
  }
  assert.equal(result.status, "429", result.message);
  assert.equal(result.kind, "denied");
  assert.match(result.message, /^429 throttled: this application's Tiny tier allows 2 requests per hour, and this window's requests are used up\. Try again in \d+ seconds?\.$/);
  assert.equal((await row())[2], "0 of 2");
});

step("the password grant, then refresh: a new token that may write", async () => {
  const issued = await getToken({ grantType: "password", scope: "", username: "admin", password: "admin" });
  assert.equal(issued.kind, "ok", issued.message);
  assert.equal(await page.textContent("#token-scopes"), "orders:read orders:write");
  assert.match(await page.textContent("#token-refresh"), /yes/);
  const before = await page.inputValue("#access-token");

  const refreshed = await act(() => page.click("#refresh-token"));
  assert.equal(refreshed.kind, "ok", refreshed.message);
  assert.match(refreshed.message, /Token refreshed: scopes orders:read orders:write/);
  const after = await page.inputValue("#access-token");
  assert.notEqual(after, before, "refresh issues a new access token");

  const write = await tryResource("POST /api/orders");
  assert.equal(write.status, "200", write.message);
  const echoed = JSON.parse(write.body);
  assert.equal(echoed.method, "POST");
  assert.equal(echoed.headers["x-tokengate-username"], "admin");
});

step("a revoked token shows 401 invalid_token", async () => {
  const revoked = await act(() => page.click("#revoke-token"));
  assert.equal(revoked.status, "200");
  assert.match(revoked.message, /Revoked/);
  // The panel no longer describes a live token, and offers nothing to do with it.
  for (const id of ["#token-scopes", "#token-expiry", "#token-refresh"]) assert.equal(await page.textContent(id), "–", id);
  assert.ok(await page.isDisabled("#refresh-token") && await page.isDisabled("#revoke-token"));
  const result = await tryResource("GET /api/orders");
  assert.equal(result.status, "401");
  assert.equal(result.kind, "denied");
  assert.match(result.message, /401 invalid_token \(the access token is unknown or revoked\): .*Refresh it/);
});

step("a garbage token shows 401 invalid_token, no token 401 with no error", async () => {
  await page.fill("#access-token", "AQAAgarbage-garbage-garbage");
  const garbage = await tryResource("GET /api/orders");
  assert.equal(garbage.status, "401");
  assert.match(garbage.message, /401 invalid_token/);

  await page.fill("#access-token", "");
  const none = await tryResource("GET /api/orders");
  assert.equal(none.status, "401");
  assert.match(none.message, /401: no access token was sent\. Get a token first\./);
  assert.match(await page.textContent("#headers"), /www-authenticate: Bearer realm="tokengate"$/m);

  const publicPing = await tryResource("GET /api/public/ping");
  assert.equal(publicPing.status, "200");
});

step("incomplete input is refused before anything is sent; a wrong secret gets 401", async () => {
  const posted = tokenPosts.length;
  const incomplete = await getToken({ grantType: "password", username: "", password: "admin" });
  assert.equal(incomplete.kind, "error");
  assert.equal(incomplete.message, "Not sent: a password grant needs a username [missing_parameter]");
  assert.equal(tokenPosts.length, posted, "no request reached /token");

  await page.fill("#consumer-secret", "wrong-secret");
  const wrong = await getToken({ grantType: "client_credentials", scope: "" });
  assert.equal(wrong.status, "401");
  assert.match(wrong.message, /^401 invalid_client: the consumer key or secret is wrong/);
  assert.match(await page.textContent("#headers"), /www-authenticate: Basic realm="tokengate"/);
  await page.fill("#consumer-secret", "demo-secret");
  assert.deepEqual(pageErrors, [], "no uncaught errors in the page");
  await page.screenshot({ path: `${SHOTS}/console.png`, fullPage: true });
});

step("a pasted token is described by introspection; clearing the box forgets it", async () => {
  const issued = await getToken({ grantType: "client_credentials", scope: "orders:read" });
  assert.equal(issued.kind, "ok", issued.message);
  const token = await page.inputValue("#access-token");
  await page.fill("#access-token", "");
  assert.equal(await page.textContent("#token-scopes"), "–", "an empty box describes nothing");
  assert.ok(await page.isDisabled("#revoke-token"));
  await page.fill("#access-token", token);
  await page.waitForFunction(() => document.getElementById("token-scopes").textContent !== "–");
  assert.equal(await page.textContent("#token-scopes"), "orders:read");
  assert.match(await page.textContent("#token-expiry"), /^(59|60):|^1:00:/);
  assert.equal(await page.textContent("#token-refresh"), "unknown (a pasted token)");
  await page.fill("#access-token", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
  await page.waitForFunction(() => document.getElementById("token-scopes").textContent !== "–");
  assert.match(await page.textContent("#token-scopes"), /^not active for this application/);
  assert.deepEqual(pageErrors, [], "no uncaught errors in the page");
});
