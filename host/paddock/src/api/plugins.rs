//! `/v1/plugins`: what this host has loaded, for operators and platforms
//! (which agents, brokers and providers exist, which file versions are
//! active, which files were refused and why).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Owner;
use super::error::ErrorBody;

/// `GET /v1/plugins`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    pub plugins: Vec<PluginRow>,
    /// Files in the plugins directory whose current content was refused
    /// (an earlier version of the same file may still be active).
    pub refused: Vec<RefusedFile>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PluginRow {
    pub name: String,
    /// `agent`, `provider` or `broker`.
    pub kind: String,
    pub version: String,
    /// `built-in`, or the file it was loaded from.
    pub source: String,
    /// SHA-256 of the wasm.
    pub hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefusedFile {
    pub file: String,
    pub reason: String,
}

/// The loaded plugins (current versions) and the refused files.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses((status = 200, body = PluginList), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, _owner: Owner) -> Json<PluginList> {
    let plugins = state.sessions.plugins();
    Json(PluginList {
        plugins: plugins
            .list()
            .into_iter()
            .map(|p| PluginRow {
                name: p.name,
                kind: p.kind.to_string(),
                version: p.version,
                source: p.source.to_string(),
                hash: p.hash,
            })
            .collect(),
        refused: plugins
            .refused()
            .into_iter()
            .map(|(file, reason)| RefusedFile {
                file: file.display().to_string(),
                reason,
            })
            .collect(),
    })
}
