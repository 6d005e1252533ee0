//! runnerd: the small daemon inside every Paddock sandbox. It runs execs
//! (process trees with a seq-numbered, replayable output stream) and serves
//! the workspace's files to the host over HTTP, behind a bearer token.
//!
//! The library is what the host shares with it:
//!
//! - [`proto`]: every request and response type and the frame codec of exec
//!   output streams. Depends only on serde, serde_json and bytes.
//! - `client` (feature `client`, off by default): an async HTTP client for
//!   every endpoint.
//! - `daemon` (feature `daemon`, on by default): the daemon itself, used by
//!   the `runnerd` binary. The host builds this crate with
//!   `default-features = false, features = ["client"]` and gets none of it.
//!
//! `README.md` beside `Cargo.toml` documents the HTTP API.

pub mod proto;

#[cfg(feature = "client")]
pub mod client;

#[cfg(feature = "daemon")]
pub mod daemon;
