// The gateway's login page in Chromium: the real Envoy with the filter and the demo config with
// an operator's look (tests/browser/e2e/gateway.py: accent colour, data-URI logo, footer).
//
// The page's one <style> is allowed by its SHA-256 in the Content-Security-Policy, never by
// 'unsafe-inline' (docs/sign-in.md#the-login-page). Chromium is the judge of that hash: the
// page's CSS must apply (computed styles carry the configured accent), and Chromium must report
// no CSP violation. A control serves the same page with one byte of the hash changed, to show
// that a wrong hash is seen by these checks. Screenshots, light, dark and narrow, go to
// target/browser/ (login-page*.png) beside the console's.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, statSync } from "node:fs";

import { SHOTS, launchChromium, reportFailure, startGateway, stopGateway } from "./rig.mjs";

// gateway.py's LOGIN_PAGE: accent_color #0a7f3c.
const ACCENT = "rgb(10, 127, 60)";
// RFC 7636 Appendix B's challenge: a well-formed PKCE request.
const CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

let gateway;
let base;
let browser;

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  gateway = await startGateway();
  base = gateway.url;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await stopGateway(gateway);
});

function loginUrl() {
  const query = new URLSearchParams({
    response_type: "code",
    client_id: "demo-spa",
    redirect_uri: `${base}/console/callback`,
    state: "login-page-look",
    code_challenge: CHALLENGE,
    code_challenge_method: "S256",
  });
  return `${base}/authorize?${query}`;
}

/**
 * A page that records what Chromium says about the Content-Security-Policy: console errors
 * naming it, and `securitypolicyviolation` events (recorded by a DevTools init script, which the
 * page's own policy does not govern).
 */
async function watchedPage(options) {
  const page = await browser.newPage(options);
  const cspErrors = [];
  page.on("console", (message) => {
    if (message.type() === "error" && /Content Security Policy/i.test(message.text())) cspErrors.push(message.text());
  });
  await page.addInitScript(() => {
    window.__violations = [];
    document.addEventListener("securitypolicyviolation", (event) =>
      window.__violations.push(`${event.violatedDirective} ${event.blockedURI}`),
    );
  });
  const violations = async () => [...cspErrors, ...(await page.evaluate(() => window.__violations))];
  return { page, violations };
}

async function withLog(page, name, body) {
  try {
    await body();
  } catch (error) {
    await reportFailure(page, name, gateway.log);
    throw error;
  }
}

