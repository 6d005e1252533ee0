//! Connecting to the Docker Engine API, and saying which address was tried
//! when nothing answers there.

use bollard::{ClientVersion, Docker};

use super::KIND;
use super::config::DockerConfig;
use crate::provider::ProviderError;

/// The API version spoken: Docker 20.10's, which every Docker since and
/// podman 4's compatible service understand (bollard's own default is newer
/// than podman 4 accepts).
const API_VERSION: ClientVersion = ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// Seconds bollard waits for one engine request. Creating a container may
/// copy image data into a new volume; two minutes is bollard's own default.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// Where the engine address came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Config,
    DockerHost,
    Default,
}

impl Source {
    fn describe(self) -> &'static str {
        match self {
            Source::Config => "from sandbox.docker.host",
            Source::DockerHost => "from DOCKER_HOST",
            Source::Default => "the default socket; set DOCKER_HOST or sandbox.docker.host",
        }
    }
}

/// The engine address in force: the config's, else `DOCKER_HOST`, else the
/// default socket.
pub(super) fn address(config: &DockerConfig) -> (String, Source) {
    if let Some(host) = config.host.as_ref().filter(|h| !h.is_empty()) {
        return (host.clone(), Source::Config);
    }
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.is_empty() => (host, Source::DockerHost),
        _ => (DockerConfig::DEFAULT_SOCKET.to_owned(), Source::Default),
    }
}

/// A client for the engine at `address` (not contacted yet).
///
/// # Errors
///
/// [`ProviderError::Unavailable`] naming the address when the scheme is
/// not `unix://`, `tcp://` or `http://`, or the socket file does not exist.
pub(super) fn connect(address: &str, source: Source) -> Result<Docker, ProviderError> {
    let result = if let Some(path) = address.strip_prefix("unix://") {
        Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, &API_VERSION)
    } else if address.starts_with("tcp://") || address.starts_with("http://") {
        Docker::connect_with_http(address, REQUEST_TIMEOUT_SECS, &API_VERSION)
    } else {
        return Err(unavailable(
            address,
            source,
            "unsupported scheme (use unix://, tcp:// or http://)",
        ));
    };
    result.map_err(|err| unavailable(address, source, &err.to_string()))
}

/// Checks that an engine answers at `address`.
///
/// # Errors
///
/// [`ProviderError::Unavailable`] naming the address and where it came from.
pub(super) async fn ping(
    docker: &Docker,
    address: &str,
    source: Source,
) -> Result<(), ProviderError> {
    docker
        .ping()
        .await
        .map(drop)
        .map_err(|err| unavailable(address, source, &err.to_string()))
}

fn unavailable(address: &str, source: Source, problem: &str) -> ProviderError {
    ProviderError::Unavailable {
        provider: KIND,
        message: format!(
            "no Docker Engine API answers at {address} ({}): {problem}",
            source.describe()
        ),
    }
}

/// Whether an engine error is "no such object" (404).
pub(super) fn not_found(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Whether an engine error is "already exists" (409).
pub(super) fn conflict(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409,
            ..
        }
    )
}
