//! The managed venv: concurrent creation by two processes, repair of a corrupted venv, and a
//! clear error when no Python is available. These run real `python -m venv` + pip installs.

mod common;

use std::process::{Command, Output};

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

    // Corrupt it: the SDK package disappears (a half-finished upgrade, a cleaner, …).
    let venv_dir = venvs[0].path();
    let sdk = walk_find(&venv_dir, "antigravity").expect("SDK installed");
    std::fs::remove_dir_all(&sdk).unwrap();
    let again = setup(cache.path()).wait_with_output().unwrap();
    let (_, err) = text(&again);
    assert!(again.status.success(), "{err}");
    assert!(err.contains("removing an incomplete environment"), "{err}");
    assert!(sdk.join("__init__.py").exists(), "SDK reinstalled");

    // And the repaired venv runs a worker.
    let data = tempfile::tempdir().unwrap();
    let config = BridgeConfig::default()
        .data_dir(data.path())
        .cache_dir(cache.path());
    let bridge = Bridge::start(config).await.unwrap();
    assert_eq!(bridge.worker_info().sdk_version, agy_bridge::SDK_VERSION);
    bridge.shutdown().await;
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
