//! The `agy-bridge` command-line tool.

use std::{
    io::Write,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::Duration,
};

mod demo;

use agy_bridge::{
    AgentConfig, Bridge, BridgeConfig, ChatEvent, ModelConfig, SetupEvent, testing::ScriptedModel,
    worker::venv,
};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(
    name = "agy-bridge",
    version,
    about = "Run Google Antigravity agents from Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send one prompt and stream the reply.
    ///
    /// Uses Gemini when GEMINI_API_KEY is set, any OpenAI-compatible server with
    /// --base-url/--model, and otherwise an offline demo model.
    Chat {
        /// The prompt. Without one, an interactive session starts: one prompt per line, Ctrl-C
        /// cancels the running turn, Ctrl-D exits.
        prompt: Option<String>,
        /// Print the event stream as JSON lines on stdout (one event per line, then the outcome).
        #[arg(long)]
        json: bool,
        /// Base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1.
        #[arg(long, requires = "model")]
        base_url: Option<String>,
        /// Model name (with --base-url, or a Gemini model name).
        #[arg(long)]
        model: Option<String>,
        /// Use the offline demo model even if GEMINI_API_KEY is set.
        #[arg(long)]
        offline: bool,
        /// System instructions for the agent.
        #[arg(long)]
        system: Option<String>,
        /// Do not offer the demo Rust tools (clock, calculator) to the model.
        #[arg(long)]
        no_tools: bool,
    },
    /// Create (or check) the managed Python environment, showing progress.
    Setup,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AGY_BRIDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Chat {
            prompt,
            base_url,
            model,
            offline,
            system,
            no_tools,
            json,
        } => chat(prompt, base_url, model, offline, system, !no_tools, json).await,
        Command::Setup => setup().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A spinner on stderr that shows venv set-up phases with elapsed time.
fn setup_progress() -> (BridgeConfig, ProgressBar) {
    let bar = ProgressBar::hidden();
    let shown = Arc::new(Mutex::new(None::<ProgressBar>));
    let config = BridgeConfig::default().on_setup_progress(move |event| {
        let mut shown = shown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            SetupEvent::Phase { name, elapsed } => {
                let bar = shown.get_or_insert_with(|| {
                    eprintln!("Setting up the Python environment (first run only)…");
                    let bar = ProgressBar::new_spinner();
                    bar.set_style(
                        ProgressStyle::with_template("  {spinner} [{elapsed_precise}] {msg}")
                            .expect("valid template"),
                    );
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bar
                });
                let line = format!("  [{:>5.1}s] {name}", elapsed.as_secs_f64());
                if bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                }
                bar.set_message(name.clone());
            }
            SetupEvent::Output(line) => {
                if let Some(bar) = shown.as_ref() {
                    bar.set_message(line.chars().take(100).collect::<String>());
                }
            }
            SetupEvent::Done { elapsed, reused } => {
                if let Some(bar) = shown.take() {
                    bar.finish_and_clear();
                    eprintln!(
                        "  Python environment ready in {:.1}s",
                        elapsed.as_secs_f64()
                    );
                } else if !reused {
                    eprintln!("Python environment ready in {:.1}s", elapsed.as_secs_f64());
                }
            }
            _ => {}
        }
    });
    (config, bar)
}

async fn setup() -> agy_bridge::Result<()> {
    let (config, _bar) = setup_progress();
    let env = venv::ensure(config.python.clone(), config.setup_progress.clone()).await?;
    println!("interpreter: {}", env.python.display());
    if let Some(dir) = env.venv_dir {
        println!("venv:        {}", dir.display());
    }
    Ok(())
}

