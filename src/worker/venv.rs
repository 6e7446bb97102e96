//! The managed Python environment: created on first use in a per-user cache directory, keyed by
//! a hash of (Python version, worker sources, pinned requirements), reused afterwards.
//!
//! Concurrency: builders take an exclusive file lock; a completion stamp is written last, so a
//! half-built environment (crash, Ctrl-C, full disk) is detected and rebuilt. Checking a ready
//! environment takes no lock and spawns nothing.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};

use super::embedded;
use crate::{
    error::{Error, Result},
    secure_dir,
};

/// Env var: a ready interpreter to use as is (no venv management). It needs
/// `google-antigravity` installed; the worker package is put on its `PYTHONPATH`.
pub const ENV_PYTHON: &str = "AGY_BRIDGE_PYTHON";
/// Env var: the cache directory holding managed venvs (default: the user cache dir).
pub const ENV_CACHE_DIR: &str = "AGY_BRIDGE_CACHE_DIR";
/// Env var: the base interpreter used to create venvs (default: `python3` on `PATH`).
pub const ENV_BASE_PYTHON: &str = "AGY_BRIDGE_BASE_PYTHON";
/// Env var: a directory of wheels to install from instead of the package index (air-gapped
/// hosts; fill it with `agy-bridge setup --download-wheels DIR`).
pub const ENV_WHEELHOUSE: &str = "AGY_BRIDGE_WHEELHOUSE";

const STAMP: &str = "agy-bridge-complete.json";
const OUTPUT_TAIL_LINES: usize = 40;
/// Bumped when the venv layout or the build steps change.
const LAYOUT_VERSION: &str = "venv-layout-1";

/// Where the Python environment comes from.
///
/// ```
/// use agy_bridge::PythonConfig;
///
/// let python = PythonConfig::default().wheelhouse("/srv/wheels"); // air-gapped host
/// # let _ = python;
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PythonConfig {
    /// Use this ready interpreter (overrides [`ENV_PYTHON`]).
    pub python: Option<PathBuf>,
    /// Cache directory for managed venvs (overrides [`ENV_CACHE_DIR`]).
    pub cache_dir: Option<PathBuf>,
    /// Base interpreter for new venvs (overrides [`ENV_BASE_PYTHON`]).
    pub base_python: Option<PathBuf>,
    /// Install from this directory of wheels only, never from the package index (overrides
    /// [`ENV_WHEELHOUSE`]).
    pub wheelhouse: Option<PathBuf>,
    /// Install the OpenTelemetry packages the worker's tracing needs (a venv of its own;
    /// [`crate::BridgeConfig::tracing`] turns this on).
    pub otel: bool,
}

impl PythonConfig {
    /// Uses this ready interpreter (with `google-antigravity` installed) instead of a managed
    /// venv.
    #[must_use]
    pub fn python(mut self, python: impl Into<PathBuf>) -> Self {
        self.python = Some(python.into());
        self
    }

    /// Keeps managed venvs under this directory.
    #[must_use]
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Creates venvs from this interpreter.
    #[must_use]
    pub fn base_python(mut self, python: impl Into<PathBuf>) -> Self {
        self.base_python = Some(python.into());
        self
    }

    /// Installs from this directory of wheels only, never from the package index.
    #[must_use]
    pub fn wheelhouse(mut self, dir: impl Into<PathBuf>) -> Self {
        self.wheelhouse = Some(dir.into());
        self
    }

    /// Installs the OpenTelemetry packages too (see [`PythonConfig::otel`](Self#structfield.otel)).
    #[must_use]
    pub const fn otel(mut self, on: bool) -> Self {
        self.otel = on;
        self
    }

    fn wheelhouse_dir(&self) -> Option<PathBuf> {
        self.wheelhouse
            .clone()
            .or_else(|| std::env::var_os(ENV_WHEELHOUSE).map(PathBuf::from))
    }

    fn base_interpreter(&self) -> PathBuf {
        self.base_python
            .clone()
            .or_else(|| std::env::var_os(ENV_BASE_PYTHON).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("python3"))
    }

