//! The managed venv: concurrent creation by two processes, repair of a corrupted venv, and a
//! clear error when no Python is available. These run real `python -m venv` + pip installs.

use std::{
    os::unix::fs::PermissionsExt,
    process::{Command, Output},
};

use agy_bridge::{Bridge, BridgeConfig, Error, PythonConfig, setup as venv};

fn setup(cache: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_agy-bridge"))
        .arg("setup")
        .env("AGY_BRIDGE_CACHE_DIR", cache)
        .env_remove(venv::ENV_PYTHON)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("agy-bridge setup starts")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creation_succeeds_once_and_a_corrupted_venv_is_rebuilt() {
    let cache = tempfile::tempdir().unwrap();
    // Nothing there yet: doctor says to run setup.
    let (ok, stdout) = doctor(cache.path());
    assert!(!ok, "{stdout}");
    assert!(stdout.contains("is not set up"), "{stdout}");
    assert!(stdout.contains("fix: run `agy-bridge setup`"), "{stdout}");
    let (a, b) = (setup(cache.path()), setup(cache.path()));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let ((out_a, err_a), (out_b, err_b)) = (text(&a), text(&b));
    assert!(a.status.success(), "first setup failed:\n{err_a}");
    assert!(b.status.success(), "second setup failed:\n{err_b}");
    assert_eq!(out_a, out_b, "both must report the same venv");
    let builders = [&err_a, &err_b]
        .iter()
        .filter(|e| e.contains("creating a venv"))
        .count();
    assert_eq!(
        builders, 1,
        "exactly one process builds:\n{err_a}\n---\n{err_b}"
    );
    let venvs: Vec<_> = std::fs::read_dir(cache.path().join("venvs"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(venvs.len(), 1);
    let (ok, stdout) = doctor(cache.path());
    assert!(ok, "the fix did not fix it:\n{stdout}");

    // Corrupt it: the SDK package disappears (a half-finished upgrade, a cleaner, …).
    let venv_dir = venvs[0].path();
    let sdk = walk_find(&venv_dir, "antigravity").expect("SDK installed");
    std::fs::remove_dir_all(&sdk).unwrap();
    let again = setup(cache.path()).wait_with_output().unwrap();
    let (_, err) = text(&again);
    assert!(again.status.success(), "{err}");
    assert!(err.contains("removing an incomplete environment"), "{err}");
    assert!(sdk.join("__init__.py").exists(), "SDK reinstalled");

    // Broken in ways the completion stamp cannot see: `doctor` finds each, its fix line says
    // `agy-bridge setup`, and running that repairs it.
    let site = sdk.parent().unwrap().parent().unwrap().to_path_buf();
    type Corruption<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let corruptions: [Corruption; 3] = [
        (
            "a file of the SDK deleted",
            Box::new(|| std::fs::remove_file(sdk.join("types.py")).unwrap()),
        ),
        (
            "bin/python replaced by an empty file",
            Box::new(|| {
                // Replace the link itself: writing through it would truncate the base Python.
                let python = venv_dir.join("bin/python");
                std::fs::remove_file(&python).unwrap();
                std::fs::write(&python, "").unwrap();
                std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
            }),
        ),
        (
            "the harness truncated",
            Box::new(|| {
                let harness = sdk.join("bin/localharness");
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&harness)
                    .unwrap();
                file.set_len(1_000_000).unwrap();
            }),
        ),
    ];
    for (what, corrupt) in corruptions {
        corrupt();
        let (ok, stdout) = doctor(cache.path());
        assert!(!ok, "doctor passed with {what}:\n{stdout}");
        assert!(stdout.contains("✗ venv files"), "{what}:\n{stdout}");
        assert!(
            stdout.contains("fix: run `agy-bridge setup`"),
            "{what}:\n{stdout}"
        );
        let repaired = setup(cache.path()).wait_with_output().unwrap();
        let (_, err) = text(&repaired);
        assert!(repaired.status.success(), "{what}: {err}");
        assert!(err.contains("rebuilding it"), "{what}: {err}");
        let (ok, stdout) = doctor(cache.path());
        assert!(ok, "doctor still fails after repairing {what}:\n{stdout}");
    }
    assert!(site.join("google/antigravity/types.py").exists());

    // And the repaired venv runs a worker.
    let data = tempfile::tempdir().unwrap();
    let config = BridgeConfig::default()
        .data_dir(data.path())
        .cache_dir(cache.path());
    let bridge = Bridge::start(config).await.unwrap();
    assert_eq!(bridge.worker_info().sdk_version, agy_bridge::SDK_VERSION);
    bridge.shutdown().await;
}

/// Runs `agy-bridge doctor` on the venv cache `cache`; whether it passed, and its report.
fn doctor(cache: &std::path::Path) -> (bool, String) {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agy-bridge"))
        .arg("doctor")
        .env("AGY_BRIDGE_CACHE_DIR", cache)
        .env("XDG_DATA_HOME", data.path())
        .env_remove(venv::ENV_PYTHON)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn walk_find(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            if path.file_name().is_some_and(|n| n == name) && path.parent()?.ends_with("google") {
                return Some(path);
            }
            if let Some(found) = walk_find(&path, name) {
                return Some(found);
            }
        }
    }
    None
}

#[tokio::test]
async fn a_missing_python_is_a_clear_setup_error() {
    let cache = tempfile::tempdir().unwrap();
    let config = PythonConfig::default()
        .cache_dir(cache.path())
        .base_python("/nonexistent/python3");
    // An explicit AGY_BRIDGE_PYTHON in the environment would bypass venv management.
    if std::env::var_os(venv::ENV_PYTHON).is_some() {
        return;
    }
    let err = venv::ensure(config, None).await.unwrap_err();
    match err {
        Error::VenvSetup { step, message, .. } => {
            assert_eq!(step, "looking for Python");
            assert!(message.contains("/nonexistent/python3"), "{message}");
        }
        other => panic!("expected VenvSetup, got {other}"),
    }
}
