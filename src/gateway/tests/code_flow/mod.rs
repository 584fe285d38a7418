//! The authorization code flow end to end over the in-memory host: `/authorize` (GET and
//! POST) and `/token` with `grant_type=authorization_code` (RFC 6749 §4.1, RFC 7636, RFC 9700).

use super::*;
use crate::host::metrics::Metric;
use crate::oauth::credentials::{encode_basic_credentials, SecretVerifier};
use crate::oauth::form::FormParams;
use crate::oauth::pkce::{APPENDIX_B_CHALLENGE as CHALLENGE, APPENDIX_B_VERIFIER as VERIFIER};

const FORM: &str = "application/x-www-form-urlencoded";
const CALLBACK: &str = "http://127.0.0.1:8080/console/callback";
const ISSUER: &str = "https://127.0.0.1:8243";

const CONFIG: &str = r#"{
  "issuer": "https://127.0.0.1:8243",
  "lockout": { "max_failures": 3, "window_secs": 60, "lockout_secs": 300 },
  "applications": [
    { "consumer_key": "demo-spa", "public": true, "name": "Demo <SPA>",
      "grant_types": ["authorization_code", "refresh_token"],
      "redirect_uris": ["http://127.0.0.1:8080/console/callback"],
      "scopes": ["orders:read", "orders:write"] },
    { "consumer_key": "web-app", "consumer_secret": "web-secret",
      "grant_types": ["authorization_code"],
      "redirect_uris": ["https://app.example/cb"], "scopes": ["orders:read"] },
    { "consumer_key": "demo-cli", "public": true, "application_type": "native",
      "grant_types": ["authorization_code"],
      "redirect_uris": ["http://127.0.0.1/callback"], "scopes": ["orders:read"] },
    { "consumer_key": "loopback-web", "public": true,
      "grant_types": ["authorization_code"],
      "redirect_uris": ["http://[::1]:8080/cb"], "scopes": ["orders:read"] },
    { "consumer_key": "demo-app", "consumer_secret": "demo-secret", "scopes": ["orders:read"] }
  ],
  "users": [ { "username": "alice", "password": "wonderland", "scopes": ["orders:read", "orders:write"] } ]
}"#;

/// The code flow's readings of a reply, next to the gateway tests' own.
impl Reply {
    fn location(&self) -> String {
        self.0.header("location").unwrap_or_default().to_owned()
    }
    /// The redirect's query parameters.
    fn callback(&self) -> FormParams {
        let location = self.location();
        let query = location.split_once('?').map(|(_, q)| q).unwrap_or_default();
        FormParams::parse(query.as_bytes()).unwrap()
    }
    /// The login page's hidden handle.
    fn handle(&self) -> String {
        crate::gateway::login_handle_in(&self.text()).unwrap().to_owned()
    }
}

impl Rig {
    fn new() -> Rig {
        Rig::with_config(CONFIG)
    }

    fn request(&self, method: &str, path: &str, authorization: Option<&str>, body: &str) -> Reply {
        self.request_from(None, method, path, authorization, body)
    }

    /// [`Rig::request`] from a client address (Envoy's `source.address`).
    fn request_from(
        &self,
        client_address: Option<&str>,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: &str,
    ) -> Reply {
        let gateway = self.gateway();
        let endpoint = gateway.endpoint(path).expect("an endpoint path");
        let request = EndpointRequest {
            client_address,
            method,
            path,
            authorization,
            content_type: Some(FORM),
            body: body.as_bytes(),
        };
        Reply(gateway.serve(&endpoint, &request))
    }

    fn authorize(&self, query: &str) -> Reply {
        self.request("GET", &format!("/authorize?{query}"), None, "")
    }

    fn good_query(client_id: &str, redirect_uri: &str) -> String {
        format!(
            "response_type=code&client_id={client_id}&redirect_uri={redirect_uri}&scope=orders:read\
             &state=st%26ate&code_challenge={CHALLENGE}&code_challenge_method=S256"
        )
    }

    fn sign_in(&self, handle: &str, username: &str, password: &str) -> Reply {
        self.sign_in_from(None, handle, username, password)
    }

    fn sign_in_from(&self, address: Option<&str>, handle: &str, username: &str, password: &str) -> Reply {
        let body = format!("handle={handle}&username={username}&password={password}");
        self.request_from(address, "POST", "/authorize", None, &body)
    }

    /// A fresh login page's handle for demo-spa.
    fn fresh_handle(&self) -> String {
        self.authorize(&Rig::good_query("demo-spa", CALLBACK)).handle()
    }

    /// A code for demo-spa, signed in as alice.
    fn code(&self) -> String {
        let page = self.authorize(&Rig::good_query("demo-spa", CALLBACK));
        assert_eq!(page.0.status, 200, "{}", page.text());
        let back = self.sign_in(&page.handle(), "alice", "wonderland");
        assert_eq!(back.0.status, 302, "{}", back.text());
        back.callback().get("code").unwrap().to_owned()
    }

    fn exchange(&self, code: &str, redirect_uri: &str, verifier: &str) -> Reply {
        let body = format!(
            "grant_type=authorization_code&client_id=demo-spa&code={code}&redirect_uri={redirect_uri}\
             &code_verifier={verifier}"
        );
        self.request("POST", "/token", None, &body)
    }
}

mod authorization_requests;
mod cors;
mod exchange;
mod login_form;
mod open_registration;
mod openid;
mod registered_clients;
mod resources;
