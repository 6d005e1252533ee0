//! Sandbox-provider plugins: the policy of where and how a session's sandbox
//! is made, with the launching done by the host ([`ContainerRuntime`]).
//!
//! Every call gets a fresh instance (a provider keeps no state between
//! calls; what it must remember lives on the sandboxes, as labels or
//! leases). A call's deadline counts only the plugin's own time: the time
//! spent in host calls it makes (launching a sandbox, HTTP) is added back,
//! since those have deadlines of their own.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use wasmtime::component::{Component, HasSelf, Linker};

use super::PluginGrants;
use super::agent::refused;
use super::engine::PluginEngine;
use super::error::PluginError;
use super::limits::PluginLimits;
use super::store::{HostState, fresh_call, instance_pre, world_linker};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "provider",
        imports: { default: async },
        exports: { default: async },
        with: {
            "paddock:plugin/types": crate::plugin::agent::wit_types,
            "paddock:plugin/log": crate::plugin::agent::wit_log,
        },
    });
}

use bindings::exports::paddock::plugin::sandbox_provider as wit;
pub use bindings::paddock::plugin::sandbox_types::{NetworkPolicy, Resources, SandboxHandle};
use bindings::paddock::plugin::{config as wit_config, container_runtime, sandbox_types};

pub use super::agent::wit_types::Kv;
pub use container_runtime::LaunchPlan;
pub use wit::{ProviderInfo, ProvisionRequest};

/// A plugin-facing error: what a provider plugin or the runtime says went
/// wrong, in the contract's four cases.
pub type WitPluginError = super::agent::wit_types::PluginError;

/// The host's engines, as provider plugins see them: launch a plan on
/// whichever provider the operator configured, and manage only what this
/// plugin launched.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    async fn launch(&self, plugin: &str, plan: LaunchPlan)
    -> Result<SandboxHandle, WitPluginError>;
    async fn destroy(&self, plugin: &str, id: &str) -> Result<(), WitPluginError>;
    async fn inspect(
        &self,
        plugin: &str,
        id: &str,
    ) -> Result<Option<SandboxHandle>, WitPluginError>;
    async fn list(&self, plugin: &str) -> Result<Vec<SandboxHandle>, WitPluginError>;
}

/// What a provider plugin's store carries beyond every plugin's state.
pub(crate) struct ProviderCtx {
    pub runtime: Option<Arc<dyn ContainerRuntime>>,
    pub config: Arc<BTreeMap<String, String>>,
}

/// The linker for the `provider` world: WASI p2 (nothing granted unless
/// configured), log, config, container-runtime and outgoing-http.
pub(crate) fn linker(engine: &PluginEngine) -> Result<Linker<HostState>, PluginError> {
    world_linker(engine, |linker| {
        bindings::Provider::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state)
    })
}

impl sandbox_types::Host for HostState {}

impl wit_config::Host for HostState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.config().and_then(|c| c.get(&key).cloned())
    }
}

impl container_runtime::Host for HostState {
    async fn launch(&mut self, plan: LaunchPlan) -> Result<SandboxHandle, WitPluginError> {
        let runtime = self.runtime()?;
        let plugin = self.plugin.clone();
        self.off_the_clock(runtime.launch(&plugin, plan)).await
    }

    async fn destroy(&mut self, id: String) -> Result<(), WitPluginError> {
        let runtime = self.runtime()?;
        let plugin = self.plugin.clone();
        self.off_the_clock(runtime.destroy(&plugin, &id)).await
    }

    async fn inspect(&mut self, id: String) -> Result<Option<SandboxHandle>, WitPluginError> {
        let runtime = self.runtime()?;
        let plugin = self.plugin.clone();
        self.off_the_clock(runtime.inspect(&plugin, &id)).await
    }

    async fn list(&mut self) -> Result<Vec<SandboxHandle>, WitPluginError> {
        let runtime = self.runtime()?;
        let plugin = self.plugin.clone();
        self.off_the_clock(runtime.list(&plugin)).await
    }
}

