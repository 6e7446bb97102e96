//! How a turn looks on the terminal: reply text on stdout; thoughts, tool calls and results,
//! usage and errors on stderr, coloured when stderr is a terminal (`anstream` strips the
//! colour when piped, and honours `NO_COLOR` / `CLICOLOR_FORCE`).

use std::io::Write;

use agy_bridge::{ChatEvent, ChatOutcome};
use anstyle::{AnsiColor, Style};

const DIM: Style = Style::new().dimmed();
const TOOL: Style = AnsiColor::Cyan.on_default().bold();
const RESULT: Style = AnsiColor::Green.on_default();
const FAILURE: Style = AnsiColor::Red.on_default().bold();
const HOOK: Style = AnsiColor::Magenta.on_default();
const NOTE: Style = AnsiColor::Yellow.on_default();

/// Longest tool argument or result shown before it is cut.
const MAX_SHOWN: usize = 200;

/// Prints a turn's events as they arrive.
#[derive(Default)]
pub struct Renderer {
    /// Whether reply text was printed without a final newline yet.
    mid_line: bool,
}

impl Renderer {
    /// Prints one event.
    pub fn event(&mut self, event: &ChatEvent) {
        match event {
            ChatEvent::Text { text } => {
                let mut out = anstream::stdout();
                let _ = write!(out, "{text}");
                let _ = out.flush();
                self.mid_line = !text.ends_with('\n');
            }
            ChatEvent::Thought { text } => anstream::eprint!("{DIM}{text}{DIM:#}"),
            ChatEvent::ToolCall { name, args, .. } => {
                self.break_line();
                anstream::eprintln!(
                    "{TOOL}[tool call]{TOOL:#} {name} {DIM}{}{DIM:#}",
                    shorten(&args.to_string())
                );
            }
            ChatEvent::ToolResult {
                name,
                result,
                error,
            } => {
                self.break_line();
                match (result, error) {
                    (Some(result), _) => anstream::eprintln!(
                        "{RESULT}[Rust tool result]{RESULT:#} {name} → {}",
                        shorten(&result.to_string())
                    ),
                    (_, Some(error)) => {
                        anstream::eprintln!(
                            "{FAILURE}[Rust tool error]{FAILURE:#} {name}: {error}"
                        );
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Ends the turn: a newline after the reply and the token usage.
    pub fn outcome(&mut self, outcome: &ChatOutcome) {
        self.break_line();
        if let Some(usage) = &outcome.usage {
            anstream::eprintln!(
                "{DIM}[{} tokens in, {} out]{DIM:#}",
                usage.prompt_tokens.unwrap_or(0),
                usage.output_tokens.unwrap_or(0)
            );
        }
    }

    /// A note from the CLI itself (cancellation, set-up).
    pub fn note(&mut self, text: &str) {
        self.break_line();
        anstream::eprintln!("{NOTE}[{text}]{NOTE:#}");
    }

    fn break_line(&mut self) {
        if self.mid_line {
            println!();
            self.mid_line = false;
        }
    }
}

/// A hook's decision on stderr.
pub fn hook(text: &str) {
    anstream::eprintln!("{HOOK}[hook]{HOOK:#} {text}");
}

/// An error line on stderr.
pub fn error(message: &dyn std::fmt::Display) {
    anstream::eprintln!("{FAILURE}error:{FAILURE:#} {message}");
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_SHOWN {
        return text.to_owned();
    }
    let cut: String = text.chars().take(MAX_SHOWN).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::shorten;

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let long = "é".repeat(300);
        let short = shorten(&long);
        assert_eq!(short.chars().count(), 201);
        assert!(short.ends_with('…'));
        assert_eq!(shorten("ok"), "ok");
    }
}
