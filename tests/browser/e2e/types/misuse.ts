// What the declarations must refuse (types.test.mjs expects tsc to fail here, on each line).
import { authorizeUrl, tokenRequest, verifyIdToken } from "tokengate";

authorizeUrl({ authorizationEndpoint: "/authorize", clientId: "demo-spa" });
tokenRequest({ grantType: "implicit" });
authorizeUrl({ authorizationEndpoint: "/authorize", clientId: "c", redirectUri: "r", redirect_uri: "r" });
verifyIdToken("t", "{}", { issuer: "i", client_id: "c" });
