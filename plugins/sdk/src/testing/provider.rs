//! A mock host for unit-testing provider plugins natively, with no wasm.
//! (It is also the native host behind [`super::broker`], which adds
//! secrets and scripted HTTP routes on top.)
//!
//! Natively, [`crate::provider::runtime`], [`crate::http::send`],
//! [`crate::config::get`], [`crate::env::var`], [`crate::secrets::get`] and
//! [`crate::log`] call the [`MockHost`] installed on the current thread. It has a small in-memory
//! container runtime (launch gives `mock-1`, `mock-2`, …; list, inspect and
//! destroy see what was launched and not destroyed), answers HTTP with a
//! closure the test gives (404 otherwise), and records every call.
//!
//! ```ignore
//! use paddock_sdk::testing::provider::MockHost;
//! let mock = MockHost::new().config("max_cpu_millis", "2000").install();
//! let handle = MyProvider::provision(request)?;
//! assert_eq!(mock.launches()[0].resources.cpu_millis, Some(2000));
//! ```
//!
//! The mock is thread-local (the test harness runs tests on threads of
//! their own) and uninstalled when the [`Mock`] guard drops. With no mock
//! installed, the imports fail with a message that says so.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::rc::Rc;

use crate::http::{HttpError, Request, Response};
use crate::log::Level;
use crate::provider::{LaunchPlan, PluginError, SandboxHandle};

type HttpFn = dyn FnMut(&Request) -> Result<Response, HttpError>;
type LaunchFn = dyn FnMut(&LaunchPlan) -> Result<SandboxHandle, PluginError>;

/// One call a plugin made to the host, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Launch(LaunchPlan),
    Destroy(String),
    Inspect(String),
    List,
    Http(Request),
    Config(String),
    Env(String),
    /// A secret read (the name; values are never recorded).
    Secret(String),
}

/// What the mock host answers with; build it, then [`install`](Self::install).
#[derive(Default)]
pub struct MockHost {
    config: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
    secrets: BTreeMap<String, String>,
    sandboxes: BTreeMap<String, SandboxHandle>,
    http: Option<Rc<RefCell<HttpFn>>>,
    launch: Option<Rc<RefCell<LaunchFn>>>,
}

impl MockHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// A `config` value (`[plugins.config.<name>]`).
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.config.insert(key.to_owned(), value.to_owned());
        self
    }

    /// A granted environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    /// A secret granted to the plugin (`secrets::get` answers it; any other
    /// name is `denied`, as on the real host).
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.insert(name.to_owned(), value.to_owned());
        self
    }

    /// A sandbox the runtime already holds for this plugin (launched before).
    pub fn sandbox(mut self, handle: SandboxHandle) -> Self {
        self.sandboxes.insert(handle.id.clone(), handle);
        self
    }

    /// Answers every HTTP request (404 for all when not set).
    pub fn on_http(
        mut self,
        f: impl FnMut(&Request) -> Result<Response, HttpError> + 'static,
    ) -> Self {
        self.http = Some(Rc::new(RefCell::new(f)));
        self
    }

    /// Replaces the in-memory runtime's launch (e.g. to fail it). A handle
    /// it returns joins the live set like a launched one.
    pub fn on_launch(
        mut self,
        f: impl FnMut(&LaunchPlan) -> Result<SandboxHandle, PluginError> + 'static,
    ) -> Self {
        self.launch = Some(Rc::new(RefCell::new(f)));
        self
    }

    /// Installs the mock on this thread until the returned guard drops.
    pub fn install(self) -> Mock {
        HOST.with(|h| {
            *h.borrow_mut() = Some(State {
                host: self,
                calls: Vec::new(),
                logs: Vec::new(),
                next_id: 1,
            });
        });
        Mock {
            _not_send: PhantomData,
        }
    }
}

struct State {
    host: MockHost,
    calls: Vec<Call>,
    logs: Vec<(Level, String)>,
    next_id: u64,
}

thread_local! {
    static HOST: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// The installed mock: read what the plugin did. Uninstalls on drop.
pub struct Mock {
    // Thread-local: the guard must stay on the thread it installed on.
    _not_send: PhantomData<*const ()>,
}

impl Mock {
    fn read<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        HOST.with(|h| match h.borrow_mut().as_mut() {
            Some(state) => f(state),
            None => panic!("the mock host was uninstalled while its guard lives"),
        })
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.read(|s| s.calls.clone())
    }

    /// The plans passed to `launch`, in order.
    pub fn launches(&self) -> Vec<LaunchPlan> {
        self.filter(|c| match c {
            Call::Launch(p) => Some(p.clone()),
            _ => None,
        })
    }

    /// The ids passed to `destroy`, in order.
    pub fn destroyed(&self) -> Vec<String> {
        self.filter(|c| match c {
            Call::Destroy(id) => Some(id.clone()),
            _ => None,
        })
    }

    /// The HTTP requests sent, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.filter(|c| match c {
            Call::Http(r) => Some(r.clone()),
            _ => None,
        })
    }

    /// The names of the secrets read, in order.
    pub fn secret_reads(&self) -> Vec<String> {
        self.filter(|c| match c {
            Call::Secret(name) => Some(name.clone()),
            _ => None,
        })
    }

    /// What the plugin logged.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.read(|s| s.logs.clone())
    }

    /// The sandboxes the in-memory runtime holds now.
    pub fn live(&self) -> Vec<SandboxHandle> {
        self.read(|s| s.host.sandboxes.values().cloned().collect())
    }

    /// Changes a config value mid-test.
    pub fn set_config(&self, key: &str, value: &str) {
        self.read(|s| s.host.config.insert(key.to_owned(), value.to_owned()));
    }

    /// Forgets the calls and logs recorded so far.
    pub fn clear_calls(&self) {
        self.read(|s| {
            s.calls.clear();
            s.logs.clear();
        });
    }

    fn filter<T>(&self, f: impl Fn(&Call) -> Option<T>) -> Vec<T> {
        self.read(|s| s.calls.iter().filter_map(&f).collect())
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        HOST.with(|h| h.borrow_mut().take());
    }
}

