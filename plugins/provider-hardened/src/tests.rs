//! The policy against the SDK's mock host: what reaches `launch`, and what
//! is refused before it.

use paddock_sdk::testing::provider::{Call, MockHost};

use super::*;

fn request(owner: &str) -> ProvisionRequest {
    ProvisionRequest {
        session_id: "s-1".into(),
        owner: owner.into(),
        ttl_secs: 600,
        ..ProvisionRequest::default()
    }
}

fn with_label(mut req: ProvisionRequest, k: &str, v: &str) -> ProvisionRequest {
    req.labels.insert(k.into(), v.into());
    req
}

fn owned_by(id: &str, owner: &str) -> SandboxHandle {
    SandboxHandle {
        id: id.into(),
        url: format!("http://{id}.test"),
        labels: [(OWNER_LABEL.to_owned(), owner.to_owned())].into(),
        ..SandboxHandle::default()
    }
}

#[test]
fn requests_above_a_cap_are_clamped_and_unset_ones_get_the_cap() {
    let mock = MockHost::new()
        .config("max_cpu_millis", "2000")
        .config("max_memory_mib", "4096")
        .config("max_pids", "256")
        .install();
    let mut req = request("alice");
    req.resources = Resources {
        cpu_millis: Some(8000),
        memory_mib: Some(1024),
        pids: None,
        disk_mib: Some(10_000),
    };
    Hardened::provision(req).expect("provisions");
    let plan = &mock.launches()[0];
    assert_eq!(
        plan.resources,
        Resources {
            cpu_millis: Some(2000),
            memory_mib: Some(1024),
            pids: Some(256),
            // No cap configured: as asked.
            disk_mib: Some(10_000),
        }
    );
}

#[test]
fn policy_labels_are_added_and_win_over_the_sessions() {
    let mock = MockHost::new().install();
    let req = with_label(request("alice"), OWNER_LABEL, "mallory");
    let req = with_label(req, "team", "infra");
    let handle = Hardened::provision(req).expect("provisions");
    let labels = &mock.launches()[0].labels;
    assert_eq!(labels[POLICY_LABEL], "hardened");
    assert_eq!(labels[OWNER_LABEL], "alice");
    assert_eq!(labels[SESSION_LABEL], "s-1");
    assert_eq!(labels["team"], "infra");
    assert_eq!(handle.labels[OWNER_LABEL], "alice");
}

#[test]
fn the_per_owner_limit_counts_live_sandboxes_with_list() {
    let mock = MockHost::new()
        .config("max_sandboxes_per_owner", "2")
        .sandbox(owned_by("a1", "alice"))
        .sandbox(owned_by("a2", "alice"))
        .sandbox(owned_by("b1", "bob"))
        .install();
    let err = Hardened::provision(request("alice")).expect_err("alice is at her limit");
    match err {
        PluginError::Denied(m) => assert!(
            m.contains("max_sandboxes_per_owner is 2") && m.contains("alice"),
            "{m}"
        ),
        other => panic!("expected denied, got {other:?}"),
    }
    assert!(mock.launches().is_empty());
    assert!(mock.calls().contains(&Call::List));

    Hardened::provision(request("bob")).expect("bob has room");
    assert_eq!(mock.launches().len(), 1);
}

#[test]
fn the_default_per_owner_limit_applies_when_unset() {
    let _mock = MockHost::new().install();
    for _ in 0..DEFAULT_MAX_SANDBOXES_PER_OWNER {
        Hardened::provision(request("alice")).expect("under the default limit");
    }
    assert!(matches!(
        Hardened::provision(request("alice")),
        Err(PluginError::Denied(_))
    ));
}

#[test]
fn egress_goes_only_to_allowlisted_hosts() {
    let mock = MockHost::new()
        .config("egress_allow_hosts", "github.com, *.pypi.org")
        .install();

    // Egress with no hosts named: the whole allowlist.
    let mut req = request("alice");
    req.network.egress = true;
    Hardened::provision(req.clone()).expect("provisions");
    assert_eq!(
        mock.launches()[0].network,
        NetworkPolicy {
            egress: true,
            allow_hosts: vec!["github.com".into(), "*.pypi.org".into()],
        }
    );

    // Named hosts are narrowed to the allowlist.
    req.network.allow_hosts = vec![
        "files.pypi.org".into(),
        "evil.example".into(),
        "GitHub.com".into(),
    ];
    Hardened::provision(req.clone()).expect("provisions");
    assert_eq!(
        mock.launches()[1].network.allow_hosts,
        vec!["files.pypi.org".to_owned(), "GitHub.com".to_owned()]
    );

    // Only hosts off the list: no network at all, not everything.
    req.network.allow_hosts = vec!["evil.example".into()];
    Hardened::provision(req).expect("provisions");
    assert_eq!(mock.launches()[2].network, NetworkPolicy::none());
}

