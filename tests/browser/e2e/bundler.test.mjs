// The package as a front-end developer uses it: installed with `npm install ./pkg` (a `file:`
// dependency in tests/browser/package.json), imported by name in a small app (vite-app/),
// bundled by Vite with no plugin, and run in Debian's headless Chromium.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile, readdir, stat } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { build } from "vite";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const APP = fileURLToPath(new URL("./vite-app/", import.meta.url));
const OUT = `${REPO}target/browser/vite-app`;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm" };

let server;
let browser;

before(async () => {
  await build({ root: APP, logLevel: "warn", build: { outDir: OUT, emptyOutDir: true } });
  server = createServer(async (request, response) => {
    const path = normalize(decodeURIComponent(new URL(request.url, "http://x").pathname));
    const file = join(OUT, path === "/" ? "index.html" : path);
    try {
      const body = await readFile(file);
      response.writeHead(200, { "Content-Type": TYPES[extname(file)] ?? "application/octet-stream" });
      response.end(body);
    } catch {
      response.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync", "--no-first-run"],
  });
});

after(async () => {
  await browser?.close();
  server?.close();
});

test("Vite bundles the installed package, .wasm included, and it runs", async () => {
  const assets = await readdir(join(OUT, "assets"));
  const wasm = assets.find((name) => name.endsWith(".wasm"));
  assert.ok(wasm, `no .wasm among ${assets}`);
  const pkgWasm = await stat(`${REPO}pkg/tokengate_bg.wasm`);
  assert.equal((await stat(join(OUT, "assets", wasm))).size, pkgWasm.size, "the bundled .wasm is the package's");

  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => document.getElementById("out").textContent !== "loading");
  assert.deepEqual(JSON.parse(await page.textContent("#out")), {
    encoded: "ZGVtby1hcHA6ZGVtby1zZWNyZXQ=",
    nextStep: "request_scope",
    body: "grant_type=client_credentials&scope=orders%3Aread",
  });
  assert.deepEqual(errors, []);
  await page.screenshot({ path: `${REPO}target/browser/vite-app.png` });
});
