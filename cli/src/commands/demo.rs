//! The CLI's demo tools (written in Rust with `#[llm_tool]`) and its offline demo model.

use std::{
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use agy_bridge::{
    llm_tool,
    testing::{RecordedRequest, Reply},
    tools::FnTool,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

/// Returns the current date and time in UTC (ISO 8601).
#[llm_tool]
pub(crate) fn clock() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Date from days since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (era * 400 + yoe + i64::from(m <= 2), m, d)
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
pub(crate) enum Op {
    /// Addition.
    #[serde(rename = "+")]
    Add,
    /// Subtraction.
    #[serde(rename = "-")]
    Sub,
    /// Multiplication.
    #[serde(rename = "*")]
    Mul,
    /// Division.
    #[serde(rename = "/")]
    Div,
}

/// Computes `a op b` exactly, for op in + - * /.
#[llm_tool]
pub(crate) fn calculator(a: f64, op: Op, b: f64) -> Result<f64, String> {
    match op {
        Op::Add => Ok(a + b),
        Op::Sub => Ok(a - b),
        Op::Mul => Ok(a * b),
        Op::Div if b == 0.0 => Err("division by zero".into()),
        Op::Div => Ok(a / b),
    }
}

/// Largest file `read_file` returns.
const MAX_READ: u64 = 64 * 1024;

/// Arguments of `read_file`.
#[derive(Deserialize, JsonSchema)]
struct ReadFileArgs {
    /// Path of the file, relative to the allowed directory.
    path: String,
}

/// A `read_file` tool confined to `root`: paths that resolve outside it (`..`, absolute paths,
/// symlinks) are refused, as are files that are not regular files (FIFOs, devices, `/proc`),
/// files over 64 KiB (whatever size they report), and files whose name or resolved target
/// suggests credentials. It runs on the blocking pool like every tool; its `open` never blocks.
pub(crate) fn read_file_tool(root: &Path) -> std::io::Result<FnTool> {
    let root = root.canonicalize()?;
    Ok(FnTool::typed(
        "read_file",
        format!(
            "Reads a UTF-8 text file (at most 64 KiB) from the directory {}; paths are relative to it.",
            root.display()
        ),
        move |args: ReadFileArgs, _ctx| {
            let root = root.clone();
            async move { read_confined(&root, &args.path) }
        },
    ))
}

/// Directory names whose contents are credentials.
const SECRET_DIRS: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".kube",
    ".docker",
    ".config/gcloud",
];

/// Whether a file name suggests credentials: `.env*`, `.netrc`, `.pypirc`, `.npmrc`,
/// `.pgpass`, `.git-credentials`, SSH keys (`id_*`, `authorized_keys`), `*.pem`, `*.key`,
/// `*.p12`, `*.pfx`, Java key stores, or a name with "secret" or "credential" in it.
pub(crate) fn looks_secret(path: &str) -> bool {
    let name = Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(path)
        .to_ascii_lowercase();
    const NAMES: &[&str] = &[
        ".netrc",
        "_netrc",
        ".pypirc",
        ".npmrc",
        ".pgpass",
        ".git-credentials",
        "authorized_keys",
        "known_hosts",
    ];
    name.starts_with(".env")
        || name.starts_with("id_")
        || NAMES.contains(&name.as_str())
        || [".pem", ".key", ".p12", ".pfx", ".keystore", ".jks"]
            .iter()
            .any(|ext| name.ends_with(ext))
        || ["secret", "credential"]
            .iter()
            .any(|word| name.contains(word))
}

/// Whether `relative` (inside the allowed directory) goes through a directory of credentials.
fn in_secret_dir(relative: &Path) -> bool {
    let text = relative.to_string_lossy();
    SECRET_DIRS
        .iter()
        .any(|dir| text.starts_with(&format!("{dir}/")) || text.contains(&format!("/{dir}/")))
}

fn read_confined(root: &Path, path: &str) -> Result<String, String> {
    use std::{io::Read, os::unix::fs::OpenOptionsExt};
    if looks_secret(path) {
        return Err(format!("{path} may hold secrets; it is off limits"));
    }
    let full = root
        .join(path)
        .canonicalize()
        .map_err(|e| format!("cannot open {path}: {e}"))?;
    let Ok(relative) = full.strip_prefix(root) else {
        return Err(format!("{path} is outside the allowed directory"));
    };
    // The check applies to what the path resolves to: innocent.txt -> .env is still .env.
    if looks_secret(&full.to_string_lossy()) || in_secret_dir(relative) {
        return Err(format!(
            "{path} resolves to {}, which may hold secrets; it is off limits",
            relative.display()
        ));
    }
    // Non-blocking: opening a FIFO for reading would otherwise wait for a writer forever.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&full)
        .map_err(|e| format!("cannot open {path}: {e}"))?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.file_type().is_file() {
        return Err(format!(
            "{path} is not a regular file (a directory, FIFO, socket or device)"
        ));
    }
    if is_pseudo_filesystem(&file) {
        return Err(format!(
            "{path} is on a kernel pseudo-filesystem (/proc, /sys)"
        ));
    }
    // Never more than the limit, whatever size the file reports (/proc files report 0).
    let mut bytes = Vec::new();
    file.take(MAX_READ + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if bytes.len() as u64 > MAX_READ {
        return Err(format!(
            "{path} is larger than the limit of {MAX_READ} bytes"
        ));
    }
    String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8 text"))
}

/// Whether `file` lives on procfs or sysfs, whose "files" are views of the kernel.
fn is_pseudo_filesystem(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    const SYSFS_MAGIC: i64 = 0x6265_6572;
    // SAFETY: fstatfs writes into the zeroed struct we own; the fd is open for the call.
    let mut stats: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &raw mut stats) } != 0 {
        return true; // cannot tell: refuse
    }
    #[allow(clippy::useless_conversion)] // f_type's width differs between platforms
    let kind = i64::from(stats.f_type);
    kind == PROC_SUPER_MAGIC || kind == SYSFS_MAGIC
}

