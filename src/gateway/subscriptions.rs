//! Subscriptions of registered applications (WSO2's "subscribe to the API" step for
//! applications made by dynamic client registration), next to registration and authenticated
//! the same way (HTTP Basic as the admin who registered the application, or a super-admin):
//!
//! | request | does |
//! |---|---|
//! | `GET <registration endpoint>/<client id>/subscriptions` | lists them |
//! | `POST …/subscriptions` `{"api", "tier"?, "status"?}` | subscribes (201); tier default `Unlimited` |
//! | `GET …/subscriptions/<API>` | one subscription |
//! | `PUT …/subscriptions/<API>` `{"tier"?, "status"?}` | changes its tier or status (200) |
//! | `DELETE …/subscriptions/<API>` | unsubscribes (204) |
//!
//! `status` is WSO2's: `UNBLOCKED`, `BLOCKED`, `PROD_ONLY_BLOCKED`. Subscriptions live in the
//! application's registry record: one compare-and-swap makes a change visible to every
//! worker (and, in fleet mode, through etcd, every replica) at its next read, the Bearer check
//! reads that record anyway, and deleting the application deletes them.

use serde::{Deserialize, Serialize};

use super::authentication::media_type_is;
use super::reply::{no_store_json, ErrorKind, OAuthError, Response};
use super::wso2_registration::{managed_by, registry_error};
use super::{EndpointRequest, Gateway};
use crate::state::registry::{RegisteredState, RegisteredSubscription, SubscriptionError};

/// A subscription as the endpoint shows it.
#[derive(Serialize)]
struct SubscriptionBody {
    api: String,
    version: String,
    context: String,
    tier: String,
    status: &'static str,
}

