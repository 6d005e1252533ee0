//! `llm-gateway-litellm`: mints and deletes virtual keys on a
//! LiteLLM-compatible proxy, so a session gets a budgeted, model-limited,
//! expiring key instead of the operator's LLM keys (tier 1 secrets never
//! enter a sandbox).
//!
//! Each grant issues `PADDOCK_GATEWAY_KEY` (the virtual key) and
//! `PADDOCK_GATEWAY_URL` (where the sandbox reaches the proxy) through
//! `POST /key/generate`; `revoke` deletes the key with `POST /key/delete`.
//! The revocation handle is the key: deleting needs it.
//!
//! Config keys (`[plugins.config.llm-gateway-litellm]`):
//!
//! | key | meaning |
//! | --- | --- |
//! | `base_url` | the proxy's URL as the host reaches it (required) |
//! | `master_key_secret` | the name of the secret holding the proxy's master key (required) |
//! | `gateway_url` | the proxy's URL as sandboxes reach it; default `base_url` |
//! | `default_models` | comma-separated model allowlist of every key; unset: the proxy's default |
//! | `default_budget_usd` | budget of every key in USD; unset: none |
//! | `default_duration` | lifetime of every key (`30s`, `15m`, `2h`, `1d`); the grant's `ttl_secs` shortens it |
//!
//! A grant's `scope` may narrow the defaults, never widen them: a JSON
//! object `{"models": ["gpt-4o-mini"], "max_budget": 0.5}`; a model outside
//! `default_models` or a budget above `default_budget_usd` is `denied`.
//!
//! ```toml
//! [plugins.grants.llm-gateway-litellm]
//! secrets = ["LITELLM_MASTER_KEY"]
//! allow_hosts = ["litellm.internal"]
//! [plugins.config.llm-gateway-litellm]
//! base_url = "http://litellm.internal:4000"
//! master_key_secret = "LITELLM_MASTER_KEY"
//! default_models = "claude-sonnet-4, gpt-4o-mini"
//! default_budget_usd = "5"
//! default_duration = "8h"
//! ```

use std::time::{SystemTime, UNIX_EPOCH};

use paddock_sdk::broker::*;
use paddock_sdk::http::{self, Request, Response};
use paddock_sdk::{config, secrets};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The virtual key's variable in the sandbox.
pub const KEY_ENV: &str = "PADDOCK_GATEWAY_KEY";
/// The proxy's URL's variable in the sandbox.
pub const URL_ENV: &str = "PADDOCK_GATEWAY_URL";
/// Per-request timeout: key management is a database write on the proxy;
/// a stuck proxy should fail the grant, not eat the host's call budget.
pub const REQUEST_TIMEOUT_MS: u32 = 10_000;

pub struct LitellmGateway;

impl CredentialBroker for LitellmGateway {
    fn info() -> BrokerInfo {
        BrokerInfo {
            name: "llm-gateway-litellm".into(),
            display_name: "LiteLLM virtual keys".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Mints per-session virtual keys (budget, model allowlist, expiry) on a LiteLLM-compatible proxy and deletes them on revoke".into(),
        }
    }

    fn issue(grant: Grant) -> Result<Credential, PluginError> {
        let settings = Settings::from_config()?;
        let limits = settings.limits_for(&grant)?;
        let master = secrets::get(&settings.master_key_secret)?;
        let body = KeyRequest {
            models: limits.models,
            max_budget: limits.max_budget,
            duration: limits.duration_secs.map(|s| format!("{s}s")),
            metadata: json!({ "paddock_session": grant.session_id, "owner": grant.owner }),
        };
        let response = send(
            Request::post(&format!("{}/key/generate", settings.base_url))
                .bearer(&master)
                .json(&body)?,
        )?;
        if !response.is_success() {
            return Err(proxy_error("generating a virtual key", &response));
        }
        let generated: Generated = response
            .json()
            .map_err(|e| PluginError::Internal(format!("the proxy's /key/generate answer: {e}")))?;
        let mut credential = Credential::default()
            .env(KEY_ENV, &generated.key)
            .env(URL_ENV, &settings.gateway_url)
            .revocation_handle(generated.key);
        // Computed here rather than parsed from the answer's `expires`, whose
        // format (naive ISO time, fractions) differs between proxy versions.
        if let Some(secs) = limits.duration_secs {
            credential = credential.expires_at(now() + secs);
        }
        Ok(credential)
    }

    fn revoke(handle: &str) -> Result<(), PluginError> {
        let settings = Settings::from_config()?;
        let master = secrets::get(&settings.master_key_secret)?;
        let response = send(
            Request::post(&format!("{}/key/delete", settings.base_url))
                .bearer(&master)
                .json(&json!({ "keys": [handle] }))?,
        )?;
        match response.status {
            200..=299 => Ok(()),
            // Already gone (deleted before, or expired and cleaned up).
            404 => Ok(()),
            _ => Err(proxy_error("deleting a virtual key", &response)),
        }
    }
}