/// The native side of the SDK's host imports.
pub(crate) mod host {
    use super::*;

    const NOT_INSTALLED: &str =
        "no mock host installed on this thread (paddock_sdk::testing::provider::MockHost::install)";

    /// Runs `f` on the installed state, or returns `None`.
    fn with<T>(f: impl FnOnce(&mut State) -> T) -> Option<T> {
        HOST.with(|h| h.borrow_mut().as_mut().map(f))
    }

    pub(crate) fn launch(plan: &LaunchPlan) -> Result<SandboxHandle, PluginError> {
        let custom = with(|s| {
            s.calls.push(Call::Launch(plan.clone()));
            s.host.launch.clone()
        })
        .ok_or_else(|| PluginError::Unavailable(NOT_INSTALLED.into()))?;
        // The state is not borrowed while the test's closure runs, so the
        // closure may look at the mock too.
        let handle = match custom {
            Some(f) => (f.borrow_mut())(plan)?,
            None => with(|s| {
                let n = s.next_id;
                s.next_id += 1;
                SandboxHandle {
                    id: format!("mock-{n}"),
                    url: format!("http://mock-{n}.sandbox.test:7070"),
                    token: None,
                    labels: plan.labels.clone(),
                    expires_at: None,
                }
            })
            .ok_or_else(|| PluginError::Unavailable(NOT_INSTALLED.into()))?,
        };
        with(|s| s.host.sandboxes.insert(handle.id.clone(), handle.clone()));
        Ok(handle)
    }

    pub(crate) fn destroy(id: &str) -> Result<(), PluginError> {
        with(|s| {
            s.calls.push(Call::Destroy(id.to_owned()));
            s.host.sandboxes.remove(id);
        })
        .ok_or_else(|| PluginError::Unavailable(NOT_INSTALLED.into()))
    }

    pub(crate) fn inspect(id: &str) -> Result<Option<SandboxHandle>, PluginError> {
        with(|s| {
            s.calls.push(Call::Inspect(id.to_owned()));
            s.host.sandboxes.get(id).cloned()
        })
        .ok_or_else(|| PluginError::Unavailable(NOT_INSTALLED.into()))
    }

    pub(crate) fn list() -> Result<Vec<SandboxHandle>, PluginError> {
        with(|s| {
            s.calls.push(Call::List);
            s.host.sandboxes.values().cloned().collect()
        })
        .ok_or_else(|| PluginError::Unavailable(NOT_INSTALLED.into()))
    }

    pub(crate) fn http_send(req: &Request) -> Result<Response, HttpError> {
        let custom = with(|s| {
            s.calls.push(Call::Http(req.clone()));
            s.host.http.clone()
        })
        .ok_or_else(|| HttpError::Transport(NOT_INSTALLED.into()))?;
        match custom {
            Some(f) => (f.borrow_mut())(req),
            None => Ok(Response::new(404, "no HTTP handler in the mock host")),
        }
    }

    pub(crate) fn config_get(key: &str) -> Option<String> {
        with(|s| {
            s.calls.push(Call::Config(key.to_owned()));
            s.host.config.get(key).cloned()
        })
        .flatten()
    }

    pub(crate) fn env_var(name: &str) -> Option<String> {
        with(|s| {
            s.calls.push(Call::Env(name.to_owned()));
            s.host.env.get(name).cloned()
        })
        .flatten()
    }

    pub(crate) fn secret_get(name: &str) -> Result<String, PluginError> {
        with(|s| {
            s.calls.push(Call::Secret(name.to_owned()));
            s.host.secrets.get(name).cloned()
        })
        .ok_or_else(|| PluginError::Unavailable(NOT_INSTALLED.into()))?
        .ok_or_else(|| {
            PluginError::Denied(format!("secret `{name}` is not granted to this plugin"))
        })
    }

    pub(crate) fn log(level: Level, message: &str) {
        with(|s| s.logs.push((level, message.to_owned())));
    }
}
