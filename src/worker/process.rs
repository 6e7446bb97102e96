//! One worker process: spawn in its own process group, drain stderr, handshake, stop, kill.

use std::{
    collections::VecDeque,
    os::unix::process::ExitStatusExt,
    process::{ExitStatus, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use parking_lot::Mutex;

use futures::FutureExt;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
    sync::watch,
};

use super::venv::PythonEnv;
use crate::{
    error::{Error, Result},
    protocol::{
        self, Method,
        errors::close_reason,
        methods::{Initialize, WorkerShutdown},
        wire::{Empty, HarnessPrestart, InitializeParams, OtelSettings, WorkerInfo},
    },
    rpc::{Handler, Peer, PeerConfig},
};

/// How to start a worker.
#[derive(Debug, Clone)]
pub(crate) struct WorkerOptions {
    /// The Python environment to run in.
    pub env: PythonEnv,
    /// Environment variables for the worker on top of the allow-listed ones it inherits.
    pub extra_env: super::child_env::EnvVars,
    /// Message size limit, both directions.
    pub max_message_size: usize,
    /// Capacity of the outgoing message queue.
    pub write_queue: usize,
    /// Deadline for spawn + SDK import + handshake.
    pub startup_timeout: Duration,
    /// How long a graceful stop may take before SIGTERM, then SIGKILL.
    pub shutdown_grace: Duration,
    /// Lines of stderr kept for crash reports.
    pub stderr_tail_lines: usize,
    /// Accept a `google-antigravity` version other than [`protocol::SDK_VERSION`].
    pub allow_sdk_mismatch: bool,
    /// Enable the worker's failure-injection method (tests only).
    pub debug_methods: bool,
    /// Harnesses the worker keeps started ahead, and what they are started with.
    pub prestart: Option<HarnessPrestart>,
    /// Conversations one harness may serve (1: a harness per agent).
    pub conversations_per_harness: usize,
    /// Tracing in the worker: where it exports its spans (`None`: off).
    pub otel: Option<OtelSettings>,
}

impl WorkerOptions {
    /// Defaults for the given environment.
    #[must_use]
    pub(crate) fn new(env: PythonEnv) -> Self {
        Self {
            env,
            extra_env: super::child_env::EnvVars::default(),
            max_message_size: crate::rpc::DEFAULT_MAX_MESSAGE_SIZE,
            write_queue: 1024,
            startup_timeout: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(5),
            stderr_tail_lines: 60,
            allow_sdk_mismatch: false,
            debug_methods: false,
            prestart: None,
            conversations_per_harness: 1,
            otel: None,
        }
    }
}

/// Where the time went while a worker started.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartupTimings {
    /// `fork`/`exec` of the interpreter.
    pub spawn: Duration,
    /// From spawn until the worker's `__main__` ran (interpreter start-up).
    pub interpreter: Duration,
    /// The SDK import inside the worker.
    pub sdk_import: Duration,
    /// From spawn until the `initialize` answer arrived.
    pub ready: Duration,
}

/// The last lines of a worker's stderr.
#[derive(Debug, Default)]
pub(crate) struct StderrTail {
    lines: Mutex<VecDeque<String>>,
}

