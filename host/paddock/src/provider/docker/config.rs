//! `[sandbox.docker]`: the settings of the local-docker provider, plain
//! serde data with every default a named constant.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the local-docker provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// The sandbox image: runs `/usr/local/bin/runnerd` and has `/workspace`
    /// owned by uid 10001 and `/cache` mode 1777. Default
    /// [`DockerConfig::DEFAULT_IMAGE`], built locally by `just sandbox-image`
    /// (or by the provider, see `build_runnerd`).
    pub image: String,
    /// The engine's address (`unix:///run/podman/podman.sock`,
    /// `tcp://127.0.0.1:2375`). Default: `DOCKER_HOST`, else
    /// [`DockerConfig::DEFAULT_SOCKET`].
    pub host: Option<String>,
    /// One budget, in seconds, for creating and starting the container and
    /// runnerd answering `health`. Default 30: a cold engine may set up the
    /// network namespace and copy the image's `/workspace` into a new volume
    /// before runnerd even starts.
    pub start_timeout_secs: u64,
    /// Where the host reaches runnerd. Unset (the default): the container's
    /// own address on its network, which works whenever the engine runs on
    /// this machine and is the only way into a `network: none` sandbox.
    /// Set to an address of this machine (e.g. `127.0.0.1`): egress
    /// sandboxes publish runnerd's port there (an engine in a VM);
    /// `network: none` sandboxes are still reached on their container
    /// address, as an internal network publishes no ports.
    pub publish_ip: Option<IpAddr>,
    /// Whether each owner gets a cache volume (npm, pip, cargo, go, XDG
    /// caches) mounted at `/cache` in all of that owner's sandboxes.
    /// Default true.
    pub cache_volumes: bool,
    /// The name of this host among those sharing one engine: its
    /// containers carry it, and `adopt` takes (and cleans up) only its own.
    /// Default `default`.
    pub instance: String,
    /// The internal network (no route out) of `network: none` sandboxes;
    /// created when missing. Default [`DockerConfig::DEFAULT_NONE_NETWORK`].
    pub none_network: String,
    /// The network of egress sandboxes. Default `bridge` (podman maps it to
    /// its default network).
    pub egress_network: String,
    /// A static runnerd to build the default image from when it is missing
    /// (with `busybox` as the userland). Unset: a missing image is an error
    /// that says how to build it.
    pub build_runnerd: Option<PathBuf>,
    /// The static busybox put in a built image. Default `/bin/busybox`
    /// (Debian's `busybox-static`).
    pub busybox: PathBuf,
}

impl DockerConfig {
    /// The image `just sandbox-image` builds.
    pub const DEFAULT_IMAGE: &str = "localhost/paddock-sandbox:latest";
    /// Where Docker listens when `DOCKER_HOST` is unset.
    pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";
    pub const DEFAULT_START_TIMEOUT_SECS: u64 = 30;
    pub const DEFAULT_INSTANCE: &str = "default";
    pub const DEFAULT_NONE_NETWORK: &str = "paddock-none";
    pub const DEFAULT_EGRESS_NETWORK: &str = "bridge";
    pub const DEFAULT_BUSYBOX: &str = "/bin/busybox";

    /// The start budget as a duration.
    pub fn start_timeout(&self) -> Duration {
        Duration::from_secs(self.start_timeout_secs)
    }
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            image: Self::DEFAULT_IMAGE.to_owned(),
            host: None,
            start_timeout_secs: Self::DEFAULT_START_TIMEOUT_SECS,
            publish_ip: None,
            cache_volumes: true,
            instance: Self::DEFAULT_INSTANCE.to_owned(),
            none_network: Self::DEFAULT_NONE_NETWORK.to_owned(),
            egress_network: Self::DEFAULT_EGRESS_NETWORK.to_owned(),
            build_runnerd: None,
            busybox: PathBuf::from(Self::DEFAULT_BUSYBOX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_a_default_and_typos_are_refused() {
        let empty: DockerConfig = toml::from_str("").expect("empty");
        assert_eq!(empty, DockerConfig::default());
        let set: DockerConfig = toml::from_str(
            "image = \"x:1\"\nhost = \"unix:///s\"\npublish_ip = \"127.0.0.1\"\ncache_volumes = false",
        )
        .expect("keys");
        assert_eq!(set.image, "x:1");
        assert_eq!(set.publish_ip, Some(IpAddr::from([127, 0, 0, 1])));
        assert!(!set.cache_volumes);
        assert!(toml::from_str::<DockerConfig>("imgae = \"x\"").is_err());
    }
}
