//! Which model-call failures the gateway retries, and how long it waits between attempts.

use std::time::Duration;

/// How the model gateway retries a model call that failed before anything reached the agent
/// (set with [`crate::AgentConfig::model_retry`]). The defaults are the official OpenAI
/// clients': two retries, exponential backoff from 0.5 s up to 8 s with jitter, and the
/// server's `Retry-After` honoured up to 60 s.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModelRetry {
    /// Retries after the first attempt (0 turns retrying off).
    pub max_retries: u32,
    /// The first pause; each later one doubles, up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest pause computed by backoff.
    pub max_backoff: Duration,
    /// The longest `Retry-After` obeyed; a server asking for more ends the retries at once.
    pub max_retry_after: Duration,
}

impl Default for ModelRetry {
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl ModelRetry {
    /// No retries: every failure reaches the agent as it happened.
    #[must_use]
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Sets the number of retries after the first attempt.
    #[must_use]
    pub const fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the first pause and the longest one.
    #[must_use]
    pub const fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max;
        self
    }

    /// The pause before retry number `retry` (1-based): the server's `Retry-After` when it gave
    /// one (None when that exceeds `max_retry_after`: do not retry), else exponential backoff
    /// with up to 25 % jitter taken off.
    pub(crate) fn pause(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let Some(asked) = retry_after {
            return (asked <= self.max_retry_after).then_some(asked);
        }
        let exp = self
            .initial_backoff
            .saturating_mul(1 << (retry.saturating_sub(1)).min(20))
            .min(self.max_backoff);
        let jitter = 1.0 - 0.25 * f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 255.0;
        Some(exp.mul_f64(jitter))
    }
}

/// Whether an upstream HTTP status is worth another attempt (the official clients' list).
pub(crate) const fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429 | 500 | 502 | 503 | 504)
}

/// A `Retry-After` header: seconds (fractions allowed), or `retry-after-ms` as OpenAI sends.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    text("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_some_jitter() {
        let retry = ModelRetry::default();
        for (n, full) in [(1, 500), (2, 1000), (3, 2000), (6, 8000), (30, 8000)] {
            let pause = retry.pause(n, None).unwrap().as_millis();
            assert!(
                pause <= full && pause >= full * 3 / 4,
                "retry {n}: {pause} ms"
            );
        }
    }

    #[test]
    fn retry_after_wins_and_too_long_a_wait_ends_the_retries() {
        let retry = ModelRetry::default();
        assert_eq!(
            retry.pause(1, Some(Duration::from_secs(3))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry.pause(1, Some(Duration::from_secs(3600))), None);
    }

    #[test]
    fn retry_after_headers_are_read_in_seconds_or_milliseconds() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(150)));
        assert!(retryable_status(429) && retryable_status(503) && !retryable_status(400));
    }
}
