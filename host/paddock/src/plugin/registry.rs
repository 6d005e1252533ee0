//! The loaded plugins: built-ins plus the plugins directory, swapped
//! atomically on every rescan.
//!
//! A lookup clones an `Arc` of the current version; whoever holds it (a
//! running parser) keeps that version however often the file changes. A file
//! that fails to load is refused with a log line and the version loaded
//! before from the same file stays active.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::SystemTime;

use serde::Serialize;
use wasmtime::component::{Component, Linker};

use super::agent::{self, AgentPlugin};
use super::broker::{self, BrokerPlugin, BrokerSettings};
use super::cache::{CacheOutcome, sha256_hex};
use super::engine::{EngineSettings, PluginEngine};
use super::error::PluginError;
use super::inspect::{ComponentShape, PluginKind};
use super::provider::{self, ContainerRuntime, ProviderPlugin, ProviderSettings};
use super::store::HostState;
use super::{PluginGrants, PluginLimits, builtin};
use crate::config::PluginsConfig;

/// Where a loaded plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "path", rename_all = "snake_case")]
pub enum PluginSource {
    Builtin,
    File(PathBuf),
}

impl std::fmt::Display for PluginSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginSource::Builtin => f.write_str("built-in"),
            PluginSource::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A row of `paddock plugin list`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginSummary {
    pub name: String,
    pub kind: PluginKind,
    pub version: String,
    pub source: PluginSource,
    /// SHA-256 of the wasm file.
    pub hash: String,
}

/// One loaded plugin of any kind.
#[derive(Debug, Clone)]
pub enum Plugin {
    Agent(Arc<AgentPlugin>),
    Broker(Arc<BrokerPlugin>),
    Provider(Arc<ProviderPlugin>),
}

impl Plugin {
    pub fn name(&self) -> &str {
        match self {
            Plugin::Agent(p) => p.name(),
            Plugin::Broker(p) => p.name(),
            Plugin::Provider(p) => p.name(),
        }
    }

    pub fn version(&self) -> &str {
        match self {
            Plugin::Agent(p) => &p.info().version,
            Plugin::Broker(p) => &p.info().version,
            Plugin::Provider(p) => &p.info().version,
        }
    }

    pub fn kind(&self) -> PluginKind {
        match self {
            Plugin::Agent(_) => PluginKind::Agent,
            Plugin::Broker(_) => PluginKind::Broker,
            Plugin::Provider(_) => PluginKind::Provider,
        }
    }

    /// What it says about itself (`info()`), as JSON.
    pub fn manifest(&self) -> serde_json::Value {
        match self {
            Plugin::Agent(p) => serde_json::to_value(p.info()).unwrap_or_default(),
            Plugin::Broker(p) => {
                let info = p.info();
                described(
                    &info.name,
                    &info.display_name,
                    &info.version,
                    &info.description,
                )
            }
            Plugin::Provider(p) => {
                let info = p.info();
                described(
                    &info.name,
                    &info.display_name,
                    &info.version,
                    &info.description,
                )
            }
        }
    }

    pub fn limits(&self) -> &PluginLimits {
        match self {
            Plugin::Agent(p) => p.limits(),
            Plugin::Broker(p) => p.limits(),
            Plugin::Provider(p) => p.limits(),
        }
    }