#[test]
fn a_session_asking_for_no_network_keeps_none() {
    let mock = MockHost::new()
        .config("egress_allow_hosts", "github.com")
        .install();
    Hardened::provision(request("alice")).expect("provisions");
    assert_eq!(mock.launches()[0].network, NetworkPolicy::none());
}

#[test]
fn no_allowlist_means_no_egress() {
    let mock = MockHost::new().install();
    let mut req = request("alice");
    req.network.egress = true;
    Hardened::provision(req).expect("provisions");
    assert_eq!(mock.launches()[0].network, NetworkPolicy::none());
}

#[test]
fn runtime_class_comes_from_the_isolation_label_when_offered() {
    let mock = MockHost::new()
        .config("runtime_classes", "gvisor,kata")
        .install();
    let req = with_label(request("alice"), DEFAULT_ISOLATION_LABEL, "gvisor");
    Hardened::provision(req).expect("provisions");
    assert_eq!(mock.launches()[0].runtime_class.as_deref(), Some("gvisor"));

    Hardened::provision(request("alice")).expect("provisions");
    assert_eq!(mock.launches()[1].runtime_class, None);
}

#[test]
fn a_runtime_class_not_offered_is_invalid_input() {
    let mock = MockHost::new().config("runtime_classes", "kata").install();
    let req = with_label(request("alice"), DEFAULT_ISOLATION_LABEL, "gvisor");
    match Hardened::provision(req) {
        Err(PluginError::InvalidInput(m)) => {
            assert!(m.contains("gvisor") && m.contains("kata"), "{m}")
        }
        other => panic!("expected invalid-input, got {other:?}"),
    }
    assert!(mock.launches().is_empty());
}

#[test]
fn default_and_renamed_isolation_label() {
    let mock = MockHost::new()
        .config("runtime_classes", "gvisor,kata")
        .config("default_runtime_class", "gvisor")
        .config("isolation_label", "example.com/sandbox")
        .install();
    Hardened::provision(request("alice")).expect("provisions");
    let req = with_label(request("alice"), "example.com/sandbox", "kata");
    Hardened::provision(req).expect("provisions");
    let classes: Vec<_> = mock
        .launches()
        .into_iter()
        .map(|p| p.runtime_class)
        .collect();
    assert_eq!(classes, vec![Some("gvisor".into()), Some("kata".into())]);
}

#[test]
fn bad_config_is_invalid_input_naming_the_key() {
    let _mock = MockHost::new().config("max_memory_mib", "4 GiB").install();
    match Hardened::provision(request("alice")) {
        Err(PluginError::InvalidInput(m)) => assert!(m.contains("max_memory_mib"), "{m}"),
        other => panic!("expected invalid-input, got {other:?}"),
    }

    let _mock = MockHost::new()
        .config("runtime_classes", "kata")
        .config("default_runtime_class", "gvisor")
        .install();
    match Hardened::provision(request("alice")) {
        Err(PluginError::InvalidInput(m)) => assert!(m.contains("default_runtime_class"), "{m}"),
        other => panic!("expected invalid-input, got {other:?}"),
    }
}

#[test]
fn image_from_config() {
    let mock = MockHost::new()
        .config("image", "registry.example/runnerd:hardened")
        .install();
    Hardened::provision(request("alice")).expect("provisions");
    assert_eq!(
        mock.launches()[0].image.as_deref(),
        Some("registry.example/runnerd:hardened")
    );
}

#[test]
fn destroy_list_and_inspect_delegate_to_the_runtime() {
    let mock = MockHost::new().sandbox(owned_by("a1", "alice")).install();
    assert_eq!(Hardened::list().expect("lists").len(), 1);
    assert!(Hardened::inspect("a1").expect("inspects").is_some());
    Hardened::destroy("a1").expect("destroys");
    Hardened::destroy("unknown").expect("an unknown id is not an error");
    assert!(Hardened::inspect("a1").expect("inspects").is_none());
    assert_eq!(
        mock.destroyed(),
        vec!["a1".to_owned(), "unknown".to_owned()]
    );
}

#[test]
fn a_launch_failure_is_passed_on() {
    let _mock = MockHost::new()
        .on_launch(|_| Err(PluginError::Unavailable("engine down".into())))
        .install();
    assert_eq!(
        Hardened::provision(request("alice")),
        Err(PluginError::Unavailable("engine down".into()))
    );
}

#[test]
fn wildcard_matching() {
    assert!(host_matches("*.pypi.org", "files.pypi.org"));
    assert!(host_matches("*.pypi.org", "*.pypi.org"));
    assert!(!host_matches("*.pypi.org", "pypi.org"));
    assert!(!host_matches("*.pypi.org", "evilpypi.org"));
    assert!(host_matches("github.com", "GITHUB.COM"));
    assert!(!host_matches("github.com", "api.github.com"));
}
