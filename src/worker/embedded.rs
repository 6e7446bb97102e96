//! The worker's Python sources, embedded at build time so a registry user needs no checkout.

use sha2::{Digest, Sha256};

/// `(path relative to the package directory, contents)` of every file of `agy_worker`.
pub(crate) const WORKER_FILES: &[(&str, &str)] = &[
    (
        "__init__.py",
        include_str!("../../python_worker/agy_worker/__init__.py"),
    ),
    (
        "__main__.py",
        include_str!("../../python_worker/agy_worker/__main__.py"),
    ),
    (
        "rpc.py",
        include_str!("../../python_worker/agy_worker/rpc.py"),
    ),
    (
        "host.py",
        include_str!("../../python_worker/agy_worker/host.py"),
    ),
    (
        "harness_pool.py",
        include_str!("../../python_worker/agy_worker/harness_pool.py"),
    ),
    (
        "offloop.py",
        include_str!("../../python_worker/agy_worker/offloop.py"),
    ),
    (
        "shared_harness.py",
        include_str!("../../python_worker/agy_worker/shared_harness.py"),
    ),
    (
        "proxies.py",
        include_str!("../../python_worker/agy_worker/proxies.py"),
    ),
    (
        "protocol.py",
        include_str!("../../python_worker/agy_worker/protocol.py"),
    ),
    (
        "worker.py",
        include_str!("../../python_worker/agy_worker/worker.py"),
    ),
    (
        "telemetry.py",
        include_str!("../../python_worker/agy_worker/telemetry.py"),
    ),
    (
        "workflows.py",
        include_str!("../../python_worker/agy_worker/workflows.py"),
    ),
];

/// The worker's `pyproject.toml`; its `dependencies` are what the managed venv installs.
pub(crate) const PYPROJECT: &str = include_str!("../../python_worker/pyproject.toml");

/// The pinned requirements listed under `dependencies = [...]` in the embedded `pyproject.toml`,
/// and with `otel` those of its `otel` extra too (tracing).
#[must_use]
pub(crate) fn requirements(otel: bool) -> Vec<String> {
    let mut all = list("\ndependencies = [");
    if otel {
        all.extend(list("\notel = ["));
    }
    all
}

/// The quoted lines of the list that starts with `head`.
fn list(head: &str) -> Vec<String> {
    let Some(start) = PYPROJECT.find(head) else {
        return Vec::new();
    };
    let body = &PYPROJECT[start..];
    let end = body.find(']').unwrap_or(body.len());
    body[..end]
        .lines()
        .skip(1)
        .filter_map(|line| {
            let line = line.trim().trim_end_matches(',');
            line.strip_prefix('"')
                .and_then(|l| l.strip_suffix('"'))
                .map(str::to_owned)
        })
        .collect()
}

/// A digest of the embedded sources and requirements.
#[must_use]
pub(crate) fn digest() -> String {
    let mut h = Sha256::new();
    for (name, text) in WORKER_FILES {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(text.as_bytes());
        h.update([0]);
    }
    h.update(PYPROJECT.as_bytes());
    hex(&h.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Writes the `agy_worker` package into `dir/agy_worker/`.
///
/// # Errors
/// On any file-system failure.
pub(crate) fn write_package(dir: &std::path::Path) -> std::io::Result<()> {
    let pkg = dir.join("agy_worker");
    std::fs::create_dir_all(&pkg)?;
    for (name, text) in WORKER_FILES {
        std::fs::write(pkg.join(name), text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_pin_the_sdk_this_crate_expects() {
        let reqs = requirements(false);
        let want = format!("google-antigravity=={}", crate::protocol::SDK_VERSION);
        assert!(reqs.contains(&want), "{reqs:?} lacks {want}");
        assert!(
            !reqs.iter().any(|r| r.starts_with("opentelemetry")),
            "{reqs:?}"
        );
        let traced = requirements(true);
        assert!(traced.starts_with(&reqs), "{traced:?}");
        assert!(
            traced
                .iter()
                .any(|r| r.starts_with("opentelemetry-exporter-otlp-proto-http==")),
            "{traced:?}"
        );
    }

    #[test]
    fn embedded_versions_match_the_protocol_constants() {
        let init = WORKER_FILES[0].1;
        assert!(init.contains(&format!(
            "__version__ = \"{}\"",
            crate::protocol::WORKER_VERSION
        )));
        assert!(init.contains(&format!(
            "PROTOCOL_VERSION = {}",
            crate::protocol::PROTOCOL_VERSION
        )));
        let dir = std::fs::read_dir(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/python_worker/agy_worker"
        ))
        .expect("worker sources");
        let on_disk = dir
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "py"))
            .count();
        assert_eq!(
            on_disk,
            WORKER_FILES.len(),
            "every worker module must be embedded"
        );
    }
}
