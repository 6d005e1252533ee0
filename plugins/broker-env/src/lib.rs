//! `env`: hands out operator-provided static secrets by name.
//!
//! A grant named `NAME` issues the environment variable `NAME` with the
//! value of the secret `NAME`, which the host reads from its own variable
//! `PADDOCK_SECRET_NAME` or from the operator's secrets file
//! (`[plugins] secrets_file`). The operator decides which names this broker
//! may read at all:
//!
//! ```toml
//! [plugins.grants.env]
//! secrets = ["DB_PASSWORD", "NPM_TOKEN"]
//! ```
//!
//! Config keys: none. The grant's `scope` and `ttl_secs` are ignored: a
//! static secret cannot be narrowed, does not expire and has no revocation
//! handle (rotate it at its source).

use paddock_sdk::broker::*;
use paddock_sdk::secrets;

pub struct EnvBroker;

impl CredentialBroker for EnvBroker {
    fn info() -> BrokerInfo {
        BrokerInfo {
            name: "env".into(),
            display_name: "Static secrets".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Hands out operator-provided static secrets by name, as environment variables"
                    .into(),
        }
    }

    fn issue(grant: Grant) -> Result<Credential, PluginError> {
        check_name(&grant.name)?;
        let value = secrets::get(&grant.name)?;
        Ok(Credential::default().env(&grant.name, &value))
    }
}

/// A grant's name becomes an environment variable's, so it must be one
/// (letters, digits and `_`, not starting with a digit) — and a name like
/// `../x` or `A=B` can never reach the host's lookup.
fn check_name(name: &str) -> Result<(), PluginError> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(PluginError::InvalidInput(format!(
            "secret name {name:?} is not an environment variable name (letters, digits and `_`, not starting with a digit)"
        )))
    }
}

paddock_sdk::export_broker!(EnvBroker);

#[cfg(test)]
mod tests {
    use paddock_sdk::testing::broker::MockHost;

    use super::*;

    fn grant(name: &str) -> Grant {
        Grant {
            session_id: "s1".into(),
            owner: "alice".into(),
            name: name.into(),
            scope: None,
            ttl_secs: 600,
        }
    }

    #[test]
    fn issues_the_secret_under_its_own_name_without_a_handle() {
        let mock = MockHost::new().secret("DB_PASSWORD", "hunter2").install();
        let credential = EnvBroker::issue(grant("DB_PASSWORD")).expect("issued");
        assert_eq!(credential.env["DB_PASSWORD"], "hunter2");
        assert_eq!(credential.revocation_handle, None);
        assert_eq!(credential.expires_at, None);
        assert_eq!(mock.secret_reads(), ["DB_PASSWORD"]);
    }

    #[test]
    fn an_ungranted_secret_is_denied() {
        let _mock = MockHost::new().install();
        assert!(matches!(
            EnvBroker::issue(grant("OTHER")),
            Err(PluginError::Denied(_))
        ));
    }

    #[test]
    fn a_name_that_is_no_variable_name_is_refused_before_any_read() {
        let mock = MockHost::new().install();
        for bad in ["", "1X", "A=B", "../x", "a b"] {
            let err = EnvBroker::issue(grant(bad)).unwrap_err();
            assert!(
                matches!(err, PluginError::InvalidInput(_)),
                "{bad:?}: {err}"
            );
        }
        assert!(mock.secret_reads().is_empty());
    }
}
