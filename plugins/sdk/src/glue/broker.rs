//! `broker` world: [`Component`] implements the generated `Guest` trait for
//! any [`CredentialBroker`], and the `secrets` import is wrapped for
//! [`crate::secrets`]. `outgoing-http` and `config`, shared with the
//! `provider` world, are wrapped in [`super`].

use std::marker::PhantomData;

use crate::broker::{self as sdk, CredentialBroker};

pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "broker",
        pub_export_macro: true,
        export_macro_name: "__export_broker",
        default_bindings_module: "paddock_sdk::glue::broker::bindings",
        runtime_path: "paddock_sdk::glue::wit_bindgen::rt",
    });
}

pub use bindings::__export_broker;

use bindings::exports::paddock::plugin::credential_broker as wit;
use bindings::paddock::plugin::secrets as wit_secrets;
use bindings::paddock::plugin::types as wit_types;

/// The component for broker `B`.
pub struct Component<B>(PhantomData<B>);

impl<B: CredentialBroker> wit::Guest for Component<B> {
    fn info() -> wit::BrokerInfo {
        let info = B::info();
        wit::BrokerInfo {
            name: info.name,
            display_name: info.display_name,
            version: info.version,
            description: info.description,
        }
    }

    fn issue(grant: wit::Grant) -> Result<wit::Credential, wit_types::PluginError> {
        let grant = sdk::Grant {
            session_id: grant.session_id,
            owner: grant.owner,
            name: grant.name,
            scope: grant.scope,
            ttl_secs: grant.ttl_secs,
        };
        let credential = B::issue(grant).map_err(error_to_wit)?;
        Ok(wit::Credential {
            env: to_kv(credential.env.iter()),
            files: credential
                .files
                .into_iter()
                .map(|f| wit::CredentialFile {
                    path: f.path,
                    contents: f.contents,
                    mode: f.mode,
                })
                .collect(),
            expires_at: credential.expires_at,
            revocation_handle: credential.revocation_handle,
        })
    }

    fn revoke(handle: String) -> Result<(), wit_types::PluginError> {
        B::revoke(&handle).map_err(error_to_wit)
    }
}

pub(crate) fn secret_get(name: &str) -> Result<String, crate::PluginError> {
    wit_secrets::get(name).map_err(error_from_wit)
}

super::world_conversions!();