    fn ready_python(&self) -> Option<PathBuf> {
        self.python
            .clone()
            .or_else(|| std::env::var_os(ENV_PYTHON).map(PathBuf::from))
    }
}

/// Where the managed venv for a [`PythonConfig`] lives, found without building anything.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VenvStatus {
    /// The venv directory.
    pub dir: PathBuf,
    /// Whether it is complete (finished, with its key files present).
    pub complete: bool,
    /// The base interpreter it is (or would be) created from.
    pub base_python: PathBuf,
    /// That interpreter's version.
    pub python_version: String,
}

/// The managed venv `config` selects; `None` when a ready interpreter is configured instead.
///
/// # Errors
/// [`Error::VenvSetup`] when the base interpreter cannot be run.
pub fn inspect(config: &PythonConfig) -> Result<Option<VenvStatus>> {
    if config.ready_python().is_some() {
        return Ok(None);
    }
    let (base_exe, version) = probe_base_python(&config.base_interpreter())?;
    let key = venv_key(&base_exe, &version, config.otel);
    let venvs = cache_dir(config).join("venvs");
    secure_dir::ensure_private_dir(&venvs)?;
    let dir = venvs.join(&key[..16]);
    Ok(Some(VenvStatus {
        complete: is_complete(&dir, &key),
        dir,
        base_python: base_exe,
        python_version: version,
    }))
}

/// Entries of the cache directory that no current configuration uses: venvs and worker
/// packages built for other Python versions or earlier worker sources, and half-built venvs.
/// A venv another process is building (its lock is held) is never listed.
///
/// # Errors
/// [`Error::VenvSetup`] when the base interpreter cannot be run.
pub fn stale_entries(config: &PythonConfig) -> Result<Vec<PathBuf>> {
    let cache = cache_dir(config);
    // The venv of this configuration, with and without the tracing packages.
    let mut current = Vec::new();
    for otel in [false, true] {
        current.extend(inspect(&config.clone().otel(otel))?.map(|s| s.dir));
    }
    let mut stale = Vec::new();
    if let Ok(entries) = std::fs::read_dir(cache.join("venvs")) {
        for path in entries.flatten().map(|e| e.path()) {
            if path.extension().is_some_and(|e| e == "lock") || current.contains(&path) {
                continue;
            }
            if path
                .file_name()
                .is_some_and(|n| n.as_encoded_bytes().starts_with(b"last-"))
            {
                // A memo of the venv used last (see `remembered`): kept while it names a
                // current one.
                let names = std::fs::read(&path).unwrap_or_default();
                let named = current
                    .iter()
                    .filter_map(|c| c.file_name())
                    .any(|c| c.as_encoded_bytes() == names);
                if !named {
                    stale.push(path);
                }
                continue;
            }
            let lock_path = path.with_extension("lock");
            let busy = std::fs::File::open(&lock_path)
                .is_ok_and(|f| !f.try_lock_exclusive().unwrap_or(false));
            if !busy {
                stale.push(path);
                if lock_path.exists() {
                    stale.push(lock_path);
                }
            }
        }
    }
    let digest = embedded::digest();
    if let Ok(entries) = std::fs::read_dir(cache.join("worker-src")) {
        stale.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n != &digest[..16])),
        );
    }
    stale.sort();
    Ok(stale)
}

/// Downloads the wheels the managed venv needs (for this machine's platform and the base
/// interpreter's Python version) into `dest`, for an air-gapped set-up with
/// [`PythonConfig::wheelhouse`].
///
/// # Errors
/// [`Error::VenvSetup`] when the base interpreter or its pip fails.
pub fn download_wheels(
    config: &PythonConfig,
    dest: &Path,
    progress: Option<&SetupProgress>,
) -> Result<()> {
    let report = |event: SetupEvent| {
        if let Some(p) = progress {
            p(&event);
        }
    };
    let (base_exe, _) = probe_base_python(&config.base_interpreter())?;
    std::fs::create_dir_all(dest)
        .map_err(|e| setup_error("creating the wheel directory", e.to_string(), ""))?;
    run(
        "downloading wheels with pip",
        Command::new(base_exe)
            .args([
                "-m",
                "pip",
                "download",
                "--disable-pip-version-check",
                "--no-input",
                "--dest",
            ])
            .arg(dest)
            .args(embedded::requirements(config.otel)),
        &report,
    )
}

