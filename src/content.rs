//! Prompt content: text, or a list of parts mixing text with images, documents, audio and video.

use std::path::PathBuf;

use crate::protocol::wire::{Prompt, PromptPart};
use base64::Engine;

/// One part of a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// Text.
    Text(String),
    /// Media bytes with their MIME type (`image/png`, `application/pdf`, `audio/wav`, …).
    Media {
        /// The bytes.
        data: Vec<u8>,
        /// The MIME type; the SDK decides from it whether this is an image, document, audio
        /// or video, and rejects unsupported types.
        mime_type: String,
    },
    /// A local file; the SDK reads it and guesses the type from its name.
    File(PathBuf),
}

/// What a prompt is made of: anything that converts into it can be passed to
/// [`crate::Agent::chat`].
///
/// ```no_run
/// # async fn demo(agent: agy_bridge::Agent) -> agy_bridge::Result<()> {
/// use agy_bridge::{Content, Part};
///
/// agent.chat("plain text").await?;
/// let png = std::fs::read("chart.png")?;
/// agent.chat(Content::text_and_media("What does this chart show?", png, "image/png")).await?;
/// agent
///     .chat(vec![
///         Part::Text("Compare these two reports".into()),
///         Part::File("q1.pdf".into()),
///         Part::File("q2.pdf".into()),
///     ])
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Several parts, in order.
    Parts(Vec<Part>),
}

impl Content {
    /// Text followed by one media part.
    pub fn text_and_media(
        text: impl Into<String>,
        data: Vec<u8>,
        mime_type: impl Into<String>,
    ) -> Self {
        Self::Parts(vec![
            Part::Text(text.into()),
            Part::Media {
                data,
                mime_type: mime_type.into(),
            },
        ])
    }

    /// The content as the worker receives it: a string, or a list of
    /// `{"text"}` / `{"data": base64, "mime_type"}` / `{"path"}` objects.
    #[must_use]
    pub(crate) fn to_wire(&self) -> Prompt {
        match self {
            Self::Text(text) => Prompt::Text(text.clone()),
            Self::Parts(parts) => Prompt::Parts(
                parts
                    .iter()
                    .map(|part| match part {
                        Part::Text(text) => PromptPart::Text { text: text.clone() },
                        Part::Media { data, mime_type } => PromptPart::Media {
                            data: base64::engine::general_purpose::STANDARD.encode(data),
                            mime_type: mime_type.clone(),
                        },
                        Part::File(path) => PromptPart::File { path: path.clone() },
                    })
                    .collect(),
            ),
        }
    }
}

impl From<&str> for Content {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<String> for Content {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<Vec<Part>> for Content {
    fn from(parts: Vec<Part>) -> Self {
        Self::Parts(parts)
    }
}
