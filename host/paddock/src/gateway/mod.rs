//! The built-in LLM gateway: keeps provider keys (tier-1 secrets) out of
//! sandboxes with no extra service to run.
//!
//! Each session that runs an agent gets a virtual key ([`Gateway::mint`])
//! with a model allowlist and a budget; its CLI is pointed at
//! [`Gateway::base_url`] with that key in its env. The gateway checks the
//! key, the model and the budget, forwards the request with the real key to
//! the configured upstream, streams the answer back untouched and counts the
//! tokens the upstream reports. [`Gateway::revoke`] ends the key with the
//! session. Operators who run their own gateway use a broker plugin instead.
//!
//! - [`config`]: `[gateway]` in the host's config.
//! - [`limits`]: what a key may do (allowlist globs, budgets, expiry).
//! - [`keys`]: the key store (hashes only, persisted in the data dir).
//! - [`usage`]: usage read from responses as they stream by.
//! - [`errors`]: the API's errors and the provider-style refusals.
//! - `proxy`: the routes under `/v1/gateway/`.
//!
//! # Examples
//!
//! ```no_run
//! # fn demo(config: paddock::gateway::GatewayConfig, data: &std::path::Path) -> Result<(), paddock::gateway::GatewayError> {
//! use paddock::gateway::{Gateway, Wire};
//! let gateway = Gateway::open(config, data)?;
//! let app = axum::Router::new().merge(gateway.router());
//! let limits = gateway.default_limits(0);
//! let key = gateway.mint("session-1", "alice", limits)?;
//! // exec env: PADDOCK_GATEWAY_TOKEN=<key.key>; adapter gets this URL:
//! let url = gateway.base_url(Wire::Anthropic);
//! gateway.revoke("session-1")?;
//! # let _ = (app, key, url); Ok(()) }
//! ```
//!
//! # Caveats
//!
//! The budget is checked before a request is forwarded, against what has
//! been recorded so far: the request that crosses the budget completes, and
//! requests already in flight when it is crossed complete too, so a session
//! can overshoot by what its concurrent requests use (one, for an agent CLI).

pub mod config;
pub mod errors;
pub mod keys;
pub mod limits;
mod proxy;
pub mod usage;

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::HeaderValue;

pub use config::{GatewayConfig, LimitsConfig, Price, Upstream, Upstreams};
pub use errors::{GatewayError, Refusal};
pub use keys::VirtualKey;
pub use limits::KeyLimits;
pub use proxy::MAX_BODY_BYTES;
pub use usage::{GatewayUsage, UsageCounts};

/// The variable an exec's env carries the session's key in: the name handed
/// to the adapter's `build-exec` as `gateway.token_env`.
pub const TOKEN_ENV: &str = "PADDOCK_GATEWAY_TOKEN";

/// The key store's file in the data dir.
const STORE_FILE: &str = "gateway-keys.json";

/// How long connecting to an upstream may take. Answers themselves have no
/// deadline: a long generation streams for minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The wire formats the gateway speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// Anthropic Messages.
    Anthropic,
    /// OpenAI Responses and Chat Completions.
    OpenAi,
}

impl std::fmt::Display for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Wire::Anthropic => "anthropic",
            Wire::OpenAi => "openai",
        })
    }
}

/// An upstream with its real key, ready to forward to.
struct Resolved {
    /// Without a trailing `/`.
    base_url: String,
    /// The real key's header value, marked sensitive so it is never printed.
    auth: HeaderValue,
}

/// The gateway: configuration, upstreams with their keys, the key store and
/// an HTTP client. Shared as `Arc<Gateway>` by the routes and the sessions.
pub struct Gateway {
    config: GatewayConfig,
    public_url: RwLock<String>,
    anthropic: Option<Resolved>,
    openai: Option<Resolved>,
    keys: Arc<keys::KeyStore>,
    http: reqwest::Client,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("public_url", &self.public_url())
            .field("anthropic", &self.serves(Wire::Anthropic))
            .field("openai", &self.serves(Wire::OpenAi))
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Opens the key store under `data_dir` (keys survive a host restart)
    /// and reads each configured upstream's key from the host env.
    ///
    /// # Errors
    ///
    /// An upstream whose `api_key_env` is unset or whose `base_url` is not
    /// http(s); a key store that cannot be read.
    pub fn open(config: GatewayConfig, data_dir: &Path) -> Result<Arc<Self>, GatewayError> {
        let anthropic = resolve(Wire::Anthropic, config.upstreams.anthropic.as_ref())?;
        let openai = resolve(Wire::OpenAi, config.upstreams.openai.as_ref())?;
        let keys = Arc::new(keys::KeyStore::open(data_dir.join(STORE_FILE))?);
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(GatewayError::Client)?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", crate::config::DEFAULT_LISTEN));
        Ok(Arc::new(Self {
            public_url: RwLock::new(public_url.trim_end_matches('/').to_owned()),
            config,
            anthropic,
            openai,
            keys,
            http,
        }))
    }

