//! `agy-bridge chat`: one prompt, or an interactive session, streamed to the terminal.

use std::{
    io::IsTerminal,
    io::Write,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use agy_bridge::{
    AgentConfig, Bridge, Hooks, ModelConfig, PriceTable,
    hooks::ToolDecision,
    policies::{ConfirmRequest, PolicyRule},
    testing::ScriptedModel,
};
use futures::StreamExt;

use super::{
    demo,
    render::{self, Renderer},
    setup::progress_config,
};

/// What `chat` was asked for on the command line.
pub(crate) struct ChatOptions {
    /// The prompt; `None` for an interactive session.
    pub prompt: Option<String>,
    /// An OpenAI-compatible server.
    pub base_url: Option<String>,
    /// The model name.
    pub model: Option<String>,
    /// Use the offline demo model even with `GEMINI_API_KEY` set.
    pub offline: bool,
    /// System instructions.
    pub system: Option<String>,
    /// When to offer the demo Rust tools.
    pub tools: DemoTools,
    /// Also offer `read_file`, confined to this directory.
    pub read_dir: Option<std::path::PathBuf>,
    /// Tools to ask about on the terminal before they run.
    pub ask: Vec<String>,
    /// Tools never to run.
    pub deny: Vec<String>,
    /// Print JSON lines instead of text.
    pub json: bool,
    /// Where the workers export their spans (`--otlp-endpoint`).
    pub traces: Option<agy_bridge::WorkerTracing>,
    /// The model's price (`--price`).
    pub price: Option<agy_bridge::Price>,
}

/// When the demo Rust tools (clock, calculator) are offered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum DemoTools {
    /// To every model (`--tools`).
    Always,
    /// To the offline demo model only (the default: a real model is not handed tools it was
    /// not asked to have).
    OfflineOnly,
    /// To no model (`--no-tools`).
    Never,
}

/// Runs `chat`.
pub(crate) async fn run(options: ChatOptions) -> agy_bridge::Result<()> {
    let mut demo_model = None;
    let model_config = match (options.base_url, std::env::var("GEMINI_API_KEY").ok()) {
        (Some(url), _) => ModelConfig::openai_compatible(url, options.model.unwrap_or_default()),
        (None, Some(key)) if !options.offline => {
            let gemini = ModelConfig::gemini(key);
            match options.model {
                Some(name) => gemini.with_model(name),
                None => gemini,
            }
        }
        _ => {
            let server = ScriptedModel::with_responder(Arc::new(demo::reply)).await?;
            let config = ModelConfig::openai_compatible(server.base_url(), "offline-demo");
            demo_model = Some(server);
            config
        }
    };
    if demo_model.is_some() {
        tell!(
            "Model: offline demo (a scripted local server; set GEMINI_API_KEY or use --base-url/--model for a real model)"
        );
    } else {
        tell!("Model: {}", model_config.describe());
    }
    let (mut config, _bar) = progress_config();
    if let Some(tracing) = options.traces {
        config = config.tracing(tracing);
    }
    if let Some(price) = options.price {
        config = config.prices(PriceTable::new().model(model_config.model_name(), price));
    }
    tell!("Starting the Python worker…");
    let bridge = Bridge::start(config).await?;
    let mut agent_config = AgentConfig::new(model_config);
    if let Some(system) = options.system {
        agent_config = agent_config.system_instructions(system);
    }
    let tools = match options.tools {
        DemoTools::Always => true,
        DemoTools::OfflineOnly => demo_model.is_some(),
        DemoTools::Never => false,
    };
    if tools {
        agent_config = agent_config.tool(demo::Clock).tool(demo::Calculator);
    }
    if let Some(dir) = &options.read_dir {
        let tool = demo::read_file_tool(dir).map_err(|e| agy_bridge::Error::InvalidConfig {
            message: format!("--read-dir {}: {e}", dir.display()),
        })?;
        agent_config = agent_config.tool(tool);
    }
    if tools || options.read_dir.is_some() {
        agent_config = agent_config.hooks(demo_hooks());
    }
    for rule in policies(&options.ask, &options.deny) {
        agent_config = agent_config.policy(rule);
    }
    let agent = bridge.create_agent(agent_config).await?;
    let failed = match options.prompt {
        Some(prompt) => {
            turn(&agent, prompt, options.json).await?;
            0
        }
        None if std::io::stdin().is_terminal() => {
            let history = bridge.data_dir().join("cli-history.txt");
            edited_session(&agent, options.json, history).await?
        }
        None => piped_session(&agent, options.json).await?,
    };
    agent.close().await?;
    bridge.shutdown().await;
    drop(demo_model);
    // Each failure was shown with its turn; the exit status says that not every turn completed.
    if failed > 0 {
        return Err(std::io::Error::other(format!("{failed} turn(s) did not complete")).into());
    }
    Ok(())
}

