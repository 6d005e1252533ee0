//! Environment variables the operator granted to this plugin
//! (`[plugins.grants.<name>] env = [...]`): the way a secret such as a token
//! reaches a plugin, since `config` carries none. A plugin without a grant
//! sees no environment at all.
//!
//! In the component this is WASI's environment (`std::env::var`). Natively
//! (unit tests) it reads the mock host of [`crate::testing::provider`], never
//! the test process's own environment, so tests are hermetic.

/// The value of variable `name`, if granted, set and valid UTF-8.
pub fn var(name: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return std::env::var(name).ok();
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::provider::host::env_var(name);
}