    /// Sets the URL sandboxes reach the host at, unless `[gateway]
    /// public_url` set it: `serve` calls this once it knows its address.
    pub fn set_public_url(&self, url: &str) {
        if self.config.public_url.is_none() {
            let mut public = self
                .public_url
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *public = url.trim_end_matches('/').to_owned();
        }
    }

    fn public_url(&self) -> String {
        self.public_url
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether an upstream is configured for `wire`.
    pub fn serves(&self, wire: Wire) -> bool {
        self.upstream(wire).is_some()
    }

    fn upstream(&self, wire: Wire) -> Option<&Resolved> {
        match wire {
            Wire::Anthropic => self.anthropic.as_ref(),
            Wire::OpenAi => self.openai.as_ref(),
        }
    }

    /// The limits of `[gateway.limits]`, for a key that expires at
    /// `expires_at_ms` (0: when revoked).
    pub fn default_limits(&self, expires_at_ms: u64) -> KeyLimits {
        let limits = &self.config.limits;
        KeyLimits {
            models: limits.models.clone(),
            budget_tokens: limits.budget_tokens,
            budget_usd: limits.budget_usd,
            expires_at_ms,
        }
    }

    /// Mints (or returns the live) virtual key of a session. The key is a
    /// fresh random secret, stored only as a SHA-256 hash. A repeated call
    /// returns the same key and keeps the first limits; after a host
    /// restart (the key was never stored) it mints another that shares the
    /// session's usage.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Revoked`] for a session whose key was revoked; the
    /// store cannot be written.
    pub fn mint(
        &self,
        session_id: &str,
        owner: &str,
        limits: KeyLimits,
    ) -> Result<VirtualKey, GatewayError> {
        self.keys.mint(session_id, owner, limits)
    }

    /// Revokes the session's key; idempotent. Later requests with it get
    /// the provider-style 401.
    pub fn revoke(&self, session_id: &str) -> Result<(), GatewayError> {
        self.keys.revoke(session_id)
    }

    /// What the session's key has used so far.
    pub fn usage(&self, session_id: &str) -> Option<GatewayUsage> {
        self.keys.usage(session_id)
    }

    /// Writes recorded usage now (it is otherwise written shortly after each
    /// response); for shutdown.
    pub fn flush(&self) -> Result<(), GatewayError> {
        self.keys.persist()
    }

    /// The base URL a CLI of `wire` format is given: the form each
    /// provider's SDK expects, `{public_url}/v1/gateway/anthropic` (the SDK
    /// adds `/v1/messages`) and `{public_url}/v1/gateway/openai/v1` (OpenAI
    /// SDKs and Codex add `/responses`).
    pub fn base_url(&self, wire: Wire) -> String {
        let public = self.public_url();
        match wire {
            Wire::Anthropic => format!("{public}/v1/gateway/anthropic"),
            Wire::OpenAi => format!("{public}/v1/gateway/openai/v1"),
        }
    }

    /// The routes under `/v1/gateway/`, to merge into the host's router.
    /// They carry their own state and no host auth: the virtual key is the
    /// auth.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        proxy::router(self.clone())
    }
}

/// The upstream of `wire` with its key read from the host env.
fn resolve(wire: Wire, upstream: Option<&Upstream>) -> Result<Option<Resolved>, GatewayError> {
    let Some(upstream) = upstream else {
        return Ok(None);
    };
    let url = upstream.base_url.trim_end_matches('/');
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(GatewayError::BadUpstream {
            wire,
            url: upstream.base_url.clone(),
        });
    }
    let missing = || GatewayError::MissingKey {
        wire,
        var: upstream.api_key_env.clone(),
    };
    let key = std::env::var(&upstream.api_key_env).map_err(|_| missing())?;
    if key.trim().is_empty() {
        return Err(missing());
    }
    let value = match wire {
        Wire::Anthropic => key.trim().to_owned(),
        Wire::OpenAi => format!("Bearer {}", key.trim()),
    };
    let mut auth = HeaderValue::from_str(&value).map_err(|_| missing())?;
    auth.set_sensitive(true);
    Ok(Some(Resolved {
        base_url: url.to_owned(),
        auth,
    }))
}
