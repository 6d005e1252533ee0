//! The plugin runtime: WebAssembly components run by wasmtime.
//!
//! One [`PluginEngine`] (pooling allocator, epoch interruption, compiled
//! component cache) runs every plugin. [`PluginHost`] holds what is loaded —
//! the built-ins and the plugins directory, hot-reloaded by [`watch`] — and
//! hands out `Arc`s of the current version of each plugin. Every call runs
//! under a deadline and a memory cap ([`PluginLimits`]); a plugin gets no
//! filesystem, environment, network or secrets unless [`PluginGrants`] say
//! so. Agent adapters ([`AgentPlugin`]), credential brokers
//! ([`BrokerPlugin`]) and sandbox providers ([`ProviderPlugin`]) share one
//! runtime and one namespace of names. A
//! failing plugin is an error for that call or that file, never for the
//! host.

mod agent;
pub mod broker;
mod builtin;
mod cache;
mod capabilities;
mod engine;
mod error;
mod http;
mod inspect;
mod limits;
pub mod provider;
mod registry;
pub mod secrets;
mod store;
mod watcher;

pub use agent::{AgentParser, AgentPlugin};
pub use broker::{BrokerInfo, BrokerPlugin, Credential, CredentialFile, Grant};
pub use builtin::{Builtin, builtins};
pub use cache::{CacheOutcome, ComponentCache, sha256_hex};
pub use capabilities::{DirGrant, PluginGrants};
pub use engine::{DEFAULT_MAX_INSTANCES, EPOCH_TICK, EngineSettings, PluginEngine};
pub use error::PluginError;
pub use inspect::{ComponentShape, PluginKind, WIT_VERSION};
pub use limits::{DEFAULT_CALL_TIMEOUT_MS, DEFAULT_MEMORY_MIB, LimitsOverride, PluginLimits};
pub use provider::{ContainerRuntime, ProviderPlugin};
pub use registry::{Plugin, PluginHost, PluginSource, PluginSummary};
pub use watcher::{DEBOUNCE, WatchHandle, watch};
