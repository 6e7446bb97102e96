//! Cost estimates: a price table by model, applied to the token usage the model reported.

use std::collections::HashMap;

use crate::types::Usage;

/// What a model costs, per million tokens, in the currency of your choice (the bridge only
/// multiplies).
///
/// ```
/// use agy_bridge::Price;
///
/// let price = Price::per_million(0.30, 2.50).cached_input(0.075);
/// # let _ = price;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Price {
    /// Per million input (prompt) tokens.
    pub input: f64,
    /// Per million output tokens; thinking tokens are output tokens too.
    pub output: f64,
    /// Per million input tokens served from the model's cache (`None`: the input price).
    pub cached_input: Option<f64>,
}

impl Price {
    /// A price per million input and output tokens.
    #[must_use]
    pub const fn per_million(input: f64, output: f64) -> Self {
        Self {
            input,
            output,
            cached_input: None,
        }
    }

    /// The price per million cached input tokens.
    #[must_use]
    pub const fn cached_input(mut self, per_million: f64) -> Self {
        self.cached_input = Some(per_million);
        self
    }

    /// The cost of `usage`; `None` when it reports no tokens at all.
    #[must_use]
    pub fn cost(&self, usage: &Usage) -> Option<f64> {
        if usage.prompt_tokens.is_none()
            && usage.output_tokens.is_none()
            && usage.thoughts_tokens.is_none()
        {
            return None;
        }
        let count = |n: Option<u64>| n.unwrap_or(0) as f64;
        let cached = count(usage.cached_tokens).min(count(usage.prompt_tokens));
        let input = (count(usage.prompt_tokens) - cached) * self.input
            + cached * self.cached_input.unwrap_or(self.input);
        let output = (count(usage.output_tokens) + count(usage.thoughts_tokens)) * self.output;
        Some((input + output) / 1e6)
    }
}

/// Prices by model name, as the agents' [`crate::ModelConfig`]s name their models (set with
/// [`crate::BridgeConfig::prices`]). A turn of an agent whose model has a price reports its
/// cost in [`crate::ChatOutcome::cost`].
///
/// ```
/// use agy_bridge::{Price, PriceTable};
///
/// let prices = PriceTable::new()
///     .model("gemini-3.8-flash", Price::per_million(0.30, 2.50))
///     .model("llama3", Price::per_million(0.0, 0.0));
/// assert!(prices.price("llama3").is_some());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable(HashMap<String, Price>);

impl PriceTable {
    /// An empty table: no cost estimates.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Prices `model`.
    #[must_use]
    pub fn model(mut self, model: impl Into<String>, price: Price) -> Self {
        self.0.insert(model.into(), price);
        self
    }

    /// The price of `model`, if it has one.
    #[must_use]
    pub fn price(&self, model: &str) -> Option<Price> {
        self.0.get(model).copied()
    }

    /// Whether no model has a price.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, cached: u64, output: u64, thoughts: u64) -> Usage {
        Usage {
            prompt_tokens: Some(prompt),
            cached_tokens: Some(cached),
            output_tokens: Some(output),
            thoughts_tokens: Some(thoughts),
            total_tokens: Some(prompt + output + thoughts),
            ..Usage::default()
        }
    }

    #[test]
    fn cost_counts_cached_input_and_thinking_at_their_prices() {
        let price = Price::per_million(2.0, 10.0).cached_input(0.5);
        // 1M input of which 0.5M cached, 0.1M output + 0.1M thinking.
        let cost = price
            .cost(&usage(1_000_000, 500_000, 100_000, 100_000))
            .unwrap();
        assert!(
            (cost - (0.5 * 2.0 + 0.5 * 0.5 + 0.2 * 10.0)).abs() < 1e-9,
            "{cost}"
        );
        // Without a cached price, cached tokens cost as input.
        let cost = Price::per_million(2.0, 10.0)
            .cost(&usage(1_000_000, 500_000, 0, 0))
            .unwrap();
        assert!((cost - 2.0).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn no_tokens_reported_is_no_cost_and_more_cached_than_input_is_clamped() {
        assert_eq!(Price::per_million(1.0, 1.0).cost(&Usage::default()), None);
        let cost = Price::per_million(1.0, 0.0)
            .cached_input(0.0)
            .cost(&usage(10, 50, 0, 0))
            .unwrap();
        assert!(cost.abs() < 1e-12, "{cost}");
    }
}
