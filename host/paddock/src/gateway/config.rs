//! `[gateway]`: where the built-in LLM gateway forwards, with which real key,
//! and the limits every session's virtual key starts with.
//!
//! Plain serde data that rejects unknown keys, so a typo fails at start.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[gateway]`. With no upstream configured the routes exist but answer 503:
/// a fresh install serves nothing until the operator names a provider key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// How sandboxes reach the host (`http://10.0.0.5:8420`): the base of the
    /// URLs handed to CLIs. Default: `http://<listen address>`, filled in by
    /// `paddock serve` once it listens ([`super::Gateway::set_public_url`]).
    pub public_url: Option<String>,
    /// `[gateway.upstreams.anthropic]` and `[gateway.upstreams.openai]`.
    pub upstreams: Upstreams,
    /// `[gateway.limits]`: the limits a session's key gets unless the
    /// session layer asks for others ([`super::Gateway::default_limits`]).
    pub limits: LimitsConfig,
    /// `[gateway.prices."<model>"]`: prices per million tokens, needed for
    /// `budget_usd`. A key may be a glob with a `*` suffix; an exact name
    /// wins over a glob, a longer glob over a shorter one.
    pub prices: BTreeMap<String, Price>,
}

/// The providers the gateway forwards to, one per wire format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Upstreams {
    /// Anthropic Messages (`/v1/messages`).
    pub anthropic: Option<Upstream>,
    /// OpenAI Responses and Chat Completions (`/v1/responses`,
    /// `/v1/chat/completions`).
    pub openai: Option<Upstream>,
}

/// One provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// The provider's base URL without the `/v1` (`https://api.anthropic.com`,
    /// `https://api.openai.com`); the request's path is appended to it.
    pub base_url: String,
    /// The host environment variable holding the real key. Read once at
    /// start; unset is an error (there is no built-in key to fall back to).
    pub api_key_env: String,
}

/// `[gateway.limits]`: defaults for every session's key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Model allowlist; an entry ending in `*` matches by prefix
    /// (`claude-sonnet-*`). Empty: any model.
    pub models: Vec<String>,
    /// Tokens a session may use (input, output, cache reads and writes
    /// alike). None: unlimited.
    pub budget_tokens: Option<u64>,
    /// Dollars a session may spend, priced with `[gateway.prices]`. None:
    /// unlimited. With a budget, a model without a price is refused.
    pub budget_usd: Option<f64>,
}

/// `[gateway.prices."<model>"]`: dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// Default: `input_per_mtok` (errs on the side of spending the budget
    /// early, never late).
    pub cache_read_per_mtok: Option<f64>,
    /// Default: `input_per_mtok`.
    pub cache_write_per_mtok: Option<f64>,
}

impl GatewayConfig {
    /// The price of `model`: an exact entry, else the longest matching glob.
    pub fn price(&self, model: &str) -> Option<Price> {
        if let Some(price) = self.prices.get(model) {
            return Some(*price);
        }
        self.prices
            .iter()
            .filter(|(pattern, _)| pattern.ends_with('*') && super::limits::glob(pattern, model))
            .max_by_key(|(pattern, _)| pattern.len())
            .map(|(_, price)| *price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let text = r#"
            public_url = "http://127.0.0.1:8080"
            [upstreams.anthropic]
            base_url = "https://api.anthropic.com"
            api_key_env = "ANTHROPIC_API_KEY"
            [upstreams.openai]
            base_url = "https://api.openai.com"
            api_key_env = "OPENAI_API_KEY"
            [limits]
            models = ["claude-sonnet-*"]
            budget_tokens = 2000000
            budget_usd = 5.0
            [prices."claude-sonnet-*"]
            input_per_mtok = 3.0
            output_per_mtok = 15.0
        "#;
        let config: GatewayConfig = toml::from_str(text).unwrap();
        assert_eq!(config.limits.budget_tokens, Some(2_000_000));
        assert_eq!(
            config.upstreams.openai.unwrap().api_key_env,
            "OPENAI_API_KEY"
        );
        assert!(toml::from_str::<GatewayConfig>("publc_url = \"x\"").is_err());
    }

    #[test]
    fn exact_prices_win_over_globs_and_longer_globs_over_shorter() {
        let price = |p: f64| Price {
            input_per_mtok: p,
            ..Price::default()
        };
        let config = GatewayConfig {
            prices: BTreeMap::from([
                ("claude-*".to_owned(), price(1.0)),
                ("claude-sonnet-*".to_owned(), price(2.0)),
                ("claude-sonnet-4".to_owned(), price(3.0)),
            ]),
            ..GatewayConfig::default()
        };
        let input = |m: &str| config.price(m).map(|p| p.input_per_mtok);
        assert_eq!(input("claude-sonnet-4"), Some(3.0));
        assert_eq!(input("claude-sonnet-4-5"), Some(2.0));
        assert_eq!(input("claude-opus-4"), Some(1.0));
        assert_eq!(input("gpt-5"), None);
    }
}
