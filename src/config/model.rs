//! [`ModelConfig`]: which model an agent talks to, and its wire form.

use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use crate::{
    error::{Error, Result},
    protocol::wire::{ModelSpec, WireSecret, model_label},
};

/// Which model an agent talks to.
///
/// API keys are [`SecretString`]s: `Debug` prints `[REDACTED]`, and they reach the worker only
/// inside the agent's configuration, never through the environment.
///
/// ```
/// use agy_bridge::ModelConfig;
///
/// let gemini = ModelConfig::gemini("my-api-key").with_model("gemini-2.5-flash");
/// assert!(!format!("{gemini:?}").contains("my-api-key"));
/// let local = ModelConfig::openai_compatible("http://127.0.0.1:11434/v1", "llama3");
/// # let _ = local;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ModelConfig {
    /// The Gemini API.
    Gemini {
        /// API key; `None` takes the pool's ([`crate::PoolConfig::gemini_api_key`]) or, failing
        /// that, `GEMINI_API_KEY` of this process when the agent is created.
        api_key: Option<SecretString>,
        /// Model name; the SDK's default when `None`.
        model: Option<String>,
    },
    /// Vertex AI.
    Vertex {
        /// Google Cloud project.
        project: Option<String>,
        /// Region.
        location: Option<String>,
        /// Express-mode API key (without one, the harness uses application-default
        /// credentials, `GOOGLE_APPLICATION_CREDENTIALS`).
        api_key: Option<SecretString>,
        /// Model name.
        model: Option<String>,
    },
    /// A local LiteRT model file, run by the harness.
    LiteRt {
        /// Path of the model file.
        model_path: PathBuf,
    },
    /// Any server with an OpenAI-compatible `/chat/completions` (Ollama, vLLM, LM Studio, the
    /// crate's `ScriptedModel`). The SDK sends no API key on this path.
    OpenaiCompatible {
        /// e.g. `http://127.0.0.1:11434/v1`.
        base_url: String,
        /// Model name as the server knows it.
        model: String,
    },
}

/// The environment variable a Gemini agent without a key of its own takes its key from.
pub const ENV_GEMINI_API_KEY: &str = "GEMINI_API_KEY";

impl ModelConfig {
    /// Gemini with this API key.
    pub fn gemini(api_key: impl Into<SecretString>) -> Self {
        Self::Gemini {
            api_key: Some(api_key.into()),
            model: None,
        }
    }

    /// Gemini with the key from `GEMINI_API_KEY`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the variable is not set.
    pub fn gemini_from_env() -> Result<Self> {
        let key = std::env::var(ENV_GEMINI_API_KEY).map_err(|_| Error::InvalidConfig {
            message: format!("{ENV_GEMINI_API_KEY} is not set"),
        })?;
        Ok(Self::gemini(key))
    }

    /// Vertex AI in `project` and `location`, with application-default credentials.
    pub fn vertex(project: impl Into<String>, location: impl Into<String>) -> Self {
        Self::Vertex {
            project: Some(project.into()),
            location: Some(location.into()),
            api_key: None,
            model: None,
        }
    }

    /// An OpenAI-compatible server.
    pub fn openai_compatible(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self::OpenaiCompatible {
            base_url: base_url.into(),
            model: model.into(),
        }
    }

    /// The same model configuration with another model name (Gemini, Vertex and
    /// OpenAI-compatible servers; a LiteRT model is its file).
    #[must_use]
    pub fn with_model(mut self, name: impl Into<String>) -> Self {
        match &mut self {
            Self::Gemini { model, .. } | Self::Vertex { model, .. } => *model = Some(name.into()),
            Self::OpenaiCompatible { model, .. } => *model = name.into(),
            Self::LiteRt { .. } => {}
        }
        self
    }

