//! Prompt content: text, or a list of parts mixing text with images, documents, audio and video.

use std::path::PathBuf;

use crate::protocol::wire::{Prompt, PromptPart, WorkflowSpec};
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
    /// A media or file part with a description of it for the model (build it with
    /// [`Part::described`]). The harness of SDK 0.1.22 passes descriptions to Gemini models
    /// only: on the OpenAI-compatible path it drops them.
    Described {
        /// The media or file part.
        part: Box<Part>,
        /// What it shows.
        description: String,
    },
    /// A slash command: [`SlashCommand::Plan`] makes the agent plan before it acts.
    SlashCommand(SlashCommand),
}

/// The SDK's built-in slash commands (`BuiltinSlashCommandName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlashCommand {
    /// Plan carefully before executing the task: the agent writes an implementation plan
    /// first and waits for approval.
    Plan,
}

impl SlashCommand {
    /// The SDK's name of the command.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Plan => "plan",
        }
    }
}

impl Part {
    /// This media or file part with a description for the model.
    ///
    /// ```
    /// use agy_bridge::Part;
    ///
    /// let chart = Part::File("q3.png".into()).described("Revenue by quarter, 2026");
    /// # let _ = chart;
    /// ```
    #[must_use]
    pub fn described(self, description: impl Into<String>) -> Self {
        Self::Described {
            part: Box::new(self),
            description: description.into(),
        }
    }

    fn to_wire(&self, description: Option<&str>) -> PromptPart {
        let description = description.map(str::to_owned);
        match self {
            Self::Text(text) => PromptPart::Text { text: text.clone() },
            Self::Media { data, mime_type } => PromptPart::Media {
                data: base64::engine::general_purpose::STANDARD.encode(data),
                mime_type: mime_type.clone(),
                description,
            },
            Self::File(path) => PromptPart::File {
                path: path.clone(),
                description,
            },
            Self::Described { part, description } => part.to_wire(Some(description)),
            Self::SlashCommand(command) => PromptPart::SlashCommand {
                slash_command: command.name().to_owned(),
            },
        }
    }
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

    /// The content as the worker receives it: a string, or a list of `{"text"}` /
    /// `{"data": base64, "mime_type", "description"?}` / `{"path", "description"?}` /
    /// `{"slash_command"}` objects.
    #[must_use]
    pub(crate) fn to_wire(&self) -> Prompt {
        match self {
            Self::Text(text) => Prompt::Text(text.clone()),
            Self::Parts(parts) => {
                Prompt::Parts(parts.iter().map(|part| part.to_wire(None)).collect())
            }
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

/// A workflow for [`crate::Agent::run_workflow`] (the SDK's beta `run_workflow`): a Python
/// script of the SDK's workflow primitives (`phase`, `log`, `agent`, `parallel`, `pipeline`),
/// which the harness runs and reports on. Needs subagents enabled and the `run_workflow`
/// built-in (write tools: a policy too).
///
/// ```
/// use agy_bridge::Workflow;
///
/// let from_file = Workflow::script("/srv/repo/workflows/triage.py").description("Triage new bugs");
/// let inline = Workflow::source("phase(\"collect\")\nlog(\"collecting\")\n");
/// # let _ = (from_file, inline);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    script: WorkflowScript,
    description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum WorkflowScript {
    Path(PathBuf),
    Source(String),
}

impl Workflow {
    /// The workflow script at `path` (relative paths are taken from the agent's first
    /// workspace).
    #[must_use]
    pub fn script(path: impl Into<PathBuf>) -> Self {
        Self {
            script: WorkflowScript::Path(path.into()),
            description: String::new(),
        }
    }

    /// A workflow given as source; the worker checks it as the SDK does and runs it from a
    /// temporary file it removes afterwards.
    #[must_use]
    pub fn source(source: impl Into<String>) -> Self {
        Self {
            script: WorkflowScript::Source(source.into()),
            description: String::new(),
        }
    }

    /// What the run is for (shown to the model and in the progress).
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    pub(crate) fn to_wire(&self) -> WorkflowSpec {
        let (script_path, source) = match &self.script {
            WorkflowScript::Path(path) => (Some(path.clone()), None),
            WorkflowScript::Source(source) => (None, Some(source.clone())),
        };
        WorkflowSpec {
            script_path,
            source,
            description: self.description.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_and_slash_commands_travel_to_the_worker() {
        let content = Content::Parts(vec![
            Part::SlashCommand(SlashCommand::Plan),
            Part::File("chart.png".into()).described("a chart"),
            Part::Media {
                data: vec![1, 2],
                mime_type: "image/png".into(),
            }
            .described("bytes"),
            Part::Text("look".into()),
        ]);
        assert_eq!(
            serde_json::to_value(content.to_wire()).unwrap(),
            serde_json::json!([
                {"slash_command": "plan"},
                {"path": "chart.png", "description": "a chart"},
                {"data": "AQI=", "mime_type": "image/png", "description": "bytes"},
                {"text": "look"},
            ])
        );
    }
}
