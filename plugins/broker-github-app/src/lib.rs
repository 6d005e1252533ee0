//! `github-app`: mints short-lived GitHub App installation tokens.
//!
//! For each grant it signs an RS256 JWT as the app (inside the plugin: the
//! private key never leaves it), finds the app's installation on the
//! granted repository and asks GitHub for an installation access token
//! limited to that repository. The sandbox gets it as `GITHUB_TOKEN` and
//! `GH_TOKEN` (what `git` credential helpers and `gh` read); it expires
//! after GitHub's fixed hour, and `revoke` ends it early.
//!
//! Config keys (`[plugins.config.github-app]`):
//!
//! | key | meaning |
//! | --- | --- |
//! | `app_id` | the GitHub App's id (required) |
//! | `private_key_secret` | the name of the secret holding the app's PEM private key (required) |
//! | `api_base_url` | REST API base, default `https://api.github.com` (GitHub Enterprise: `https://HOST/api/v3`) |
//! | `installation_id` | the installation to use; unset: looked up per repository |
//!
//! The grant's `scope` is `owner/repo`; without one the token covers the
//! whole installation, which then needs `installation_id`. The operator
//! grants the key's secret and the API host:
//!
//! ```toml
//! [plugins.grants.github-app]
//! secrets = ["GITHUB_APP_KEY"]
//! allow_hosts = ["api.github.com"]
//! [plugins.config.github-app]
//! app_id = "123456"
//! private_key_secret = "GITHUB_APP_KEY"
//! ```
//!
//! The revocation handle is the token itself: GitHub revokes an
//! installation token only through `DELETE /installation/token`
//! authenticated by that token, so nothing else would do. The host keeps
//! handles privately and never logs them.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use paddock_sdk::broker::*;
use paddock_sdk::http::{self, Request, Response};
use paddock_sdk::{config, secrets};
use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::sha2::Sha256;
use rsa::signature::{SignatureEncoding, Signer};
use serde::Deserialize;
use serde_json::json;

/// The public GitHub REST API.
pub const DEFAULT_API_BASE_URL: &str = "https://api.github.com";
/// How far the JWT's `iat` is set back: GitHub's advice against clock
/// drift between us and them.
pub const JWT_BACKDATE_SECS: u64 = 60;
/// The JWT's lifetime from now: under GitHub's ten-minute maximum, with the
/// backdated `iat` still inside it.
pub const JWT_LIFETIME_SECS: u64 = 540;
/// Per-request timeout: GitHub answers in well under a second; a stuck
/// call should fail the grant, not eat the host's whole call budget.
pub const REQUEST_TIMEOUT_MS: u32 = 10_000;
const API_VERSION: &str = "2022-11-28";

pub struct GithubApp;

impl CredentialBroker for GithubApp {
    fn info() -> BrokerInfo {
        BrokerInfo {
            name: "github-app".into(),
            display_name: "GitHub App installation tokens".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Mints short-lived GitHub App installation tokens (GITHUB_TOKEN, GH_TOKEN) limited to the granted repository".into(),
        }
    }

    fn issue(grant: Grant) -> Result<Credential, PluginError> {
        let settings = Settings::from_config()?;
        let repo = grant.scope.as_deref().map(Repo::parse).transpose()?;
        let pem = secrets::get(&settings.private_key_secret)?;
        let jwt = app_jwt(&pem, &settings.app_id, now())?;
        let installation = match (settings.installation_id, &repo) {
            (Some(id), _) => id,
            (None, Some(repo)) => find_installation(&settings.api_base_url, &jwt, repo)?,
            (None, None) => {
                return Err(PluginError::InvalidInput(
                    "a grant without a repository scope needs config `installation_id`".into(),
                ));
            }
        };
        let body = match &repo {
            Some(repo) => json!({ "repositories": [repo.name] }),
            None => json!({}),
        };
        let url = format!(
            "{}/app/installations/{installation}/access_tokens",
            settings.api_base_url
        );
        let response = send(api(Request::post(&url), &jwt).json(&body)?)?;
        if response.status != 201 && response.status != 200 {
            return Err(github_error("creating an installation token", &response));
        }
        let token: AccessToken = response.json().map_err(|e| {
            PluginError::Internal(format!("GitHub's installation token answer: {e}"))
        })?;
        let expires_at = parse_rfc3339(&token.expires_at).ok_or_else(|| {
            PluginError::Internal(format!(
                "GitHub's token expiry {:?} is not an RFC 3339 UTC time",
                token.expires_at
            ))
        })?;
        Ok(Credential::default()
            .env("GITHUB_TOKEN", &token.token)
            .env("GH_TOKEN", &token.token)
            .expires_at(expires_at)
            .revocation_handle(token.token))
    }

