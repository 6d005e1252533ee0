//! The host's container engine (`container-runtime`): whichever of
//! local-process, local-docker or cluster the operator configured. A
//! provider plugin decides the policy; the host launches.
//!
//! The host scopes every call to the calling plugin: [`list`] and
//! [`inspect`] see only sandboxes this plugin launched, and [`destroy`]
//! can end only those. Handles never carry runnerd's token: the host keeps
//! it.
//!
//! Natively (unit tests), these call the mock host of
//! [`crate::testing::provider`].

use super::{LaunchPlan, PluginError, SandboxHandle};

/// Starts a sandbox as `plan` says and waits until its runnerd answers.
pub fn launch(plan: &LaunchPlan) -> Result<SandboxHandle, PluginError> {
    #[cfg(all(target_arch = "wasm32", feature = "provider"))]
    return crate::glue::provider::runtime_launch(plan);
    #[cfg(all(target_arch = "wasm32", not(feature = "provider")))]
    return {
        let _ = plan;
        Err(not_linked())
    };
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::provider::host::launch(plan);
}

/// Destroys a sandbox this plugin launched; an unknown id is not an error.
pub fn destroy(id: &str) -> Result<(), PluginError> {
    #[cfg(all(target_arch = "wasm32", feature = "provider"))]
    return crate::glue::provider::runtime_destroy(id);
    #[cfg(all(target_arch = "wasm32", not(feature = "provider")))]
    return {
        let _ = id;
        Err(not_linked())
    };
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::provider::host::destroy(id);
}

/// A sandbox this plugin launched, if it is still alive.
pub fn inspect(id: &str) -> Result<Option<SandboxHandle>, PluginError> {
    #[cfg(all(target_arch = "wasm32", feature = "provider"))]
    return crate::glue::provider::runtime_inspect(id);
    #[cfg(all(target_arch = "wasm32", not(feature = "provider")))]
    return {
        let _ = id;
        Err(not_linked())
    };
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::provider::host::inspect(id);
}

/// Every live sandbox this plugin launched (for per-owner limits and
/// re-adoption).
pub fn list() -> Result<Vec<SandboxHandle>, PluginError> {
    #[cfg(all(target_arch = "wasm32", feature = "provider"))]
    return crate::glue::provider::runtime_list();
    #[cfg(all(target_arch = "wasm32", not(feature = "provider")))]
    return Err(not_linked());
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::provider::host::list();
}

#[cfg(all(target_arch = "wasm32", not(feature = "provider")))]
fn not_linked() -> PluginError {
    PluginError::Internal(
        "paddock-sdk was built without its `provider` feature: container-runtime is not linked"
            .into(),
    )
}