    /// Fills in a Gemini key that was left to the environment: the pool's key, else
    /// `GEMINI_API_KEY` of this process.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when there is none.
    pub(crate) fn resolved(&self, pool_key: Option<&SecretString>) -> Result<Self> {
        match self {
            Self::Gemini {
                api_key: None,
                model,
            } => {
                let key = match pool_key {
                    Some(key) => key.clone(),
                    None => std::env::var(ENV_GEMINI_API_KEY)
                        .map(SecretString::from)
                        .map_err(|_| Error::InvalidConfig {
                            message: format!(
                                "no Gemini API key: pass one (ModelConfig::gemini), set one for \
                                 the pool (PoolConfig::gemini_api_key), or set \
                                 {ENV_GEMINI_API_KEY}"
                            ),
                        })?,
                };
                Ok(Self::Gemini {
                    api_key: Some(key),
                    model: model.clone(),
                })
            }
            other => Ok(other.clone()),
        }
    }

    /// The model as the worker reads it, keys included (the only place they are exposed).
    pub(crate) fn to_wire(&self) -> ModelSpec {
        let key =
            |k: &Option<SecretString>| k.as_ref().map(|k| WireSecret(k.expose_secret().to_owned()));
        match self {
            Self::Gemini { api_key, model } => ModelSpec::Gemini {
                api_key: key(api_key),
                model: model.clone(),
            },
            Self::Vertex {
                project,
                location,
                api_key,
                model,
            } => ModelSpec::Vertex {
                project: project.clone(),
                location: location.clone(),
                api_key: key(api_key),
                model: model.clone(),
            },
            Self::LiteRt { model_path } => ModelSpec::LiteRt {
                model_path: model_path.clone(),
            },
            Self::OpenaiCompatible { base_url, model } => ModelSpec::OpenaiCompatible {
                base_url: base_url.clone(),
                model: model.clone(),
            },
        }
    }

    /// The key that quota backoff is tracked under: a digest of the API key (never the key
    /// itself, which would show in `Debug` output and logs), else the project or endpoint.
    #[must_use]
    pub fn quota_key(&self) -> String {
        let digest = |k: &SecretString| {
            use sha2::{Digest, Sha256};
            let hash = Sha256::digest(k.expose_secret().as_bytes());
            format!("key-sha256:{}", crate::worker::embedded::hex(&hash[..8]))
        };
        match self {
            Self::Gemini { api_key, .. } => {
                format!(
                    "gemini:{}",
                    api_key.as_ref().map_or_else(|| "env".into(), digest)
                )
            }
            Self::Vertex {
                api_key, project, ..
            } => format!(
                "vertex:{}",
                api_key
                    .as_ref()
                    .map(digest)
                    .or_else(|| project.clone())
                    .unwrap_or_else(|| "env".into())
            ),
            Self::OpenaiCompatible { base_url, .. } => format!("openai:{base_url}"),
            Self::LiteRt { model_path } => format!("litert:{}", model_path.display()),
        }
    }

    /// The model's name as [`crate::PriceTable`] and spans know it: the configured name,
    /// `default` for Gemini or Vertex AI without one (the SDK's choice), the file name for
    /// LiteRT.
    #[must_use]
    pub fn model_name(&self) -> &str {
        match self {
            Self::Gemini { model, .. } | Self::Vertex { model, .. } => {
                model_label(model.as_deref(), None)
            }
            Self::OpenaiCompatible { model, .. } => model,
            Self::LiteRt { model_path } => model_label(None, Some(model_path)),
        }
    }

    /// A short human-readable name, e.g. for the CLI.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Gemini { model, .. } => {
                format!(
                    "Gemini ({})",
                    model.as_deref().unwrap_or("SDK default model")
                )
            }
            Self::Vertex { model, .. } => {
                format!(
                    "Vertex AI ({})",
                    model.as_deref().unwrap_or("SDK default model")
                )
            }
            Self::OpenaiCompatible { base_url, model } => format!("{model} at {base_url}"),
            Self::LiteRt { model_path } => format!("LiteRT ({})", model_path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gemini_model_without_a_key_takes_the_pool_s() {
        let pool_key = SecretString::from("pool-key");
        let resolved = ModelConfig::Gemini {
            api_key: None,
            model: None,
        }
        .resolved(Some(&pool_key))
        .unwrap();
        let wire = serde_json::to_value(resolved.to_wire()).unwrap();
        assert_eq!(wire["api_key"], "pool-key");
    }
}
