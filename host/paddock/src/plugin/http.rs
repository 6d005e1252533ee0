//! `outgoing-http`: the only network a plugin has. A request goes out only
//! if its host is on the plugin's allowlist (`[plugins.grants.<name>]
//! allow_hosts`); redirects are not followed (a redirect to a host off the
//! list would be a way around it), and the response body is capped.
//!
//! Brokers and providers import the same interface: the broker world's
//! bindings reuse the provider world's (`with:`), so this one `Host` impl
//! serves both.

use std::sync::LazyLock;
use std::time::Duration;

use super::provider::bindings::paddock::plugin::outgoing_http::{
    Host, HttpError, Request, Response,
};
use super::store::HostState;
use crate::plugin::agent::wit_types::Kv;

/// The longest a request may take when the plugin asks for no timeout, and
/// the most it may ask for.
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest response body handed to a plugin: 16 MiB, far above any API
/// answer a broker or provider reads, well below a plugin's memory cap.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;

static CLIENT: LazyLock<Result<reqwest::Client, String>> = LazyLock::new(|| {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
});

impl Host for HostState {
    async fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        let url = reqwest::Url::parse(&request.url)
            .map_err(|e| HttpError::InvalidRequest(format!("{:?}: {e}", request.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::InvalidRequest(format!(
                "scheme {:?} is not http or https",
                url.scheme()
            )));
        }
        let host = url.host_str().unwrap_or_default().to_owned();
        if !self.grants.allows_host(&host) {
            tracing::warn!(plugin = %self.plugin, %host, "outgoing request to a host off the allowlist refused");
            return Err(HttpError::Denied(format!(
                "{host} is not on this plugin's allow_hosts"
            )));
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|e| HttpError::InvalidRequest(format!("method {:?}: {e}", request.method)))?;
        let timeout = request
            .timeout_ms
            .map_or(MAX_REQUEST_TIMEOUT, |ms| Duration::from_millis(ms.into()))
            .min(MAX_REQUEST_TIMEOUT);
        let client = CLIENT
            .as_ref()
            .map_err(|e| HttpError::Transport(format!("no HTTP client: {e}")))?;
        let mut builder = client.request(method, url).timeout(timeout);
        for Kv { key, value } in request.headers {
            builder = builder.header(key, value);
        }
        let plugin = self.plugin.clone();
        self.off_the_clock(async move {
            let response = builder.body(request.body).send().await.map_err(error)?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .filter_map(|(k, v)| {
                    Some(Kv {
                        key: k.as_str().to_owned(),
                        value: v.to_str().ok()?.to_owned(),
                    })
                })
                .collect();
            let body = read_capped(response).await?;
            tracing::debug!(plugin = %plugin, %host, status, bytes = body.len(), "plugin HTTP request");
            Ok(Response {
                status,
                headers,
                body,
            })
        })
        .await
    }
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(error)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(HttpError::Transport(format!(
                "response body over {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn error(e: reqwest::Error) -> HttpError {
    if e.is_timeout() {
        HttpError::Timeout
    } else if e.is_builder() {
        HttpError::InvalidRequest(e.to_string())
    } else {
        HttpError::Transport(format!("{e:#}"))
    }
}
