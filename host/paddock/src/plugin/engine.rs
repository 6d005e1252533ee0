//! The one wasmtime [`Engine`] every plugin runs on, and its epoch ticker.

use std::path::Path;
use std::time::Duration;

use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
};

use super::cache::ComponentCache;
use super::error::PluginError;
use super::limits::PluginLimits;

/// Default number of plugin instances alive at once: 1,024. Each agent exec
/// holds one parser instance for its whole run, so this bounds concurrent
/// agent runs per host; brokers and providers hold one only during a call.
/// The pool reserves address space (not memory) for each slot up front.
pub const DEFAULT_MAX_INSTANCES: u32 = 1024;

/// How often the epoch advances: 10 ms. Deadlines are checked at this
/// granularity; a shorter tick costs more wake-ups for no real gain.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings that shape the engine (and so the compiled-code cache key).
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    pub max_instances: u32,
    /// The largest memory cap of any plugin: the size of a pool slot.
    pub max_memory_bytes: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_instances: DEFAULT_MAX_INSTANCES,
            max_memory_bytes: PluginLimits::default().memory_bytes(),
        }
    }
}

/// The shared engine: configuration, compiled-component cache, ticker.
pub struct PluginEngine {
    engine: Engine,
    cache: ComponentCache,
}

impl PluginEngine {
    /// Builds the engine with the pooling allocator and epoch interruption,
    /// and starts the ticker thread (it ends by itself when the engine is
    /// dropped). Compiled components are cached under `cache_dir`.
    pub fn new(settings: EngineSettings, cache_dir: &Path) -> Result<Self, PluginError> {
        let mut pool = PoolingAllocationConfig::default();
        // A component built from Rust for wasm32-wasip2 has a few core
        // instances (the program and its shims) and one linear memory; leave
        // room for components from other toolchains. Each memory slot
        // reserves address space (not memory) for a 4 GiB memory plus
        // guard, which lets compiled code skip bounds checks: 1,024 slots
        // take ~4 TiB of the 128 TiB a process can address.
        pool.total_component_instances(settings.max_instances)
            .total_core_instances(settings.max_instances.saturating_mul(4))
            .total_memories(settings.max_instances)
            .total_tables(settings.max_instances.saturating_mul(4))
            .total_stacks(settings.max_instances)
            .max_core_instances_per_component(16)
            .max_memories_per_component(2)
            .max_tables_per_component(16)
            .max_memory_size(settings.max_memory_bytes)
            // Keep a little of each freed slot's memory and stack resident
            // so the next instantiation does not fault it in again.
            .linear_memory_keep_resident(64 << 10)
            .table_keep_resident(16 << 10);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            // Plugins use the synchronous WASI p2 call model; the concurrency
            // machinery of WASI p3 would only add per-call cost.
            .concurrency_support(false)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        // `PADDOCK_PLUGIN_PROFILER=perfmap` writes /tmp/perf-PID.map so that
        // `perf report` names the plugins' functions: for plugin authors
        // and for finding where a slow plugin spends its time.
        if std::env::var_os("PADDOCK_PLUGIN_PROFILER").is_some_and(|v| v == "perfmap") {
            config.profiler(ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine(format!("{e:#}")))?;

        let weak = engine.weak();
        std::thread::Builder::new()
            .name("paddock-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| PluginError::Engine(format!("starting the epoch ticker: {e}")))?;

        let cache = ComponentCache::new(cache_dir, &engine);
        Ok(Self { engine, cache })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn cache(&self) -> &ComponentCache {
        &self.cache
    }
}
