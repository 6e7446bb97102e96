//! The `agy-bridge` command-line tool.

use std::{path::PathBuf, process::ExitCode, time::Duration};

mod commands;

use clap::{Parser, Subcommand};

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
        /// The prompt. Without one, an interactive session starts: one prompt per line (with
        /// line editing and history on a terminal), Ctrl-C cancels the running turn, Ctrl-D
        /// exits.
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
        /// Offer the demo Rust tools (clock, calculator) to a real model too; the offline demo
        /// model always gets them.
        #[arg(long, alias = "tool", conflicts_with = "no_tools")]
        tools: bool,
        /// Do not offer the demo Rust tools (clock, calculator) to any model.
        #[arg(long)]
        no_tools: bool,
        /// Also offer a `read_file` Rust tool that can read text files in DIR only.
        #[arg(long, value_name = "DIR")]
        read_dir: Option<PathBuf>,
        /// A policy rule: ask on the terminal before TOOL runs (repeatable; a name, `*`, or
        /// `server/*`). Without a terminal to ask, the call is denied.
        #[arg(long, value_name = "TOOL")]
        ask: Vec<String>,
        /// A policy rule: never run TOOL (repeatable); the model is told it was denied.
        #[arg(long, value_name = "TOOL")]
        deny: Vec<String>,
        /// Export each turn's trace (the bridge's spans and the worker's) to this OpenTelemetry
        /// collector over OTLP/HTTP, e.g. http://127.0.0.1:4318 (traces go to /v1/traces).
        #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
        otlp_endpoint: Option<String>,
        /// The model's price per million input and output tokens, e.g. 0.30,2.50: each turn
        /// then shows its estimated cost.
        #[arg(long, value_name = "IN,OUT", value_parser = parse_price)]
        price: Option<agy_bridge::Price>,
    },
    /// Create (or check) the managed Python environment, showing progress.
    Setup {
        /// Install from this directory of wheels only (an air-gapped host), never from PyPI.
        #[arg(long, value_name = "DIR", conflicts_with = "download_wheels")]
        offline_wheels: Option<PathBuf>,
        /// Download the wheels the venv needs into DIR (on a connected machine of the same
        /// platform and Python version), for `setup --offline-wheels DIR` elsewhere.
        #[arg(long, value_name = "DIR")]
        download_wheels: Option<PathBuf>,
    },
    /// Check Python, the venv, the SDK and its harness, a live worker and a one-turn chat;
    /// exits non-zero with a fix-it hint for each failure.
    Doctor,
    /// Remove stale venvs and orphaned conversation files, reporting what is freed.
    Gc {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Also remove conversations not used for this many days.
        #[arg(long, value_name = "DAYS")]
        older_than: Option<u64>,
        /// The data directory (default: the bridge's).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // The CLI (not the library) reads a `.env` file from the working directory or a parent,
    // for settings such as GEMINI_API_KEY; done before any thread exists, since setting
    // variables while other threads may read the environment is undefined behaviour.
    if let Err(e) = dotenvy::dotenv()
        && !e.not_found()
    {
        eprintln!("agy-bridge: could not load .env: {e}");
    }
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("agy-bridge: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `IN,OUT`: a price per million input and output tokens.
fn parse_price(text: &str) -> Result<agy_bridge::Price, String> {
    let parse = |s: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    match text.split_once(',') {
        Some((input, output)) => match (parse(input), parse(output)) {
            (Some(input), Some(output)) => Ok(agy_bridge::Price::per_million(input, output)),
            _ => Err("both prices must be non-negative numbers".into()),
        },
        None => Err("expected IN,OUT (per million tokens), e.g. 0.30,2.50".into()),
    }
}

async fn run() -> ExitCode {
    let cli = Cli::parse();
    let otlp = match &cli.command {
        Command::Chat {
            otlp_endpoint: Some(url),
            ..
        } => match commands::traces::Exporter::start(url) {
            Ok(exporter) => Some(exporter),
            Err(e) => {
                eprintln!("agy-bridge: --otlp-endpoint {url}: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    commands::traces::init_logging(otlp.as_ref());
    let result = match cli.command {
        Command::Chat {
            prompt,
            base_url,
            model,
            offline,
            system,
            tools,
            no_tools,
            read_dir,
            ask,
            deny,
            json,
            otlp_endpoint: _,
            price,
        } => {
            commands::chat::run(commands::chat::ChatOptions {
                prompt,
                base_url,
                model,
                offline,
                system,
                tools: match (tools, no_tools) {
                    (true, _) => commands::chat::DemoTools::Always,
                    (_, true) => commands::chat::DemoTools::Never,
                    _ => commands::chat::DemoTools::OfflineOnly,
                },
                read_dir,
                ask,
                deny,
                json,
                traces: otlp
                    .as_ref()
                    .map(commands::traces::Exporter::worker_tracing),
                price,
            })
            .await
        }
        Command::Setup {
            offline_wheels,
            download_wheels,
        } => commands::setup::run(offline_wheels, download_wheels).await,
        Command::Doctor => {
            return if commands::doctor::run().await {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Command::Gc {
            dry_run,
            older_than,
            data_dir,
        } => commands::gc::run(&commands::gc::GcOptions {
            data_dir,
            older_than: older_than.map(|days| Duration::from_secs(days * 86_400)),
            dry_run,
        }),
    };
    if let Some(exporter) = otlp {
        exporter.shutdown().await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            commands::render::error(&e);
            ExitCode::FAILURE
        }
    }
}
