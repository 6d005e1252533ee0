//! Agent adapter plugins: `info`, `build-exec`, `encode-input`, and parsers.
//!
//! `build-exec` and `encode-input` get a fresh instance per call. A parser
//! gets its own store and instance for its whole run, owned by the run: a
//! trap kills only that run's parser, and a hot reload leaves it on the
//! version it started with.

use std::sync::Arc;

use paddock_sdk::agent as sdk;
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker, ResourceAny};

use super::PluginGrants;
use super::engine::PluginEngine;
use super::error::PluginError;
use super::limits::PluginLimits;
use super::store::{HostState, guarded, instance_pre, new_store, world_linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "agent",
        imports: { default: async },
        exports: { default: async },
    });
}

use bindings::exports::paddock::plugin::agent_adapter as wit;
pub use bindings::paddock::plugin::{log as wit_log, types as wit_types};

pub use convert::from_wit_event;

/// One loaded version of an agent adapter.
pub struct AgentPlugin {
    name: Arc<str>,
    info: sdk::AgentInfo,
    pre: bindings::AgentPre<HostState>,
    engine: Arc<PluginEngine>,
    limits: PluginLimits,
    grants: PluginGrants,
}

impl std::fmt::Debug for AgentPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentPlugin")
            .field("name", &self.name)
            .field("info", &self.info)
            .finish()
    }
}

/// The linker for the `agent` world: WASI p2 (with nothing granted unless
/// configured) and the `log` import.
pub(crate) fn linker(engine: &PluginEngine) -> Result<Linker<HostState>, PluginError> {
    world_linker(engine, |linker| {
        bindings::Agent::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state)
    })
}

impl wit_log::Host for HostState {
    async fn log(&mut self, level: wit_log::Level, message: String) {
        let plugin = &*self.plugin;
        match level {
            wit_log::Level::Trace => tracing::trace!(plugin, "{message}"),
            wit_log::Level::Debug => tracing::debug!(plugin, "{message}"),
            wit_log::Level::Info => tracing::info!(plugin, "{message}"),
            wit_log::Level::Warn => tracing::warn!(plugin, "{message}"),
            wit_log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl wit_types::Host for HostState {}

/// A plugin's `plugin-error` answer as the host's error naming it.
pub(crate) fn refused(plugin: &str, error: wit_types::PluginError) -> PluginError {
    PluginError::Refused {
        plugin: plugin.to_owned(),
        error: convert::plugin_error(error),
    }
}

/// A plugin's name keys its config, grants and API references: letters,
/// digits, `-` and `_` only.
pub(crate) fn check_plugin_name(source_name: &str, name: &str) -> Result<(), PluginError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(PluginError::load(
            source_name,
            format!("invalid plugin name {name:?}: use letters, digits, '-' and '_'"),
        ));
    }
    Ok(())
}

impl AgentPlugin {
    /// Links `component` and smoke-tests it (`info()` in a throwaway
    /// instance). `source_name` names the file or built-in in errors.
    /// `limits` and `grants` are looked up by the name the plugin reports.
    pub(crate) async fn load(
        engine: &Arc<PluginEngine>,
        linker: &Linker<HostState>,
        component: &Component,
        source_name: &str,
        settings: impl Fn(&str) -> (PluginLimits, PluginGrants),
    ) -> Result<Self, PluginError> {
        let pre = bindings::AgentPre::new(instance_pre(linker, component, source_name)?)
            .map_err(|e| PluginError::load(source_name, format!("not an agent adapter: {e:#}")))?;
        // The name is only known after `info()`; the smoke call runs under
        // the default limits, named after the source.
        let (limits, grants) = settings("");
        let mut probe = Self {
            name: source_name.into(),
            info: sdk::AgentInfo {
                name: String::new(),
                display_name: String::new(),
                version: String::new(),
                binaries: vec![],
                features: vec![],
            },
            pre,
            engine: engine.clone(),
            limits,
            grants,
        };
        let info = probe.call_info().await?;
        check_plugin_name(source_name, &info.name)?;
        let (limits, grants) = settings(&info.name);
        probe.name = info.name.as_str().into();
        probe.info = info;
        probe.limits = limits;
        probe.grants = grants;
        Ok(probe)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn info(&self) -> &sdk::AgentInfo {
        &self.info
    }

    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    async fn instantiate(&self) -> Result<(Store<HostState>, bindings::Agent), PluginError> {
        let wasi = self.grants.wasi_ctx(&self.name).build();
        let mut store = new_store(&self.engine, &self.name, &self.limits, wasi);
        let pre = &self.pre;
        let instance = guarded(&mut store, &self.limits, async |store| {
            pre.instantiate_async(store).await
        })
        .await?;
        Ok((store, instance))
    }

    async fn call_info(&self) -> Result<sdk::AgentInfo, PluginError> {
        let (mut store, instance) = self.instantiate().await?;
        let info = guarded(&mut store, &self.limits, async |store| {
            instance
                .paddock_plugin_agent_adapter()
                .call_info(store)
                .await
        })
        .await?;
        Ok(sdk::AgentInfo {
            name: info.name,
            display_name: info.display_name,
            version: info.version,
            binaries: info.binaries,
            features: info.features,
        })
    }

    /// The exec spec for `spec`, from a fresh instance.
    pub async fn build_exec(&self, spec: &sdk::RunSpec) -> Result<sdk::ExecSpec, PluginError> {
        let (mut store, instance) = self.instantiate().await?;
        let wit_spec = convert::run_spec(spec);
        let result = guarded(&mut store, &self.limits, async |store| {
            instance
                .paddock_plugin_agent_adapter()
                .call_build_exec(store, &wit_spec)
                .await
        })
        .await?;
        match result {
            Ok(exec) => Ok(convert::exec_spec(exec)),
            Err(error) => Err(refused(&self.name, error)),
        }
    }

    /// What to write to the CLI's stdin to steer it, or `None` if this
    /// adapter cannot steer its CLI.
    pub async fn encode_input(
        &self,
        kind: sdk::InputKind,
        text: &str,
    ) -> Result<Option<String>, PluginError> {
        let (mut store, instance) = self.instantiate().await?;
        let kind = match kind {
            sdk::InputKind::Message => wit::InputKind::Message,
            sdk::InputKind::Interrupt => wit::InputKind::Interrupt,
        };
        guarded(&mut store, &self.limits, async |store| {
            instance
                .paddock_plugin_agent_adapter()
                .call_encode_input(store, kind, text)
                .await
        })
        .await
    }

    /// A parser for one run, on this version of the plugin.
    pub async fn parser(
        self: &Arc<Self>,
        context: &sdk::ParseContext,
    ) -> Result<AgentParser, PluginError> {
        let (mut store, instance) = self.instantiate().await?;
        let wit_context = convert::parse_context(context);
        let handle = guarded(&mut store, &self.limits, async |store| {
            instance
                .paddock_plugin_agent_adapter()
                .parser()
                .call_constructor(store, wit_context)
                .await
        })
        .await?;
        Ok(AgentParser {
            plugin: self.clone(),
            store,
            instance,
            handle,
            poisoned: false,
        })
    }
}

/// A running parser: the plugin's `parser` resource in its own store.
pub struct AgentParser {
    plugin: Arc<AgentPlugin>,
    store: Store<HostState>,
    instance: bindings::Agent,
    handle: ResourceAny,
    /// Set after a failed call: the instance may be in any state, so it is
    /// not entered again.
    poisoned: bool,
}

impl AgentParser {
    /// The plugin version this parser runs on.
    pub fn plugin(&self) -> &Arc<AgentPlugin> {
        &self.plugin
    }

