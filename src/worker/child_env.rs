//! The environment a worker (and through it every `localharness` and every command the agent
//! runs) starts with: an allow-list taken from this process, never the whole environment.
//!
//! A model that can run commands can print the environment, so a secret in this process's
//! environment (a database password, a cloud token, another service's API key) must not reach
//! the worker unless it is asked for: with [`crate::PoolConfig::env`] or
//! [`crate::AgentConfig::env`]. API keys of the model configuration travel in the agent's
//! configuration, not in the environment.

use std::ffi::{OsStr, OsString};

use secrecy::{ExposeSecret, SecretString};

/// Variables passed through by name: the search path, home and user, locale and time zone,
/// temporary directory, proxies and CA bundles (a corporate network needs them to reach the
/// model), and the Google Cloud settings Vertex AI reads (a project name, a region, and the
/// path of the application-default credentials file, not a secret itself).
pub(crate) const ALLOWED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "ANTIGRAVITY_HARNESS_PATH",
    "ANTIGRAVITY_ALLOW_CPU",
];

/// Prefixes passed through: the locale categories (`LC_*`) and the worker's own settings
/// (`AGY_WORKER_*`, e.g. its log level).
pub(crate) const ALLOWED_PREFIXES: &[&str] = &["LC_", "AGY_WORKER_"];

/// Whether `name` may be inherited by a worker.
#[must_use]
pub(crate) fn is_allowed(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    ALLOWED.contains(&name) || ALLOWED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether `name` is one of OpenTelemetry's standard variables (`OTEL_*`): a worker that
/// traces inherits them.
#[must_use]
pub(crate) fn is_otel(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b"OTEL_")
}

/// The allowed part of `vars` (normally `std::env::vars_os()`).
pub(crate) fn inherited(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    vars.into_iter().filter(|(k, _)| is_allowed(k)).collect()
}

/// Environment variables whose values may be secret (tokens, keys): `Debug` shows the names
/// only, and the values are kept as [`SecretString`]s.
///
/// ```
/// use agy_bridge::EnvVars;
///
/// let mut env = EnvVars::default();
/// env.set("MCP_TOKEN", "t0k3n");
/// assert_eq!(format!("{env:?}"), r#"EnvVars(["MCP_TOKEN"])"#);
/// ```
#[derive(Clone, Default)]
pub struct EnvVars(Vec<(String, SecretString)>);

impl EnvVars {
    /// Sets `name` (replacing an earlier value).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<SecretString>) {
        let name = name.into();
        self.0.retain(|(n, _)| *n != name);
        self.0.push((name, value.into()));
    }

    /// The variable names, in the order they were set.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Whether no variable is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(name, value)` pairs with the values exposed, for the child process that needs them.
    pub(crate) fn exposed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.expose_secret()))
    }

    /// `other`'s variables set over these.
    pub(crate) fn merged(&self, other: &Self) -> Self {
        let mut out = self.clone();
        for (name, value) in &other.0 {
            out.set(name.clone(), value.clone());
        }
        out
    }
}

impl std::fmt::Debug for EnvVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EnvVars").field(&self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_behind_and_basics_pass() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("LC_ALL", "C.UTF-8"),
            ("AGY_WORKER_LOG_LEVEL", "INFO"),
            ("GEMINI_API_KEY", "k"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
            ("DATABASE_URL", "postgres://u:p@h/db"),
            ("PYTHONPATH", "/evil"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let kept: Vec<String> = inherited(vars)
            .into_iter()
            .map(|(k, _)| k.into_string().unwrap())
            .collect();
        assert_eq!(kept, ["PATH", "LC_ALL", "AGY_WORKER_LOG_LEVEL"]);
    }
}
