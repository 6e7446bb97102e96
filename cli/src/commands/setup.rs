//! `agy-bridge setup`, and the set-up progress display the other commands share.

use std::{path::PathBuf, sync::Arc, time::Duration};

use parking_lot::Mutex;

use agy_bridge::{BridgeConfig, SetupEvent, setup as venv};
use indicatif::{ProgressBar, ProgressStyle};

/// A spinner on stderr that shows venv set-up phases with elapsed time.
pub(crate) fn progress_config() -> (BridgeConfig, ProgressBar) {
    let bar = ProgressBar::hidden();
    let shown = Arc::new(Mutex::new(None::<ProgressBar>));
    let config = BridgeConfig::default().on_setup_progress(move |event| {
        let mut shown = shown.lock();
        match event {
            SetupEvent::Phase { name, elapsed } => {
                let bar = shown.get_or_insert_with(|| {
                    tell!("Setting up the Python environment (first run only)…");
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
                    tell!("{line}");
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
                    tell!(
                        "  Python environment ready in {:.1}s",
                        elapsed.as_secs_f64()
                    );
                } else if !reused {
                    tell!("Python environment ready in {:.1}s", elapsed.as_secs_f64());
                }
            }
            _ => {}
        }
    });
    (config, bar)
}

/// Runs `setup`: creates (or checks) the managed venv, from a wheelhouse when one is given; or
/// downloads that wheelhouse.
pub(crate) async fn run(
    offline_wheels: Option<PathBuf>,
    download_wheels: Option<PathBuf>,
) -> agy_bridge::Result<()> {
    let (mut config, _bar) = progress_config();
    if let Some(dest) = download_wheels {
        tell!(
            "Downloading the wheels the managed venv needs into {}…",
            dest.display()
        );
        let python = config.python.clone();
        let progress = config.setup_progress.clone();
        let target = dest.clone();
        tokio::task::spawn_blocking(move || {
            venv::download_wheels(&python, &target, progress.as_ref())
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
        let count = std::fs::read_dir(&dest).map_or(0, Iterator::count);
        say!("{count} files in {}", dest.display());
        say!(
            "On the air-gapped host: agy-bridge setup --offline-wheels {}",
            dest.display()
        );
        return Ok(());
    }
    if let Some(dir) = offline_wheels {
        if !dir.is_dir() {
            return Err(agy_bridge::Error::InvalidConfig {
                message: format!("--offline-wheels: {} is not a directory", dir.display()),
            });
        }
        config.python.wheelhouse = Some(dir);
    }
    // Checks what is installed (interpreter, SDK, harness, file hashes) and rebuilds a broken
    // venv; a bridge start only looks at the completion stamp.
    let env = venv::repair(config.python.clone(), config.setup_progress.clone()).await?;
    say!("interpreter: {}", env.python.display());
    if let Some(dir) = env.venv_dir {
        say!("venv:        {}", dir.display());
    }
    Ok(())
}
