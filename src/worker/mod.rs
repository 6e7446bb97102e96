//! The Python worker: its managed environment, its embedded sources and its process.

pub mod child_env;
pub mod embedded;
pub(crate) mod live_set;
pub mod memory;
pub mod pool;
pub mod process;
pub(crate) mod router;
pub mod supervisor;
pub mod venv;
mod venv_check;

pub use crate::protocol::wire::HarnessPrestart;
pub use process::{StartupTimings, WorkerOptions, WorkerProcess};
pub use venv::{PythonConfig, SetupEvent, SetupProgress};
