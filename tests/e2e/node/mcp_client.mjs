// The MCP TypeScript SDK (@modelcontextprotocol/sdk) as an MCP client of the demo MCP server
// behind the gateway (tests/e2e/test_mcp.py): StreamableHTTPClientTransport with an
// OAuthClientProvider, as the SDK's own OAuth example wires it. The SDK does the protocol
// (the 401's resource_metadata, RFC 9728 and RFC 8414 discovery, RFC 7591 registration, PKCE,
// `resource` at /authorize and /token); this script only plays the user at the login form and
// records what went over the wire.
//
//   node mcp_client.mjs '{"server": "http://127.0.0.1:PORT/mcp", "user": ["admin", "admin"],
//                         "redirect_uri": "http://localhost:PORT/callback"}'
//
// Prints one JSON line: {"ok": true, "result": {...}, "sent": [...]} or {"ok": false, "error"}.
// Tokens are never printed: only whether they were there.
import { randomUUID } from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";

const command = JSON.parse(process.argv[2]);
const sent = [];

// What each request carried that a test asserts on: the URL, the method, the names of the
// form parameters at /token (with `resource`'s values), whether it had a Bearer token.
async function recordingFetch(input, init = {}) {
  const url = new URL(input instanceof Request ? input.url : input);
  const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
  const entry = { url: url.href, method: init.method ?? "GET",
                  bearer: (headers.get("authorization") ?? "").startsWith("Bearer ") };
  if (typeof init.body === "string" || init.body instanceof URLSearchParams) {
    const form = new URLSearchParams(init.body.toString());
    if (url.pathname === "/token") {
      entry.form_parameters = [...new Set(form.keys())].sort();
      entry.resource = form.getAll("resource");
    }
  }
  const response = await fetch(input, init);
  entry.status = response.status;
  sent.push(entry);
  return response;
}

// The user: at the login page the SDK sends them to, signs in; the gateway's redirect to the
// client's callback is read, never followed (nothing listens there).
async function signIn(authorizationUrl) {
  const page = await fetch(authorizationUrl, { redirect: "manual" });
  const handle = /name="handle" value="([^"]+)"/.exec(await page.text())?.[1];
  if (page.status !== 200 || !handle) throw new Error(`login page: ${page.status}`);
  const back = await fetch(new URL("/authorize", authorizationUrl), {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ handle, username: command.user[0], password: command.user[1] }).toString(),
  });
  const location = back.headers.get("location");
  if (back.status !== 302 || !location) throw new Error(`login form: ${back.status}`);
  return new URL(location);
}

class PlayingTheUser {
  constructor() {
    this.callback = null;
    this.authorization = null;
  }
  get redirectUrl() { return command.redirect_uri; }
  get clientMetadata() {
    return {
      client_name: "tokengate e2e (MCP TypeScript SDK)",
      redirect_uris: [command.redirect_uri],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  // RFC 6749 §10.12: a state the callback must bring back (the SDK sends it when given one).
  state() { return randomUUID(); }
  clientInformation() { return this.client; }
  saveClientInformation(client) { this.client = client; }
  tokens() { return this.saved; }
  saveTokens(tokens) { this.saved = tokens; }
  saveCodeVerifier(verifier) { this.verifier = verifier; }
  codeVerifier() { return this.verifier; }
  async redirectToAuthorization(authorizationUrl) {
    this.authorization = Object.fromEntries(authorizationUrl.searchParams);
    this.callback = await signIn(authorizationUrl);
  }
}

async function main() {
  const provider = new PlayingTheUser();
  const server = new URL(command.server);
  const options = { authProvider: provider, fetch: recordingFetch };
  const client = new Client({ name: "tokengate-e2e", version: "1.0.0" });
  let firstAttempt = "connected";
  try {
    await client.connect(new StreamableHTTPClientTransport(server, options));
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
    firstAttempt = "unauthorized";
  }
  if (!provider.callback) throw new Error("the SDK never sent the user to sign in");
  const code = provider.callback.searchParams.get("code");
  const transport = new StreamableHTTPClientTransport(server, options);
  await transport.finishAuth(code);
  await client.connect(transport);
  const tools = await client.listTools();
  const echoed = await client.callTool({ name: "echo", arguments: { text: "through the gateway" } });
  const time = await client.callTool({ name: "time", arguments: {} });
  await client.close();
  return {
    first_attempt: firstAttempt,
    registered: { client_id: provider.client?.client_id, has_secret: Boolean(provider.client?.client_secret),
                  token_endpoint_auth_method: provider.client?.token_endpoint_auth_method },
    authorization: provider.authorization,
    callback_state_matches: provider.callback.searchParams.get("state") === provider.authorization.state,
    tokens: { has_access_token: Boolean(provider.saved?.access_token), scope: provider.saved?.scope,
              has_refresh_token: Boolean(provider.saved?.refresh_token) },
    server: client.getServerVersion()?.name,
    tools: tools.tools.map((tool) => tool.name).sort(),
    echo: echoed.content.map((part) => part.text),
    time: time.content.map((part) => part.text),
  };
}

main().then(
  (result) => console.log(JSON.stringify({ ok: true, result, sent })),
  (error) => console.log(JSON.stringify({ ok: false, error: String(error?.stack ?? error), sent })),
);
