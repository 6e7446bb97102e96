//! A thorough check of a managed venv: the interpreter runs, the SDK and the worker import, the
//! harness executes, every installed file matches its wheel's `RECORD` hash, and the worker
//! package matches the sources this crate embeds. `agy-bridge setup` and `doctor` run it;
//! starting a bridge does not (it only checks the completion stamp and key files, so a start
//! spawns nothing).

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine;
use sha2::{Digest, Sha256};

use super::embedded;

/// How long the interpreter and the harness may take to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// What is wrong with the venv at `dir` whose packages live in `purelib`; empty when nothing
/// is.
#[must_use]
pub(super) fn problems(dir: &Path, purelib: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let python = dir.join("bin").join("python");
    if let Err(e) = probe(
        Command::new(&python).args(["-c", "import agy_worker, google.antigravity"]),
        |status, _| status.success(),
    ) {
        problems.push(format!(
            "the interpreter {} cannot import the SDK and the worker: {e}",
            python.display()
        ));
    }
    let harness = purelib.join("google/antigravity/bin/localharness");
    // A Go binary: `--help` prints its usage and exits 2. A truncated or corrupted one fails
    // to exec or crashes before printing it.
    if let Err(e) = probe(Command::new(&harness).arg("--help"), |_, stderr| {
        stderr.contains("Usage of")
    }) {
        problems.push(format!(
            "the harness {} does not run: {e}",
            harness.display()
        ));
    }
    problems.extend(record_mismatches(purelib));
    problems.extend(worker_mismatches(purelib));
    problems
}

/// Runs `cmd` with no input and waits (bounded) for it to exit as `healthy` says a working
/// program does (given its exit status and stderr).
fn probe(
    cmd: &mut Command,
    healthy: impl Fn(std::process::ExitStatus, &str) -> bool,
) -> Result<(), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = err.read_to_string(&mut stderr);
            }
            if healthy(status, &stderr) {
                return Ok(());
            }
            let last = stderr.lines().last().unwrap_or_default().trim().to_owned();
            return Err(format!(
                "{status}{}",
                if last.is_empty() {
                    String::new()
                } else {
                    format!(": {last}")
                }
            ));
        }
        if started.elapsed() > PROBE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no exit within {PROBE_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file listed with a hash in a `RECORD` under `purelib` that is missing, of another
/// size, or of another SHA-256.
fn record_mismatches(purelib: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let Ok(entries) = std::fs::read_dir(purelib) else {
        return vec![format!("{} cannot be read", purelib.display())];
    };
    let mut records: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path().join("RECORD"))
        .filter(|p| {
            p.parent()
                .is_some_and(|d| d.extension().is_some_and(|x| x == "dist-info"))
        })
        .filter(|p| p.is_file())
        .collect();
    records.sort();
    if records.is_empty() {
        problems.push(format!("no installed packages in {}", purelib.display()));
    }
    for record in records {
        let Ok(text) = std::fs::read_to_string(&record) else {
            problems.push(format!("{} cannot be read", record.display()));
            continue;
        };
        for line in text.lines() {
            if let Some(problem) = check_record_line(purelib, line) {
                problems.push(problem);
            }
        }
    }
    problems
}

/// One `path,sha256=<urlsafe base64>,size` line; `None` when it holds.
fn check_record_line(purelib: &Path, line: &str) -> Option<String> {
    let mut fields = line.rsplitn(3, ',');
    let (size, hash, path) = (fields.next()?, fields.next()?, fields.next()?);
    let expected = hash.strip_prefix("sha256=")?;
    let file = purelib.join(path);
    let Ok(meta) = std::fs::metadata(&file) else {
        return Some(format!("{path} is missing"));
    };
    if size.parse::<u64>().is_ok_and(|s| s != meta.len()) {
        return Some(format!("{path} has {} bytes, not {size}", meta.len()));
    }
    match sha256_file(&file) {
        Ok(actual) if actual == expected => None,
        Ok(_) => Some(format!("{path} does not match its installed hash")),
        Err(e) => Some(format!("{path} cannot be read: {e}")),
    }
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hasher.finalize()))
}

/// Files of the installed worker package that differ from the embedded sources.
fn worker_mismatches(purelib: &Path) -> Vec<String> {
    embedded::WORKER_FILES
        .iter()
        .filter_map(|(name, text)| {
            let path = purelib.join("agy_worker").join(name);
            match std::fs::read_to_string(&path) {
                Ok(installed) if installed == *text => None,
                Ok(_) => Some(format!("agy_worker/{name} differs from this crate's")),
                Err(_) => Some(format!("agy_worker/{name} is missing")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lines_are_checked_by_size_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "print(1)\n").unwrap();
        let hash = sha256_file(&dir.path().join("a.py")).unwrap();
        let good = format!("a.py,sha256={hash},9");
        assert_eq!(check_record_line(dir.path(), &good), None);
        std::fs::write(dir.path().join("a.py"), "print(2)\n").unwrap();
        assert!(
            check_record_line(dir.path(), &good)
                .unwrap()
                .contains("hash")
        );
        std::fs::write(dir.path().join("a.py"), "").unwrap();
        assert!(
            check_record_line(dir.path(), &good)
                .unwrap()
                .contains("bytes")
        );
        std::fs::remove_file(dir.path().join("a.py")).unwrap();
        assert!(
            check_record_line(dir.path(), &good)
                .unwrap()
                .contains("missing")
        );
        // Lines without a hash (bytecode, RECORD itself) are not checked.
        assert_eq!(check_record_line(dir.path(), "x/__pycache__/a.pyc,,"), None);
        // Paths may contain commas.
        std::fs::write(dir.path().join("b,c.txt"), "").unwrap();
        let empty = sha256_file(&dir.path().join("b,c.txt")).unwrap();
        assert_eq!(
            check_record_line(dir.path(), &format!("b,c.txt,sha256={empty},0")),
            None
        );
    }
}
