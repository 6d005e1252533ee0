//! A mock host for unit-testing credential brokers natively, with no wasm.
//!
//! Natively, [`crate::secrets::get`], [`crate::http::send`],
//! [`crate::config::get`] and [`crate::log`] call the mock installed on the
//! current thread: secrets from a map (any other name is `denied`, as on the
//! real host), HTTP answered by scripted routes (method and path) or a
//! closure, and every call recorded.
//!
//! ```ignore
//! use paddock_sdk::http::Response;
//! use paddock_sdk::testing::broker::MockHost;
//! let mock = MockHost::new()
//!     .config("base_url", "https://gw.test")
//!     .secret("MASTER_KEY", "sk-master")
//!     .respond("POST", "/key/generate", Response::json_body(200, &json!({"key": "sk-1"})))
//!     .install();
//! let credential = MyBroker::issue(grant)?;
//! assert_eq!(mock.requests()[0].url, "https://gw.test/key/generate");
//! ```
//!
//! It is the provider mock's host underneath ([`super::provider`]), so the
//! guard, the recorded [`Call`]s and their readers are the same.

use crate::http::{HttpError, Request, Response};

pub use super::provider::{Call, Mock};

type HttpFn = dyn FnMut(&Request) -> Result<Response, HttpError>;

/// What the mock host answers with; build it, then [`install`](Self::install).
#[derive(Default)]
pub struct MockHost {
    inner: super::provider::MockHost,
    routes: Vec<(String, String, Response)>,
    fallback: Option<Box<HttpFn>>,
}

impl MockHost {
    pub fn new() -> Self {
        Self::default()
    }

    /// A `config` value (`[plugins.config.<name>]`).
    pub fn config(mut self, key: &str, value: &str) -> Self {
        self.inner = self.inner.config(key, value);
        self
    }

    /// A secret granted to the broker.
    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.inner = self.inner.secret(name, value);
        self
    }

    /// Answers every `method` request whose URL path is `path` (query
    /// ignored) with `response`, as often as it comes.
    pub fn respond(mut self, method: &str, path: &str, response: Response) -> Self {
        self.routes
            .push((method.to_ascii_uppercase(), path.to_owned(), response));
        self
    }

    /// Answers the requests no route matches (404 for them when not set).
    pub fn on_http(
        mut self,
        f: impl FnMut(&Request) -> Result<Response, HttpError> + 'static,
    ) -> Self {
        self.fallback = Some(Box::new(f));
        self
    }

    /// Installs the mock on this thread until the returned guard drops.
    pub fn install(self) -> Mock {
        let routes = self.routes;
        let mut fallback = self.fallback;
        self.inner
            .on_http(move |req| {
                let path = url_path(&req.url);
                let route = routes
                    .iter()
                    .find(|(m, p, _)| *m == req.method.to_ascii_uppercase() && p == path);
                match (route, fallback.as_mut()) {
                    (Some((_, _, response)), _) => Ok(response.clone()),
                    (None, Some(f)) => f(req),
                    (None, None) => Ok(Response::new(
                        404,
                        format!("no mock route for {} {path}", req.method),
                    )),
                }
            })
            .install()
    }
}

/// The path of `url`: after the authority, before any query.
fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = rest.find('/').map_or("/", |at| &rest[at..]);
    path.split(['?', '#']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{config, http, secrets};

    #[test]
    fn routes_answer_by_method_and_path_and_requests_are_recorded() {
        let mock = MockHost::new()
            .respond("POST", "/key/generate", Response::new(200, "ok"))
            .install();
        let hit = http::send(&Request::post("https://gw.test/key/generate?x=1")).unwrap();
        assert_eq!(hit.text(), "ok");
        let miss = http::send(&Request::get("https://gw.test/key/generate")).unwrap();
        assert_eq!(miss.status, 404);
        assert_eq!(mock.requests().len(), 2);
    }

    #[test]
    fn only_given_secrets_are_readable() {
        let mock = MockHost::new()
            .secret("TOKEN", "t0k")
            .config("k", "v")
            .install();
        assert_eq!(secrets::get("TOKEN").as_deref(), Ok("t0k"));
        assert!(matches!(
            secrets::get("OTHER"),
            Err(crate::PluginError::Denied(_))
        ));
        assert_eq!(config::get("k").as_deref(), Some("v"));
        assert_eq!(mock.secret_reads(), ["TOKEN", "OTHER"]);
    }
}
