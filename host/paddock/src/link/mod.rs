//! Links: users' desktops running `paddock link`, the registry that knows
//! which are online, the signatures on what the host asks of them, and
//! dispatch (where a run goes).

pub mod connections;
pub mod desktop;
pub mod dispatch;
pub mod registry;
pub mod signing;
pub mod tunnel;
pub mod wire;

pub use dispatch::{
    DispatchError, DispatchTarget, Dispatcher, Pins, Preference, RunsIn, USER_DESKTOP,
};
pub use registry::{
    AgentCli, Capabilities, DEFAULT_LINK_TTL, Link, LinkError, LinkRegistry, MemoryRegistry,
};
