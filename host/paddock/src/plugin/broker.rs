//! Credential brokers: plugins that issue the secrets a session was granted
//! (env vars and files, with an expiry and a revocation handle) and revoke
//! them when the session ends.
//!
//! A broker imports only `log`, `config`, `secrets` (the names the
//! operator granted it, see [`super::secrets`]) and `outgoing-http` (the
//! hosts the operator allowlisted for it). Every call gets a fresh
//! instance under the plugin's deadline and memory cap; time spent in host
//! calls (HTTP, reading the secrets file) does not count against the
//! deadline, since those have deadlines of their own.
//!
//! The session layer calls it as
//!
//! ```ignore
//! let broker = plugins.broker("github-app")?;
//! let credential = broker.issue(&Grant { session_id, owner, name, scope, ttl_secs }).await?;
//! // … later, with credential.revocation_handle:
//! broker.revoke(&handle).await?;
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use wasmtime::component::{Component, HasSelf, Linker};

use super::PluginGrants;
use super::agent::refused;
use super::engine::PluginEngine;
use super::error::PluginError;
use super::limits::PluginLimits;
use super::secrets::{SecretError, read_secret};
use super::store::{HostState, fresh_call, instance_pre, world_linker};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "broker",
        imports: { default: async },
        exports: { default: async },
        // One implementation of each shared interface: the provider world's
        // `config` and `outgoing-http` (with its allowlist) serve brokers too.
        with: {
            "paddock:plugin/types": crate::plugin::agent::wit_types,
            "paddock:plugin/log": crate::plugin::agent::wit_log,
            "paddock:plugin/config": crate::plugin::provider::bindings::paddock::plugin::config,
            "paddock:plugin/outgoing-http": crate::plugin::provider::bindings::paddock::plugin::outgoing_http,
        },
    });
}

use bindings::exports::paddock::plugin::credential_broker as wit;
use bindings::paddock::plugin::secrets as wit_secrets;

pub use super::agent::wit_types::Kv;
pub use wit::BrokerInfo;

use super::provider::WitPluginError;

/// One grant of one session, already checked against the operator's
/// policy: what [`BrokerPlugin::issue`] is asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    pub session_id: String,
    pub owner: String,
    /// The secret's name within the broker (`DB_PASSWORD`).
    pub name: String,
    /// Broker-specific narrowing (a repository, a model list …).
    pub scope: Option<String>,
    /// How long the credential should live at most.
    pub ttl_secs: u64,
}

/// A file a credential puts in the sandbox. Its `Debug` leaves the
/// contents out: they are the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialFile {
    /// Relative to the sandbox's secrets directory.
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// What a broker issued for a grant. Its `Debug` shows variable names and
/// file paths, never values or the revocation handle (which may be the
/// credential itself).
#[derive(Clone)]
pub struct Credential {
    pub env: Vec<Kv>,
    pub files: Vec<CredentialFile>,
    /// Unix seconds.
    pub expires_at: Option<u64>,
    /// Passed back to [`BrokerPlugin::revoke`]; `None` when the credential
    /// cannot be revoked (a static secret). Keep it private: for some
    /// brokers (GitHub installation tokens) it is the secret itself.
    pub revocation_handle: Option<String>,
}

impl std::fmt::Debug for CredentialFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialFile")
            .field("path", &self.path)
            .field("bytes", &self.contents.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field(
                "env",
                &self.env.iter().map(|kv| &kv.key).collect::<Vec<_>>(),
            )
            .field("files", &self.files)
            .field("expires_at", &self.expires_at)
            .field("revocable", &self.revocation_handle.is_some())
            .finish()
    }
}

impl From<wit::Credential> for Credential {
    fn from(c: wit::Credential) -> Self {
        Self {
            env: c.env,
            files: c
                .files
                .into_iter()
                .map(|f| CredentialFile {
                    path: f.path,
                    contents: f.contents,
                    mode: f.mode,
                })
                .collect(),
            expires_at: c.expires_at,
            revocation_handle: c.revocation_handle,
        }
    }
}

/// What a broker's store carries beyond every plugin's state.
pub(crate) struct BrokerCtx {
    pub config: Arc<BTreeMap<String, String>>,
    pub secrets_file: Option<Arc<Path>>,
}

/// The linker for the `broker` world: WASI p2 (nothing granted unless
/// configured), log, config, secrets and outgoing-http.
pub(crate) fn linker(engine: &PluginEngine) -> Result<Linker<HostState>, PluginError> {
    world_linker(engine, |linker| {
        bindings::Broker::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state)
    })
}