paddock_sdk::export_broker!(LitellmGateway);

/// `POST /key/generate`'s body (LiteLLM's field names).
#[derive(Debug, Serialize)]
struct KeyRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    models: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_budget: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<String>,
    metadata: serde_json::Value,
}

#[derive(Deserialize)]
struct Generated {
    key: String,
}

/// A grant's narrowing of the defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Scope {
    models: Option<Vec<String>>,
    max_budget: Option<f64>,
}

/// What one key gets.
#[derive(Debug, PartialEq)]
struct Limits {
    models: Option<Vec<String>>,
    max_budget: Option<f64>,
    duration_secs: Option<u64>,
}

#[derive(Debug)]
struct Settings {
    base_url: String,
    gateway_url: String,
    master_key_secret: String,
    default_models: Vec<String>,
    default_budget_usd: Option<f64>,
    default_duration_secs: Option<u64>,
}

impl Settings {
    fn from_config() -> Result<Self, PluginError> {
        let base_url = config::required("base_url")?
            .trim_end_matches('/')
            .to_owned();
        let gateway_url = config::get("gateway_url")
            .map(|v| v.trim().trim_end_matches('/').to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| base_url.clone());
        let default_duration_secs = match config::get("default_duration") {
            Some(v) if !v.trim().is_empty() => Some(parse_duration(&v).ok_or_else(|| {
                PluginError::InvalidInput(format!(
                    "config key `default_duration` = {v:?}: not a duration like 30s, 15m, 2h or 1d"
                ))
            })?),
            _ => None,
        };
        Ok(Self {
            base_url,
            gateway_url,
            master_key_secret: config::required("master_key_secret")?,
            default_models: config::list("default_models"),
            default_budget_usd: config::parse("default_budget_usd")?,
            default_duration_secs,
        })
    }

    /// The defaults, narrowed by the grant's scope and TTL.
    fn limits_for(&self, grant: &Grant) -> Result<Limits, PluginError> {
        let scope: Scope = match grant.scope.as_deref().map(str::trim) {
            None | Some("") => Scope::default(),
            Some(text) => serde_json::from_str(text).map_err(|e| {
                PluginError::InvalidInput(format!(
                    "scope is not a JSON object {{\"models\": [...], \"max_budget\": N}}: {e}"
                ))
            })?,
        };
        let models = match scope.models {
            Some(asked) => {
                if let Some(outside) = asked
                    .iter()
                    .find(|m| !self.default_models.is_empty() && !self.default_models.contains(m))
                {
                    return Err(PluginError::Denied(format!(
                        "model {outside:?} is not in default_models ({})",
                        self.default_models.join(", ")
                    )));
                }
                Some(asked)
            }
            None if self.default_models.is_empty() => None,
            None => Some(self.default_models.clone()),
        };
        let max_budget = match (scope.max_budget, self.default_budget_usd) {
            (Some(asked), _) if !asked.is_finite() || asked < 0.0 => {
                return Err(PluginError::InvalidInput(format!(
                    "max_budget {asked} is not a non-negative number"
                )));
            }
            (Some(asked), Some(cap)) if asked > cap => {
                return Err(PluginError::Denied(format!(
                    "max_budget {asked} is above default_budget_usd {cap}"
                )));
            }
            (Some(asked), _) => Some(asked),
            (None, default) => default,
        };
        let ttl = (grant.ttl_secs > 0).then_some(grant.ttl_secs);
        let duration_secs = match (ttl, self.default_duration_secs) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Ok(Limits {
            models,
            max_budget,
            duration_secs,
        })
    }
}

/// Seconds in `30s`, `15m`, `2h` or `1d` (LiteLLM's duration format).
fn parse_duration(text: &str) -> Option<u64> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let count: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    count.checked_mul(scale)
}

fn send(request: Request) -> Result<Response, PluginError> {
    Ok(http::send(&request.timeout_ms(REQUEST_TIMEOUT_MS))?)
}