/// A progress report from environment set-up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SetupEvent {
    /// A new phase started.
    Phase {
        /// What is being done.
        name: String,
        /// Time since set-up began.
        elapsed: Duration,
    },
    /// A line printed by pip, uv or Python.
    Output(String),
    /// Set-up finished.
    Done {
        /// Total time.
        elapsed: Duration,
        /// `true` when an existing environment was reused.
        reused: bool,
    },
}

/// Receives [`SetupEvent`]s.
pub type SetupProgress = Arc<dyn Fn(&SetupEvent) + Send + Sync>;

/// A Python interpreter ready to run the worker.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    /// The interpreter to launch (the venv's own binary, never a shim).
    pub python: PathBuf,
    /// A directory to put on `PYTHONPATH` (only for unmanaged interpreters).
    pub pythonpath: Option<PathBuf>,
    /// The managed venv directory, if managed.
    pub venv_dir: Option<PathBuf>,
}

#[derive(Serialize, Deserialize)]
struct Stamp {
    key: String,
    purelib: PathBuf,
}

/// Returns a ready Python environment, creating or repairing the managed venv when needed.
///
/// # Errors
/// [`Error::VenvSetup`] naming the failed step with the tail of the tool's output.
pub async fn ensure(config: PythonConfig, progress: Option<SetupProgress>) -> Result<PythonEnv> {
    tokio::task::spawn_blocking(move || ensure_blocking(&config, progress.as_ref()))
        .await
        .map_err(|e| setup_error("preparing the Python environment", e.to_string(), ""))?
}

/// The cache directory for managed venvs.
#[must_use]
pub fn cache_dir(config: &PythonConfig) -> PathBuf {
    config
        .cache_dir
        .clone()
        .or_else(|| std::env::var_os(ENV_CACHE_DIR).map(PathBuf::from))
        .or_else(|| dirs::cache_dir().map(|d| d.join("agy-bridge")))
        .unwrap_or_else(|| {
            // SAFETY: geteuid has no preconditions. Per user, and checked like any other.
            let uid = unsafe { libc::geteuid() };
            std::env::temp_dir().join(format!("agy-bridge-cache-{uid}"))
        })
}

/// What is wrong with the environment `config` selects, if anything, after a thorough check:
/// the interpreter runs, the SDK and the worker import, the harness executes, every installed
/// file matches its wheel's `RECORD` hash, and the worker package matches this crate's. For an
/// unmanaged interpreter (`AGY_BRIDGE_PYTHON`) only the import is checked. Takes a few seconds
/// (it hashes ~450 MB); [`ensure`] does not do it.
///
/// # Errors
/// [`Error::VenvSetup`] when the base interpreter cannot be run.
pub fn verify(config: &PythonConfig) -> Result<Vec<String>> {
    if let Some(python) = config.ready_python() {
        let ok = Command::new(&python)
            .args(["-c", "import google.antigravity"])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        return Ok(if ok {
            Vec::new()
        } else {
            vec![format!(
                "{} cannot import google.antigravity",
                python.display()
            )]
        });
    }
    let Some(status) = inspect(config)? else {
        return Ok(Vec::new());
    };
    if !status.complete {
        return Ok(vec![format!(
            "the venv at {} is not set up",
            status.dir.display()
        )]);
    }
    let stamp = read_stamp(&status.dir)
        .ok_or_else(|| setup_error("reading the completion stamp", "unreadable", ""))?;
    Ok(super::venv_check::problems(&status.dir, &stamp.purelib))
}

