// An app as a front-end developer writes it: the package installed with `npm install ./pkg`
// (tests/browser/package.json), imported by name, bundled by Vite with no plugin.
import init, { encodeCredentials, parseChallenge, tokenRequest } from "tokengate";

await init();
const challenge = parseChallenge('Bearer realm="tokengate", error="insufficient_scope", scope="orders:write"');
document.getElementById("out").textContent = JSON.stringify({
  encoded: encodeCredentials("demo-app", "demo-secret"),
  nextStep: challenge.nextStep,
  body: tokenRequest({ grantType: "client_credentials", scope: "orders:read" }).body,
});