/// A `pre_tool_call_decide` hook that shows each decision, and keeps `read_file` away from
/// files that usually hold secrets.
fn demo_hooks() -> Hooks {
    Hooks::new().pre_tool_call_decide(|call| async move {
        let path = call.args["path"].as_str().unwrap_or_default();
        if call.tool == "read_file" && demo::looks_secret(path) {
            render::hook(&format!("{} {path} denied: it may hold secrets", call.tool));
            return ToolDecision::Deny("that file may hold secrets; it is off limits".into());
        }
        render::hook(&format!("{} allowed", call.tool));
        ToolDecision::Allow
    })
}

/// `--ask` and `--deny` as policy rules, everything else allowed; none without those flags
/// (the bridge then allows every tool).
fn policies(ask: &[String], deny: &[String]) -> Vec<PolicyRule> {
    if ask.is_empty() && deny.is_empty() {
        return Vec::new();
    }
    let denied = deny.iter().map(|tool| {
        PolicyRule::deny_with_reason(tool.clone(), format!("{tool} is denied by --deny {tool}"))
    });
    let asked = ask
        .iter()
        .map(|tool| PolicyRule::ask_user(tool.clone(), confirm_on_terminal));
    std::iter::once(PolicyRule::allow_all())
        .chain(denied)
        .chain(asked)
        .collect()
}

/// The `ask_user` handler: a y/N question on the terminal. Without a terminal nobody can
/// answer, so the call is denied.
async fn confirm_on_terminal(request: ConfirmRequest) -> bool {
    let call = format!(
        "{} {}",
        request.tool,
        render::shorten(&request.args.to_string())
    );
    if !std::io::stdin().is_terminal() {
        render::policy(&format!("{call} denied: no terminal to ask (--ask)"));
        return false;
    }
    let question = format!("allow {call}? [y/N] ");
    // Set when this future is dropped (Ctrl-C cancelled the turn), so the reading thread
    // stops instead of taking the next line typed (or holding the process open at exit).
    let abandoned = Arc::new(AtomicBool::new(false));
    let _abandon = AbandonOnDrop(Arc::clone(&abandoned));
    let answer = tokio::task::spawn_blocking(move || {
        render::policy_question(&question);
        read_line_unless(&abandoned)
    })
    .await;
    let approved = matches!(answer, Ok(Some(line)) if matches!(line.trim(), "y" | "Y" | "yes"));
    let verdict = if approved { "approved" } else { "denied" };
    render::policy(&format!("{} {verdict} by you", request.tool));
    approved
}

/// Sets its flag when dropped.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// One line from stdin, or `None` at its end, on an error, or once `abandoned` is set
/// (checked every 100 ms while no input is ready).
fn read_line_unless(abandoned: &AtomicBool) -> Option<String> {
    let mut stdin = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    while !abandoned.load(Ordering::SeqCst) {
        // SAFETY: poll(2) on one valid, initialised pollfd.
        let ready = unsafe { libc::poll(&raw mut stdin, 1, 100) };
        if ready > 0 {
            let mut line = String::new();
            return match std::io::stdin().read_line(&mut line) {
                Ok(0) | Err(_) => None,
                Ok(_) => Some(line),
            };
        }
        if ready < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return None;
        }
    }
    None
}

