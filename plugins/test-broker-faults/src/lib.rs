//! A credential broker that misbehaves on request, for the host's tests of
//! fault containment. The grant's name says how:
//!
//! - `trap`: `issue` panics (a wasm trap);
//! - `hang`: `issue` spins forever (the epoch deadline must stop it);
//! - `offlist`: `issue` sends a request to the URL in the grant's scope
//!   (a host the test left off the allowlist) and fails with what the host
//!   said;
//! - `refuse`: `issue` answers `denied`;
//! - anything else: issues `FAULTS_TOKEN=token-<session>` with the
//!   revocation handle `handle-<session>`.
//!
//! A fresh instance per call has nowhere to keep a record of revocations,
//! so `revoke` reports each handle to the test: with config key
//! `record_url` set it sends `DELETE <record_url>/<handle>` (the test's
//! loopback server sees it). The handle `bad` is refused.

use paddock_sdk::broker::*;
use paddock_sdk::config;
use paddock_sdk::http::{self, Request};

pub struct Faults;

impl CredentialBroker for Faults {
    fn info() -> BrokerInfo {
        BrokerInfo {
            name: "test-broker-faults".into(),
            display_name: "Test broker faults".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Traps, hangs or reaches off its allowlist on request (grant name trap|hang|offlist); for tests".into(),
        }
    }

    fn issue(grant: Grant) -> Result<Credential, PluginError> {
        match grant.name.as_str() {
            "trap" => panic!("issue asked to trap"),
            "hang" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "offlist" => {
                let url = grant.scope.as_deref().unwrap_or("http://example.invalid/");
                let response = http::send(&Request::get(url))?;
                Err(PluginError::Internal(format!(
                    "{url} answered {} although it is off the allowlist",
                    response.status
                )))
            }
            "refuse" => Err(PluginError::Denied("asked to refuse".into())),
            _ => Ok(Credential::default()
                .env("FAULTS_TOKEN", &format!("token-{}", grant.session_id))
                .revocation_handle(format!("handle-{}", grant.session_id))),
        }
    }

    fn revoke(handle: &str) -> Result<(), PluginError> {
        if handle == "bad" {
            return Err(PluginError::InvalidInput("unknown handle `bad`".into()));
        }
        if let Some(url) = config::get("record_url") {
            let response = http::send(&Request::delete(&format!(
                "{}/{handle}",
                url.trim_end_matches('/')
            )))?;
            if !response.is_success() {
                return Err(PluginError::Unavailable(format!(
                    "recording the revocation: HTTP {}",
                    response.status
                )));
            }
        }
        Ok(())
    }
}

paddock_sdk::export_broker!(Faults);

#[cfg(test)]
mod tests {
    use paddock_sdk::http::Response;
    use paddock_sdk::testing::broker::MockHost;

    use super::*;

    fn grant(name: &str) -> Grant {
        Grant {
            session_id: "s1".into(),
            name: name.into(),
            ..Grant::default()
        }
    }

    #[test]
    fn without_a_fault_it_issues_a_revocable_token() {
        let _mock = MockHost::new().install();
        let c = Faults::issue(grant("ok")).expect("issued");
        assert_eq!(c.env["FAULTS_TOKEN"], "token-s1");
        assert_eq!(c.revocation_handle.as_deref(), Some("handle-s1"));
    }

    #[test]
    fn revoke_reports_to_the_record_url() {
        let mock = MockHost::new()
            .config("record_url", "http://127.0.0.1:9/revoked")
            .respond("DELETE", "/revoked/handle-s1", Response::new(204, ""))
            .install();
        Faults::revoke("handle-s1").expect("revoked");
        assert_eq!(
            mock.requests()[0].url,
            "http://127.0.0.1:9/revoked/handle-s1"
        );
    }

    #[test]
    #[should_panic(expected = "asked to trap")]
    fn trap_panics() {
        let _mock = MockHost::new().install();
        let _ = Faults::issue(grant("trap"));
    }
}