/// The offline demo model: calls the calculator for `a op b` in the prompt and the clock
/// otherwise, then reports the Rust tool's answer, streamed word by word.
pub(crate) fn reply(request: &RecordedRequest) -> Reply {
    let pace = Duration::from_millis(15);
    if let Some(result) = request.tool_result() {
        const FAILED: &str = "Encountered error in step execution: ";
        if !result.contains("```json")
            && let Some((_, error)) = result.split_once(FAILED)
        {
            let text = format!(
                "The tool call did not run: {}.",
                error.trim().trim_end_matches('.')
            );
            return Reply::slow_text(words(&text), pace);
        }
        let answer = result.rsplit("```json").next().unwrap_or(&result);
        let answer = answer.trim().trim_end_matches("```").trim();
        let text = format!(
            "The Rust tool answered {answer}. This reply was streamed through the real \
             Antigravity SDK and its localharness, from a scripted model inside agy-bridge; set \
             GEMINI_API_KEY, or pass --base-url and --model, to talk to a real model."
        );
        return Reply::slow_text(words(&text), pace);
    }
    let prompt = request.last_user_prompt().unwrap_or_default();
    let tools = request.tools();
    let has_tools = !tools.is_empty();
    let offers = |name: &str| {
        tools
            .iter()
            .any(|t| t["function"]["name"] == name || t["name"] == name)
    };
    if offers("read_file")
        && let Some(path) = prompt
            .split_whitespace()
            .skip_while(|w| !w.eq_ignore_ascii_case("read"))
            .nth(1)
    {
        let path = path.trim_end_matches(['?', '.', '!', ',']);
        return Reply::tool_call("read_file", json!({ "path": path }));
    }
    if has_tools {
        if let Some((a, op, b)) = find_arithmetic(&prompt) {
            return Reply::tool_call("calculator", json!({"a": a, "op": op, "b": b}));
        }
        return Reply::tool_call("clock", json!({}));
    }
    let text = format!(
        "Hello from the offline demo model! You asked: \"{}\". (No tools were offered.)",
        prompt.trim()
    );
    Reply::slow_text(words(&text), pace)
}

