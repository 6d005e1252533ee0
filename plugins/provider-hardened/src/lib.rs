//! `hardened`: a sandbox-provider policy. It decides limits, network,
//! labels and runtime class from the operator's `[plugins.config.hardened]`
//! and the session's request, and launches through the host's
//! `container-runtime`. README.md documents every config key.

use std::collections::BTreeMap;

use paddock_sdk::config;
use paddock_sdk::log;
use paddock_sdk::provider::*;

/// Label naming the policy that launched a sandbox.
pub const POLICY_LABEL: &str = "paddock.io/policy";
/// Label naming the sandbox's owner; the per-owner limit counts it.
pub const OWNER_LABEL: &str = "paddock.io/owner";
/// Label with the session's id.
pub const SESSION_LABEL: &str = "paddock.io/session";
/// The session label that asks for a runtime class, unless the operator
/// renames it with `isolation_label`.
pub const DEFAULT_ISOLATION_LABEL: &str = "paddock.io/isolation";
/// Live sandboxes per owner when `max_sandboxes_per_owner` is unset: enough
/// for a few parallel sessions, few enough that one owner cannot take a
/// machine.
pub const DEFAULT_MAX_SANDBOXES_PER_OWNER: u32 = 4;

pub struct Hardened;

/// The operator's policy, read from `config` on every call (each call gets a
/// fresh instance, so a config change applies to the next call).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Caps; a request above one is clamped to it, a request without a
    /// value gets the cap (a hardened sandbox is always bounded).
    pub caps: Resources,
    pub max_sandboxes_per_owner: u32,
    /// Hosts a sandbox may reach; empty: no egress at all.
    pub egress_allow_hosts: Vec<String>,
    /// Runtime classes a session may ask for.
    pub runtime_classes: Vec<String>,
    /// The class when the session asks for none.
    pub default_runtime_class: Option<String>,
    pub isolation_label: String,
    /// `None`: the operator's default runnerd image.
    pub image: Option<String>,
}

