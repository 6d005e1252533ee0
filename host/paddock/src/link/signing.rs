//! HMAC signatures on host→link control requests.
//!
//! The host signs every request it sends a link with the link's secret, over
//! the method, the path (with query), a timestamp, a nonce and the body's
//! SHA-256. The link refuses a bad signature, a timestamp outside the skew
//! window and a nonce it has already seen inside it, so a captured request
//! can be neither altered nor replayed. There is no built-in fallback
//! secret anywhere: a link without its registration secret verifies nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Unix seconds of the signature.
pub const TIMESTAMP_HEADER: &str = "x-paddock-timestamp";
/// A random, single-use value.
pub const NONCE_HEADER: &str = "x-paddock-nonce";
/// Hex HMAC-SHA256 of the canonical string.
pub const SIGNATURE_HEADER: &str = "x-paddock-signature";

/// How far a request's timestamp may be from the verifier's clock.
pub const SKEW_WINDOW: Duration = Duration::from_secs(60);

/// Nonces remembered at once. A sender that fills this within the window is
/// refused until old nonces age out, rather than letting memory grow.
const MAX_NONCES: usize = 100_000;

type HmacSha256 = Hmac<Sha256>;

/// The headers that authenticate one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub timestamp: u64,
    pub nonce: String,
    /// Lowercase hex.
    pub mac: String,
}

/// Why a request was refused. The messages say what failed, never the
/// expected signature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("the request is not signed: {0} is missing")]
    Missing(&'static str),
    #[error("the signature is malformed: {0}")]
    Malformed(&'static str),
    #[error("the request's timestamp is {0} s away from this clock (window: {1} s)")]
    Stale(u64, u64),
    #[error("the signature does not match")]
    Mismatch,
    #[error("the nonce was already used")]
    Replayed,
    #[error("too many recent nonces; try again shortly")]
    Saturated,
}

fn canonical(method: &str, path: &str, timestamp: u64, nonce: &str, body: &[u8]) -> String {
    format!(
        "{}\n{path}\n{timestamp}\n{nonce}\n{}",
        method.to_ascii_uppercase(),
        hex::encode(Sha256::digest(body))
    )
}

fn mac(secret: &[u8], text: &str) -> HmacSha256 {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(text.as_bytes());
    mac
}

/// Signs a request with `secret` at `now` (unix seconds).
pub fn sign(secret: &[u8], method: &str, path: &str, body: &[u8], now: u64) -> Signature {
    let nonce = random_nonce();
    let text = canonical(method, path, now, &nonce, body);
    Signature {
        timestamp: now,
        mac: hex::encode(mac(secret, &text).finalize().into_bytes()),
        nonce,
    }
}

fn random_nonce() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Without randomness nonces could repeat; a clock-derived value is
        // still unique per process run and the MAC keeps it unforgeable.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    hex::encode(bytes)
}

/// Checks signatures for one link secret and remembers the nonces it let
/// through for the length of the window.
pub struct Verifier {
    secret: Vec<u8>,
    window: Duration,
    /// Nonce → the timestamp it came with.
    seen: Mutex<HashMap<String, u64>>,
}

impl Verifier {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self::with_window(secret, SKEW_WINDOW)
    }

    pub fn with_window(secret: impl Into<Vec<u8>>, window: Duration) -> Self {
        Self {
            secret: secret.into(),
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Verifies one request at `now` (unix seconds). The timestamp is
    /// checked first, then the MAC (in constant time), and only a request
    /// that passed both uses up its nonce, so forged requests cannot burn
    /// nonces.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        signature: &Signature,
        now: u64,
    ) -> Result<(), SignatureError> {
        let window = self.window.as_secs();
        let skew = now.abs_diff(signature.timestamp);
        if skew > window {
            return Err(SignatureError::Stale(skew, window));
        }
        if signature.nonce.is_empty() || signature.nonce.len() > 128 {
            return Err(SignatureError::Malformed("nonce length"));
        }
        let expected = hex::decode(&signature.mac).map_err(|_| SignatureError::Malformed("mac"))?;
        let text = canonical(method, path, signature.timestamp, &signature.nonce, body);
        mac(&self.secret, &text)
            .verify_slice(&expected)
            .map_err(|_| SignatureError::Mismatch)?;

        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, at| now.abs_diff(*at) <= window);
        if seen.contains_key(&signature.nonce) {
            return Err(SignatureError::Replayed);
        }
        if seen.len() >= MAX_NONCES {
            return Err(SignatureError::Saturated);
        }
        seen.insert(signature.nonce.clone(), signature.timestamp);
        Ok(())
    }
}

