//! The per-instance state every plugin store carries: WASI (with nothing
//! granted by default), the memory limiter and the call deadline.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::io::AsyncWrite;
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::PluginGrants;
use super::broker::BrokerCtx;
use super::engine::PluginEngine;
use super::error::PluginError;
use super::limits::PluginLimits;
use super::provider::ProviderCtx;

/// Data of one plugin store.
pub struct HostState {
    pub(crate) plugin: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    /// When the call in progress must stop.
    deadline: Instant,
    /// What the plugin may reach with `outgoing-http` (and, for brokers,
    /// which secrets it may read).
    pub(crate) grants: PluginGrants,
    /// Set for provider plugins: their runtime and config.
    pub(crate) provider: Option<ProviderCtx>,
    /// Set for brokers: their config and the operator's secrets file.
    pub(crate) broker: Option<BrokerCtx>,
}

impl HostState {
    pub(crate) fn set_provider(&mut self, ctx: ProviderCtx) {
        self.provider = Some(ctx);
    }

    pub(crate) fn set_broker(&mut self, ctx: BrokerCtx) {
        self.broker = Some(ctx);
    }

    /// The plugin's config (`[plugins.config.<name>]`).
    pub(crate) fn config(&self) -> Option<&BTreeMap<String, String>> {
        match (&self.provider, &self.broker) {
            (Some(p), _) => Some(&*p.config),
            (None, Some(b)) => Some(&*b.config),
            (None, None) => None,
        }
    }

