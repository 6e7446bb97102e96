//! Shared by the benchmarks: the Python SDK baselines they run, and small helpers.
#![allow(dead_code)] // each benchmark uses its own part

use std::path::Path;

use serde_json::Value;

/// Runs `scripts/<script>` with `python` (each `{work}` in `args` becomes a fresh temporary
/// directory) and returns the JSON it prints. Panics, with the script's stderr, if it fails.
pub(crate) async fn sdk_baseline(python: &Path, script: &str, args: &[&str]) -> Value {
    let work = tempfile::tempdir().unwrap();
    let work = work.path().to_str().expect("a UTF-8 temporary directory");
    let out = tokio::process::Command::new(python)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scripts")
                .join(script),
        )
        .args(args.iter().map(|a| a.replace("{work}", work)))
        .output()
        .await
        .expect("the SDK baseline runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("baseline JSON")
}

/// The middle sample (the upper one of the two for an even count).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Now, in UTC, for the report's heading.
pub(crate) fn run_date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