    fn revoke(handle: &str) -> Result<(), PluginError> {
        let settings = Settings::from_config()?;
        let url = format!("{}/installation/token", settings.api_base_url);
        let response = send(api(Request::delete(&url), handle))?;
        match response.status {
            204 | 200 => Ok(()),
            // The token no longer authenticates: it expired or was revoked
            // already, which is what revoking wants.
            401 => Ok(()),
            _ => Err(github_error("revoking an installation token", &response)),
        }
    }
}

paddock_sdk::export_broker!(GithubApp);

/// The plugin's config, read on every call (each call is a fresh instance).
#[derive(Debug)]
struct Settings {
    app_id: String,
    private_key_secret: String,
    api_base_url: String,
    installation_id: Option<u64>,
}

impl Settings {
    fn from_config() -> Result<Self, PluginError> {
        let api_base_url = config::get("api_base_url")
            .map(|v| v.trim().trim_end_matches('/').to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_API_BASE_URL.to_owned());
        Ok(Self {
            app_id: config::required("app_id")?,
            private_key_secret: config::required("private_key_secret")?,
            api_base_url,
            installation_id: config::parse("installation_id")?,
        })
    }
}

/// An `owner/repo` scope.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Repo {
    owner: String,
    name: String,
}

impl Repo {
    fn parse(scope: &str) -> Result<Self, PluginError> {
        let valid = |s: &str| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match scope.trim().split_once('/') {
            Some((owner, name)) if valid(owner) && valid(name) => Ok(Self {
                owner: owner.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(PluginError::InvalidInput(format!(
                "scope {scope:?} is not a repository `owner/repo`"
            ))),
        }
    }
}

#[derive(Deserialize)]
struct AccessToken {
    token: String,
    expires_at: String,
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
}

/// The app's JWT: RS256 over `{iat, exp, iss}` with the app's private key
/// (PKCS#1 `RSA PRIVATE KEY`, as GitHub hands it out, or PKCS#8).
pub fn app_jwt(pem: &str, app_id: &str, now: u64) -> Result<String, PluginError> {
    let key = RsaPrivateKey::from_pkcs1_pem(pem)
        .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem))
        .map_err(|e| {
            PluginError::InvalidInput(format!(
                "the app's private key is not an RSA PEM key (PKCS#1 or PKCS#8): {e}"
            ))
        })?;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = json!({
        "iat": now.saturating_sub(JWT_BACKDATE_SECS),
        "exp": now + JWT_LIFETIME_SECS,
        "iss": app_id,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let signature = SigningKey::<Sha256>::new(key)
        .try_sign(signing_input.as_bytes())
        .map_err(|e| PluginError::Internal(format!("signing the app's JWT: {e}")))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    ))
}

fn find_installation(base: &str, jwt: &str, repo: &Repo) -> Result<u64, PluginError> {
    let url = format!("{base}/repos/{}/{}/installation", repo.owner, repo.name);
    let response = send(api(Request::get(&url), jwt))?;
    if response.status == 404 {
        return Err(PluginError::Denied(format!(
            "the GitHub App is not installed on {}/{}",
            repo.owner, repo.name
        )));
    }
    if !response.is_success() {
        return Err(github_error("finding the app's installation", &response));
    }
    let installation: Installation = response
        .json()
        .map_err(|e| PluginError::Internal(format!("GitHub's installation answer: {e}")))?;
    Ok(installation.id)
}

