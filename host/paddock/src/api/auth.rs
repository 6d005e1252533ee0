//! Bearer-token authentication: each API token maps to an owner.
//!
//! Tokens are compared in constant time, against every configured token
//! (the scan never stops early), so timing reveals neither which token
//! matched nor how much of one did.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;

/// The configured tokens, kept as SHA-256 digests so every comparison has
/// the same length.
pub struct Tokens {
    entries: Vec<([u8; 32], String)>,
}

impl Tokens {
    /// From `owner → token` pairs.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Self {
        Self {
            entries: pairs
                .into_iter()
                .map(|(owner, token)| (Sha256::digest(token.as_bytes()).into(), owner.clone()))
                .collect(),
        }
    }

    /// The owner of `token`, if any.
    pub fn owner(&self, token: &str) -> Option<&str> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (candidate, owner) in &self.entries {
            if bool::from(candidate.ct_eq(&digest)) {
                found = Some(owner.as_str());
            }
        }
        found
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Owner(pub String);

impl FromRequestParts<AppState> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                h.split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            })
            .map(|(_, token)| token.trim())
            .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer <token>"))?;
        state
            .tokens
            .owner(token)
            .map(|owner| Owner(owner.to_owned()))
            .ok_or_else(|| ApiError::unauthorized("unknown API token"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn each_token_maps_to_its_owner() {
        let pairs: BTreeMap<String, String> = [
            ("alice".to_owned(), "token-alice".to_owned()),
            ("bob".to_owned(), "token-bob".to_owned()),
        ]
        .into();
        let tokens = Tokens::new(&pairs);
        assert_eq!(tokens.owner("token-bob"), Some("bob"));
        assert_eq!(tokens.owner("token-alice"), Some("alice"));
        assert_eq!(tokens.owner("token-ali"), None);
        assert_eq!(tokens.owner(""), None);
    }
}
