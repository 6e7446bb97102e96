//! How a turn looks on the terminal: reply text on stdout; thoughts, tool calls and results,
//! usage and errors on stderr, coloured when stderr is a terminal (`anstream` strips the
//! colour when piped, and honours `NO_COLOR` / `CLICOLOR_FORCE`).
//!
//! Nothing here panics when a stream is closed (`agy-bridge chat … | head`): stdout errors are
//! returned, so the caller can stop the turn; stderr errors are ignored.

use std::io::{self, Write};

use agy_bridge::{ChatEvent, ChatOutcome};
use anstyle::{AnsiColor, Style};

const DIM: Style = Style::new().dimmed();
const TOOL: Style = AnsiColor::Cyan.on_default().bold();
const RESULT: Style = AnsiColor::Green.on_default();
const FAILURE: Style = AnsiColor::Red.on_default().bold();
const HOOK: Style = AnsiColor::Magenta.on_default();
const POLICY: Style = AnsiColor::Blue.on_default().bold();
const NOTE: Style = AnsiColor::Yellow.on_default();

/// Longest tool argument or result shown before it is cut.
const MAX_SHOWN: usize = 200;

/// Prints a turn's events as they arrive.
#[derive(Default)]
pub(crate) struct Renderer {
    /// Whether reply text was printed without a final newline yet.
    mid_line: bool,
}

impl Renderer {
    /// Prints one event.
    ///
    /// # Errors
    /// Writing the reply text to stdout failed.
    pub(crate) fn event(&mut self, event: &ChatEvent) -> io::Result<()> {
        match event {
            ChatEvent::Text { text } => {
                let mut out = anstream::stdout();
                write!(out, "{text}")?;
                out.flush()?;
                self.mid_line = !text.ends_with('\n');
            }
            ChatEvent::Thought { text } => {
                let _ = write!(anstream::stderr(), "{DIM}{text}{DIM:#}");
            }
            ChatEvent::ToolCall { name, args, .. } => {
                self.break_line()?;
                tell!(
                    "{TOOL}[tool call]{TOOL:#} {name} {DIM}{}{DIM:#}",
                    shorten(&args.to_string())
                );
            }
            ChatEvent::ToolResult {
                name,
                result,
                error,
            } => {
                self.break_line()?;
                match (result, error) {
                    (Some(result), _) => tell!(
                        "{RESULT}[Rust tool result]{RESULT:#} {name} → {}",
                        shorten(&result.to_string())
                    ),
                    (_, Some(error)) => {
                        tell!("{FAILURE}[Rust tool error]{FAILURE:#} {name}: {error}");
                    }
                    _ => {}
                }
            }
            ChatEvent::HookFailed { point, message } => {
                self.break_line()?;
                tell!("{FAILURE}[hook failed]{FAILURE:#} {point}: {message}");
            }
            ChatEvent::SandboxUnavailable { reason } => {
                self.break_line()?;
                tell!("{FAILURE}[no sandbox]{FAILURE:#} commands run unsandboxed: {reason}");
            }
            ChatEvent::Step { step } if step.status == "ERROR" && !step.error.is_empty() => {
                self.break_line()?;
                let error = without_echo(&step.error);
                if step.error.to_ascii_lowercase().contains("denied") {
                    tell!("{POLICY}[denied]{POLICY:#} {error}");
                } else {
                    tell!("{FAILURE}[step failed]{FAILURE:#} {error}");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Ends the turn: a newline after the reply and the token usage.
    ///
    /// # Errors
    /// Writing to stdout failed.
    pub(crate) fn outcome(&mut self, outcome: &ChatOutcome) -> io::Result<()> {
        self.break_line()?;
        if let Some(usage) = &outcome.usage {
            let cost = outcome
                .cost
                .map(|c| format!(", cost ≈ {c:.6}"))
                .unwrap_or_default();
            tell!(
                "{DIM}[{} tokens in, {} out{cost}]{DIM:#}",
                usage.prompt_tokens.unwrap_or(0),
                usage.output_tokens.unwrap_or(0)
            );
        }
        Ok(())
    }

    /// A note from the CLI itself (cancellation, set-up).
    pub(crate) fn note(&mut self, text: &str) {
        // A closed stdout is noticed by the next `event`; the note still goes to stderr.
        let _ = self.break_line();
        tell!("{NOTE}[{text}]{NOTE:#}");
    }

    fn break_line(&mut self) -> io::Result<()> {
        if self.mid_line {
            self.mid_line = false;
            writeln!(anstream::stdout())?;
        }
        Ok(())
    }
}

/// A hook's decision on stderr.
pub(crate) fn hook(text: &str) {
    tell!("{HOOK}[hook]{HOOK:#} {text}");
}

/// A policy decision on stderr.
pub(crate) fn policy(text: &str) {
    tell!("{POLICY}[policy]{POLICY:#} {text}");
}

/// A policy question on stderr, without a newline (the answer follows on the same line).
pub(crate) fn policy_question(text: &str) {
    let mut err = anstream::stderr();
    let _ = write!(err, "{POLICY}[policy]{POLICY:#} {text}");
    let _ = err.flush();
}

/// An error line on stderr.
pub(crate) fn error(message: &dyn std::fmt::Display) {
    tell!("{FAILURE}error:{FAILURE:#} {message}");
}

/// A step error without the SDK's repetition: `X ("denied by pre-tool hook: X")` is `X`.
fn without_echo(error: &str) -> &str {
    match error.split_once(" (\"") {
        Some((head, tail)) if tail.ends_with(&format!("{head}\")")) => head,
        _ => error,
    }
}

/// `text`, cut to a readable length.
pub(crate) fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_SHOWN {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_SHOWN).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::{shorten, without_echo};

    #[test]
    fn a_repeated_reason_is_shown_once() {
        let error = r#"no ("denied by pre-tool hook: no")"#;
        assert_eq!(without_echo(error), "no");
        assert_eq!(without_echo(r#"plain ("other")"#), r#"plain ("other")"#);
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let long = "é".repeat(300);
        let short = shorten(&long);
        assert_eq!(short.chars().count(), 201);
        assert!(short.ends_with('…'));
        assert_eq!(shorten("ok"), "ok");
    }
}