impl Signature {
    /// Reads the three headers; `get` looks one up by (lowercase) name.
    pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, SignatureError> {
        let timestamp = get(TIMESTAMP_HEADER)
            .ok_or(SignatureError::Missing(TIMESTAMP_HEADER))?
            .parse()
            .map_err(|_| SignatureError::Malformed("timestamp"))?;
        let nonce = get(NONCE_HEADER)
            .ok_or(SignatureError::Missing(NONCE_HEADER))?
            .to_owned();
        let mac = get(SIGNATURE_HEADER)
            .ok_or(SignatureError::Missing(SIGNATURE_HEADER))?
            .to_owned();
        Ok(Self {
            timestamp,
            nonce,
            mac,
        })
    }

    /// The headers to send.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            (TIMESTAMP_HEADER, self.timestamp.to_string()),
            (NONCE_HEADER, self.nonce.clone()),
            (SIGNATURE_HEADER, self.mac.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"link-secret-for-tests";
    const NOW: u64 = 1_800_000_000;

    fn signed() -> Signature {
        sign(
            SECRET,
            "POST",
            "/control/execs?x=1",
            b"{\"argv\":[\"true\"]}",
            NOW,
        )
    }

    fn check(v: &Verifier, s: &Signature, body: &[u8], now: u64) -> Result<(), SignatureError> {
        v.verify("POST", "/control/execs?x=1", body, s, now)
    }

    #[test]
    fn a_signed_request_passes_once() {
        let v = Verifier::new(SECRET);
        let s = signed();
        assert_eq!(check(&v, &s, b"{\"argv\":[\"true\"]}", NOW + 5), Ok(()));
        assert_eq!(
            check(&v, &s, b"{\"argv\":[\"true\"]}", NOW + 6),
            Err(SignatureError::Replayed)
        );
    }

    #[test]
    fn a_tampered_body_path_or_method_is_refused() {
        let v = Verifier::new(SECRET);
        let s = signed();
        assert_eq!(
            check(&v, &s, b"{\"argv\":[\"rm\"]}", NOW),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            v.verify(
                "POST",
                "/control/execs?x=2",
                b"{\"argv\":[\"true\"]}",
                &s,
                NOW
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            v.verify(
                "DELETE",
                "/control/execs?x=1",
                b"{\"argv\":[\"true\"]}",
                &s,
                NOW
            ),
            Err(SignatureError::Mismatch)
        );
        // The failures did not use the nonce up.
        assert_eq!(check(&v, &s, b"{\"argv\":[\"true\"]}", NOW), Ok(()));
    }

    #[test]
    fn a_stale_or_future_timestamp_is_refused() {
        let v = Verifier::new(SECRET);
        let s = signed();
        assert!(matches!(
            check(&v, &s, b"{\"argv\":[\"true\"]}", NOW + 61),
            Err(SignatureError::Stale(61, 60))
        ));
        assert!(matches!(
            check(&v, &s, b"{\"argv\":[\"true\"]}", NOW - 61),
            Err(SignatureError::Stale(61, 60))
        ));
    }

    #[test]
    fn a_wrong_secret_is_refused() {
        let v = Verifier::new(b"another-secret".to_vec());
        assert_eq!(
            check(&v, &signed(), b"{\"argv\":[\"true\"]}", NOW),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn nonces_are_forgotten_after_the_window() {
        let v = Verifier::new(SECRET);
        let s = signed();
        assert_eq!(check(&v, &s, b"{\"argv\":[\"true\"]}", NOW), Ok(()));
        // Past the window the timestamp itself is refused, so forgetting
        // the nonce opens no replay.
        assert!(matches!(
            check(&v, &s, b"{\"argv\":[\"true\"]}", NOW + 120),
            Err(SignatureError::Stale(..))
        ));
        let later = sign(SECRET, "GET", "/control/health", b"", NOW + 120);
        assert_eq!(
            v.verify("GET", "/control/health", b"", &later, NOW + 120),
            Ok(())
        );
        let seen = v.seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "only the recent nonce is remembered");
        assert!(seen.contains_key(&later.nonce));
    }

    #[test]
    fn headers_round_trip() {
        let s = signed();
        let headers = s.headers();
        let parsed = Signature::from_headers(|name| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        })
        .unwrap();
        assert_eq!(parsed, s);
        assert_eq!(
            Signature::from_headers(|_| None),
            Err(SignatureError::Missing(TIMESTAMP_HEADER))
        );
    }
}