/// [`ensure`], then [`verify`]: a managed venv found broken is rebuilt (and checked again).
/// What `agy-bridge setup` runs.
///
/// # Errors
/// As [`ensure`]; [`Error::VenvSetup`] when the rebuilt venv is still broken.
pub async fn repair(config: PythonConfig, progress: Option<SetupProgress>) -> Result<PythonEnv> {
    tokio::task::spawn_blocking(move || repair_blocking(&config, progress.as_ref()))
        .await
        .map_err(|e| setup_error("repairing the Python environment", e.to_string(), ""))?
}

fn repair_blocking(config: &PythonConfig, progress: Option<&SetupProgress>) -> Result<PythonEnv> {
    let env = ensure_blocking(config, progress)?;
    let Some(dir) = env.venv_dir.clone() else {
        return Ok(env);
    };
    let problems = verify(config)?;
    if problems.is_empty() {
        return Ok(env);
    }
    let summary = summarize(&problems);
    tracing::warn!("the managed venv is broken ({summary}); rebuilding it");
    if let Some(p) = progress {
        p(&SetupEvent::Phase {
            name: format!("the venv is broken ({summary}); rebuilding it"),
            elapsed: Duration::ZERO,
        });
    }
    // Without its stamp the venv counts as half-built: the next ensure rebuilds it under the
    // build lock.
    match std::fs::remove_file(dir.join(STAMP)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(setup_error("discarding the broken venv", e.to_string(), "")),
    }
    let env = ensure_blocking(config, progress)?;
    let problems = verify(config)?;
    if problems.is_empty() {
        Ok(env)
    } else {
        Err(setup_error(
            "checking the rebuilt venv",
            summarize(&problems),
            &problems.join("\n"),
        ))
    }
}

/// The first few problems in one line.
fn summarize(problems: &[String]) -> String {
    let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
    let more = problems.len().saturating_sub(shown.len());
    if more == 0 {
        shown.join("; ")
    } else {
        format!("{}; and {more} more", shown.join("; "))
    }
}

