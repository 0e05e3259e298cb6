//! Exit status of a batch command (documented in `emobridge --help` and the README):
//! 0 everything done; 3 partial success, the failed items listed in a `failures.json`;
//! 1 nothing usable, or `--strict` and an item failed; 2 a usage error (clap's).

use std::path::{Path, PathBuf};

/// Exit code of a batch that finished with some items failed.
pub const PARTIAL: i32 = 3;

/// How a command that ran to its end went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Every item done.
    Done,
    /// Some items failed; `listed_in` names the file listing them.
    Partial { failed: usize, listed_in: PathBuf },
}

impl Status {
    /// `failed` items listed in `listed_in` (Done when none failed).
    pub fn from_count(failed: usize, listed_in: &Path) -> Status {
        if failed == 0 {
            Status::Done
        } else {
            Status::Partial {
                failed,
                listed_in: listed_in.to_path_buf(),
            }
        }
    }

    /// The status of a study's run folder: its `failures.json`, if the run wrote one.
    pub fn of_run(dir: &Path) -> anyhow::Result<Status> {
        let failures = emobridge_studies::read_failures(dir)?;
        Ok(Status::from_count(
            failures.len(),
            &dir.join(emobridge_studies::FAILURES_JSON),
        ))
    }

    /// The process exit code; under `strict` any failure is an error (1).
    pub fn exit_code(&self, strict: bool) -> i32 {
        match self {
            Status::Done => 0,
            Status::Partial { failed, listed_in } => {
                eprintln!(
                    "{}: {failed} item(s) failed, listed in {}",
                    if strict { "error" } else { "warning" },
                    listed_in.display()
                );
                if strict {
                    1
                } else {
                    PARTIAL
                }
            }
        }
    }
}