    /// Runs a host call the plugin made without charging its time to the
    /// plugin's deadline: host calls have deadlines of their own.
    pub(crate) async fn off_the_clock<R>(&mut self, call: impl Future<Output = R>) -> R {
        let started = Instant::now();
        let result = call.await;
        self.deadline += started.elapsed();
        result
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and remembers that the cap was hit, so a failed call
/// can say "memory cap" instead of a bare trap.
struct MemoryCap {
    limit: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Err(wasmtime::format_err!(
                "memory cap of {} bytes exceeded",
                self.limit
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far past any real
        // plugin and stops a runaway one.
        Ok(desired <= 1 << 20)
    }
}

/// Makes a store for one instance of `plugin`, under `limits`.
pub(crate) fn new_store(
    engine: &PluginEngine,
    plugin: &Arc<str>,
    limits: &PluginLimits,
    wasi: WasiCtx,
) -> Store<HostState> {
    let mut store = Store::new(
        engine.engine(),
        HostState {
            plugin: plugin.clone(),
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap {
                limit: limits.memory_bytes(),
                hit: false,
            },
            deadline: Instant::now(),
            grants: PluginGrants::default(),
            provider: None,
            broker: None,
        },
    );
    store.limiter(|state| &mut state.limiter);
    // Every epoch tick past the deadline check: yield to the executor while
    // within the call's budget, interrupt once it is spent.
    store.epoch_deadline_callback(|ctx| {
        if Instant::now() >= ctx.data().deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store
}

/// A linker with WASI p2 (nothing granted unless configured) and one
/// world's imports, added by `add_world` (its bindings' `add_to_linker`).
pub(crate) fn world_linker(
    engine: &PluginEngine,
    add_world: impl FnOnce(&mut Linker<HostState>) -> wasmtime::Result<()>,
) -> Result<Linker<HostState>, PluginError> {
    let mut linker = Linker::new(engine.engine());
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
    add_world(&mut linker).map_err(|e| PluginError::Engine(format!("{e:#}")))?;
    Ok(linker)
}

/// Links `component` ahead of instantiation; `source_name` names it in
/// the error when an import is missing.
pub(crate) fn instance_pre(
    linker: &Linker<HostState>,
    component: &Component,
    source_name: &str,
) -> Result<InstancePre<HostState>, PluginError> {
    linker
        .instantiate_pre(component)
        .map_err(|e| PluginError::load(source_name, format!("{e:#}")))
}

/// Runs one export call of a plugin whose calls are independent (brokers,
/// providers): a fresh store and instance under `limits`, `grants` (for
/// `outgoing-http` and `secrets`) and `prepare` giving the store its
/// world's context, and both the instantiation and the call
/// under the deadline.
pub(crate) async fn fresh_call<I, R>(
    engine: &PluginEngine,
    plugin: &Arc<str>,
    limits: &PluginLimits,
    grants: &PluginGrants,
    prepare: impl FnOnce(&mut HostState),
    instantiate: impl AsyncFnOnce(&mut Store<HostState>) -> wasmtime::Result<I>,
    call: impl AsyncFnOnce(&I, &mut Store<HostState>) -> wasmtime::Result<R>,
) -> Result<R, PluginError> {
    let wasi = grants.wasi_ctx(plugin).build();
    let mut store = new_store(engine, plugin, limits, wasi);
    store.data_mut().grants = grants.clone();
    prepare(store.data_mut());
    let instance = guarded(&mut store, limits, instantiate).await?;
    guarded(&mut store, limits, async |store| {
        call(&instance, store).await
    })
    .await
}

/// Runs one call into the plugin under the deadline of `limits`, and turns
/// a failure into the [`PluginError`] that says what happened.
pub(crate) async fn guarded<R>(
    store: &mut Store<HostState>,
    limits: &PluginLimits,
    call: impl AsyncFnOnce(&mut Store<HostState>) -> wasmtime::Result<R>,
) -> Result<R, PluginError> {
    store.data_mut().deadline = Instant::now() + limits.call_timeout();
    store.set_epoch_deadline(1);
    match call(store).await {
        Ok(value) => Ok(value),
        Err(error) => Err(classify(store, limits, error)),
    }
}

fn classify(
    store: &Store<HostState>,
    limits: &PluginLimits,
    error: wasmtime::Error,
) -> PluginError {
    let plugin = store.data().plugin.to_string();
    let error = if store.data().limiter.hit {
        PluginError::MemoryCap {
            plugin,
            limit_mib: limits.memory_mib,
        }
    } else if matches!(
        error.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::Interrupt)
    ) {
        PluginError::Deadline {
            plugin,
            timeout: limits.call_timeout(),
        }
    } else {
        tracing::debug!(plugin = %plugin, error = ?error, "plugin call failed (full error)");
        // The trap code says what happened; the wasm backtrace above it is
        // for the debug log.
        let message = match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::UnreachableCodeReached) => {
                "wasm `unreachable` executed (a panic in the plugin)".to_owned()
            }
            Some(trap) => trap.to_string(),
            None => format!("{error:#}"),
        };
        PluginError::Trap { plugin, message }
    };
    tracing::warn!(plugin = %store.data().plugin, %error, "plugin call failed");
    error
}

/// A plugin's stdout or stderr: each write becomes a log line tagged with
/// the plugin, so nothing a plugin prints is lost and nothing blocks it.
pub struct LogStream {
    plugin: Arc<str>,
    stream: &'static str,
}

impl LogStream {
    pub fn new(plugin: &str, stream: &'static str) -> Self {
        Self {
            plugin: plugin.into(),
            stream,
        }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LogWriter {
            plugin: self.plugin.clone(),
            stream: self.stream,
        })
    }
}

struct LogWriter {
    plugin: Arc<str>,
    stream: &'static str,
}

/// Longest piece of one write that reaches the log.
const MAX_LOGGED_WRITE: usize = 4096;

impl AsyncWrite for LogWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let shown = &buf[..buf.len().min(MAX_LOGGED_WRITE)];
        let text = String::from_utf8_lossy(shown);
        let text = text.trim_end();
        if !text.is_empty() {
            tracing::info!(plugin = %self.plugin, stream = self.stream, truncated = buf.len() > shown.len(), "{text}");
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
