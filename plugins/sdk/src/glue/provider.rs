//! `provider` world: [`Component`] implements the generated `Guest` trait
//! for any [`SandboxProvider`], and the `container-runtime` import is
//! wrapped for [`crate::provider::runtime`]. `outgoing-http` and `config`,
//! shared with the `broker` world, are wrapped in [`super`].

use std::marker::PhantomData;

use crate::provider::{self as sdk, SandboxProvider};

pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "provider",
        pub_export_macro: true,
        export_macro_name: "__export_provider",
        default_bindings_module: "paddock_sdk::glue::provider::bindings",
        runtime_path: "paddock_sdk::glue::wit_bindgen::rt",
    });
}

pub use bindings::__export_provider;

use bindings::exports::paddock::plugin::sandbox_provider as wit;
use bindings::paddock::plugin::container_runtime as wit_runtime;
use bindings::paddock::plugin::sandbox_types as wit_sandbox;
use bindings::paddock::plugin::types as wit_types;

/// The component for provider `P`.
pub struct Component<P>(PhantomData<P>);

impl<P: SandboxProvider> wit::Guest for Component<P> {
    fn info() -> wit::ProviderInfo {
        let info = P::info();
        wit::ProviderInfo {
            name: info.name,
            display_name: info.display_name,
            version: info.version,
            description: info.description,
        }
    }

    fn provision(
        req: wit::ProvisionRequest,
    ) -> Result<wit_sandbox::SandboxHandle, wit_types::PluginError> {
        let req = sdk::ProvisionRequest {
            session_id: req.session_id,
            owner: req.owner,
            labels: from_kv(req.labels).collect(),
            env: from_kv(req.env).collect(),
            resources: resources_from_wit(req.resources),
            network: network_from_wit(req.network),
            ttl_secs: req.ttl_secs,
        };
        P::provision(req).map(handle_to_wit).map_err(error_to_wit)
    }

    fn destroy(id: String) -> Result<(), wit_types::PluginError> {
        P::destroy(&id).map_err(error_to_wit)
    }

    fn list() -> Result<Vec<wit_sandbox::SandboxHandle>, wit_types::PluginError> {
        P::list()
            .map(|hs| hs.into_iter().map(handle_to_wit).collect())
            .map_err(error_to_wit)
    }

    fn inspect(id: String) -> Result<Option<wit_sandbox::SandboxHandle>, wit_types::PluginError> {
        P::inspect(&id)
            .map(|h| h.map(handle_to_wit))
            .map_err(error_to_wit)
    }
}

pub(crate) fn runtime_launch(
    plan: &sdk::LaunchPlan,
) -> Result<sdk::SandboxHandle, sdk::PluginError> {
    let plan = wit_runtime::LaunchPlan {
        session_id: plan.session_id.clone(),
        owner: plan.owner.clone(),
        image: plan.image.clone(),
        env: to_kv(plan.env.iter().map(|(k, v)| (k, v))),
        labels: to_kv(plan.labels.iter()),
        resources: resources_to_wit(plan.resources),
        network: network_to_wit(&plan.network),
        runtime_class: plan.runtime_class.clone(),
        ttl_secs: plan.ttl_secs,
    };
    wit_runtime::launch(&plan)
        .map(handle_from_wit)
        .map_err(error_from_wit)
}

pub(crate) fn runtime_destroy(id: &str) -> Result<(), sdk::PluginError> {
    wit_runtime::destroy(id).map_err(error_from_wit)
}

pub(crate) fn runtime_inspect(id: &str) -> Result<Option<sdk::SandboxHandle>, sdk::PluginError> {
    wit_runtime::inspect(id)
        .map(|h| h.map(handle_from_wit))
        .map_err(error_from_wit)
}

pub(crate) fn runtime_list() -> Result<Vec<sdk::SandboxHandle>, sdk::PluginError> {
    wit_runtime::list()
        .map(|hs| hs.into_iter().map(handle_from_wit).collect())
        .map_err(error_from_wit)
}

fn resources_from_wit(r: wit_sandbox::Resources) -> sdk::Resources {
    sdk::Resources {
        cpu_millis: r.cpu_millis,
        memory_mib: r.memory_mib,
        pids: r.pids,
        disk_mib: r.disk_mib,
    }
}

fn resources_to_wit(r: sdk::Resources) -> wit_sandbox::Resources {
    wit_sandbox::Resources {
        cpu_millis: r.cpu_millis,
        memory_mib: r.memory_mib,
        pids: r.pids,
        disk_mib: r.disk_mib,
    }
}

fn network_from_wit(n: wit_sandbox::NetworkPolicy) -> sdk::NetworkPolicy {
    sdk::NetworkPolicy {
        egress: n.egress,
        allow_hosts: n.allow_hosts,
    }
}

fn network_to_wit(n: &sdk::NetworkPolicy) -> wit_sandbox::NetworkPolicy {
    wit_sandbox::NetworkPolicy {
        egress: n.egress,
        allow_hosts: n.allow_hosts.clone(),
    }
}

fn handle_to_wit(h: sdk::SandboxHandle) -> wit_sandbox::SandboxHandle {
    wit_sandbox::SandboxHandle {
        id: h.id,
        url: h.url,
        token: h.token,
        labels: to_kv(h.labels.iter()),
        expires_at: h.expires_at,
    }
}

fn handle_from_wit(h: wit_sandbox::SandboxHandle) -> sdk::SandboxHandle {
    sdk::SandboxHandle {
        id: h.id,
        url: h.url,
        token: h.token,
        labels: from_kv(h.labels).collect(),
        expires_at: h.expires_at,
    }
}

super::world_conversions!();