impl HostState {
    fn runtime(&self) -> Result<Arc<dyn ContainerRuntime>, WitPluginError> {
        self.provider
            .as_ref()
            .and_then(|p| p.runtime.clone())
            .ok_or_else(|| {
                WitPluginError::Unavailable(
                    "this host has no container runtime for provider plugins".into(),
                )
            })
    }
}

/// One loaded version of a provider plugin.
pub struct ProviderPlugin {
    name: Arc<str>,
    info: ProviderInfo,
    pre: bindings::ProviderPre<HostState>,
    engine: Arc<PluginEngine>,
    limits: PluginLimits,
    grants: PluginGrants,
    config: Arc<BTreeMap<String, String>>,
    runtime: Arc<OnceLock<Arc<dyn ContainerRuntime>>>,
}

impl std::fmt::Debug for ProviderPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderPlugin")
            .field("name", &self.name)
            .field("version", &self.info.version)
            .finish()
    }
}

/// What a provider plugin gets from the host's configuration, by name.
pub(crate) struct ProviderSettings {
    pub limits: PluginLimits,
    pub grants: PluginGrants,
    pub config: Arc<BTreeMap<String, String>>,
    pub runtime: Arc<OnceLock<Arc<dyn ContainerRuntime>>>,
}

impl ProviderPlugin {
    /// Links `component` and smoke-tests it with `info()`.
    pub(crate) async fn load(
        engine: &Arc<PluginEngine>,
        linker: &Linker<HostState>,
        component: &Component,
        source_name: &str,
        settings: impl Fn(&str) -> ProviderSettings,
    ) -> Result<Self, PluginError> {
        let pre = bindings::ProviderPre::new(instance_pre(linker, component, source_name)?)
            .map_err(|e| {
                PluginError::load(source_name, format!("not a sandbox provider: {e:#}"))
            })?;
        let defaults = settings("");
        let mut probe = Self {
            name: source_name.into(),
            info: ProviderInfo {
                name: String::new(),
                display_name: String::new(),
                version: String::new(),
                description: String::new(),
            },
            pre,
            engine: engine.clone(),
            limits: defaults.limits,
            grants: defaults.grants,
            config: defaults.config,
            runtime: defaults.runtime,
        };
        let info = probe
            .call(async |provider, store| provider.call_info(store).await)
            .await?;
        super::agent::check_plugin_name(source_name, &info.name)?;
        let settings = settings(&info.name);
        probe.name = info.name.as_str().into();
        probe.info = info;
        probe.limits = settings.limits;
        probe.grants = settings.grants;
        probe.config = settings.config;
        probe.runtime = settings.runtime;
        Ok(probe)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info(&self) -> &ProviderInfo {
        &self.info
    }

    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// Runs one export call in a fresh instance under this plugin's limits.
    async fn call<R>(
        &self,
        f: impl AsyncFnOnce(&wit::Guest, &mut wasmtime::Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let pre = &self.pre;
        fresh_call(
            &self.engine,
            &self.name,
            &self.limits,
            &self.grants,
            |state| {
                state.set_provider(ProviderCtx {
                    runtime: self.runtime.get().cloned(),
                    config: self.config.clone(),
                })
            },
            async |store| pre.instantiate_async(store).await,
            async |instance, store| f(instance.paddock_plugin_sandbox_provider(), store).await,
        )
        .await
    }

    pub async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<SandboxHandle, PluginError> {
        self.call(async |p, store| p.call_provision(store, request).await)
            .await?
            .map_err(|e| refused(&self.name, e))
    }

    pub async fn destroy(&self, id: &str) -> Result<(), PluginError> {
        self.call(async |p, store| p.call_destroy(store, id).await)
            .await?
            .map_err(|e| refused(&self.name, e))
    }

    pub async fn list(&self) -> Result<Vec<SandboxHandle>, PluginError> {
        self.call(async |p, store| p.call_list(store).await)
            .await?
            .map_err(|e| refused(&self.name, e))
    }

    pub async fn inspect(&self, id: &str) -> Result<Option<SandboxHandle>, PluginError> {
        self.call(async |p, store| p.call_inspect(store, id).await)
            .await?
            .map_err(|e| refused(&self.name, e))
    }
}