/// Whether a session can go on after a turn.
enum Output {
    /// Stdout still takes output.
    Open,
    /// Stdout's reader went away (`agy-bridge chat … | head`).
    Closed,
}

/// Runs one turn, streaming it to the terminal (or as JSON lines). Ctrl-C cancels it, and so
/// does a stdout nobody reads any more (the rest of the turn could not be shown).
async fn turn(agent: &agy_bridge::Agent, prompt: String, json: bool) -> agy_bridge::Result<Output> {
    let mut reply = agent.chat(prompt).await?;
    let mut renderer = Renderer::default();
    let mut cancelled = false;
    loop {
        let event = tokio::select! {
            event = reply.next() => event,
            _ = tokio::signal::ctrl_c(), if !cancelled => {
                cancelled = true;
                renderer.note("cancelling the turn");
                agent.cancel().await?;
                continue;
            }
        };
        let Some(event) = event else { break };
        let shown = if json {
            json_line(&event)
        } else {
            renderer.event(&event)
        };
        if let Err(error) = shown {
            if !cancelled {
                agent.cancel().await?;
            }
            let _ = reply.finish().await;
            return output_failed(error);
        }
    }
    let outcome = match reply.finish().await {
        Err(agy_bridge::Error::Cancelled) if cancelled => {
            renderer.note("turn cancelled");
            return Ok(Output::Open);
        }
        other => other?,
    };
    let shown = if json {
        json_line(&serde_json::json!({ "type": "outcome", "outcome": outcome }))
    } else {
        renderer.outcome(&outcome)
    };
    shown.map_or_else(output_failed, |()| Ok(Output::Open))
}

/// One JSON line on stdout.
fn json_line(value: &impl serde::Serialize) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, value)?;
    writeln!(stdout)?;
    stdout.flush()
}

/// A closed pipe ends the output quietly, as for other command-line tools; other write errors
/// (a full disk) are errors.
fn output_failed(error: std::io::Error) -> agy_bridge::Result<Output> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(Output::Closed)
    } else {
        Err(error.into())
    }
}

const SESSION_HELP: &str =
    "Interactive chat: one prompt per line; Ctrl-C cancels a turn, Ctrl-D exits.";

/// A terminal session with line editing and history (kept in `history`); returns how many
/// turns failed.
async fn edited_session(
    agent: &agy_bridge::Agent,
    json: bool,
    history: std::path::PathBuf,
) -> agy_bridge::Result<usize> {
    use rustyline::{DefaultEditor, error::ReadlineError};
    let mut failed = 0;
    tell!("{SESSION_HELP}");
    let mut editor = DefaultEditor::new().map_err(|e| std::io::Error::other(e.to_string()))?;
    let _ = editor.load_history(&history);
    loop {
        // The editor blocks on the terminal; run it off the async threads and take it back.
        let (back, line) = tokio::task::spawn_blocking(move || {
            let line = editor.readline("> ");
            (editor, line)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
        editor = back;
        match line {
            Ok(line) if line.trim().is_empty() => {}
            Ok(line) => {
                let _ = editor.add_history_entry(line.as_str());
                match turn(agent, line, json).await {
                    Ok(Output::Open) => {}
                    Ok(Output::Closed) => break,
                    Err(e) => {
                        failed += 1;
                        render::error(&e);
                    }
                }
            }
            Err(ReadlineError::Interrupted) => {} // Ctrl-C at the prompt clears the line
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(std::io::Error::other(e.to_string()).into()),
        }
    }
    if let Err(e) = editor.save_history(&history) {
        tracing::debug!("could not save the CLI history: {e}");
    }
    Ok(failed)
}

/// One prompt per line from piped input until its end; returns how many turns failed.
async fn piped_session(agent: &agy_bridge::Agent, json: bool) -> agy_bridge::Result<usize> {
    use tokio::io::AsyncBufReadExt;
    let mut failed = 0;
    tell!("{SESSION_HELP}");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        match turn(agent, line, json).await {
            Ok(Output::Open) => {}
            Ok(Output::Closed) => break,
            Err(e) => {
                failed += 1;
                render::error(&e);
            }
        }
    }
    Ok(failed)
}
