//! What a virtual key may do: which models, how many tokens or dollars,
//! until when. Pure checks, so each rule is tested here.

use serde::{Deserialize, Serialize};

use super::usage::UsageCounts;

/// The limits of one session's key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyLimits {
    /// Model allowlist; an entry ending in `*` matches by prefix
    /// (`claude-sonnet-*`). Empty: any model.
    pub models: Vec<String>,
    /// Tokens the session may use (input, output, cache reads and writes
    /// alike). None: unlimited.
    pub budget_tokens: Option<u64>,
    /// Dollars the session may spend. None: unlimited.
    pub budget_usd: Option<f64>,
    /// When the key stops working (Unix ms); 0: only when revoked.
    pub expires_at_ms: u64,
}

/// Why a request is over budget, for the refusal's message.
#[derive(Debug, Clone, PartialEq)]
pub enum Exhausted {
    Tokens { used: u64, budget: u64 },
    Usd { used: f64, budget: f64 },
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exhausted::Tokens { used, budget } => {
                write!(f, "{used} of its {budget} tokens used")
            }
            Exhausted::Usd { used, budget } => {
                write!(f, "${used:.4} of its ${budget:.2} budget used")
            }
        }
    }
}

impl KeyLimits {
    /// Whether `model` is on the allowlist.
    pub fn allows(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|pattern| glob(pattern, model))
    }

    /// Whether the key has expired at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms != 0 && now_ms >= self.expires_at_ms
    }

    /// Whether `used` has reached a budget. Checked before a request is
    /// forwarded, so the one request that crosses the line still completes.
    pub fn exhausted(&self, used: &UsageCounts) -> Option<Exhausted> {
        if let Some(budget) = self.budget_tokens
            && used.tokens() >= budget
        {
            return Some(Exhausted::Tokens {
                used: used.tokens(),
                budget,
            });
        }
        if let Some(budget) = self.budget_usd {
            let spent = used.cost_usd.unwrap_or(0.0);
            if spent >= budget {
                return Some(Exhausted::Usd {
                    used: spent,
                    budget,
                });
            }
        }
        None
    }
}

/// `pattern` matches `name` exactly, or by prefix when it ends in `*`.
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(models: &[&str]) -> KeyLimits {
        KeyLimits {
            models: models.iter().map(|m| (*m).to_owned()).collect(),
            ..KeyLimits::default()
        }
    }

    #[test]
    fn an_empty_allowlist_allows_any_model() {
        assert!(limits(&[]).allows("anything"));
    }

    #[test]
    fn exact_entries_match_only_themselves() {
        let l = limits(&["gpt-5"]);
        assert!(l.allows("gpt-5"));
        assert!(!l.allows("gpt-5-mini"));
        assert!(!l.allows("gpt-"));
    }

    #[test]
    fn star_suffixes_match_by_prefix() {
        let l = limits(&["claude-sonnet-*", "gpt-5"]);
        assert!(l.allows("claude-sonnet-4-5"));
        assert!(l.allows("claude-sonnet-"));
        assert!(!l.allows("claude-opus-4"));
        assert!(!l.allows("xclaude-sonnet-4"));
        assert!(limits(&["*"]).allows("x"));
    }

    #[test]
    fn budgets_are_reached_at_equality() {
        let l = KeyLimits {
            budget_tokens: Some(100),
            budget_usd: Some(1.0),
            ..KeyLimits::default()
        };
        let mut used = UsageCounts {
            input_tokens: 60,
            output_tokens: 39,
            ..UsageCounts::default()
        };
        assert_eq!(l.exhausted(&used), None);
        used.cache_read_tokens = 1;
        assert_eq!(
            l.exhausted(&used),
            Some(Exhausted::Tokens {
                used: 100,
                budget: 100
            })
        );
        let dollars = UsageCounts {
            cost_usd: Some(1.0),
            ..UsageCounts::default()
        };
        assert!(matches!(l.exhausted(&dollars), Some(Exhausted::Usd { .. })));
    }

    #[test]
    fn zero_never_expires() {
        assert!(!limits(&[]).expired(u64::MAX));
        let l = KeyLimits {
            expires_at_ms: 10,
            ..KeyLimits::default()
        };
        assert!(!l.expired(9));
        assert!(l.expired(10));
    }
}
