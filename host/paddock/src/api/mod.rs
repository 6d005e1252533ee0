//! The host's HTTP API (axum). Routes and the OpenAPI document at
//! `/openapi.json` come from the same annotations (utoipa), so the document
//! covers every route.

mod audit;
mod auth;
mod error;
mod execs;
mod files;
mod links;
mod plugins;
mod sessions;

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::Tokens;
pub use error::{ApiError, ErrorBody};

use crate::link::Dispatcher;
use crate::link::connections::Connections;
use crate::secrets::Secrets;
use crate::session::Sessions;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub sessions: Arc<Sessions>,
    pub tokens: Arc<Tokens>,
    /// Grants, brokers and the audit log.
    pub secrets: Arc<Secrets>,
    /// Owners who may read the audit log (`[auth] operators`).
    pub operators: Arc<std::collections::BTreeSet<String>>,
    pub dispatcher: Arc<Dispatcher>,
    /// Links' control connections.
    pub connections: Arc<Connections>,
    /// Links are offline after this long without a heartbeat.
    pub link_ttl: std::time::Duration,
    /// Whether links may ask to be called directly (`links.allow_direct`).
    pub link_direct: bool,
    /// Turns true when the host stops: open event streams end with a
    /// `shutdown` event.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// A JSON body whose rejections are API errors (JSON, with a code).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Paddock", description = "Runs coding agents in sandboxes on behalf of a platform."),
    paths(files::read, files::write, files::remove),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The router and its OpenAPI document.
pub fn router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let (router, api) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .routes(routes!(sessions::create, sessions::list))
        .routes(routes!(sessions::get, sessions::delete))
        .routes(routes!(sessions::extend))
        .routes(routes!(sessions::patch_env))
        .routes(routes!(sessions::gateway_usage))
        .routes(routes!(execs::create, execs::list))
        .routes(routes!(execs::get))
        .routes(routes!(execs::events))
        .routes(routes!(execs::stdin))
        .routes(routes!(execs::cancel))
        .routes(routes!(plugins::list))
        .routes(routes!(audit::list))
        .routes(routes!(links::register))
        .routes(routes!(links::heartbeat))
        .routes(routes!(links::deregister))
        .routes(routes!(links::me))
        .routes(routes!(links::resolve))
        .split_for_parts();
    let document = Arc::new(api.clone());
    let router = router
        .route("/v1/sessions/{id}/files", get(files::read_root))
        .route(
            "/v1/sessions/{id}/files/{*path}",
            get(files::read).put(files::write).delete(files::remove),
        )
        .route("/v1/links/{id}/connect", get(links::connect))
        .route("/healthz", get(healthz))
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { Json(document.as_ref().clone()) }
            }),
        )
        .fallback(not_found)
        .with_state(state);
    (router, api)
}

/// Liveness: answers as long as the host serves.
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn not_found() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such route",
    )
}