    /// Whether both are the same loaded version.
    fn same(&self, other: &Plugin) -> bool {
        match (self, other) {
            (Plugin::Agent(a), Plugin::Agent(b)) => Arc::ptr_eq(a, b),
            (Plugin::Broker(a), Plugin::Broker(b)) => Arc::ptr_eq(a, b),
            (Plugin::Provider(a), Plugin::Provider(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// The manifest of a plugin whose `info()` is name, display name, version
/// and description (brokers, providers).
fn described(
    name: &str,
    display_name: &str,
    version: &str,
    description: &str,
) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "display_name": display_name,
        "version": version,
        "description": description,
    })
}

#[derive(Clone)]
struct Loaded {
    plugin: Plugin,
    source: PluginSource,
    hash: String,
}

/// What the last scan saw of one file.
#[derive(Clone)]
struct FileState {
    modified: Option<SystemTime>,
    len: u64,
    hash: String,
    /// The last version that loaded from this file, kept while a newer
    /// content fails.
    loaded: Option<Loaded>,
    /// Why the current content was refused, if it was.
    refused: Option<String>,
}

#[derive(Default)]
struct Catalog {
    /// Every kind in one namespace: a name means one plugin.
    plugins: BTreeMap<String, Loaded>,
    files: BTreeMap<PathBuf, FileState>,
}

/// All plugins of this host.
pub struct PluginHost {
    engine: Arc<PluginEngine>,
    agent_linker: Linker<HostState>,
    broker_linker: Linker<HostState>,
    provider_linker: Linker<HostState>,
    /// The engines provider plugins launch on; set once the host's own
    /// provider exists (after the plugins are loaded).
    runtime: Arc<OnceLock<Arc<dyn ContainerRuntime>>>,
    config: PluginsConfig,
    dir: Option<PathBuf>,
    builtins: BTreeMap<String, Loaded>,
    catalog: RwLock<Arc<Catalog>>,
    /// Serializes rescans (the watcher and explicit calls).
    rescan: tokio::sync::Mutex<()>,
    /// Completed rescans, so a caller can wait for the next one.
    generation: AtomicU64,
}

impl PluginHost {
    /// Starts the engine, loads the built-ins and, if `dir` is given, the
    /// plugins in it (creating it if missing). Compiled components are
    /// cached under `cache_dir`.
    pub async fn new(
        config: &PluginsConfig,
        dir: Option<PathBuf>,
        cache_dir: &Path,
    ) -> Result<Arc<Self>, PluginError> {
        let max_memory_mib = config
            .overrides
            .values()
            .map(|o| o.apply(config.limits).memory_mib)
            .chain([config.limits.memory_mib])
            .max()
            .unwrap_or(config.limits.memory_mib);
        let settings = EngineSettings {
            max_instances: config.max_instances.unwrap_or(super::DEFAULT_MAX_INSTANCES),
            max_memory_bytes: (max_memory_mib as usize) << 20,
        };
        let engine = Arc::new(PluginEngine::new(settings, cache_dir)?);
        let agent_linker = agent::linker(&engine)?;
        let broker_linker = broker::linker(&engine)?;
        let provider_linker = provider::linker(&engine)?;
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).map_err(|e| {
                PluginError::load(
                    dir.display().to_string(),
                    format!("creating the plugins directory: {e}"),
                )
            })?;
        }
        let mut host = PluginHost {
            engine,
            agent_linker,
            broker_linker,
            provider_linker,
            runtime: Arc::new(OnceLock::new()),
            config: config.clone(),
            dir,
            builtins: BTreeMap::new(),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            rescan: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        };
        for b in builtin::builtins() {
            let hash = sha256_hex(b.wasm);
            let loaded = host
                .load(b.file_name, Arc::from(b.wasm), hash, PluginSource::Builtin)
                .await
                .map_err(|e| PluginError::load(format!("built-in {}", b.file_name), e))?;
            host.builtins
                .insert(loaded.plugin.name().to_owned(), loaded);
        }
        let host = Arc::new(host);
        host.rescan().await;
        Ok(host)
    }

    pub fn engine(&self) -> &Arc<PluginEngine> {
        &self.engine
    }

    pub fn plugins_dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Gives provider plugins the host's engines to launch sandboxes on.
    /// Only the first call counts.
    pub fn set_container_runtime(&self, runtime: Arc<dyn ContainerRuntime>) {
        if self.runtime.set(runtime).is_err() {
            tracing::warn!(
                "container runtime for provider plugins was already set; kept the first"
            );
        }
    }

    fn provider_settings(&self, name: &str) -> ProviderSettings {
        let (limits, grants) = self.settings(name);
        ProviderSettings {
            limits,
            grants,
            config: Arc::new(self.config.config.get(name).cloned().unwrap_or_default()),
            runtime: self.runtime.clone(),
        }
    }

    fn broker_settings(&self, name: &str) -> BrokerSettings {
        let (limits, grants) = self.settings(name);
        BrokerSettings {
            limits,
            grants,
            config: Arc::new(self.config.config.get(name).cloned().unwrap_or_default()),
            secrets_file: self.config.secrets_file.as_deref().map(Arc::from),
        }
    }

    fn settings(&self, name: &str) -> (PluginLimits, PluginGrants) {
        let limits = self
            .config
            .overrides
            .get(name)
            .map_or(self.config.limits, |o| o.apply(self.config.limits));
        let grants = self.config.grants.get(name).cloned().unwrap_or_default();
        (limits, grants)
    }

