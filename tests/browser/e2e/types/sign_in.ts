// The package's TypeScript declarations as an app uses them (tests/browser/e2e/types.test.mjs
// compiles this with `tsc --strict --noEmit`): signing in, then the token calls.
import init, {
  authorizeUrl,
  createPkce,
  decodeJwtUnverified,
  parseCallback,
  parseTokenResponse,
  revocationRequest,
  tokenRequest,
  verifyIdToken,
  type AuthorizationRequest,
  type IdTokenClaims,
  type UnverifiedJwt,
  type CallbackResult,
  type Pkce,
  type TokengateError,
} from "tokengate";

export async function signInFlow(href: string): Promise<string> {
  await init();
  const pkce: Pkce = createPkce();
  const method: "S256" = pkce.codeChallengeMethod;
  const request: AuthorizationRequest = authorizeUrl({
    authorizationEndpoint: "/authorize",
    clientId: "demo-spa",
    redirectUri: "http://127.0.0.1:8080/console/callback",
    scope: ["orders:read"],
    codeVerifier: pkce.codeVerifier,
  });
  let callback: CallbackResult;
  try {
    callback = parseCallback(href, request.state, "https://127.0.0.1:8243");
  } catch (error) {
    const failure = error as TokengateError;
    return `${failure.code}: ${failure.errorDescription ?? failure.message} (${method})`;
  }
  const body = tokenRequest({
    grantType: "authorization_code",
    code: callback.code,
    redirectUri: request.redirectUri,
    codeVerifier: request.codeVerifier,
    clientId: "demo-spa",
  });
  const tokens = parseTokenResponse(body.body);
  const refresh = tokens.refreshRequest(undefined, "demo-spa");
  const revoke = revocationRequest(tokens.accessToken, "access_token", "demo-spa");
  // The optional arguments may be left out.
  tokens.refreshRequest();
  parseCallback(href, request.state);
  return [refresh.body, revoke.body, callback.iss ?? "", signedInUser(tokens.idToken, request.nonce)].join("\n");
}

/** OpenID Connect: the user of a verified ID token. */
function signedInUser(idToken: string | undefined, nonce: string): string {
  if (!idToken) return "";
  const shown: UnverifiedJwt = decodeJwtUnverified(idToken);
  const alg: string = shown.header.alg;
  const claims: IdTokenClaims = verifyIdToken(idToken, { keys: [] }, {
    issuer: "https://127.0.0.1:8243",
    clientId: "demo-spa",
    nonce,
    maxAge: 600,
  });
  const exp: number = claims.exp;
  return `${claims.sub} ${claims.name ?? ""} ${claims.email ?? ""} ${exp} ${alg}`;
}