    /// Feeds a chunk of stdout of any size.
    pub async fn feed(&mut self, chunk: &[u8]) -> Result<Vec<sdk::AgentEvent>, PluginError> {
        self.check_usable()?;
        let (instance, handle) = (&self.instance, self.handle);
        let result = guarded(&mut self.store, &self.plugin.limits, async |store| {
            instance
                .paddock_plugin_agent_adapter()
                .parser()
                .call_feed(store, handle, chunk)
                .await
        })
        .await;
        self.events(result)
    }

    /// The process ended; returns the last events, the run's `result` among
    /// them.
    pub async fn finish(
        &mut self,
        end: sdk::ProcessEnd,
    ) -> Result<Vec<sdk::AgentEvent>, PluginError> {
        self.check_usable()?;
        let (instance, handle) = (&self.instance, self.handle);
        let end = convert::process_end(end);
        let result = guarded(&mut self.store, &self.plugin.limits, async |store| {
            instance
                .paddock_plugin_agent_adapter()
                .parser()
                .call_finish(store, handle, end)
                .await
        })
        .await;
        self.events(result)
    }

    fn check_usable(&self) -> Result<(), PluginError> {
        if self.poisoned {
            return Err(PluginError::Poisoned {
                plugin: self.plugin.name.to_string(),
            });
        }
        Ok(())
    }

    fn events(
        &mut self,
        result: Result<Vec<wit::AgentEvent>, PluginError>,
    ) -> Result<Vec<sdk::AgentEvent>, PluginError> {
        match result {
            Ok(events) => Ok(events
                .into_iter()
                .map(|e| from_wit_event(&self.plugin.name, e))
                .collect()),
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }
}

mod convert;