    /// The current version of agent adapter `name`.
    pub fn agent(&self, name: &str) -> Result<Arc<AgentPlugin>, PluginError> {
        let catalog = self.current();
        match catalog.plugins.get(name).map(|l| &l.plugin) {
            Some(Plugin::Agent(plugin)) => Ok(plugin.clone()),
            _ => Err(PluginError::UnknownAgent {
                name: name.to_owned(),
                available: names(&catalog, PluginKind::Agent),
            }),
        }
    }

    /// The current version of plugin `name`, of any kind.
    pub fn get(&self, name: &str) -> Option<Plugin> {
        self.current().plugins.get(name).map(|l| l.plugin.clone())
    }

    /// The current version of provider plugin `name`.
    pub fn provider(&self, name: &str) -> Result<Arc<ProviderPlugin>, PluginError> {
        let catalog = self.current();
        match catalog.plugins.get(name).map(|l| &l.plugin) {
            Some(Plugin::Provider(plugin)) => Ok(plugin.clone()),
            _ => Err(PluginError::UnknownProvider {
                name: name.to_owned(),
                available: names(&catalog, PluginKind::Provider),
            }),
        }
    }

    /// The current version of credential broker `name`.
    pub fn broker(&self, name: &str) -> Result<Arc<BrokerPlugin>, PluginError> {
        let catalog = self.current();
        match catalog.plugins.get(name).map(|l| &l.plugin) {
            Some(Plugin::Broker(plugin)) => Ok(plugin.clone()),
            _ => Err(PluginError::UnknownBroker {
                name: name.to_owned(),
                available: names(&catalog, PluginKind::Broker),
            }),
        }
    }

    /// The names of the loaded plugins of `kind`.
    pub fn names(&self, kind: PluginKind) -> Vec<String> {
        names(&self.current(), kind)
    }

    /// Every loaded plugin, by name.
    pub fn list(&self) -> Vec<PluginSummary> {
        self.current()
            .plugins
            .values()
            .map(|l| PluginSummary {
                name: l.plugin.name().to_owned(),
                kind: l.plugin.kind(),
                version: l.plugin.version().to_owned(),
                source: l.source.clone(),
                hash: l.hash.clone(),
            })
            .collect()
    }

    /// Files in the plugins directory whose current content was refused,
    /// with the reason (a previous version of the same file may still be
    /// active).
    pub fn refused(&self) -> Vec<(PathBuf, String)> {
        self.current()
            .files
            .iter()
            .filter_map(|(path, state)| state.refused.clone().map(|reason| (path.clone(), reason)))
            .collect()
    }