fn words(text: &str) -> Vec<String> {
    text.split_inclusive(' ').map(str::to_owned).collect()
}

/// Finds `<number> <op> <number>` in free text.
fn find_arithmetic(text: &str) -> Option<(f64, String, f64)> {
    let tokens: Vec<String> = text
        .replace(['×', 'x'], " * ")
        .replace('+', " + ")
        .replace('/', " / ")
        .replace('*', " * ")
        .split_whitespace()
        .map(|t| {
            t.trim_matches(|c: char| !c.is_ascii_digit() && !"+-*/.".contains(c))
                .to_owned()
        })
        .collect();
    tokens.windows(3).find_map(|w| {
        let a = w[0].parse().ok()?;
        let b = w[2].parse().ok()?;
        ["+", "-", "*", "/"]
            .contains(&w[1].as_str())
            .then(|| (a, w[1].clone(), b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_arithmetic_in_prose() {
        assert_eq!(
            find_arithmetic("what is 12 * 7?"),
            Some((12.0, "*".into(), 7.0))
        );
        assert_eq!(find_arithmetic("2+2"), Some((2.0, "+".into(), 2.0)));
        assert_eq!(find_arithmetic("what time is it"), None);
    }

    #[test]
    fn read_file_stays_inside_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("allowed");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("notes.txt"), "hello").unwrap();
        std::fs::write(dir.path().join("private.txt"), "no").unwrap();
        let root = root.canonicalize().unwrap();
        assert_eq!(read_confined(&root, "notes.txt").unwrap(), "hello");
        let escape = read_confined(&root, "../private.txt").unwrap_err();
        assert!(escape.contains("outside"), "{escape}");
        let absolute = dir.path().join("private.txt");
        assert!(read_confined(&root, absolute.to_str().unwrap()).is_err());
        assert!(read_confined(&root, "missing.txt").is_err());
    }

    #[test]
    fn read_file_refuses_secrets_by_name_and_by_resolved_target() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join(".env"), "API_KEY=hunter2").unwrap();
        std::os::unix::fs::symlink(".env", root.join("innocent.txt")).unwrap();
        let err = read_confined(&root, "innocent.txt").unwrap_err();
        assert!(err.contains("may hold secrets"), "{err}");
        for name in [
            ".netrc",
            ".pypirc",
            ".npmrc",
            ".pgpass",
            "id_ed25519",
            "server.pem",
            "tls.key",
            ".env.production",
            "aws_credentials.json",
        ] {
            std::fs::write(root.join(name), "x").unwrap();
            assert!(looks_secret(name), "{name}");
            let link = format!("link-to-{name}.txt");
            std::os::unix::fs::symlink(name, root.join(&link)).unwrap();
            assert!(read_confined(&root, &link).is_err(), "{link}");
        }
        std::fs::create_dir(root.join(".ssh")).unwrap();
        std::fs::write(root.join(".ssh/config"), "Host x").unwrap();
        assert!(read_confined(&root, ".ssh/config").is_err());
        assert!(!looks_secret("notes.txt"));
    }

    #[test]
    fn read_file_refuses_fifos_pseudo_files_and_big_files_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let fifo = root.join("pipe.txt");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        // Returns at once (nobody ever writes to the FIFO).
        let err = read_confined(&root, "pipe.txt").unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        std::fs::write(root.join("big.txt"), "x".repeat(MAX_READ as usize + 1)).unwrap();
        let err = read_confined(&root, "big.txt").unwrap_err();
        assert!(err.contains("larger than"), "{err}");
        std::fs::write(root.join("exact.txt"), "y".repeat(MAX_READ as usize)).unwrap();
        assert_eq!(
            read_confined(&root, "exact.txt").unwrap().len(),
            MAX_READ as usize
        );
        // /proc files are regular files that report size 0.
        let proc_root = std::path::Path::new("/proc/self").canonicalize().unwrap();
        let err = read_confined(&proc_root, "status").unwrap_err();
        assert!(err.contains("pseudo-filesystem"), "{err}");
    }

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
    }
}