async fn chat(
    prompt: Option<String>,
    base_url: Option<String>,
    model: Option<String>,
    offline: bool,
    system: Option<String>,
    tools: bool,
    json: bool,
) -> agy_bridge::Result<()> {
    let mut demo = None;
    let model_config = match (base_url, std::env::var("GEMINI_API_KEY").ok()) {
        (Some(url), _) => ModelConfig::openai_compatible(url, model.unwrap_or_default()),
        (None, Some(key)) if !offline => ModelConfig::Gemini {
            api_key: Some(key),
            model,
        },
        _ => {
            let server = ScriptedModel::with_responder(Arc::new(demo::reply)).await?;
            let config = ModelConfig::openai_compatible(server.base_url(), "offline-demo");
            demo = Some(server);
            config
        }
    };
    if demo.is_some() {
        eprintln!(
            "Model: offline demo (a scripted local server; set GEMINI_API_KEY or use --base-url/--model for a real model)"
        );
    } else {
        eprintln!("Model: {}", model_config.describe());
    }
    let (config, _bar) = setup_progress();
    eprintln!("Starting the Python worker…");
    let bridge = Bridge::start(config).await?;
    let mut agent_config = AgentConfig::new(model_config);
    if let Some(system) = system {
        agent_config = agent_config.system_instructions(system);
    }
    if tools {
        agent_config = agent_config.tool(demo::Clock).tool(demo::Calculator);
    }
    let agent = bridge.create_agent(agent_config).await?;
    match prompt {
        Some(prompt) => turn(&agent, prompt, json).await?,
        None => interactive(&agent, json).await?,
    }
    agent.close().await?;
    bridge.shutdown().await;
    drop(demo);
    Ok(())
}

/// Runs one turn, streaming it to the terminal (or as JSON lines).
async fn turn(agent: &agy_bridge::Agent, prompt: String, json: bool) -> agy_bridge::Result<()> {
    let mut reply = agent.chat(prompt).await?;
    let mut stdout = std::io::stdout();
    let mut cancelled = false;
    loop {
        let event = tokio::select! {
            event = reply.next() => event,
            _ = tokio::signal::ctrl_c(), if !cancelled => {
                cancelled = true;
                eprintln!("\n[cancelling the turn]");
                agent.cancel().await?;
                continue;
            }
        };
        let Some(event) = event else { break };
        if json {
            let _ = writeln!(
                stdout,
                "{}",
                serde_json::to_string(&event).unwrap_or_default()
            );
            continue;
        }
        match event {
            ChatEvent::Text { text } => {
                let _ = write!(stdout, "{text}");
                let _ = stdout.flush();
            }
            ChatEvent::Thought { text } => eprint!("{text}"),
            ChatEvent::ToolCall { name, args, .. } => eprintln!("[tool call] {name} {args}"),
            ChatEvent::ToolResult {
                name,
                result,
                error,
            } => match (result, error) {
                (Some(result), _) => eprintln!("[Rust tool result] {name} → {result}"),
                (_, Some(error)) => eprintln!("[Rust tool error] {name}: {error}"),
                _ => {}
            },
            _ => {}
        }
    }
    let outcome = match reply.finish().await {
        Err(agy_bridge::Error::Cancelled) if cancelled => {
            eprintln!("[turn cancelled]");
            return Ok(());
        }
        other => other?,
    };
    if json {
        let line = serde_json::json!({ "type": "outcome", "outcome": outcome });
        let _ = writeln!(stdout, "{line}");
        return Ok(());
    }
    println!();
    if let Some(usage) = outcome.usage {
        eprintln!(
            "[{} tokens in, {} out]",
            usage.prompt_tokens.unwrap_or(0),
            usage.output_tokens.unwrap_or(0)
        );
    }
    Ok(())
}

/// One prompt per line until end of input (Ctrl-D).
async fn interactive(agent: &agy_bridge::Agent, json: bool) -> agy_bridge::Result<()> {
    use tokio::io::AsyncBufReadExt;
    eprintln!("Interactive chat: one prompt per line; Ctrl-C cancels a turn, Ctrl-D exits.");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        eprint!("> ");
        let Some(line) = lines.next_line().await? else {
            eprintln!();
            return Ok(());
        };
        if line.trim().is_empty() {
            continue;
        }
        if let Err(e) = turn(agent, line, json).await {
            eprintln!("error: {e}");
        }
    }
}
