//! Slurm's client tools, run as processes: `sbatch --parsable`, `squeue`, `sacct`, `scancel`.
//! Each is looked up on `PATH` first so that a machine without Slurm gets one clear line.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::{Result, SlurmError};

/// Finds an executable on `PATH`.
pub fn find_tool(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| SlurmError::ToolMissing {
            tool: name.to_string(),
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs a client tool; returns (success, stdout, stderr).
fn run(tool: &str, args: &[&str]) -> Result<(bool, String, String, String)> {
    let exe = find_tool(tool)?;
    let shown = std::iter::once(tool)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new(&exe)
        .args(args)
        .output()
        .map_err(|source| SlurmError::Io { path: exe, source })?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
        shown,
    ))
}

fn failed(shown: String, stderr: String) -> SlurmError {
    SlurmError::Command {
        command: shown,
        status: "non-zero exit".into(),
        stderr: if stderr.is_empty() {
            "no message".into()
        } else {
            stderr.lines().next().unwrap_or_default().to_string()
        },
    }
}

/// `sbatch --parsable --array=SPEC SCRIPT`; returns the job id.
pub fn sbatch(script: &Path, array: &str) -> Result<String> {
    let array_arg = format!("--array={array}");
    let script_arg = script.to_string_lossy();
    let (ok, stdout, stderr, shown) = run("sbatch", &["--parsable", &array_arg, &script_arg])?;
    if !ok {
        return Err(failed(shown, stderr));
    }
    parse_job_id(&stdout).ok_or_else(|| SlurmError::BadOutput {
        command: shown,
        output: stdout.trim().to_string(),
        reason: "expected JOBID or JOBID;CLUSTER".into(),
    })
}

/// `sbatch --parsable` prints `JOBID` or `JOBID;CLUSTER`.
pub fn parse_job_id(stdout: &str) -> Option<String> {
    let line = stdout.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_digit())).then(|| id.to_string())
}

/// A Slurm job state as `squeue`/`sacct` print it (`PENDING`, `RUNNING`, `COMPLETED`,
/// `CANCELLED by 0`, …), reduced to what matters here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
    Other(String),
}

impl JobState {
    pub fn parse(text: &str) -> JobState {
        let word = text.split_whitespace().next().unwrap_or("");
        match word {
            "PENDING" | "CONFIGURING" | "REQUEUED" | "RESIZING" | "SUSPENDED" => JobState::Pending,
            "RUNNING" | "COMPLETING" | "STAGE_OUT" | "SIGNALING" => JobState::Running,
            "COMPLETED" => JobState::Completed,
            "FAILED" | "TIMEOUT" | "NODE_FAIL" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "DEADLINE"
            | "PREEMPTED" => JobState::Failed,
            "CANCELLED" => JobState::Cancelled,
            other => JobState::Other(other.to_string()),
        }
    }
}

/// One array element's (or a whole pending array's) state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskState {
    /// As Slurm prints it: `123_4`, or `123_[5-9]` for pending elements not yet split off.
    pub id: String,
    pub state: JobState,
    /// The raw state text (`CANCELLED by 0`, `TIMEOUT`, …).
    pub raw: String,
}

/// Queued or running elements of `job_id` (empty once the whole array has left the queue).
pub fn squeue(job_id: &str) -> Result<Vec<TaskState>> {
    let (ok, stdout, stderr, shown) = run("squeue", &["-h", "-j", job_id, "-o", "%i|%T"])?;
    if !ok {
        // A job that finished longer than MinJobAge ago is unknown to squeue.
        if stderr.contains("Invalid job id") {
            return Ok(Vec::new());
        }
        return Err(failed(shown, stderr));
    }
    Ok(parse_states(&stdout))
}

/// Whether any element of `job_id` is still queued or running.
pub fn job_active(job_id: &str) -> Result<bool> {
    Ok(!squeue(job_id)?.is_empty())
}

/// Final element states from accounting (`sacct -X -n -P`), or `None` when the cluster keeps no
/// accounting (sacct then says so and exits non-zero).
pub fn sacct(job_id: &str) -> Result<Option<Vec<TaskState>>> {
    let (ok, stdout, stderr, shown) = run(
        "sacct",
        &["-X", "-n", "-P", "-j", job_id, "-o", "JobID,State"],
    )?;
    if !ok {
        if stderr.contains("accounting storage is disabled") || stderr.contains("slurmdbd") {
            tracing::debug!("sacct: {stderr}");
            return Ok(None);
        }
        return Err(failed(shown, stderr));
    }
    Ok(Some(parse_states(&stdout)))
}

/// `scancel ID` (e.g. `123_2` for one element).
pub fn scancel(id: &str) -> Result<()> {
    let (ok, _, stderr, shown) = run("scancel", &[id])?;
    if ok {
        Ok(())
    } else {
        Err(failed(shown, stderr))
    }
}

fn parse_states(stdout: &str) -> Vec<TaskState> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let (id, state) = l.split_once('|')?;
            Some(TaskState {
                id: id.trim().to_string(),
                state: JobState::parse(state.trim()),
                raw: state.trim().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsable_sbatch_output() {
        assert_eq!(parse_job_id("1234\n"), Some("1234".into()));
        assert_eq!(parse_job_id("77;cluster-a\n"), Some("77".into()));
        assert_eq!(parse_job_id("Submitted batch job 5\n"), None);
        assert_eq!(parse_job_id(""), None);
    }

    #[test]
    fn queue_states() {
        let s = parse_states("12_[2-3]|PENDING\n12_0|RUNNING\n12_1|CANCELLED by 0\nnonsense\n");
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].state, JobState::Pending);
        assert_eq!(s[1].state, JobState::Running);
        assert_eq!(s[2].state, JobState::Cancelled);
        assert_eq!(s[2].raw, "CANCELLED by 0");
        assert_eq!(JobState::parse("TIMEOUT"), JobState::Failed);
    }

    #[test]
    fn a_missing_tool_names_itself() {
        let err = find_tool("emobridge-no-such-tool").unwrap_err();
        assert!(err
            .to_string()
            .contains("`emobridge-no-such-tool` is not on PATH"));
    }
}