/// A GitHub REST request with the headers GitHub asks for.
fn api(request: Request, bearer: &str) -> Request {
    request
        .bearer(bearer)
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", API_VERSION)
        .header("user-agent", "paddock-broker-github-app")
        .timeout_ms(REQUEST_TIMEOUT_MS)
}

fn send(request: Request) -> Result<Response, PluginError> {
    Ok(http::send(&request)?)
}

/// GitHub's answer to a failed call, as the plugin error it means. GitHub's
/// error bodies carry a `message`; the request's token is never in them.
fn github_error(doing: &str, response: &Response) -> PluginError {
    let message = response
        .json::<serde_json::Value>()
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| response.text().chars().take(200).collect());
    let text = format!("{doing}: GitHub answered {}: {message}", response.status);
    match response.status {
        401 | 403 | 404 | 422 => PluginError::Denied(text),
        _ => PluginError::Unavailable(text),
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds of a UTC RFC 3339 time as GitHub writes it
/// (`2026-12-02T18:00:00Z`, fractions of a second ignored).
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let time = time.split('.').next()?;
    let mut time = time.splitn(3, ':').map(str::parse::<i64>);
    let (hour, minute, second) = (time.next()?.ok()?, time.next()?.ok()?, time.next()?.ok()?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

#[cfg(test)]
mod tests {
    use paddock_sdk::testing::broker::MockHost;
    use rsa::RsaPublicKey;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;

    use super::*;

    const BASE: &str = "https://gh.test";

    /// One key pair for every test: generating one takes seconds unoptimized.
    fn keypair() -> (String, RsaPublicKey) {
        static PAIR: std::sync::LazyLock<(String, RsaPublicKey)> = std::sync::LazyLock::new(|| {
            use rand::SeedableRng;
            let mut rng = rand::rngs::StdRng::seed_from_u64(7);
            let key = RsaPrivateKey::new(&mut rng, 2048).expect("a key");
            let pem = key
                .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
                .expect("pem")
                .to_string();
            (pem, key.to_public_key())
        });
        PAIR.clone()
    }

    fn grant(scope: Option<&str>) -> Grant {
        Grant {
            session_id: "s1".into(),
            owner: "alice".into(),
            name: "GITHUB_TOKEN".into(),
            scope: scope.map(str::to_owned),
            ttl_secs: 600,
        }
    }

    fn host(pem: &str) -> MockHost {
        MockHost::new()
            .config("app_id", "4242")
            .config("private_key_secret", "APP_KEY")
            .config("api_base_url", BASE)
            .secret("APP_KEY", pem)
    }

    fn token_answer() -> Response {
        Response::json_body(
            201,
            &json!({ "token": "ghs_minted", "expires_at": "2030-01-01T00:00:00Z" }),
        )
    }

    /// The JWT's claims after checking its RS256 signature with `public`.
    fn verified_claims(jwt: &str, public: &RsaPublicKey) -> serde_json::Value {
        let (signing_input, signature) = jwt.rsplit_once('.').expect("three parts");
        let signature =
            Signature::try_from(URL_SAFE_NO_PAD.decode(signature).unwrap().as_slice()).unwrap();
        VerifyingKey::<Sha256>::new(public.clone())
            .verify(signing_input.as_bytes(), &signature)
            .expect("the signature verifies with the app's public key");
        let (header, claims) = signing_input.split_once('.').unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap()
    }

    #[test]
    fn jwt_verifies_with_the_public_key_and_carries_iss_iat_exp() {
        let (pem, public) = keypair();
        let jwt = app_jwt(&pem, "4242", 1_000_000).expect("signed");
        let claims = verified_claims(&jwt, &public);
        assert_eq!(claims["iss"], "4242");
        assert_eq!(claims["iat"], 1_000_000 - 60);
        assert_eq!(claims["exp"], 1_000_000 + 540);
    }

    #[test]
    fn issue_finds_the_installation_then_mints_a_repo_token() {
        let (pem, public) = keypair();
        let mock = host(&pem)
            .respond(
                "GET",
                "/repos/acme/widgets/installation",
                Response::json_body(200, &json!({ "id": 99 })),
            )
            .respond(
                "POST",
                "/app/installations/99/access_tokens",
                token_answer(),
            )
            .install();
        let credential = GithubApp::issue(grant(Some("acme/widgets"))).expect("issued");
        assert_eq!(credential.env["GITHUB_TOKEN"], "ghs_minted");
        assert_eq!(credential.env["GH_TOKEN"], "ghs_minted");
        assert_eq!(credential.expires_at, Some(1_893_456_000));
        assert_eq!(credential.revocation_handle.as_deref(), Some("ghs_minted"));

        let requests = mock.requests();
        assert_eq!(requests.len(), 2);
        for request in &requests {
            let jwt = request
                .header_value("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .expect("bearer JWT");
            assert_eq!(verified_claims(jwt, &public)["iss"], "4242");
        }
        let body: serde_json::Value = serde_json::from_slice(&requests[1].body).unwrap();
        assert_eq!(body, json!({ "repositories": ["widgets"] }));
        assert_eq!(mock.secret_reads(), ["APP_KEY"]);
    }

    #[test]
    fn a_configured_installation_skips_the_lookup_and_no_scope_covers_it_all() {
        let (pem, _) = keypair();
        let mock = host(&pem)
            .config("installation_id", "7")
            .respond("POST", "/app/installations/7/access_tokens", token_answer())
            .install();
        GithubApp::issue(grant(None)).expect("issued");
        let requests = mock.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].body, b"{}");
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let (pem, _) = keypair();
        let _mock = host(&pem).install();
        let err = GithubApp::issue(grant(Some("not a repo"))).unwrap_err();
        assert!(
            matches!(err, PluginError::InvalidInput(ref m) if m.contains("owner/repo")),
            "{err}"
        );
        let err = GithubApp::issue(grant(None)).unwrap_err();
        assert!(err.to_string().contains("installation_id"), "{err}");
        // No route: the mock answers 404, i.e. the app is not installed.
        let err = GithubApp::issue(grant(Some("acme/widgets"))).unwrap_err();
        assert!(
            matches!(err, PluginError::Denied(ref m) if m.contains("not installed on acme/widgets")),
            "{err}"
        );

        let _mock = MockHost::new()
            .config("app_id", "1")
            .config("private_key_secret", "K")
            .secret("K", "not a key")
            .install();
        let err = GithubApp::issue(grant(Some("acme/widgets"))).unwrap_err();
        assert!(err.to_string().contains("not an RSA PEM key"), "{err}");
        let _mock = MockHost::new().install();
        let err = GithubApp::issue(grant(Some("acme/widgets"))).unwrap_err();
        assert!(err.to_string().contains("`app_id` is not set"), "{err}");
    }

    #[test]
    fn revoke_deletes_the_token_with_itself_and_accepts_an_expired_one() {
        let (pem, _) = keypair();
        let mock = host(&pem)
            .respond("DELETE", "/installation/token", Response::new(204, ""))
            .install();
        GithubApp::revoke("ghs_minted").expect("revoked");
        let request = &mock.requests()[0];
        assert_eq!(request.url, "https://gh.test/installation/token");
        assert_eq!(
            request.header_value("authorization"),
            Some("Bearer ghs_minted")
        );

        let _mock = host(&pem)
            .respond("DELETE", "/installation/token", Response::new(401, "{}"))
            .install();
        GithubApp::revoke("ghs_old").expect("an expired token counts as revoked");
    }

    #[test]
    fn rfc3339_times_parse_to_unix_seconds() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2016-07-11T22:14:10Z"), Some(1_468_275_250));
        assert_eq!(parse_rfc3339("2016-07-11T22:14:10.5Z"), Some(1_468_275_250));
        assert_eq!(parse_rfc3339("2016-07-11 22:14:10"), None);
    }
}
