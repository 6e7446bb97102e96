//! The Python worker: its managed environment, its embedded sources and its process.

pub(crate) mod child_env;
pub(crate) mod embedded;
pub(crate) mod live_set;
pub(crate) mod memory;
pub(crate) mod pool;
pub(crate) mod process;
pub(crate) mod router;
pub(crate) mod supervisor;
pub(crate) mod venv;
mod venv_check;

pub(crate) use crate::protocol::wire::HarnessPrestart;
pub use process::StartupTimings;
pub(crate) use process::{WorkerOptions, WorkerProcess};
pub(crate) use venv::{PythonConfig, SetupEvent, SetupProgress};
