//! Paddock: runs coding agents in sandboxes on behalf of a platform.
//!
//! This crate is the host. [`plugin`] runs the WebAssembly plugins (agent
//! adapters, credential brokers and sandbox providers); [`session`] the
//! sessions and their execs; [`secrets`] grants, audit and redaction;
//! [`config`] reads the operator's configuration; [`cli`] is the `paddock`
//! command.

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod exec;
pub mod gateway;
pub mod link;
pub mod plugin;
pub mod provider;
pub mod secrets;
pub mod session;