    fn current(&self) -> Arc<Catalog> {
        // A poisoned lock only means a writer panicked mid-swap of an `Arc`;
        // the `Arc` inside is still whole.
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Compiles (or takes from the cache) and links one component.
    async fn load(
        &self,
        source_name: &str,
        wasm: Arc<[u8]>,
        hash: String,
        source: PluginSource,
    ) -> Result<Loaded, PluginError> {
        let engine = self.engine.clone();
        let name = source_name.to_owned();
        let key = hash.clone();
        let (component, outcome) = tokio::task::spawn_blocking(move || {
            engine.cache().load(engine.engine(), &name, &wasm, &key)
        })
        .await
        .map_err(|e| PluginError::load(source_name, format!("compile task failed: {e}")))??;
        tracing::debug!(
            plugin = source_name,
            cached = outcome == CacheOutcome::Hit,
            "component ready"
        );
        self.link(source_name, &component, hash, source).await
    }

    async fn link(
        &self,
        source_name: &str,
        component: &Component,
        hash: String,
        source: PluginSource,
    ) -> Result<Loaded, PluginError> {
        let shape = ComponentShape::of(component, self.engine.engine());
        if let Some(reason) = shape.incompatibility() {
            return Err(PluginError::load(source_name, reason));
        }
        let plugin = match shape.kind {
            Some(PluginKind::Agent) => Plugin::Agent(Arc::new(
                AgentPlugin::load(
                    &self.engine,
                    &self.agent_linker,
                    component,
                    source_name,
                    |name| self.settings(name),
                )
                .await?,
            )),
            Some(PluginKind::Provider) => Plugin::Provider(Arc::new(
                ProviderPlugin::load(
                    &self.engine,
                    &self.provider_linker,
                    component,
                    source_name,
                    |name| self.provider_settings(name),
                )
                .await?,
            )),
            Some(PluginKind::Broker) => Plugin::Broker(Arc::new(
                BrokerPlugin::load(
                    &self.engine,
                    &self.broker_linker,
                    component,
                    source_name,
                    |name| self.broker_settings(name),
                )
                .await?,
            )),
            None => return Err(PluginError::load(source_name, "not a paddock plugin")),
        };
        Ok(Loaded {
            plugin,
            source,
            hash,
        })
    }

    /// Looks at the plugins directory again and applies what changed: new
    /// and replaced files are loaded, removed ones dropped. Safe to call at
    /// any time; concurrent calls run one after the other.
    pub async fn rescan(&self) {
        let _guard = self.rescan.lock().await;
        let previous = self.current();
        let mut files = BTreeMap::new();
        for path in self.wasm_files() {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let (modified, len) = (meta.modified().ok(), meta.len());
            let old = previous.files.get(&path);
            if let Some(old) = old.filter(|o| o.modified == modified && o.len == len) {
                files.insert(path, old.clone());
                continue;
            }
            let wasm = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "cannot read plugin file");
                    continue;
                }
            };
            let hash = sha256_hex(&wasm);
            let (loaded, refused) = match old {
                Some(old) if old.hash == hash => (old.loaded.clone(), old.refused.clone()),
                _ => {
                    let source_name = path.display().to_string();
                    let source = PluginSource::File(path.clone());
                    match self
                        .load(&source_name, wasm.into(), hash.clone(), source)
                        .await
                    {
                        Ok(loaded) => (Some(loaded), None),
                        Err(error) => {
                            let kept = old.and_then(|o| o.loaded.as_ref());
                            tracing::error!(
                                file = %path.display(),
                                %error,
                                kept_version = kept.map(|l| l.plugin.version()),
                                "plugin file refused; the previous version stays active",
                            );
                            (kept.cloned(), Some(error.to_string()))
                        }
                    }
                }
            };
            let state = FileState {
                modified,
                len,
                hash,
                loaded,
                refused,
            };
            files.insert(path, state);
        }
        let catalog = Catalog {
            plugins: self.resolve(&files),
            files,
        };
        log_changes(&previous.plugins, &catalog.plugins);
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// How many rescans have completed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Built-ins, overridden by directory plugins of the same name. Two files
    /// claiming one name: the first in path order wins, the other is logged.
    fn resolve(&self, files: &BTreeMap<PathBuf, FileState>) -> BTreeMap<String, Loaded> {
        let mut plugins = self.builtins.clone();
        let mut from_files: BTreeMap<String, &Path> = BTreeMap::new();
        for (path, state) in files {
            let Some(loaded) = &state.loaded else {
                continue;
            };
            let name = loaded.plugin.name();
            if let Some(first) = from_files.get(name) {
                tracing::warn!(plugin = name, file = %path.display(), used = %first.display(), "two plugin files have the same name; this one is ignored");
                continue;
            }
            from_files.insert(name.to_owned(), path);
            plugins.insert(name.to_owned(), loaded.clone());
        }
        plugins
    }

    fn wasm_files(&self) -> Vec<PathBuf> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot list the plugins directory");
                return Vec::new();
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "wasm") && path.is_file())
            .collect();
        paths.sort();
        paths
    }
}

fn log_changes(before: &BTreeMap<String, Loaded>, after: &BTreeMap<String, Loaded>) {
    for (name, new) in after {
        let version = new.plugin.version();
        match before.get(name) {
            None => {
                tracing::info!(plugin = %name, version = %version, source = %new.source, hash = %&new.hash[..12], "plugin loaded")
            }
            Some(old) if !old.plugin.same(&new.plugin) => {
                tracing::info!(plugin = %name, version = %version, previous = %old.plugin.version(), source = %new.source, hash = %&new.hash[..12], "plugin replaced")
            }
            Some(_) => {}
        }
    }
    for name in before.keys().filter(|n| !after.contains_key(*n)) {
        tracing::info!(plugin = %name, "plugin removed");
    }
}

fn names(catalog: &Catalog, kind: PluginKind) -> Vec<String> {
    catalog
        .plugins
        .values()
        .filter(|l| l.plugin.kind() == kind)
        .map(|l| l.plugin.name().to_owned())
        .collect()
}
