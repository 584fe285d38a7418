// The browser package's TypeScript declarations (pkg/tokengate.d.ts, from wasm-bindgen and the
// typescript_custom_section in src/client/web.rs): an app's sign-in code compiles under
// `tsc --strict`, and misuse (a missing redirect URI, an unknown grant, a snake_case field)
// does not.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const TSC = fileURLToPath(new URL("../node_modules/typescript/bin/tsc", import.meta.url));
const TYPES = fileURLToPath(new URL("./types/", import.meta.url));

function tsc(file) {
  // wasm-bindgen declares `[Symbol.dispose]()` on its classes: lib esnext (TypeScript 5.2+).
  const args = [TSC, "--strict", "--noEmit", "--target", "es2022", "--lib", "esnext,dom", "--module", "es2022",
    "--moduleResolution", "bundler", "--skipLibCheck", "false", `${TYPES}${file}`];
  return spawnSync(process.execPath, args, { cwd: TYPES, encoding: "utf8" });
}

test("an app's sign-in code compiles against the package's declarations", () => {
  const result = tsc("sign_in.ts");
  assert.equal(result.status, 0, result.stdout + result.stderr);
});

test("the declarations refuse misuse", () => {
  const result = tsc("misuse.ts");
  assert.notEqual(result.status, 0);
  const errors = result.stdout.split("\n").filter((line) => line.includes("error TS"));
  assert.equal(errors.length, 4, result.stdout);
  assert.match(result.stdout, /redirectUri/);
  assert.match(result.stdout, /"implicit"/);
  assert.match(result.stdout, /redirect_uri/);
  assert.match(result.stdout, /client_id/);
});
