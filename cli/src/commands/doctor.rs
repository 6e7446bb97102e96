//! `agy-bridge doctor`: checks every layer the bridge stands on, from the interpreter to a
//! real one-turn chat, and says how to fix what fails.

use std::{path::PathBuf, process::Command, sync::Arc, time::Instant};

use agy_bridge::{
    AgentConfig, Bridge, BridgeConfig, ModelConfig, SDK_VERSION,
    testing::ScriptedModel,
    {PythonConfig, setup as venv},
};
use anstyle::{AnsiColor, Style};

use super::{disk_usage, human_size};

const PASS: Style = AnsiColor::Green.on_default().bold();
const FAIL: Style = AnsiColor::Red.on_default().bold();
const DIM: Style = Style::new().dimmed();

/// A failed check: what is wrong and how to fix it.
struct Problem {
    what: String,
    fix: String,
}

fn problem(what: impl Into<String>, fix: impl Into<String>) -> Problem {
    Problem {
        what: what.into(),
        fix: fix.into(),
    }
}

#[derive(Default)]
struct Report {
    failures: usize,
}

impl Report {
    fn check(&mut self, name: &str, result: Result<String, Problem>) -> bool {
        match result {
            Ok(detail) => {
                say!("  {PASS}✓{PASS:#} {name:<13} {detail}");
                true
            }
            Err(p) => {
                self.failures += 1;
                say!("  {FAIL}✗{FAIL:#} {name:<13} {}", p.what);
                say!("    {DIM}fix:{DIM:#} {}", p.fix);
                false
            }
        }
    }

    fn info(name: &str, detail: &str) {
        say!("  {DIM}·{DIM:#} {name:<13} {detail}");
    }

    fn skipped(name: &str, why: &str) {
        say!("  {DIM}- {name:<13} skipped ({why}){DIM:#}");
    }
}

/// Runs `doctor`; returns whether every check passed.
pub(crate) async fn run() -> bool {
    let python = PythonConfig::default();
    let mut report = Report::default();
    say!("agy-bridge {} doctor", env!("CARGO_PKG_VERSION"));

    let interpreter = interpreter(&python);
    let ready = match &interpreter {
        Ok((exe, _)) => Some(exe.clone()),
        Err(_) => None,
    };
    report.check("Python", interpreter.map(|(_, detail)| detail));
    let Some(exe) = ready else {
        caches(&python);
        return finish(&report);
    };
    // The managed venv only: an interpreter of your own (AGY_BRIDGE_PYTHON) is yours to fix,
    // and the SDK check below says how.
    let managed = std::env::var_os(venv::ENV_PYTHON).is_none();
    if managed && !report.check("venv files", venv_files(&python)) {
        for what in ["SDK", "worker", "smoke chat"] {
            Report::skipped(what, "broken venv");
        }
        caches(&python);
        return finish(&report);
    }
    let sdk = sdk(&exe);
    let harness = sdk.as_ref().ok().map(|(_, harness)| harness.clone());
    let sdk_ok = report.check("SDK", sdk.map(|(detail, _)| detail));
    if let Some(harness) = harness {
        report_harness(&harness);
    }
    if sdk_ok {
        let bridge_ok = live_checks(&mut report).await;
        if !bridge_ok {
            Report::skipped("smoke chat", "no worker");
        }
    } else {
        Report::skipped("worker", "no SDK");
        Report::skipped("smoke chat", "no SDK");
    }
    caches(&python);
    finish(&report)
}

fn finish(report: &Report) -> bool {
    if report.failures == 0 {
        say!("{PASS}All checks passed.{PASS:#}");
    } else {
        say!("{FAIL}{} check(s) failed.{FAIL:#}", report.failures);
    }
    report.failures == 0
}

