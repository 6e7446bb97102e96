//! The layout of a bridge's data directory: where conversations, application data, the
//! harness's `$HOME` and snapshot scratch space live.

use std::{collections::BTreeMap, path::PathBuf};

/// Where a bridge keeps conversations: the harness's database directory, its application
/// data, and the `$HOME` its processes get.
#[derive(Debug, Clone)]
pub(crate) struct ConversationDirs {
    pub(crate) save_dir: PathBuf,
    pub(crate) app_data_dir: PathBuf,
    pub(crate) harness_home: PathBuf,
    /// Scratch space for snapshots (same filesystem, so renames into place are atomic).
    pub(crate) scratch: PathBuf,
}

impl ConversationDirs {
    pub(crate) fn under(data_dir: &std::path::Path) -> Self {
        Self {
            save_dir: data_dir.join("conversations"),
            app_data_dir: data_dir.join("app-data"),
            harness_home: data_dir.join("harness-home"),
            scratch: data_dir.join("tmp"),
        }
    }

    /// The environment every agent's harness gets (before the agent's own variables); the
    /// harnesses a worker pre-starts get the same.
    pub(crate) fn harness_env(&self) -> BTreeMap<String, String> {
        // The harness rewrites a 16 MB helper under $HOME at every start; keep it in ours.
        BTreeMap::from([("HOME".to_owned(), self.harness_home.display().to_string())])
    }

    /// Every directory, for creating them.
    pub(crate) fn all(&self) -> [&std::path::Path; 4] {
        [
            &self.save_dir,
            &self.app_data_dir,
            &self.harness_home,
            &self.scratch,
        ]
    }
}