fn read_stamp(dir: &Path) -> Option<Stamp> {
    let text = std::fs::read_to_string(dir.join(STAMP)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Blocking version of [`ensure`].
///
/// # Errors
/// As [`ensure`].
pub fn ensure_blocking(
    config: &PythonConfig,
    progress: Option<&SetupProgress>,
) -> Result<PythonEnv> {
    let started = Instant::now();
    let report = |event: SetupEvent| {
        if let Some(p) = progress {
            p(&event);
        }
    };
    let cache = cache_dir(config);
    // Nothing in a directory another user can write is trusted (a planted venv would run).
    secure_dir::ensure_private_dir(&cache)?;
    if let Some(python) = config.ready_python() {
        let src = cache.join("worker-src").join(&embedded::digest()[..16]);
        secure_dir::ensure_private_dir(&src)?;
        embedded::write_package(&src)
            .map_err(|e| setup_error("writing the worker package", e.to_string(), ""))?;
        return Ok(PythonEnv {
            python,
            pythonpath: Some(src),
            venv_dir: None,
        });
    }

    let (base_exe, version) = probe_base_python(&config.base_interpreter())?;
    let key = venv_key(&base_exe, &version, config.otel);
    let venvs = cache.join("venvs");
    secure_dir::ensure_private_dir(&venvs)?;
    let dir = venvs.join(&key[..16]);
    if is_complete(&dir, &key) {
        report(SetupEvent::Done {
            elapsed: started.elapsed(),
            reused: true,
        });
        remember(&venvs, config, &dir);
        return Ok(managed_env(&dir));
    }

    let lock_path = venvs.join(format!("{}.lock", &key[..16]));
    let lock = secure_dir::open_lock_file(&lock_path)?;
    if !lock.try_lock_exclusive().unwrap_or(false) {
        report(SetupEvent::Phase {
            name: "waiting for another process that is building the environment".into(),
            elapsed: started.elapsed(),
        });
        lock.lock_exclusive()
            .map_err(|e| setup_error("locking the venv", e.to_string(), ""))?;
    }
    // Someone else may have finished while we waited.
    let result = if is_complete(&dir, &key) {
        report(SetupEvent::Done {
            elapsed: started.elapsed(),
            reused: true,
        });
        Ok(managed_env(&dir))
    } else {
        let wheelhouse = config.wheelhouse_dir();
        build(
            &dir,
            &key,
            (&base_exe, &version),
            (wheelhouse.as_deref(), config.otel),
            started,
            &report,
        )
        .map(|()| managed_env(&dir))
    };
    let _ = FileExt::unlock(&lock);
    if result.is_ok() {
        remember(&venvs, config, &dir);
    }
    result
}

/// The file naming the venv that `config`'s base interpreter led to last time.
fn memo_path(venvs: &Path, config: &PythonConfig) -> PathBuf {
    use sha2::{Digest, Sha256};
    let base = config.base_interpreter();
    let digest = Sha256::digest(base.as_os_str().as_encoded_bytes());
    let otel = if config.otel { "-otel" } else { "" };
    venvs.join(format!("last-{}{otel}", &embedded::hex(&digest)[..16]))
}

fn remember(venvs: &Path, config: &PythonConfig, dir: &Path) {
    let path = memo_path(venvs, config);
    let name = dir.file_name().unwrap_or_default().as_encoded_bytes();
    if std::fs::read(&path).is_ok_and(|old| old == name) {
        return;
    }
    if let Err(e) = secure_dir::write_private_file(&path, name) {
        tracing::debug!("remembering the venv in {}: {e}", path.display());
    }
}

/// The managed venv that `config` led to last time, if it is still complete: a guess that lets
/// the bridge start its workers while [`ensure`] runs the base interpreter to confirm it (on
/// a pyenv shim that alone takes ~0.1 s). The caller must keep the guess only when `ensure`
/// returns the same venv. `None` for unmanaged interpreters and without a (valid) memo.
pub(crate) fn remembered(config: &PythonConfig) -> Option<PythonEnv> {
    if config.ready_python().is_some() {
        return None;
    }
    let venvs = cache_dir(config).join("venvs");
    // Only a cache directory no one else can write is trusted to point at code to run.
    secure_dir::ensure_private_dir(&venvs).ok()?;
    let name = std::fs::read_to_string(memo_path(&venvs, config)).ok()?;
    if name.len() != 16 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let dir = venvs.join(name);
    let stamp = read_stamp(&dir)?;
    is_complete(&dir, &stamp.key).then(|| managed_env(&dir))
}

impl PythonEnv {
    /// Whether `self` and `other` run the same interpreter with the same path.
    pub(crate) fn same_as(&self, other: &Self) -> bool {
        self.python == other.python
            && self.pythonpath == other.pythonpath
            && self.venv_dir == other.venv_dir
    }
}

fn managed_env(dir: &Path) -> PythonEnv {
    PythonEnv {
        python: dir.join("bin").join("python"),
        pythonpath: None,
        venv_dir: Some(dir.to_path_buf()),
    }
}

fn venv_key(base_exe: &Path, version: &str, otel: bool) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [
        LAYOUT_VERSION,
        version,
        &base_exe.to_string_lossy(),
        &embedded::digest(),
        if otel { "otel" } else { "" },
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    embedded::hex(&h.finalize())
}

/// Whether `dir` holds a finished venv for `key` whose key files are all still present.
fn is_complete(dir: &Path, key: &str) -> bool {
    let Some(stamp) = read_stamp(dir) else {
        return false;
    };
    stamp.key == key
        && dir.join("bin").join("python").exists()
        && [
            "agy_worker/__main__.py",
            "google/antigravity/__init__.py",
            "google/antigravity/bin/localharness",
        ]
        .iter()
        .all(|f| stamp.purelib.join(f).exists())
}

fn probe_base_python(base: &Path) -> Result<(PathBuf, String)> {
    let out = Command::new(base)
        .args([
            "-c",
            "import sys; print(sys.executable); print('%d.%d.%d' % sys.version_info[:3])",
        ])
        .output()
        .map_err(|e| {
            setup_error(
                "looking for Python",
                format!(
                    "cannot run `{}`: {e}. Install Python >= 3.10 or set {ENV_BASE_PYTHON}.",
                    base.display()
                ),
                "",
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let (Some(exe), Some(version)) = (lines.next(), lines.next()) else {
        return Err(setup_error(
            "looking for Python",
            format!("`{}` did not report its version", base.display()),
            &String::from_utf8_lossy(&out.stderr),
        ));
    };
    let minor: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    if minor.len() < 2 || (minor[0], minor[1]) < (3, 10) {
        return Err(setup_error(
            "looking for Python",
            format!("Python {version} is too old; google-antigravity needs >= 3.10"),
            "",
        ));
    }
    Ok((PathBuf::from(exe), version.to_owned()))
}

fn build(
    dir: &Path,
    key: &str,
    (base_exe, version): (&Path, &str),
    (wheelhouse, otel): (Option<&Path>, bool),
    started: Instant,
    report: &dyn Fn(SetupEvent),
) -> Result<()> {
    // From a wheelhouse: never the index, so a missing wheel fails instead of downloading.
    let offline: Vec<std::ffi::OsString> = wheelhouse
        .map(|dir| vec!["--no-index".into(), "--find-links".into(), dir.into()])
        .unwrap_or_default();
    let source = wheelhouse.map_or_else(String::new, |d| format!(" from {}", d.display()));
    let phase = |name: String| {
        tracing::info!("{name}");
        report(SetupEvent::Phase {
            name,
            elapsed: started.elapsed(),
        });
    };
    if dir.exists() {
        phase(format!(
            "removing an incomplete environment at {}",
            dir.display()
        ));
        std::fs::remove_dir_all(dir)
            .map_err(|e| setup_error("removing the broken venv", e.to_string(), ""))?;
    }
    let python = dir.join("bin").join("python");
    let requirements = embedded::requirements(otel);
    let uv = which("uv");
    if let Some(uv) = &uv {
        phase(format!("creating a venv with uv (Python {version})"));
        run(
            "creating the venv with uv",
            Command::new(uv)
                .arg("venv")
                .arg("--python")
                .arg(base_exe)
                .arg(dir),
            report,
        )?;
        phase(format!(
            "installing {}{source} with uv",
            requirements.join(" ")
        ));
        run(
            &format!("installing {}", requirements.join(" ")),
            // Copies, not uv's default hard links into its cache: a damaged venv file must
            // not damage the cache that the repair reinstalls from (nor other venvs).
            Command::new(uv)
                .args(["pip", "install", "--link-mode", "copy", "--python"])
                .arg(&python)
                .args(&offline)
                .args(&requirements),
            report,
        )?;
    } else {
        phase(format!("creating a venv (Python {version})"));
        run(
            "creating the venv",
            Command::new(base_exe).args(["-m", "venv"]).arg(dir),
            report,
        )?;
        phase(format!(
            "installing {}{source} with pip (the SDK wheel is ~130 MB)",
            requirements.join(" ")
        ));
        run(
            &format!("installing {}", requirements.join(" ")),
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                ])
                .args(&offline)
                .args(&requirements),
            report,
        )?;
    }
    phase("installing the agy_worker package".into());
    let purelib = capture(
        "locating site-packages",
        Command::new(&python).args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ]),
    )?;
    let purelib = PathBuf::from(purelib.trim());
    embedded::write_package(&purelib)
        .map_err(|e| setup_error("installing the agy_worker package", e.to_string(), ""))?;
    phase("checking that the SDK imports".into());
    run(
        "importing google.antigravity in the new venv",
        Command::new(&python).args(["-c", "import agy_worker, google.antigravity"]),
        report,
    )?;
    let stamp = serde_json::to_string(&Stamp {
        key: key.to_owned(),
        purelib,
    })
    .map_err(|e| setup_error("writing the completion stamp", e.to_string(), ""))?;
    secure_dir::write_private_file(&dir.join(STAMP), stamp.as_bytes())
        .map_err(|e| setup_error("writing the completion stamp", e.to_string(), ""))?;
    report(SetupEvent::Done {
        elapsed: started.elapsed(),
        reused: false,
    });
    Ok(())
}

/// Finds an executable on `PATH`.
#[must_use]
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn setup_error(step: &str, message: impl Into<String>, output_tail: &str) -> Error {
    Error::VenvSetup {
        step: step.to_owned(),
        message: message.into(),
        output_tail: output_tail.to_owned(),
    }
}

/// Makes everything `cmd` creates owner-only (umask 077).
fn owner_only(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: umask is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        })
    }
}