/// The interpreter the worker will run: a configured one, or the managed venv's.
fn interpreter(python: &PythonConfig) -> Result<(PathBuf, String), Problem> {
    if let Some(ready) = std::env::var_os(venv::ENV_PYTHON).map(PathBuf::from) {
        let version =
            run_python(&ready, "import sys; print(sys.version.split()[0])").map_err(|e| {
                problem(
                    format!(
                        "{} (from {}) does not run: {e}",
                        ready.display(),
                        venv::ENV_PYTHON
                    ),
                    format!(
                        "point {} at a Python >= 3.10, or unset it to use the managed venv",
                        venv::ENV_PYTHON
                    ),
                )
            })?;
        return Ok((
            ready.clone(),
            format!("{version} ({}, from {})", ready.display(), venv::ENV_PYTHON),
        ));
    }
    let status = venv::inspect(python)
        .map_err(|e| {
            problem(
                e.to_string(),
                format!(
                    "install Python >= 3.10, or set {} to one",
                    venv::ENV_BASE_PYTHON
                ),
            )
        })?
        .ok_or_else(|| {
            problem(
                "no interpreter configured",
                "set AGY_BRIDGE_PYTHON or install python3",
            )
        })?;
    if !status.complete {
        return Err(problem(
            format!(
                "the managed venv for Python {} is not set up ({})",
                status.python_version,
                status.dir.display()
            ),
            "run `agy-bridge setup` (or any command: it sets the venv up on first use)",
        ));
    }
    Ok((
        status.dir.join("bin").join("python"),
        format!(
            "{} (managed venv {})",
            status.python_version,
            status.dir.display()
        ),
    ))
}

/// The thorough check `agy-bridge setup` also runs: interpreter, imports, harness, file hashes.
fn venv_files(python: &PythonConfig) -> Result<String, Problem> {
    let problems = venv::verify(python).map_err(|e| problem(e.to_string(), REPAIR))?;
    if problems.is_empty() {
        return Ok(
            "the interpreter, SDK, worker and harness run; installed files match their wheels"
                .into(),
        );
    }
    let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
    let more = problems.len().saturating_sub(shown.len());
    let tail = if more > 0 {
        format!(" (and {more} more)")
    } else {
        String::new()
    };
    Err(problem(format!("{}{tail}", shown.join("; ")), REPAIR))
}

/// The fix for anything wrong inside the managed venv.
const REPAIR: &str = "run `agy-bridge setup`: it checks the venv and rebuilds what is broken";

/// The installed SDK's version and its harness binary.
fn sdk(python: &std::path::Path) -> Result<(String, PathBuf), Problem> {
    let out = run_python(
        python,
        "import importlib.metadata as m, os, google.antigravity as g\n\
         print(m.version('google-antigravity'))\n\
         print(os.path.join(os.path.dirname(g.__file__), 'bin', 'localharness'))",
    )
    .map_err(|e| {
        let fix = if std::env::var_os(venv::ENV_PYTHON).is_some() {
            format!(
                "install it there (`{} -m pip install google-antigravity=={SDK_VERSION}`), or unset {} to use the managed venv",
                python.display(),
                venv::ENV_PYTHON
            )
        } else {
            REPAIR.to_owned()
        };
        problem(
            format!("google-antigravity does not import in {}: {e}", python.display()),
            fix,
        )
    })?;
    let mut lines = out.lines();
    let version = lines.next().unwrap_or_default().to_owned();
    let harness = PathBuf::from(lines.next().unwrap_or_default());
    if version != SDK_VERSION {
        return Err(problem(
            format!(
                "google-antigravity {version} is installed; this bridge is tested with {SDK_VERSION}"
            ),
            format!(
                "install google-antigravity=={SDK_VERSION} there, or unset {} to use the managed venv",
                venv::ENV_PYTHON
            ),
        ));
    }
    Ok((
        format!("google-antigravity {version} (the tested pin)"),
        harness,
    ))
}

fn report_harness(harness: &std::path::Path) {
    let size = std::fs::metadata(harness).map(|m| m.len());
    match size {
        Ok(size) => Report::info(
            "harness",
            &format!("{} ({})", harness.display(), human_size(size)),
        ),
        Err(e) => Report::info("harness", &format!("{} missing: {e}", harness.display())),
    }
}

/// Starts a real worker, checks its handshake, and runs one turn against the scripted model.
async fn live_checks(report: &mut Report) -> bool {
    let data = std::env::temp_dir().join(format!("agy-bridge-doctor-{}", std::process::id()));
    let ok = live_checks_in(report, &data).await;
    let _ = std::fs::remove_dir_all(&data);
    ok
}