impl Policy {
    /// Reads the policy from `config`.
    ///
    /// # Errors
    ///
    /// `invalid-input` naming the key when a value does not parse, or when
    /// `default_runtime_class` is not one of `runtime_classes`.
    pub fn from_config() -> Result<Self, PluginError> {
        let policy = Self {
            caps: Resources {
                cpu_millis: config::parse("max_cpu_millis")?,
                memory_mib: config::parse("max_memory_mib")?,
                pids: config::parse("max_pids")?,
                disk_mib: config::parse("max_disk_mib")?,
            },
            max_sandboxes_per_owner: config::parse("max_sandboxes_per_owner")?
                .unwrap_or(DEFAULT_MAX_SANDBOXES_PER_OWNER),
            egress_allow_hosts: config::list("egress_allow_hosts"),
            runtime_classes: config::list("runtime_classes"),
            default_runtime_class: config::get("default_runtime_class")
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            isolation_label: config::get("isolation_label")
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_ISOLATION_LABEL.to_owned()),
            image: config::get("image")
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        };
        if let Some(class) = &policy.default_runtime_class
            && !policy.runtime_classes.contains(class)
        {
            return Err(PluginError::InvalidInput(format!(
                "config key `default_runtime_class` = {class:?} is not one of `runtime_classes` ({})",
                policy.runtime_classes.join(", ")
            )));
        }
        Ok(policy)
    }

    /// The plan for `req` under this policy, or why it is refused.
    /// `live` is every sandbox this plugin holds (for the per-owner limit).
    ///
    /// # Errors
    ///
    /// `invalid-input` for a runtime class the operator did not allow;
    /// `denied` when the owner is at the per-owner limit.
    pub fn plan(
        &self,
        req: &ProvisionRequest,
        live: &[SandboxHandle],
    ) -> Result<LaunchPlan, PluginError> {
        if req.owner.is_empty() {
            return Err(PluginError::InvalidInput(
                "the request has no owner; the per-owner limit needs one".into(),
            ));
        }
        let runtime_class = self.runtime_class(&req.labels)?;
        let owned = live
            .iter()
            .filter(|h| h.labels.get(OWNER_LABEL) == Some(&req.owner))
            .count();
        if owned >= self.max_sandboxes_per_owner as usize {
            return Err(PluginError::Denied(format!(
                "owner {:?} has {owned} live sandboxes; max_sandboxes_per_owner is {}",
                req.owner, self.max_sandboxes_per_owner
            )));
        }

        let mut plan = LaunchPlan::from_request(req);
        plan.image = self.image.clone();
        plan.runtime_class = runtime_class;
        plan.resources = Resources {
            cpu_millis: clamp(req.resources.cpu_millis, self.caps.cpu_millis),
            memory_mib: clamp(req.resources.memory_mib, self.caps.memory_mib),
            pids: clamp(req.resources.pids, self.caps.pids),
            disk_mib: clamp(req.resources.disk_mib, self.caps.disk_mib),
        };
        plan.network = self.network(&req.network);
        // The policy's labels win over the session's: the owner label is
        // what the per-owner limit counts, so a session must not set it.
        plan.labels.insert(POLICY_LABEL.into(), "hardened".into());
        plan.labels.insert(OWNER_LABEL.into(), req.owner.clone());
        plan.labels
            .insert(SESSION_LABEL.into(), req.session_id.clone());
        Ok(plan)
    }

    /// The class the session's isolation label asks for, if allowed.
    fn runtime_class(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Option<String>, PluginError> {
        match labels.get(&self.isolation_label).map(|v| v.trim()) {
            None | Some("") => Ok(self.default_runtime_class.clone()),
            Some(class) if self.runtime_classes.iter().any(|c| c == class) => {
                Ok(Some(class.to_owned()))
            }
            Some(class) => Err(PluginError::InvalidInput(format!(
                "label {}={class} asks for runtime class {class:?}, which this operator does not offer (runtime_classes: {})",
                self.isolation_label,
                if self.runtime_classes.is_empty() {
                    "none".to_owned()
                } else {
                    self.runtime_classes.join(", ")
                }
            ))),
        }
    }

    /// Egress only to allowlisted hosts: the session's own list narrowed to
    /// the allowlist, or the whole allowlist when the session named none.
    /// A session asking for no network keeps none; an empty result turns
    /// egress off rather than opening it to everything.
    fn network(&self, asked: &NetworkPolicy) -> NetworkPolicy {
        if !asked.egress {
            return NetworkPolicy::none();
        }
        let hosts: Vec<String> = if asked.allow_hosts.is_empty() {
            self.egress_allow_hosts.clone()
        } else {
            asked
                .allow_hosts
                .iter()
                .filter(|h| self.egress_allow_hosts.iter().any(|a| host_matches(a, h)))
                .cloned()
                .collect()
        };
        if hosts.is_empty() {
            log::warn("egress asked for, but no asked host is on egress_allow_hosts: no network");
            return NetworkPolicy::none();
        }
        NetworkPolicy {
            egress: true,
            allow_hosts: hosts,
        }
    }
}

/// `asked` clamped to `cap`; the cap when nothing was asked.
fn clamp(asked: Option<u32>, cap: Option<u32>) -> Option<u32> {
    match (asked, cap) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (None, c) => c,
        (a, None) => a,
    }
}

/// Whether allowlist entry `allowed` admits `host`: equal (ignoring case),
/// or `*.example.com` admitting any subdomain of `example.com` (and the
/// wildcard entry itself).
fn host_matches(allowed: &str, host: &str) -> bool {
    let (allowed, host) = (allowed.to_ascii_lowercase(), host.to_ascii_lowercase());
    if allowed == host {
        return true;
    }
    match allowed.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.') && rest.len() > 1),
        None => false,
    }
}

impl SandboxProvider for Hardened {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "hardened".into(),
            display_name: "Hardened".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Resource caps, per-owner limits, an egress allowlist and runtime classes over the host's container runtime".into(),
        }
    }

    fn provision(req: ProvisionRequest) -> Result<SandboxHandle, PluginError> {
        let policy = Policy::from_config()?;
        let live = runtime::list()?;
        let plan = policy.plan(&req, &live)?;
        log::info(&format!(
            "session {}: launching for {} (runtime class {:?}, egress {:?})",
            req.session_id,
            req.owner,
            plan.runtime_class,
            plan.network.egress.then_some(&plan.network.allow_hosts)
        ));
        runtime::launch(&plan)
    }
}

paddock_sdk::export_provider!(Hardened);

#[cfg(test)]
mod tests;