fn capture(step: &str, cmd: &mut Command) -> Result<String> {
    let out = owner_only(cmd)
        .output()
        .map_err(|e| setup_error(step, e.to_string(), ""))?;
    if !out.status.success() {
        return Err(setup_error(
            step,
            out.status.to_string(),
            &String::from_utf8_lossy(&out.stderr),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a set-up command, streaming its output to `report` and keeping a tail for errors.
fn run(step: &str, cmd: &mut Command, report: &dyn Fn(SetupEvent)) -> Result<()> {
    let mut child = owner_only(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("PIP_PROGRESS_BAR", "off")
        .spawn()
        .map_err(|e| setup_error(step, format!("cannot start: {e}"), ""))?;
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(OUTPUT_TAIL_LINES)));
    let push = |tail: &Mutex<VecDeque<String>>, line: String| {
        let mut t = tail.lock();
        if t.len() == OUTPUT_TAIL_LINES {
            t.pop_front();
        }
        t.push_back(line);
    };
    let stderr = child.stderr.take().map(|err| {
        let tail = Arc::clone(&tail);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(std::io::Result::ok) {
                push(&tail, line);
            }
        })
    });
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(std::io::Result::ok) {
            report(SetupEvent::Output(line.clone()));
            push(&tail, line);
        }
    }
    if let Some(handle) = stderr {
        let _ = handle.join();
    }
    let status = child
        .wait()
        .map_err(|e| setup_error(step, e.to_string(), ""))?;
    if status.success() {
        return Ok(());
    }
    let tail = tail.lock().iter().cloned().collect::<Vec<_>>().join("\n");
    Err(setup_error(
        step,
        format!("the command failed ({status})"),
        &tail,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A venv directory that passes `is_complete` (files only, nothing runs).
    fn fake_venv(venvs: &Path, name: &str) -> PathBuf {
        let dir = venvs.join(name);
        let purelib = dir.join("lib");
        for file in [
            "agy_worker/__main__.py",
            "google/antigravity/__init__.py",
            "google/antigravity/bin/localharness",
        ] {
            std::fs::create_dir_all(purelib.join(file).parent().unwrap()).unwrap();
            std::fs::write(purelib.join(file), b"").unwrap();
        }
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin").join("python"), b"").unwrap();
        let stamp = Stamp {
            key: "k".repeat(64),
            purelib,
        };
        std::fs::write(dir.join(STAMP), serde_json::to_vec(&stamp).unwrap()).unwrap();
        dir
    }

    #[test]
    fn the_venv_used_last_is_remembered_per_base_interpreter_and_only_while_complete() {
        let cache = tempfile::tempdir().unwrap();
        let config = PythonConfig::default()
            .cache_dir(cache.path())
            .base_python("/opt/python-a/bin/python3");
        let venvs = cache.path().join("venvs");
        secure_dir::ensure_private_dir(cache.path()).unwrap();
        secure_dir::ensure_private_dir(&venvs).unwrap();
        assert!(remembered(&config).is_none(), "nothing remembered yet");

        let dir = fake_venv(&venvs, "0123456789abcdef");
        remember(&venvs, &config, &dir);
        let env = remembered(&config).expect("remembered");
        assert!(env.same_as(&managed_env(&dir)));
        let other = config.clone().base_python("/opt/python-b/bin/python3");
        assert!(
            remembered(&other).is_none(),
            "another interpreter has its own memo"
        );

        // An incomplete venv is no guess; neither is a memo that names something else.
        std::fs::remove_file(dir.join("bin").join("python")).unwrap();
        assert!(remembered(&config).is_none());
        std::fs::write(memo_path(&venvs, &config), b"../../etc").unwrap();
        assert!(remembered(&config).is_none());
    }
}
