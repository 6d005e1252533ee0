//! The local-docker provider: one container per sandbox, through the
//! Docker Engine API (bollard), with runnerd as the container's PID 1.
//! Works with Docker and with podman's Docker-compatible service.
//!
//! - `config.rs`: `[sandbox.docker]`.
//! - `engine.rs`: connecting; the error names the address it tried.
//! - `container.rs`: labels, names and the hardened create request.
//! - `image.rs`: the default image, built and imported without a registry.
//! - `lifecycle.rs`: provision, destroy and adopt.
//!
//! # Reaching runnerd, and `network: none`
//!
//! The host talks to runnerd over HTTP on the container's address, never
//! through `docker exec`. A container with network mode `none` has only
//! loopback, so nothing outside, the host included, could reach it; and an
//! engine publishes no ports on an internal network. So `network: none`
//! sandboxes join an *internal* bridge network (`none_network`, created on
//! first use): the host reaches the container's address on that bridge, and
//! the network has no route out (no default route, no NAT), so nothing
//! outside the machine is reachable from inside. Egress sandboxes join the
//! engine's default bridge.
//!
//! # Caveats
//!
//! - On an internal network the bridge's own address is the host's: a
//!   sandbox can connect to services of this machine that listen on all
//!   addresses (`0.0.0.0`). Bind host services to loopback, or drop new
//!   connections from the bridge (`iptables -I INPUT -i <bridge> -m
//!   conntrack --ctstate NEW -j DROP`).
//! - Sandboxes of one network can reach each other; runnerd refuses
//!   requests without its per-sandbox token, but servers a sandbox starts
//!   itself are open to its neighbours.
//! - `workspace_mib` is not enforced: the engine's `local` volume driver
//!   has no size limit.
//! - A container's labels cannot change, so an extended session's sandbox
//!   keeps its original expiry label: a host restarted after that expiry
//!   but before the extended one removes the sandbox (and the session
//!   ends as `provider_lost`).

mod config;
mod container;
mod engine;
mod image;
mod lifecycle;

use crate::provider::detached::{MakesSandboxes, provision_detached};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bollard::Docker;
use tokio::sync::OnceCell;

pub use self::config::DockerConfig;
pub use self::image::{ImageError, ImageSources, image_exists, import_image};

use super::{ProviderError, Sandbox, SandboxProvider, SandboxSpec};

/// The provider's kind name.
const KIND: &str = "local-docker";

/// Runs each sandbox as a container of a Docker Engine API.
///
/// Cheap to share: the state lives behind an `Arc`, so that a provision
/// whose caller stopped waiting can finish (and be undone) in a task.
#[derive(Debug, Clone)]
pub struct DockerProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    docker: Docker,
    config: DockerConfig,
    /// The engine address, for messages.
    address: String,
    /// Set once the internal network of `none` sandboxes is known to exist.
    none_network: OnceCell<()>,
    /// Sandboxes being provisioned right now: `adopt` leaves their volumes
    /// alone.
    provisioning: Mutex<HashSet<String>>,
}

impl DockerProvider {
    /// Connects to the engine (`sandbox.docker.host`, else `DOCKER_HOST`,
    /// else the default socket), checks that it answers, and makes sure the
    /// image is there (building it when `build_runnerd` is set).
    ///
    /// # Errors
    ///
    /// [`ProviderError::Unavailable`] naming the address tried when no
    /// engine answers, or naming the image when it is missing and cannot be
    /// built.
    pub async fn connect(config: DockerConfig) -> Result<Self, ProviderError> {
        let (address, source) = engine::address(&config);
        let docker = engine::connect(&address, source)?;
        engine::ping(&docker, &address, source).await?;
        let provider = Self {
            inner: Arc::new(Inner {
                docker,
                config,
                address,
                none_network: OnceCell::new(),
                provisioning: Mutex::new(HashSet::new()),
            }),
        };
        provider.ensure_image().await?;
        tracing::info!(engine = %provider.inner.address, image = %provider.inner.config.image, "local-docker provider ready");
        Ok(provider)
    }

    /// The engine client, for callers that manage images or inspect
    /// sandboxes (tests, operators' tools).
    pub fn docker(&self) -> &Docker {
        &self.inner.docker
    }

    async fn ensure_image(&self) -> Result<(), ProviderError> {
        let config = &self.inner.config;
        if image_exists(&self.inner.docker, &config.image).await? {
            return Ok(());
        }
        match &config.build_runnerd {
            Some(runnerd) => {
                let sources = ImageSources {
                    runnerd: runnerd.clone(),
                    busybox: config.busybox.clone(),
                };
                Ok(import_image(&self.inner.docker, &config.image, &sources).await?)
            }
            None => Err(ProviderError::Unavailable {
                provider: KIND,
                message: format!(
                    "the engine at {} has no image {}: build it with `just sandbox-image`, \
                     or set sandbox.docker.build_runnerd to a static runnerd",
                    self.inner.address, config.image
                ),
            }),
        }
    }
}

#[async_trait::async_trait]
impl SandboxProvider for DockerProvider {
    fn kind(&self) -> &'static str {
        KIND
    }

    /// Runs in a task of its own: when the caller stops waiting, the
    /// provision still finishes and the container is removed again instead
    /// of being left behind half made.
    async fn provision(&self, spec: &SandboxSpec) -> Result<Sandbox, ProviderError> {
        provision_detached(Arc::clone(&self.inner), spec).await
    }

    async fn destroy(&self, sandbox: &Sandbox) -> Result<(), ProviderError> {
        self.inner.destroy(&sandbox.id).await?;
        tracing::info!(sandbox = %sandbox.id, session = %sandbox.session_id, "sandbox destroyed");
        Ok(())
    }

    async fn adopt(&self) -> Result<Vec<Sandbox>, ProviderError> {
        self.inner.adopt().await
    }
}

impl MakesSandboxes for Inner {
    fn make(
        &self,
        spec: &SandboxSpec,
    ) -> impl Future<Output = Result<Sandbox, ProviderError>> + Send {
        self.provision(spec)
    }

    fn unmake(&self, sandbox: &Sandbox) -> impl Future<Output = Result<(), ProviderError>> + Send {
        self.destroy(&sandbox.id)
    }
}