/// The proxy's answer to a failed call as the plugin error it means.
/// LiteLLM's error bodies are `{"error": {"message": ...}}` or
/// `{"detail": ...}`; neither holds the master key.
fn proxy_error(doing: &str, response: &Response) -> PluginError {
    let body = response.json::<serde_json::Value>().unwrap_or_default();
    let message = body["error"]["message"]
        .as_str()
        .or_else(|| body["detail"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| response.text().chars().take(200).collect());
    let text = format!("{doing}: the proxy answered {}: {message}", response.status);
    match response.status {
        400 | 422 => PluginError::InvalidInput(text),
        401 | 403 => PluginError::Denied(text),
        _ => PluginError::Unavailable(text),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use paddock_sdk::testing::broker::MockHost;

    use super::*;

    fn grant(scope: Option<&str>, ttl_secs: u64) -> Grant {
        Grant {
            session_id: "s1".into(),
            owner: "alice".into(),
            name: "LLM".into(),
            scope: scope.map(str::to_owned),
            ttl_secs,
        }
    }

    fn host() -> MockHost {
        MockHost::new()
            .config("base_url", "http://gw.test:4000/")
            .config("master_key_secret", "MASTER")
            .config("default_models", "small, large")
            .config("default_budget_usd", "2")
            .config("default_duration", "2h")
            .secret("MASTER", "sk-master")
    }

    fn body(request: &Request) -> serde_json::Value {
        serde_json::from_slice(&request.body).expect("a JSON body")
    }

    #[test]
    fn issue_generates_a_key_with_the_defaults_and_the_session() {
        let mock = host()
            .respond(
                "POST",
                "/key/generate",
                Response::json_body(200, &json!({ "key": "sk-virtual", "expires": null })),
            )
            .install();
        let before = now();
        let credential = LitellmGateway::issue(grant(None, 0)).expect("issued");
        assert_eq!(credential.env[KEY_ENV], "sk-virtual");
        assert_eq!(credential.env[URL_ENV], "http://gw.test:4000");
        assert_eq!(credential.revocation_handle.as_deref(), Some("sk-virtual"));
        let expires = credential.expires_at.expect("an expiry");
        assert!(expires >= before + 7200 && expires <= now() + 7200);

        let request = &mock.requests()[0];
        assert_eq!(request.url, "http://gw.test:4000/key/generate");
        assert_eq!(
            request.header_value("authorization"),
            Some("Bearer sk-master")
        );
        assert_eq!(
            body(request),
            json!({
                "models": ["small", "large"],
                "max_budget": 2.0,
                "duration": "7200s",
                "metadata": { "paddock_session": "s1", "owner": "alice" },
            })
        );
    }

    #[test]
    fn a_scope_and_a_short_ttl_narrow_the_key() {
        let mock = host()
            .respond(
                "POST",
                "/key/generate",
                Response::json_body(200, &json!({ "key": "sk-v" })),
            )
            .install();
        LitellmGateway::issue(grant(Some(r#"{"models":["small"],"max_budget":0.5}"#), 600))
            .expect("issued");
        let sent = body(&mock.requests()[0]);
        assert_eq!(sent["models"], json!(["small"]));
        assert_eq!(sent["max_budget"], json!(0.5));
        assert_eq!(sent["duration"], "600s");
    }

    #[test]
    fn a_scope_cannot_widen_the_defaults() {
        let mock = host().install();
        let err = LitellmGateway::issue(grant(Some(r#"{"models":["huge"]}"#), 0)).unwrap_err();
        assert!(
            matches!(err, PluginError::Denied(ref m) if m.contains("huge")),
            "{err}"
        );
        let err = LitellmGateway::issue(grant(Some(r#"{"max_budget":100}"#), 0)).unwrap_err();
        assert!(
            matches!(err, PluginError::Denied(ref m) if m.contains("above")),
            "{err}"
        );
        let err = LitellmGateway::issue(grant(Some(r#"{"teams":[]}"#), 0)).unwrap_err();
        assert!(matches!(err, PluginError::InvalidInput(_)), "{err}");
        assert!(mock.requests().is_empty(), "nothing reached the proxy");
    }

    #[test]
    fn proxy_errors_are_clear() {
        let _mock = host()
            .respond(
                "POST",
                "/key/generate",
                Response::json_body(
                    401,
                    &json!({ "error": { "message": "Invalid master key" } }),
                ),
            )
            .install();
        let err = LitellmGateway::issue(grant(None, 0)).unwrap_err();
        assert!(
            matches!(err, PluginError::Denied(ref m) if m.contains("401") && m.contains("Invalid master key")),
            "{err}"
        );
        let _mock = MockHost::new().install();
        let err = LitellmGateway::issue(grant(None, 0)).unwrap_err();
        assert!(err.to_string().contains("`base_url` is not set"), "{err}");
    }

    #[test]
    fn revoke_deletes_the_key_and_a_missing_key_counts_as_deleted() {
        let mock = host()
            .respond(
                "POST",
                "/key/delete",
                Response::json_body(200, &json!({ "deleted_keys": ["sk-v"] })),
            )
            .install();
        LitellmGateway::revoke("sk-v").expect("deleted");
        let request = &mock.requests()[0];
        assert_eq!(request.url, "http://gw.test:4000/key/delete");
        assert_eq!(body(request), json!({ "keys": ["sk-v"] }));

        let _mock = host()
            .respond("POST", "/key/delete", Response::new(404, "{}"))
            .install();
        LitellmGateway::revoke("sk-gone").expect("already gone");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Some(30));
        assert_eq!(parse_duration("15m"), Some(900));
        assert_eq!(parse_duration("2h"), Some(7200));
        assert_eq!(parse_duration("1d"), Some(86_400));
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration("h"), None);
    }
}