impl StderrTail {
    fn push(&self, line: String, cap: usize) {
        let mut lines = self.lines.lock();
        if lines.len() >= cap {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The kept lines joined with newlines.
    #[must_use]
    pub(crate) fn text(&self) -> String {
        let lines = self.lines.lock();
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// A running worker process and its protocol connection.
pub(crate) struct WorkerProcess {
    pid: u32,
    peer: Peer,
    info: WorkerInfo,
    timings: StartupTimings,
    exit: watch::Receiver<Option<ExitStatus>>,
    stderr: Arc<StderrTail>,
    ending: Arc<Ending>,
    shutdown_grace: Duration,
}

/// Whether the bridge ended the worker on purpose, which decides the error its pending
/// requests get.
#[derive(Default)]
struct Ending {
    /// Stopped on purpose (shutdown, drop): requests fail with [`Error::WorkerStopped`].
    stopping: AtomicBool,
    /// Why the bridge killed it (a missed heartbeat); added to the [`Error::WorkerCrashed`]
    /// exit status so the kill is not mistaken for the OOM killer's.
    killed_because: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for WorkerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerProcess")
            .field("pid", &self.pid)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

const MAX_STDERR_LINE: usize = 4096;

impl WorkerProcess {
    /// Spawns the worker, performs the `initialize` handshake and checks versions.
    ///
    /// # Errors
    /// [`Error::Spawn`], [`Error::WorkerCrashed`] (it died during start-up, with its stderr),
    /// [`Error::Timeout`], or [`Error::VersionMismatch`].
    pub(crate) async fn spawn(options: &WorkerOptions, handler: Arc<dyn Handler>) -> Result<Self> {
        let started = Self::start(options, handler).await;
        crate::metrics::worker_start(if started.is_ok() { "ok" } else { "failed" });
        started
    }

    /// [`WorkerProcess::spawn`], uncounted.
    async fn start(options: &WorkerOptions, handler: Arc<dyn Handler>) -> Result<Self> {
        let spawn_started = Instant::now();
        let spawn_unix = unix_now();
        let mut cmd = Command::new(&options.env.python);
        cmd.args(["-m", "agy_worker"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            // Only allow-listed variables: the agent can print its environment.
            .env_clear()
            .envs(super::child_env::inherited(std::env::vars_os()))
            // With tracing, the exporter's settings too (the worker keeps them from the
            // harnesses and commands it starts).
            .envs(
                std::env::vars_os()
                    .filter(|(name, _)| options.otel.is_some() && super::child_env::is_otel(name)),
            )
            .env("PYTHONUTF8", "1")
            .env("PYTHONIOENCODING", "utf-8")
            .env(
                "AGY_WORKER_MAX_MESSAGE",
                options.max_message_size.to_string(),
            )
            .kill_on_drop(false);
        if let Some(path) = &options.env.pythonpath {
            cmd.env("PYTHONPATH", path);
        }
        if options.debug_methods {
            cmd.env("AGY_WORKER_DEBUG", "1");
        }
        cmd.envs(options.extra_env.exposed());
        // Everything the worker and its harnesses write (conversations, transcripts) is
        // owner-only.
        // SAFETY: umask is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0o077);
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| Error::Spawn {
            program: options.env.python.display().to_string(),
            source: Arc::new(e),
        })?;
        let spawn_time = spawn_started.elapsed();
        let pid = child.id().unwrap_or_default();
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr_pipe = child.stderr.take().expect("stderr is piped");

        let stderr = Arc::new(StderrTail::default());
        let (stderr_done_tx, stderr_done) = watch::channel(false);
        tokio::spawn(drain_stderr(
            stderr_pipe,
            Arc::clone(&stderr),
            options.stderr_tail_lines,
            pid,
            stderr_done_tx,
        ));

        let (exit_tx, exit) = watch::channel(None);
        let ending = Arc::new(Ending::default());
        let on_close = {
            let exit = exit.clone();
            let stderr = Arc::clone(&stderr);
            let ending = Arc::clone(&ending);
            Box::new(move || {
                async move { close_reason(closed_error(exit, stderr_done, &stderr, &ending).await) }
                    .boxed()
            }) as crate::rpc::OnClose
        };
        let config = PeerConfig {
            max_message_size: options.max_message_size,
            write_queue: options.write_queue,
        };
        let peer = Peer::spawn(stdout, stdin, handler, &config, on_close);

        // The exit watcher owns the child (and reaps it). If the process is gone but its stdout
        // stays open (a grandchild inherited it), it fails the connection itself.
        {
            let peer = peer.clone();
            let stderr = Arc::clone(&stderr);
            let ending = Arc::clone(&ending);
            tokio::spawn(async move {
                let status = child.wait().await.ok();
                if !ending.stopping.load(Ordering::SeqCst) {
                    crate::metrics::worker_crash();
                }
                let _ = exit_tx.send(status);
                tokio::time::sleep(Duration::from_millis(500)).await;
                if !peer.is_closed() {
                    peer.close(close_reason(crash_or_stop(status, &stderr, &ending)));
                }
            });
        }

        let mut worker = Self {
            pid,
            peer,
            info: WorkerInfo {
                protocol_version: 0,
                worker_version: String::new(),
                sdk_version: String::new(),
                python_version: String::new(),
                pid,
                json_backend: String::new(),
                event_loop: String::new(),
                max_message_size: 0,
                main_entered_unix: 0.0,
                sdk_imported_unix: None,
                offloop_agent_start: false,
                conversations_per_harness: 1,
            },
            timings: StartupTimings {
                spawn: spawn_time,
                ..StartupTimings::default()
            },
            exit,
            stderr,
            ending,
            shutdown_grace: options.shutdown_grace,
        };
        let params = InitializeParams {
            protocol_version: protocol::PROTOCOL_VERSION,
            crate_version: env!("CARGO_PKG_VERSION").to_owned(),
            harness_prestart: options.prestart.clone().filter(|p| p.count > 0),
            conversations_per_harness: Some(options.conversations_per_harness.max(1)),
            otel: options.otel.clone(),
        };
        let info = worker
            .call::<Initialize>(&params, options.startup_timeout)
            .await?;
        check_versions(&info, options)?;
        worker.timings.ready = spawn_started.elapsed();
        worker.timings.interpreter = secs(info.main_entered_unix - spawn_unix);
        worker.timings.sdk_import =
            secs(info.sdk_imported_unix.unwrap_or(0.0) - info.main_entered_unix);
        worker.info = info;
        tracing::info!(
            pid,
            sdk = %worker.info.sdk_version,
            python = %worker.info.python_version,
            ready_ms = worker.timings.ready.as_millis(),
            "worker ready"
        );
        Ok(worker)
    }

    /// Calls `M` on the worker and decodes its result: the one typed path every request from
    /// Rust takes. Every call has a deadline.
    ///
    /// # Errors
    /// The worker's error answer as a typed [`Error`], a timeout, a crash, or
    /// [`Error::Protocol`] for a result that does not fit `M::Result`.
    pub(crate) async fn call<M: Method>(
        &self,
        params: &M::Params,
        timeout: Duration,
    ) -> Result<M::Result> {
        let reply = self
            .peer
            .call(M::NAME, params, timeout)
            .await
            .map_err(protocol::errors::from_call)?;
        serde_json::from_value(reply)
            .map_err(|e| Error::Protocol(format!("bad {} result: {e}", M::NAME)))
    }

    /// The worker's process id (also its process group id).
    #[must_use]
    pub(crate) const fn pid(&self) -> u32 {
        self.pid
    }

    /// The protocol connection.
    #[must_use]
    pub(crate) const fn peer(&self) -> &Peer {
        &self.peer
    }

    /// What the worker reported at `initialize`.
    #[must_use]
    pub(crate) const fn info(&self) -> &WorkerInfo {
        &self.info
    }

    /// Start-up phase timings.
    #[must_use]
    pub(crate) const fn timings(&self) -> StartupTimings {
        self.timings
    }

    /// The last lines the worker wrote to stderr.
    #[must_use]
    pub(crate) fn stderr_tail(&self) -> String {
        self.stderr.text()
    }

    /// How the process ended, if it has.
    #[must_use]
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// Stops the worker: `worker/shutdown` (agents closed) → grace → SIGTERM → SIGKILL of the
    /// whole process group. Every wait is bounded; pending requests fail with
    /// [`Error::WorkerStopped`].
    pub(crate) async fn shutdown(&self) {
        self.ending.stopping.store(true, Ordering::SeqCst);
        if self.exit_status().is_none() {
            let grace = self.shutdown_grace;
            let _ = self.call::<WorkerShutdown>(&Empty {}, grace).await;
            if !self.wait_exit(grace).await {
                tracing::warn!(pid = self.pid, "worker ignored shutdown; sending SIGTERM");
                self.signal_group(libc::SIGTERM);
                if !self.wait_exit(Duration::from_secs(2)).await {
                    tracing::warn!(pid = self.pid, "worker ignored SIGTERM; sending SIGKILL");
                    self.signal_group(libc::SIGKILL);
                    self.wait_exit(Duration::from_secs(2)).await;
                }
            }
        }
        // Stragglers in the group (a harness that outlived the worker) go too.
        self.signal_group(libc::SIGKILL);
        self.peer.close(close_reason(Error::WorkerStopped));
    }

    /// Kills the whole process group with SIGKILL, at once.
    pub(crate) fn kill(&self) {
        self.signal_group(libc::SIGKILL);
    }

    /// [`WorkerProcess::kill`], with the reason the requests it fails are given (in
    /// [`Error::WorkerCrashed`]'s exit status).
    pub(crate) fn kill_because(&self, reason: String) {
        let _ = self.ending.killed_because.set(reason);
        self.kill();
    }

    async fn wait_exit(&self, timeout: Duration) -> bool {
        let mut exit = self.exit.clone();
        tokio::time::timeout(timeout, exit.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn signal_group(&self, signal: libc::c_int) {
        if let Ok(pgid) = libc::pid_t::try_from(self.pid)
            && pgid > 0
        {
            // SAFETY: killpg has no memory-safety preconditions; a stale pgid only yields ESRCH.
            unsafe {
                libc::killpg(pgid, signal);
            }
        }
    }
}

impl Drop for WorkerProcess {
    /// Kills the process group synchronously; needs no live runtime.
    fn drop(&mut self) {
        self.ending.stopping.store(true, Ordering::SeqCst);
        self.signal_group(libc::SIGKILL);
    }
}

fn check_versions(info: &WorkerInfo, options: &WorkerOptions) -> Result<()> {
    if info.protocol_version != protocol::PROTOCOL_VERSION {
        return Err(Error::VersionMismatch {
            message: format!(
                "the worker speaks protocol {} but this crate speaks {}",
                info.protocol_version,
                protocol::PROTOCOL_VERSION
            ),
        });
    }
    if info.worker_version != protocol::WORKER_VERSION {
        return Err(Error::VersionMismatch {
            message: format!(
                "the worker package is {} but this crate embeds {}; unset {} to use the managed \
                 venv, or install the matching agy_worker",
                info.worker_version,
                protocol::WORKER_VERSION,
                super::venv::ENV_PYTHON
            ),
        });
    }
    if info.sdk_version != protocol::SDK_VERSION && !options.allow_sdk_mismatch {
        return Err(Error::VersionMismatch {
            message: format!(
                "google-antigravity {} is installed but this crate is tested with {}; use the \
                 managed venv, install google-antigravity=={}, or allow the mismatch in the \
                 bridge config",
                info.sdk_version,
                protocol::SDK_VERSION,
                protocol::SDK_VERSION
            ),
        });
    }
    Ok(())
}

async fn drain_stderr(
    pipe: tokio::process::ChildStderr,
    tail: Arc<StderrTail>,
    cap: usize,
    pid: u32,
    done: watch::Sender<bool>,
) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let mut line = String::from_utf8_lossy(&buf).trim_end().to_owned();
        if line.len() > MAX_STDERR_LINE {
            let mut cut = MAX_STDERR_LINE;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" …");
        }
        if line.starts_with("ERROR")
            || line.starts_with("CRITICAL")
            || line.starts_with("Traceback")
        {
            tracing::error!(target: "agy_worker", worker_pid = pid, "{line}");
        } else if line.starts_with("WARNING") {
            tracing::warn!(target: "agy_worker", worker_pid = pid, "{line}");
        } else {
            tracing::debug!(target: "agy_worker", worker_pid = pid, "{line}");
        }
        tail.push(line, cap);
    }
    let _ = done.send(true);
}

async fn closed_error(
    mut exit: watch::Receiver<Option<ExitStatus>>,
    mut stderr_done: watch::Receiver<bool>,
    stderr: &StderrTail,
    ending: &Ending,
) -> Error {
    // Output EOF usually comes a moment before the exit status; wait briefly for both so the
    // error carries the real status and the complete stderr tail.
    let _ = tokio::time::timeout(Duration::from_millis(1000), exit.wait_for(Option::is_some)).await;
    let _ = tokio::time::timeout(Duration::from_millis(300), stderr_done.wait_for(|d| *d)).await;
    let status = *exit.borrow();
    crash_or_stop(status, stderr, ending)
}

fn crash_or_stop(status: Option<ExitStatus>, stderr: &StderrTail, ending: &Ending) -> Error {
    if ending.stopping.load(Ordering::SeqCst) {
        return Error::WorkerStopped;
    }
    let exit_status = status.map(describe_exit);
    Error::WorkerCrashed {
        exit_status: match (exit_status, ending.killed_because.get()) {
            (Some(exit), Some(reason)) => Some(format!("{exit}, sent by agy-bridge: {reason}")),
            (None, Some(reason)) => Some(format!("killed by agy-bridge: {reason}")),
            (exit, None) => exit,
        },
        stderr_tail: stderr.text(),
    }
}

/// `exit code 3` or `killed by signal 9 (SIGKILL)`.
#[must_use]
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    match status.signal() {
        Some(sig) => {
            let name = match sig {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGINT => " (SIGINT)",
                _ => "",
            };
            format!("killed by signal {sig}{name}")
        }
        None => status.to_string(),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or_default()
}
