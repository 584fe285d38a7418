//! Resource indicators in the code flow (RFC 8707 §2.1, §2.2): the authorization request's
//! resources ride in the code, and the token request may repeat or narrow them, never widen.

use super::*;

const ORDERS: &str = "https%3A%2F%2F127.0.0.1%3A8243%2Forders";
const MCP: &str = "https%3A%2F%2F127.0.0.1%3A8243%2Fmcp";

fn rig() -> Rig {
    Rig::with_config(&config_with(CONFIG, |v| {
        // demo-app reads every token, as a resource server would.
        v["applications"][4]["introspect"] = true.into();
        v["apis"] = serde_json::json!([
            { "name": "Orders", "version": "1", "context": "/orders",
              "resources": [{ "methods": ["GET"], "path": "/", "scopes": ["orders:read"] }] },
            { "name": "Mcp", "version": "1", "context": "/mcp",
              "resources": [{ "methods": ["POST"], "path": "/", "scopes": ["orders:read"] }] }
        ]);
    }))
}

impl Rig {
    /// A code for demo-spa whose authorization request named `resources` (form-encoded).
    fn code_for(&self, resources: &[&str]) -> String {
        let named: String = resources.iter().map(|uri| format!("&resource={uri}")).collect();
        let page = self.authorize(&format!("{}{named}", Rig::good_query("demo-spa", CALLBACK)));
        assert_eq!(page.0.status, 200, "{}", page.text());
        let back = self.sign_in(&page.handle(), "alice", "wonderland");
        back.callback().get("code").unwrap().to_owned()
    }

    /// The code exchanged with `resources` named again.
    fn exchange_for(&self, code: &str, resources: &[&str]) -> Reply {
        let named: String = resources.iter().map(|uri| format!("&resource={uri}")).collect();
        let body = format!(
            "grant_type=authorization_code&client_id=demo-spa&code={code}&redirect_uri={CALLBACK}\
             &code_verifier={VERIFIER}{named}"
        );
        self.request("POST", "/token", None, &body)
    }

    fn audience_of(&self, access_token: &str) -> serde_json::Value {
        let basic = format!("Basic {}", encode_basic_credentials("demo-app", "demo-secret"));
        let reply = self.request("POST", "/introspect", Some(&basic), &format!("token={access_token}"));
        reply.json()["aud"].clone()
    }
}

struct Exchange {
    name: &'static str,
    authorized: &'static [&'static str],
    exchanged: &'static [&'static str],
    /// `Ok(aud)`: issued with that audience; `Err(())`: 400 `invalid_target`.
    expect: Result<serde_json::Value, ()>,
}

#[test]
fn the_token_request_may_repeat_or_narrow_the_codes_resources_never_widen_them() {
    let orders = serde_json::json!("https://127.0.0.1:8243/orders");
    let both = serde_json::json!(["https://127.0.0.1:8243/mcp", "https://127.0.0.1:8243/orders"]);
    let cases = [
        Exchange {
            name: "repeated",
            authorized: &[ORDERS],
            exchanged: &[ORDERS],
            expect: Ok(orders.clone()),
        },
        Exchange {
            name: "not repeated: the code's",
            authorized: &[ORDERS, MCP],
            exchanged: &[],
            expect: Ok(both),
        },
        Exchange {
            name: "narrowed",
            authorized: &[ORDERS, MCP],
            exchanged: &[ORDERS],
            expect: Ok(orders.clone()),
        },
        Exchange { name: "widened", authorized: &[ORDERS], exchanged: &[ORDERS, MCP], expect: Err(()) },
        Exchange { name: "another", authorized: &[ORDERS], exchanged: &[MCP], expect: Err(()) },
        Exchange {
            name: "unbound code, bound token",
            authorized: &[],
            exchanged: &[ORDERS],
            expect: Ok(orders),
        },
        Exchange {
            name: "unbound throughout",
            authorized: &[],
            exchanged: &[],
            expect: Ok(serde_json::Value::Null),
        },
    ];
    let rig = rig();
    for case in cases {
        let code = rig.code_for(case.authorized);
        let reply = rig.exchange_for(&code, case.exchanged);
        match case.expect {
            Ok(aud) => {
                assert_eq!(reply.0.status, 200, "{}: {}", case.name, reply.text());
                assert_eq!(rig.audience_of(&reply.field("access_token")), aud, "{}", case.name);
            }
            Err(()) => {
                assert_eq!(reply.0.status, 400, "{}: {}", case.name, reply.text());
                assert_eq!(reply.field("error"), "invalid_target", "{}", case.name);
            }
        }
    }
}

#[test]
fn an_authorization_request_with_a_bad_resource_goes_back_as_invalid_target() {
    let rig = rig();
    for (name, resource) in [
        ("a fragment", "https%3A%2F%2F127.0.0.1%3A8243%2Forders%23x"),
        ("relative", "%2Forders"),
        ("unknown", "https%3A%2F%2Fother.example%2F"),
    ] {
        let reply = rig.authorize(&format!("{}&resource={resource}", Rig::good_query("demo-spa", CALLBACK)));
        assert_eq!(reply.0.status, 302, "{name}: {}", reply.text());
        let callback = reply.callback();
        assert_eq!(callback.get("error"), Some("invalid_target"), "{name}");
        assert_eq!(callback.get("state"), Some("st&ate"), "{name}");
    }
}
