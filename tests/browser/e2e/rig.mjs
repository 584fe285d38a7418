// What the Chromium tests share: the gateway (tests/browser/e2e/gateway.py: the real Envoy with
// the filter and the demo config, the console beside it) and Debian's headless Chromium.

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
export const SHOTS = `${REPO}target/browser`;
const PYTHON = process.env.PYTHON ?? `${REPO}.venv/bin/python`;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const STARTUP_TIMEOUT_MS = 120_000;

function firstLine(stream, timeoutMs) {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: stream });
    const timer = setTimeout(() => reject(new Error("the gateway did not start in time")), timeoutMs);
    lines.once("line", (line) => {
      clearTimeout(timer);
      resolve(line);
    });
    stream.once("end", () => reject(new Error("the gateway launcher exited before starting")));
  });
}

/** Starts the gateway; resolves to { process, url, log } once it serves (gateway.py's first line). */
export async function startGateway() {
  const process = spawn(PYTHON, [`${REPO}tests/browser/e2e/gateway.py`], {
    cwd: REPO,
    stdio: ["pipe", "pipe", "inherit"],
  });
  const { url, log, spaPort } = JSON.parse(await firstLine(process.stdout, STARTUP_TIMEOUT_MS));
  return { process, url, log, spaPort };
}

/** Stops a gateway from startGateway (closing its stdin ends it) and waits for it to exit. */
export async function stopGateway(gateway) {
  if (!gateway) return;
  const exited = new Promise((resolve) => gateway.process.once("exit", resolve));
  gateway.process.stdin.end();
  await exited;
}

/** Headless Chromium; Playwright gives each launch a fresh, temporary --user-data-dir. */
export function launchChromium() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}

/** After a failed step: a screenshot of `page` as failure-<slug>.png, and the end of Envoy's log. */
export async function reportFailure(page, slug, envoyLog) {
  await page?.screenshot({ path: `${SHOTS}/failure-${slug}.png`, fullPage: true }).catch(() => {});
  let log = "";
  try {
    log = readFileSync(envoyLog, "utf8").split("\n").slice(-60).join("\n");
  } catch {}
  console.error(`--- Envoy log (last lines of ${envoyLog}) ---\n${log}`);
}

/**
 * Runs `action` on the console in `page` and waits until the console has said something new
 * (it counts what it says in `body[data-said]`); returns what it said.
 */
export async function consoleAct(page, action) {
  const said = await page.evaluate(() => Number(document.body.dataset.said ?? 0));
  await action();
  await page.waitForFunction((n) => Number(document.body.dataset.said ?? 0) > n, said);
  return {
    kind: await page.getAttribute("#message", "data-kind"),
    message: await page.textContent("#message"),
    status: await page.getAttribute("#status", "data-status"),
    body: await page.textContent("#body"),
  };
}