impl wit_secrets::Host for HostState {
    async fn get(&mut self, name: String) -> Result<String, WitPluginError> {
        let file = self.broker.as_ref().and_then(|b| b.secrets_file.clone());
        let plugin = self.plugin.clone();
        let grants = self.grants.clone();
        let result = self
            .off_the_clock(read_secret(&plugin, &grants, file.as_deref(), &name))
            .await;
        result.map_err(|error| {
            // The name and why, never the value (no error carries one).
            tracing::warn!(plugin = %plugin, secret = %name, %error, "broker's secret read refused");
            match error {
                SecretError::NotGranted { .. } => WitPluginError::Denied(error.to_string()),
                SecretError::InvalidName(_) => WitPluginError::InvalidInput(error.to_string()),
                SecretError::NotFound { .. } | SecretError::File { .. } => {
                    WitPluginError::Unavailable(error.to_string())
                }
            }
        })
    }
}

/// One loaded version of a credential broker.
pub struct BrokerPlugin {
    name: Arc<str>,
    info: BrokerInfo,
    pre: bindings::BrokerPre<HostState>,
    engine: Arc<PluginEngine>,
    settings: BrokerSettings,
}

impl std::fmt::Debug for BrokerPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerPlugin")
            .field("name", &self.name)
            .field("version", &self.info.version)
            .finish()
    }
}

/// What a broker gets from the host's configuration, by name.
pub(crate) struct BrokerSettings {
    pub limits: PluginLimits,
    pub grants: PluginGrants,
    pub config: Arc<BTreeMap<String, String>>,
    pub secrets_file: Option<Arc<Path>>,
}

impl BrokerPlugin {
    /// Links `component` and smoke-tests it with `info()`.
    pub(crate) async fn load(
        engine: &Arc<PluginEngine>,
        linker: &Linker<HostState>,
        component: &Component,
        source_name: &str,
        settings: impl Fn(&str) -> BrokerSettings,
    ) -> Result<Self, PluginError> {
        let pre = bindings::BrokerPre::new(instance_pre(linker, component, source_name)?).map_err(
            |e| PluginError::load(source_name, format!("not a credential broker: {e:#}")),
        )?;
        let mut probe = Self {
            name: source_name.into(),
            info: BrokerInfo {
                name: String::new(),
                display_name: String::new(),
                version: String::new(),
                description: String::new(),
            },
            pre,
            engine: engine.clone(),
            settings: settings(""),
        };
        let info = probe
            .call(async |broker, store| broker.call_info(store).await)
            .await?;
        super::agent::check_plugin_name(source_name, &info.name)?;
        probe.settings = settings(&info.name);
        probe.name = info.name.as_str().into();
        probe.info = info;
        Ok(probe)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info(&self) -> &BrokerInfo {
        &self.info
    }

    pub fn limits(&self) -> &PluginLimits {
        &self.settings.limits
    }

    /// Issues the credential for `grant`.
    ///
    /// # Errors
    ///
    /// [`PluginError::Refused`] with the broker's own answer (an ungranted
    /// secret, a host off its allowlist, its backend's refusal …), or
    /// [`PluginError::Trap`], [`PluginError::Deadline`] or
    /// [`PluginError::MemoryCap`] when the plugin failed; each names it.
    pub async fn issue(&self, grant: &Grant) -> Result<Credential, PluginError> {
        let grant = wit::Grant {
            session_id: grant.session_id.clone(),
            owner: grant.owner.clone(),
            name: grant.name.clone(),
            scope: grant.scope.clone(),
            ttl_secs: grant.ttl_secs,
        };
        self.call(async |b, store| b.call_issue(store, &grant).await)
            .await?
            .map(Credential::from)
            .map_err(|e| refused(&self.name, e))
    }

    /// Revokes what [`issue`](Self::issue) returned `handle` for. Errors as
    /// for `issue`.
    pub async fn revoke(&self, handle: &str) -> Result<(), PluginError> {
        self.call(async |b, store| b.call_revoke(store, handle).await)
            .await?
            .map_err(|e| refused(&self.name, e))
    }

    /// Runs one export call in a fresh instance under this plugin's limits.
    async fn call<R>(
        &self,
        f: impl AsyncFnOnce(&wit::Guest, &mut wasmtime::Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let settings = &self.settings;
        let pre = &self.pre;
        fresh_call(
            &self.engine,
            &self.name,
            &settings.limits,
            &settings.grants,
            |state| {
                state.set_broker(BrokerCtx {
                    config: settings.config.clone(),
                    secrets_file: settings.secrets_file.clone(),
                })
            },
            async |store| pre.instantiate_async(store).await,
            async |instance, store| f(instance.paddock_plugin_credential_broker(), store).await,
        )
        .await
    }
}