async function screenshot(page, name) {
  const path = `${SHOTS}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  assert.ok(statSync(path).size > 1000, `${path} is too small to be a screenshot`);
  assert.deepEqual(readFileSync(path).subarray(0, 8), PNG_SIGNATURE, `${path} is not a PNG`);
}

/** Computed style properties of the first element matching `selector`. */
function styleOf(page, selector, ...properties) {
  return page.$eval(
    selector,
    (element, names) => Object.fromEntries(names.map((name) => [name, getComputedStyle(element)[name]])),
    properties,
  );
}

test("Chromium applies the login page's stylesheet under its hash and reports no CSP violation", async () => {
  const { page, violations } = await watchedPage({ viewport: { width: 1280, height: 900 }, colorScheme: "light" });
  await withLog(page, "login-page", async () => {
    const response = await page.goto(loginUrl());
    assert.equal(response.status(), 200);
    const policy = response.headers()["content-security-policy"];
    assert.match(policy, /style-src 'sha256-[A-Za-z0-9+/]{43}=';/);
    assert.match(policy, /img-src data:;/);
    assert.doesNotMatch(policy, /unsafe-inline/);

    // The configured accent reached the button through the page's own CSS.
    const button = await styleOf(page, "button[type=submit]", "backgroundColor", "color", "width");
    assert.equal(button.backgroundColor, ACCENT);
    assert.equal(button.color, "rgb(255, 255, 255)", "white text on the dark green accent");
    const card = await styleOf(page, "main", "maxWidth", "borderTopLeftRadius", "backgroundColor");
    assert.deepEqual(card, { maxWidth: "384px", borderTopLeftRadius: "12px", backgroundColor: "rgb(255, 255, 255)" });
    assert.match((await styleOf(page, "body", "fontFamily")).fontFamily, /system-ui/);

    // What the page says: the client and where the code goes, the operator's logo and footer.
    assert.equal(await page.title(), "Sign in");
    assert.match(await page.textContent("main > p"), /Demo console wants to access your account\. You will be sent back to http:\/\/127\.0\.0\.1:\d+\./);
    assert.ok(await page.$eval("main > img", (img) => img.complete && img.naturalWidth === 40), "the data-URI logo loaded");
    assert.equal(await page.textContent("footer"), "tokengate demo \u00b7 no real accounts");
    // Labels name their inputs: Chromium finds each field by its label.
    await page.getByLabel("Username").fill("admin");
    assert.equal(await page.inputValue("#username"), "admin");

    // Keyboard focus is visible: a solid ring.
    await page.focus("#password");
    await page.keyboard.press("Shift+Tab");
    assert.equal(await page.evaluate(() => document.activeElement.id), "username");
    assert.equal((await styleOf(page, "#username", "outlineStyle")).outlineStyle, "solid");
    await page.locator("#username").blur();
    await screenshot(page, "login-page");

    // A wrong password: the same page again (400), its error in the error area, still styled.
    await page.fill("#password", "not-the-password");
    const again = page.waitForResponse((r) => new URL(r.url()).pathname === "/authorize");
    await page.click("button[type=submit]");
    assert.equal((await again).status(), 400);
    await page.waitForSelector("p.error[role=alert]");
    assert.equal((await styleOf(page, "p.error", "color")).color, "rgb(153, 27, 27)");
    assert.equal((await styleOf(page, "button[type=submit]", "backgroundColor")).backgroundColor, ACCENT);
    await screenshot(page, "login-page-error");

    assert.deepEqual(await violations(), []);
  });
  await page.close();
});

test("the login page follows a dark system theme and fits a phone's width", async () => {
  const dark = await watchedPage({ viewport: { width: 1280, height: 900 }, colorScheme: "dark" });
  await withLog(dark.page, "login-page-dark", async () => {
    await dark.page.goto(loginUrl());
    const card = await styleOf(dark.page, "main", "backgroundColor", "color");
    assert.deepEqual(card, { backgroundColor: "rgb(22, 27, 38)", color: "rgb(243, 244, 246)" });
    assert.equal((await styleOf(dark.page, "button[type=submit]", "backgroundColor")).backgroundColor, ACCENT);
    await screenshot(dark.page, "login-page-dark");
    assert.deepEqual(await dark.violations(), []);
  });
  await dark.page.close();

  const narrow = await watchedPage({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
  await withLog(narrow.page, "login-page-narrow", async () => {
    await narrow.page.goto(loginUrl());
    const widths = await narrow.page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      viewport: window.innerWidth,
      card: document.querySelector("main").getBoundingClientRect().width,
      input: document.querySelector("#username").getBoundingClientRect().width,
    }));
    assert.equal(widths.viewport, 360, "the viewport meta tag sets the layout width");
    assert.ok(widths.page <= widths.viewport, `no sideways scrolling: ${JSON.stringify(widths)}`);
    assert.ok(widths.card >= 330 && widths.input >= 280, `the card takes the width: ${JSON.stringify(widths)}`);
    await screenshot(narrow.page, "login-page-narrow");
    assert.deepEqual(await narrow.violations(), []);
  });
  await narrow.page.close();
});

test("control: with one character of the style hash changed, Chromium refuses the stylesheet and says so", async () => {
  const { page, violations } = await watchedPage();
  await withLog(page, "login-page-wrong-hash", async () => {
    await page.route("**/authorize?**", async (route) => {
      const response = await route.fetch();
      const headers = response.headers();
      const policy = headers["content-security-policy"];
      const wrong = policy.replace(/'sha256-(.)/, (_, first) => `'sha256-${first === "A" ? "B" : "A"}`);
      assert.notEqual(wrong, policy);
      await route.fulfill({ response, headers: { ...headers, "content-security-policy": wrong } });
    });
    await page.goto(loginUrl());
    assert.notEqual((await styleOf(page, "button[type=submit]", "backgroundColor")).backgroundColor, ACCENT);
    const said = await violations();
    assert.ok(said.some((line) => /style-src/.test(line)), `Chromium reported the refused style: ${JSON.stringify(said)}`);
  });
  await page.close();
});
