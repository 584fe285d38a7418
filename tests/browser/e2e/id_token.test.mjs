// The console shows the signed-in user from an OpenID Connect ID token, verified in the page by
// the package against the JWKS the real Envoy serves (tests/browser/e2e/gateway.py: the filter
// with envoy/envoy.yaml's demo config).
//
// The gateway does not issue ID tokens yet (OpenID Connect is not in this build), so this test
// stands in for that part only: it lets the real `/token` answer go through and adds an
// `id_token` to it, signed here (node's own Ed25519) with the demo configuration's signing key,
// whose public half the page fetches from the gateway's `/oauth2/jwks`. Everything else is
// real: the login page, the code, the nonce the package put in the `/authorize` URL, the JWKS.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { launchChromium, reportFailure, startGateway, stopGateway } from "./rig.mjs";

const CLIENT_ID = "demo-spa";
const ENVOY_YAML = fileURLToPath(new URL("../../../envoy/envoy.yaml", import.meta.url));

let gateway;
let base;
let browser;
let issuer;

before(async () => {
  gateway = await startGateway();
  base = gateway.url;
  browser = await launchChromium();
  issuer = (await (await fetch(`${base}/.well-known/oauth-authorization-server`)).json()).issuer;
});

after(async () => {
  await browser?.close();
  await stopGateway(gateway);
});

/** The demo configuration's signing key (marked demo-only there), as node's KeyObject. */
function demoKey() {
  const text = readFileSync(ENVOY_YAML, "utf8");
  const jwk = /\{\s*"kty":\s*"OKP"[^}]*"kid":\s*"demo-only-do-not-deploy"[^}]*\}/.exec(text);
  assert.ok(jwk, "envoy/envoy.yaml has the demo signing key");
  const { kty, crv, x, d, kid } = JSON.parse(jwk[0]);
  return { kid, key: createPrivateKey({ key: { kty, crv, x, d }, format: "jwk" }) };
}

function idToken(claims) {
  const { kid, key } = demoKey();
  const part = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const input = `${part({ alg: "EdDSA", kid, typ: "JWT" })}.${part(claims)}`;
  return `${input}.${sign(null, Buffer.from(input), key).toString("base64url")}`;
}

/** Signs in through the console; the `/token` answer gets the ID token `claimsFor(nonce)` makes
 * from the nonce the page sent to `/authorize`. Returns the page's user line. */
async function signInWithIdToken(name, claimsFor) {
  const page = await browser.newPage();
  let nonce;
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.pathname === "/authorize" && url.searchParams.has("nonce")) nonce = url.searchParams.get("nonce");
  });
  await page.route("**/token", async (route) => {
    const response = await route.fetch();
    const body = await response.json();
    assert.ok(body.access_token, "the real gateway issued a token");
    body.id_token = idToken(claimsFor(nonce));
    const headers = { ...response.headers() };
    delete headers["content-length"];
    await route.fulfill({ status: response.status(), headers, json: body });
  });
  try {
    await page.goto(`${base}/console/`);
    await page.waitForSelector("body[data-ready=true]");
    await page.click("#sign-in");
    await page.waitForSelector("input[name=password]");
    await page.fill("input[name=username]", "admin");
    await page.fill("input[name=password]", "admin");
    await page.click("button[type=submit]");
    await page.waitForSelector("#signed-in-user:not([hidden])");
    assert.equal(nonce.length, 43, "a 256-bit random nonce went to /authorize");
    await page.waitForFunction(() => document.getElementById("signed-in-user").textContent !== "");
    return await page.textContent("#signed-in-user");
  } catch (error) {
    await reportFailure(page, name, gateway.log);
    throw error;
  } finally {
    await page.close();
  }
}

function claims(nonce) {
  const now = Math.floor(Date.now() / 1000);
  return { iss: issuer, sub: "admin", aud: CLIENT_ID, exp: now + 300, iat: now, nonce, name: "Demo Admin", email: "admin@example.com" };
}

test("the console shows the user of an ID token that verifies against the gateway's JWKS", async () => {
  const line = await signInWithIdToken("id-token-user", claims);
  assert.equal(line, "User: admin (Demo Admin, admin@example.com), from a verified ID token.");
});

test("the console refuses an ID token with another sign-in's nonce, or for another client", async () => {
  const replayed = await signInWithIdToken("id-token-nonce", () => claims("another-sign-ins-nonce"));
  assert.match(replayed, /^The ID token was refused: .*\[wrong_nonce\]$/);
  const elsewhere = await signInWithIdToken("id-token-aud", (nonce) => ({ ...claims(nonce), aud: "other-app" }));
  assert.match(elsewhere, /^The ID token was refused: .*\[wrong_audience\]$/);
});
