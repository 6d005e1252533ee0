//! The per-sandbox env store, merged into every exec, and the name and value
//! rules that also apply to an exec's own `env`.
//!
//! Loader variables (`LD_*`, `DYLD_*`) are refused: they would let whoever
//! controls the store inject code into every process, including ones the
//! host starts for its own checks.

use std::collections::BTreeMap;

use http::StatusCode;

use super::error::ApiError;
pub use crate::proto::env::{EnvError, check_name, check_var};
use crate::proto::{EnvPatch, EnvView};

/// Count and size limits of the store, seed included.
#[derive(Debug, Clone, Copy)]
pub struct EnvLimits {
    pub max_vars: usize,
    pub max_bytes: usize,
}

impl Default for EnvLimits {
    fn default() -> Self {
        Self {
            max_vars: crate::proto::DEFAULT_ENV_MAX_VARS,
            max_bytes: crate::proto::DEFAULT_ENV_MAX_BYTES,
        }
    }
}

impl From<EnvError> for ApiError {
    fn from(err: EnvError) -> Self {
        let (status, code) = match &err {
            EnvError::InvalidName { .. } => (StatusCode::BAD_REQUEST, "invalid_env_name"),
            EnvError::InvalidValue { .. } => (StatusCode::BAD_REQUEST, "invalid_env_value"),
            EnvError::Refused { .. } => (StatusCode::FORBIDDEN, "env_name_refused"),
            EnvError::TooMany { .. } | EnvError::TooLarge { .. } => {
                (StatusCode::BAD_REQUEST, "env_limit_exceeded")
            }
        };
        ApiError::new(status, code, err.to_string())
    }
}

/// The store itself; callers hold it behind a mutex.
#[derive(Debug)]
pub struct EnvStore {
    vars: BTreeMap<String, String>,
    limits: EnvLimits,
}

impl EnvStore {
    /// A store seeded with `seed` (from `--env-file`), under the same rules
    /// and limits as a patch.
    ///
    /// # Errors
    ///
    /// The first refused variable, or the limit the seed exceeds.
    pub fn new(seed: BTreeMap<String, String>, limits: EnvLimits) -> Result<Self, EnvError> {
        let mut store = Self {
            vars: BTreeMap::new(),
            limits,
        };
        store.patch(&EnvPatch {
            set: seed,
            unset: Vec::new(),
        })?;
        Ok(store)
    }

    pub fn vars(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    pub fn view(&self) -> EnvView {
        EnvView {
            vars: self.vars.clone(),
            max_vars: self.limits.max_vars,
            max_bytes: self.limits.max_bytes,
            used_bytes: used_bytes(&self.vars),
        }
    }

    /// Applies `patch` all-or-nothing: unsets first, then sets.
    ///
    /// # Errors
    ///
    /// The first refused variable or the exceeded limit; the store is
    /// unchanged then.
    pub fn patch(&mut self, patch: &EnvPatch) -> Result<EnvView, EnvError> {
        for (name, value) in &patch.set {
            check_var(name, value)?;
        }
        let mut next = self.vars.clone();
        for name in &patch.unset {
            next.remove(name);
        }
        for (name, value) in &patch.set {
            next.insert(name.clone(), value.clone());
        }
        if next.len() > self.limits.max_vars {
            return Err(EnvError::TooMany {
                count: next.len(),
                max: self.limits.max_vars,
            });
        }
        let bytes = used_bytes(&next);
        if bytes > self.limits.max_bytes {
            return Err(EnvError::TooLarge {
                bytes,
                max: self.limits.max_bytes,
            });
        }
        self.vars = next;
        Ok(self.view())
    }
}

fn used_bytes(vars: &BTreeMap<String, String>) -> usize {
    vars.iter().map(|(k, v)| k.len() + v.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> EnvPatch {
        EnvPatch {
            set: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            unset: Vec::new(),
        }
    }

    #[test]
    fn refuses_loader_and_malformed_names() {
        for name in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "LD_AUDIT",
            "ld_debug",
            "DYLD_INSERT_LIBRARIES",
        ] {
            assert!(
                matches!(check_name(name), Err(EnvError::Refused { .. })),
                "{name}"
            );
        }
        for name in ["", "A=B", "A\0B"] {
            assert!(
                matches!(check_name(name), Err(EnvError::InvalidName { .. })),
                "{name:?}"
            );
        }
        assert!(check_name("OLD_PATH").is_ok());
        assert!(matches!(
            check_var("X", "a\0b"),
            Err(EnvError::InvalidValue { .. })
        ));
    }

    #[test]
    fn patch_is_all_or_nothing_and_limited() {
        let limits = EnvLimits {
            max_vars: 2,
            max_bytes: 10,
        };
        let mut store = EnvStore::new(BTreeMap::new(), limits).expect("empty seed");
        store.patch(&set(&[("A", "1")])).expect("fits");
        let err = store.patch(&set(&[("B", "2"), ("LD_PRELOAD", "x")]));
        assert!(matches!(err, Err(EnvError::Refused { .. })));
        assert_eq!(store.vars().len(), 1, "refused patch left no trace");
        assert!(matches!(
            store.patch(&set(&[("B", "2"), ("C", "3")])),
            Err(EnvError::TooMany { count: 3, max: 2 })
        ));
        assert!(matches!(
            store.patch(&set(&[("B", "123456789")])),
            Err(EnvError::TooLarge { .. })
        ));
        let view = store
            .patch(&EnvPatch {
                set: set(&[("B", "2")]).set,
                unset: vec!["A".into()],
            })
            .expect("unset then set");
        assert_eq!(view.vars.keys().collect::<Vec<_>>(), ["B"]);
        assert_eq!(view.used_bytes, 2);
    }

    #[test]
    fn seed_obeys_the_same_limits() {
        let seed: BTreeMap<String, String> =
            (0..3).map(|i| (format!("V{i}"), "x".into())).collect();
        let limits = EnvLimits {
            max_vars: 2,
            max_bytes: 1024,
        };
        assert!(matches!(
            EnvStore::new(seed, limits),
            Err(EnvError::TooMany { .. })
        ));
    }
}