async fn live_checks_in(report: &mut Report, data: &std::path::Path) -> bool {
    let started = Instant::now();
    let bridge = match Bridge::start(BridgeConfig::default().data_dir(data)).await {
        Ok(bridge) => bridge,
        Err(e) => {
            return report.check(
                "worker",
                Err(problem(
                    e.to_string(),
                    format!("{REPAIR}; if it still fails, see docs/operations.md, \"Troubleshooting by error message\""),
                )),
            );
        }
    };
    let info = bridge.worker_info();
    let ping = bridge.ping().await;
    report.check(
        "worker",
        ping.map(|ping| {
            format!(
                "pid {}, protocol {}, agy_worker {}, {} + {}, ready in {} ms, ping {:.2} ms",
                info.pid,
                info.protocol_version,
                info.worker_version,
                info.event_loop,
                info.json_backend,
                started.elapsed().as_millis(),
                ping.as_secs_f64() * 1e3
            )
        })
        .map_err(|e| {
            problem(
                e.to_string(),
                format!("{REPAIR}; to see why, run it again with AGY_BRIDGE_LOG=debug"),
            )
        }),
    );
    let smoke = smoke_chat(&bridge).await;
    report.check("smoke chat", smoke);
    bridge.shutdown().await;
    true
}

async fn smoke_chat(bridge: &Bridge) -> Result<String, Problem> {
    let fix = format!(
        "{REPAIR}; to see why (the harness logs to the worker's stderr), run it again with AGY_BRIDGE_LOG=debug"
    );
    let model =
        ScriptedModel::with_responder(Arc::new(|_: &agy_bridge::testing::RecordedRequest| {
            agy_bridge::testing::Reply::text("pong")
        }))
        .await
        .map_err(|e| {
            problem(
                format!("cannot start the scripted model: {e}"),
                "check that 127.0.0.1 is usable",
            )
        })?;
    let started = Instant::now();
    let agent = bridge
        .create_agent(AgentConfig::new(ModelConfig::openai_compatible(
            model.base_url(),
            "doctor",
        )))
        .await
        .map_err(|e| problem(format!("agent start failed: {e}"), &fix))?;
    let outcome = agent
        .chat("ping")
        .await
        .map_err(|e| problem(e.to_string(), &fix))?
        .finish()
        .await
        .map_err(|e| problem(format!("the turn failed: {e}"), &fix))?;
    let harness = agent.harness_pid();
    let _ = agent.close().await;
    if outcome.text.trim() != "pong" {
        return Err(problem(
            format!("unexpected reply {:?}", outcome.text),
            "report a bug: the scripted model said \"pong\"",
        ));
    }
    Ok(format!(
        "one turn against the offline scripted model in {} ms (harness pid {})",
        started.elapsed().as_millis(),
        harness.map_or_else(|| "?".to_owned(), |p| p.to_string())
    ))
}

/// Sizes of the venv cache and the data directory, with what `gc` would free.
fn caches(python: &PythonConfig) {
    let cache = venv::cache_dir(python);
    let stale = venv::stale_entries(python).unwrap_or_default();
    let stale_bytes: u64 = stale.iter().map(|p| disk_usage(p)).sum();
    Report::info(
        "venv cache",
        &format!(
            "{} in {} ({} stale entries; `agy-bridge gc` frees {})",
            human_size(disk_usage(&cache)),
            cache.display(),
            stale.len(),
            human_size(stale_bytes)
        ),
    );
    let data = agy_bridge::default_data_dir();
    let conversations = std::fs::read_dir(data.join("conversations"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "db"))
                .count()
        })
        .unwrap_or(0);
    Report::info(
        "data",
        &format!(
            "{} in {} ({conversations} conversations)",
            human_size(disk_usage(&data)),
            data.display()
        ),
    );
}

fn run_python(python: &std::path::Path, code: &str) -> Result<String, String> {
    let out = Command::new(python)
        .args(["-c", code])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(stderr.lines().last().unwrap_or("failed").trim().to_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
