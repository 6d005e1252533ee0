//! A sandbox provider that misbehaves on request, for the host's tests of
//! fault containment: the request's label `fault` says how.
//!
//! - `fault=trap`: `provision` panics (a wasm trap);
//! - `fault=hang`: `provision` spins forever (the epoch deadline must stop it);
//! - anything else: launches through `container-runtime` as asked.
//!
//! destroy, list and inspect always delegate to `container-runtime`.

use paddock_sdk::provider::*;

/// The request label that selects a fault.
pub const FAULT_LABEL: &str = "fault";

pub struct Faults;

impl SandboxProvider for Faults {
    fn info() -> ProviderInfo {
        ProviderInfo {
            name: "test-provider-faults".into(),
            display_name: "Test provider faults".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Traps or hangs in provision on request (label fault=trap|hang); for tests".into(),
        }
    }

    fn provision(req: ProvisionRequest) -> Result<SandboxHandle, PluginError> {
        match req.labels.get(FAULT_LABEL).map(String::as_str) {
            Some("trap") => panic!("provision asked to trap"),
            Some("hang") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => runtime::launch(&LaunchPlan::from_request(&req)),
        }
    }
}

paddock_sdk::export_provider!(Faults);

#[cfg(test)]
mod tests {
    use paddock_sdk::testing::provider::MockHost;

    use super::*;

    #[test]
    fn without_a_fault_it_launches_as_asked() {
        let mock = MockHost::new().install();
        let req = ProvisionRequest {
            session_id: "s".into(),
            owner: "o".into(),
            ..ProvisionRequest::default()
        };
        let handle = Faults::provision(req.clone()).expect("launches");
        assert_eq!(mock.launches(), vec![LaunchPlan::from_request(&req)]);
        assert_eq!(Faults::inspect(&handle.id), Ok(Some(handle)));
    }

    #[test]
    #[should_panic(expected = "asked to trap")]
    fn trap_panics() {
        let _mock = MockHost::new().install();
        let mut req = ProvisionRequest::default();
        req.labels.insert(FAULT_LABEL.into(), "trap".into());
        let _ = Faults::provision(req);
    }
}
