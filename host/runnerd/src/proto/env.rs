//! The rules for environment variable names and values, shared by runnerd
//! (which enforces them) and the host (which checks early, so a bad name is
//! refused when a session is created rather than at its first exec).

/// Why a variable or a patch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("environment variable name {name:?} is invalid: {why}")]
    InvalidName { name: String, why: &'static str },
    #[error("environment variable {name} is refused: {why}")]
    Refused { name: String, why: &'static str },
    #[error("value of environment variable {name} contains a NUL byte")]
    InvalidValue { name: String },
    #[error("env store would hold {count} variables, the limit is {max}")]
    TooMany { count: usize, max: usize },
    #[error("env store would hold {bytes} bytes of names and values, the limit is {max}")]
    TooLarge { bytes: usize, max: usize },
}

/// Checks a variable name: non-empty, no `=` or NUL, not a loader variable.
///
/// # Errors
///
/// [`EnvError::InvalidName`] or [`EnvError::Refused`], naming the variable.
pub fn check_name(name: &str) -> Result<(), EnvError> {
    let invalid = |why| EnvError::InvalidName {
        name: name.to_owned(),
        why,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.contains('=') {
        return Err(invalid("it contains '='"));
    }
    if name.contains('\0') {
        return Err(invalid("it contains a NUL byte"));
    }
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("LD_") {
        return Err(EnvError::Refused {
            name: name.to_owned(),
            why: "dynamic loader variables (LD_*) could inject code into every process",
        });
    }
    if upper.starts_with("DYLD_") {
        return Err(EnvError::Refused {
            name: name.to_owned(),
            why: "dynamic loader variables (DYLD_*) could inject code into every process",
        });
    }
    Ok(())
}

/// Checks a name and its value (no NUL: it cannot be passed to `execve`).
///
/// # Errors
///
/// As [`check_name`], or [`EnvError::InvalidValue`].
pub fn check_var(name: &str, value: &str) -> Result<(), EnvError> {
    check_name(name)?;
    if value.contains('\0') {
        return Err(EnvError::InvalidValue {
            name: name.to_owned(),
        });
    }
    Ok(())
}
