//! Connecting to the Kubernetes API: a kubeconfig named in the config, else
//! the in-cluster config (the host runs in a pod), else the default
//! kubeconfig (`KUBECONFIG`, `~/.kube/config`).

use kube::config::{KubeConfigOptions, Kubeconfig};

use super::KIND;
use super::config::ClusterConfig;
use crate::provider::ProviderError;

/// A client for the API server the config names, and the namespace
/// sandboxes go to (the config's, else the client config's default).
///
/// # Errors
///
/// [`ProviderError::Unavailable`] saying which sources were tried and why
/// each failed.
pub(super) async fn connect(
    config: &ClusterConfig,
) -> Result<(kube::Client, String), ProviderError> {
    let unavailable = |message: String| ProviderError::Unavailable {
        provider: KIND,
        message,
    };
    let options = KubeConfigOptions {
        context: config.context.clone(),
        ..KubeConfigOptions::default()
    };
    let client_config = if let Some(path) = &config.kubeconfig {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
            unavailable(format!(
                "cannot read the kubeconfig {}: {e}",
                path.display()
            ))
        })?;
        kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| unavailable(format!("kubeconfig {}: {e}", path.display())))?
    } else if config.context.is_some() {
        // A context names a kubeconfig entry: no in-cluster fallback.
        kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| unavailable(format!("the default kubeconfig: {e}")))?
    } else {
        match kube::Config::incluster() {
            Ok(in_cluster) => in_cluster,
            Err(in_cluster) => kube::Config::from_kubeconfig(&options).await.map_err(|e| {
                unavailable(format!(
                    "no in-cluster config ({in_cluster}) and no usable default kubeconfig ({e}); \
                     set sandbox.cluster.kubeconfig or KUBECONFIG"
                ))
            })?,
        }
    };
    let namespace = config
        .namespace
        .clone()
        .unwrap_or_else(|| client_config.default_namespace.clone());
    let cluster_url = client_config.cluster_url.to_string();
    let client = kube::Client::try_from(client_config)
        .map_err(|e| unavailable(format!("cannot make a client for {cluster_url}: {e}")))?;
    tracing::info!(cluster = %cluster_url, %namespace, "cluster provider connected");
    Ok((client, namespace))
}