#[derive(Serialize)]
struct SubscriptionList {
    count: usize,
    list: Vec<SubscriptionBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeRequest {
    api: String,
    tier: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeRequest {
    tier: Option<String>,
    status: Option<String>,
}

const NO_SUCH_API: OAuthError = ErrorKind::InvalidRequest.because("no API of this name in the configuration");
const NO_SUCH_TIER: OAuthError =
    ErrorKind::InvalidRequest.because("no tier of this name (built in or in tiers)");
const BAD_STATUS: OAuthError =
    ErrorKind::InvalidRequest.because("status must be UNBLOCKED, BLOCKED or PROD_ONLY_BLOCKED");
const NOT_SUBSCRIBED: OAuthError =
    ErrorKind::NotFound.because("the application is not subscribed to this API");

type Answer = Result<(u16, Option<Vec<u8>>), OAuthError>;

impl Gateway<'_> {
    pub(super) fn subscriptions_endpoint(
        &self,
        request: &EndpointRequest,
        client_id: &str,
        api: Option<&str>,
    ) -> Response {
        let answer = self.authenticate_admin(request).and_then(|(registry, admin)| {
            let record = managed_by(admin, registry.find(client_id)?)?;
            match (request.method, api) {
                ("GET", None) => {
                    let list: Vec<_> =
                        record.subscriptions.iter().map(|s| self.subscription_body(s)).collect();
                    Ok((200, to_json(&SubscriptionList { count: list.len(), list })))
                }
                ("POST", None) => self.subscribe(request, client_id),
                ("GET", Some(api)) => {
                    let found = record.subscriptions.iter().find(|s| s.api == api).ok_or(NOT_SUBSCRIBED)?;
                    Ok((200, to_json(&self.subscription_body(found))))
                }
                ("PUT", Some(api)) => self.change_subscription(request, client_id, api),
                ("DELETE", Some(api)) => {
                    self.update_subscriptions(client_id, |subscriptions| {
                        let position = subscriptions
                            .iter()
                            .position(|s| s.api == api)
                            .ok_or(SubscriptionError::NotSubscribed)?;
                        subscriptions.remove(position);
                        Ok(())
                    })?;
                    Ok((204, None))
                }
                (_, None) => {
                    Err(ErrorKind::MethodNotAllowed { allow: "GET, POST" }.because("use GET or POST"))
                }
                (_, Some(_)) => Err(ErrorKind::MethodNotAllowed { allow: "GET, PUT, DELETE" }
                    .because("use GET, PUT or DELETE")),
            }
        });
        match answer {
            Ok((status, Some(body))) => no_store_json(status, Vec::new(), body),
            Ok((status, None)) => Response { status, headers: Vec::new(), body: Vec::new() },
            Err(error) => self.oauth_error_response(error),
        }
    }

    fn subscribe(&self, request: &EndpointRequest, client_id: &str) -> Answer {
        let asked: SubscribeRequest = json_body(request)?;
        if !self.config.apis.iter().any(|api| api.name == asked.api) {
            return Err(NO_SUCH_API);
        }
        let tier = asked.tier.unwrap_or_else(|| "Unlimited".to_owned());
        if !self.config.tiers.contains_key(&tier) {
            return Err(NO_SUCH_TIER);
        }
        let state = match asked.status.as_deref() {
            Some(name) => RegisteredState::from_name(name).ok_or(BAD_STATUS)?,
            None => RegisteredState::Unblocked,
        };
        let subscription = RegisteredSubscription { api: asked.api, tier, state };
        self.update_subscriptions(client_id, |subscriptions| {
            if subscriptions.iter().any(|s| s.api == subscription.api) {
                return Err(SubscriptionError::Exists);
            }
            subscriptions.push(subscription.clone());
            Ok(())
        })?;
        Ok((201, to_json(&self.subscription_body(&subscription))))
    }

    fn change_subscription(&self, request: &EndpointRequest, client_id: &str, api: &str) -> Answer {
        let asked: ChangeRequest = json_body(request)?;
        if asked.tier.as_ref().is_some_and(|tier| !self.config.tiers.contains_key(tier)) {
            return Err(NO_SUCH_TIER);
        }
        let state = asked
            .status
            .as_deref()
            .map(|name| RegisteredState::from_name(name).ok_or(BAD_STATUS))
            .transpose()?;
        if asked.tier.is_none() && state.is_none() {
            return Err(ErrorKind::InvalidRequest.because("give a tier, a status, or both"));
        }
        let changed = self.update_subscriptions(client_id, |subscriptions| {
            let found =
                subscriptions.iter_mut().find(|s| s.api == api).ok_or(SubscriptionError::NotSubscribed)?;
            if let Some(tier) = &asked.tier {
                found.tier = tier.clone();
            }
            if let Some(state) = state {
                found.state = state;
            }
            Ok(found.clone())
        })?;
        Ok((200, to_json(&self.subscription_body(&changed))))
    }

    fn update_subscriptions<T>(
        &self,
        client_id: &str,
        change: impl Fn(&mut Vec<RegisteredSubscription>) -> Result<T, SubscriptionError>,
    ) -> Result<T, OAuthError> {
        let registry = self.registry.as_ref().ok_or(ErrorKind::NotFound.because("registration is off"))?;
        registry.update_subscriptions(client_id, self.now()?, change).map_err(|error| match error {
            SubscriptionError::Registry(error) => registry_error(error),
            SubscriptionError::Exists => {
                ErrorKind::AlreadySubscribed.because("the application is subscribed to this API already")
            }
            SubscriptionError::NotSubscribed => NOT_SUBSCRIBED,
            SubscriptionError::TooMany => {
                ErrorKind::InvalidRequest.because("an application may hold at most 32 subscriptions")
            }
        })
    }

    fn subscription_body(&self, subscription: &RegisteredSubscription) -> SubscriptionBody {
        let api = self.config.apis.iter().find(|api| api.name == subscription.api);
        SubscriptionBody {
            api: subscription.api.clone(),
            version: api.map(|api| api.version.clone()).unwrap_or_default(),
            context: api.map(|api| api.context.clone()).unwrap_or_default(),
            tier: subscription.tier.clone(),
            status: subscription.state.as_str(),
        }
    }
}

fn json_body<T: for<'de> Deserialize<'de>>(request: &EndpointRequest) -> Result<T, OAuthError> {
    if !request.content_type.is_some_and(|value| media_type_is(value, "application/json")) {
        return Err(ErrorKind::InvalidRequest.because("the content type must be application/json"));
    }
    serde_json::from_slice(request.body).map_err(|_| {
        ErrorKind::InvalidRequest
            .because("the body must be JSON: {\"api\": name, \"tier\": name, \"status\": UNBLOCKED|BLOCKED|PROD_ONLY_BLOCKED}")
    })
}

fn to_json<T: Serialize>(value: &T) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(value).unwrap_or_default())
}
