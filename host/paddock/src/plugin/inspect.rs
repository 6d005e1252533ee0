//! What a component is, from its types alone: which world it targets and
//! against which version of `paddock:plugin`.

use std::fmt;

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.0";
const PACKAGE: &str = "paddock:plugin/";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    Agent,
    Broker,
    Provider,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that table columns (`{:<9}`) line up.
        f.pad(match self {
            PluginKind::Agent => "agent",
            PluginKind::Broker => "broker",
            PluginKind::Provider => "provider",
        })
    }
}

/// A component's world, as read from its exports and imports.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentShape {
    pub kind: Option<PluginKind>,
    /// The `paddock:plugin` version of its main export, e.g. `0.1.0`.
    pub wit_version: Option<String>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl ComponentShape {
    pub fn of(component: &Component, engine: &Engine) -> Self {
        let ty = component.component_type();
        let imports: Vec<String> = ty
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let exports: Vec<String> = ty
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        let mut kind = None;
        let mut wit_version = None;
        for export in &exports {
            let Some(rest) = export.strip_prefix(PACKAGE) else {
                continue;
            };
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            let found = match interface {
                "agent-adapter" => PluginKind::Agent,
                "credential-broker" => PluginKind::Broker,
                "sandbox-provider" => PluginKind::Provider,
                _ => continue,
            };
            kind = Some(found);
            wit_version = Some(version.to_owned());
        }
        Self {
            kind,
            wit_version,
            imports,
            exports,
        }
    }

    /// Why this host cannot load the component as a plugin, if it cannot.
    pub fn incompatibility(&self) -> Option<String> {
        let Some(kind) = self.kind else {
            return Some(format!(
                "it exports none of {PACKAGE}agent-adapter, credential-broker or sandbox-provider (exports: {})",
                if self.exports.is_empty() {
                    "none".to_owned()
                } else {
                    self.exports.join(", ")
                }
            ));
        };
        let version = self.wit_version.as_deref().unwrap_or("");
        if !compatible(version) {
            return Some(format!(
                "its {kind} export is built against paddock:plugin@{version}; this host implements {WIT_VERSION} (see wit/README.md)"
            ));
        }
        None
    }
}

/// Whether a plugin built against `version` loads on this host: the same
/// major and minor, any patch (patch releases only change docs).
fn compatible(version: &str) -> bool {
    let mut ours = WIT_VERSION.split('.');
    let mut theirs = version.split('.');
    ours.next() == theirs.next() && ours.next() == theirs.next() && theirs.next().is_some()
}

#[cfg(test)]
mod tests {
    use super::compatible;

    #[test]
    fn same_minor_any_patch_is_compatible() {
        assert!(compatible("0.1.0"));
        assert!(compatible("0.1.7"));
        assert!(!compatible("0.2.0"));
        assert!(!compatible("1.1.0"));
        assert!(!compatible(""));
        assert!(!compatible("0.1"));
    }
}
