//! # emobridge-slurm
//!
//! Runs emobridge's shardable commands on a Slurm cluster as one job array, then checks and merges
//! what the tasks left behind.
//!
//! * [`script`]: the `sbatch` script: `--array=0-(N-1)`, one log per task
//!   (`emobridge-<command>-<job>_<task>.log`), each task running the command with
//!   `--shard $SLURM_ARRAY_TASK_ID/N`.
//! * [`commands`]: `sbatch --parsable`, `squeue` and `sacct`, found on `PATH` (no Slurm library
//!   is linked), with a one-line error naming the tool when it is absent or fails.
//! * [`workload`]: per command, which shards are complete (every manifest clip of the shard in
//!   the cache or listed as a failure with its reason; the shard's statistics or table written)
//!   and the merge that follows (failure lists, the FAD study from per-shard statistics, the
//!   feature table).
//! * [`launch`], [`wait`], [`verify`]: the steps `emobridge slurm` runs.
//!
//! Everything a run writes goes to the workload's Slurm folder (`CACHE/<tag>/slurm/` for
//! `extract`, `OUT/slurm/` for the studies, `OUT.slurm/` beside a feature table): the script, the
//! task logs, `jobs.json` (every submission) and `verify.json` (the last check).

pub mod args;
pub mod commands;
pub mod script;
pub mod workload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use commands::{find_tool, JobState, TaskState};
pub use script::render_script;
pub use workload::{ShardStatus, Verification, Workload};

/// Why a Slurm step could not go on.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("`{tool}` is not on PATH: this command talks to Slurm through its client tools (install Slurm's clients, e.g. Debian's slurm-client, or load the cluster's slurm module)")]
    ToolMissing { tool: String },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` printed `{output}`, which is not what it should print ({reason})")]
    BadOutput {
        command: String,
        output: String,
        reason: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error(transparent)]
    Fad(#[from] emobridge_studies::fad::FadStudyError),
    #[error(transparent)]
    Store(#[from] emobridge_store::StoreError),
}

pub type Result<T, E = SlurmError> = std::result::Result<T, E>;

/// The job array's resources; `Default` is one task with the cluster's defaults for everything
/// else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SlurmConfig {
    /// Array size N: shards `0/N` … `N-1/N`, one task each. Default 1.
    pub tasks: usize,
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` (e.g. `2:00:00`).
    pub time: Option<String>,
    /// `--mem` per node (e.g. `16G`).
    pub mem: Option<String>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<usize>,
    /// `--gres` (e.g. `gpu:1`).
    pub gres: Option<String>,
    /// Further `sbatch` options, each written as one `#SBATCH` line (e.g. `--account=lab`).
    pub sbatch_args: Vec<String>,
    /// Seconds between two `squeue` polls while waiting. Default 10.
    pub poll_interval_s: f64,
}

impl Default for SlurmConfig {
    fn default() -> Self {
        SlurmConfig {
            tasks: 1,
            partition: None,
            time: None,
            mem: None,
            cpus_per_task: None,
            gres: None,
            sbatch_args: Vec::new(),
            poll_interval_s: 10.0,
        }
    }
}

impl SlurmConfig {
    /// Checks the values before anything is written or submitted.
    pub fn validate(&self) -> Result<()> {
        if self.tasks == 0 {
            return Err(SlurmError::Invalid("--tasks must be at least 1".into()));
        }
        // Slurm's own default MaxArraySize is 1001; clusters raise it, nobody needs a million.
        if self.tasks > 1_000_000 {
            return Err(SlurmError::Invalid(format!(
                "--tasks {} is absurd: one task per shard, at most 1000000",
                self.tasks
            )));
        }
        if self.cpus_per_task == Some(0) {
            return Err(SlurmError::Invalid(
                "--cpus-per-task must be at least 1".into(),
            ));
        }
        if !(self.poll_interval_s.is_finite() && self.poll_interval_s > 0.0) {
            return Err(SlurmError::Invalid(format!(
                "the poll interval must be a positive number of seconds, got {}",
                self.poll_interval_s
            )));
        }
        for (name, value) in [
            ("--partition", &self.partition),
            ("--time", &self.time),
            ("--mem", &self.mem),
            ("--gres", &self.gres),
        ] {
            if let Some(v) = value {
                script::check_directive_value(name, v)?;
            }
        }
        for arg in &self.sbatch_args {
            if !arg.starts_with('-') {
                return Err(SlurmError::Invalid(format!(
                    "--sbatch-arg `{arg}`: an sbatch option starts with '-' (e.g. --account=lab)"
                )));
            }
            script::check_directive_value("--sbatch-arg", arg)?;
            if arg.starts_with("--array") || arg == "-a" || arg.starts_with("-a=") {
                return Err(SlurmError::Invalid(
                    "--sbatch-arg must not set --array: the array is one task per shard (--tasks)"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

/// One array run: what to run, over which workload, with which resources.
#[derive(Debug, Clone)]
pub struct ArrayJob {
    /// The emobridge binary the tasks run (this process's own executable, usually).
    pub program: PathBuf,
    /// The command's own arguments, starting with the command name (`extract`, …), without
    /// `--shard` (each task adds its own).
    pub args: Vec<String>,
    /// The folder the tasks run in (`--chdir`), so relative paths in `args` resolve as here.
    pub workdir: PathBuf,
    pub workload: Workload,
    pub config: SlurmConfig,
}

impl ArrayJob {
    /// The command name (`extract`, `features`, `fad`, `probe`).
    pub fn command(&self) -> &str {
        self.workload.command()
    }

    /// Where the script, logs, `jobs.json` and `verify.json` go.
    pub fn slurm_dir(&self) -> PathBuf {
        self.workload.slurm_dir()
    }

    /// The script's path.
    pub fn script_path(&self) -> PathBuf {
        self.slurm_dir()
            .join(format!("emobridge-{}.sbatch", self.command()))
    }

    /// Checks the configuration against the workload (e.g. `probe` runs as one task).
    pub fn validate(&self) -> Result<()> {
        self.config.validate()?;
        if self
            .args
            .iter()
            .any(|a| a == "--shard" || a.starts_with("--shard="))
        {
            return Err(SlurmError::Invalid(
                "do not pass --shard: every array task adds its own --shard I/N".into(),
            ));
        }
        self.workload.preflight()?;
        if !self.workload.shardable() && self.config.tasks != 1 {
            return Err(SlurmError::Invalid(format!(
                "`{}` runs as one task (--tasks 1): {}",
                self.command(),
                workload::PROBE_ONE_TASK
            )));
        }
        Ok(())
    }
}

/// One `sbatch` submission, as kept in `jobs.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub job_id: String,
    /// The array indices submitted (all of `0..tasks`, or the incomplete ones on resubmission).
    pub tasks: Vec<usize>,
    /// N of `--shard I/N`.
    pub shards: usize,
    pub script: PathBuf,
    pub submitted_unix_s: u64,
}

/// What [`launch`] did.
#[derive(Debug, Clone)]
pub struct Launch {
    pub script_path: PathBuf,
    pub script: String,
    /// The array indices (to be) submitted; empty when a resubmission found nothing to redo.
    pub tasks: Vec<usize>,
    /// `None` for a dry run or when there was nothing to submit.
    pub submission: Option<Submission>,
}

/// How to launch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchMode {
    /// Submit every task.
    Submit,
    /// Write and return the script, submit nothing.
    DryRun,
    /// Submit only the tasks whose shards are incomplete (after a pre-emption, a node failure or a
    /// cancelled element); refuses while an earlier submission still has tasks in the queue.
    Resubmit,
}

/// Writes the script into the Slurm folder and (unless a dry run) submits it with `sbatch`.
pub fn launch(job: &ArrayJob, mode: LaunchMode) -> Result<Launch> {
    job.validate()?;
    let dir = job.slurm_dir();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|source| SlurmError::Io {
        path: logs.clone(),
        source,
    })?;
    let tasks: Vec<usize> = match mode {
        LaunchMode::Submit | LaunchMode::DryRun => (0..job.config.tasks).collect(),
        LaunchMode::Resubmit => {
            for earlier in read_jobs(&dir)? {
                if earlier.shards == job.config.tasks && commands::job_active(&earlier.job_id)? {
                    return Err(SlurmError::Invalid(format!(
                        "job {} still has tasks queued or running: wait for it (or scancel it) before --resubmit",
                        earlier.job_id
                    )));
                }
            }
            job.workload.incomplete(job.config.tasks)?
        }
    };
    let script = render_script(job)?;
    let script_path = job.script_path();
    write_file(&script_path, script.as_bytes())?;
    if mode == LaunchMode::DryRun || tasks.is_empty() {
        return Ok(Launch {
            script_path,
            script,
            tasks,
            submission: None,
        });
    }
    let array = script::array_spec(&tasks);
    let job_id = commands::sbatch(&script_path, &array)?;
    let submission = Submission {
        job_id,
        tasks: tasks.clone(),
        shards: job.config.tasks,
        script: script_path.clone(),
        submitted_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let mut jobs = read_jobs(&dir)?;
    jobs.push(submission.clone());
    let text = serde_json::to_string_pretty(&jobs).expect("plain data");
    write_file(&dir.join("jobs.json"), text.as_bytes())?;
    Ok(Launch {
        script_path,
        script,
        tasks,
        submission: Some(submission),
    })
}

/// Every submission recorded in a Slurm folder's `jobs.json` (none when absent).
pub fn read_jobs(slurm_dir: &Path) -> Result<Vec<Submission>> {
    let path = slurm_dir.join("jobs.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| SlurmError::Format {
            path,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(SlurmError::Io { path, source }),
    }
}

/// Polls `squeue` until no task of `job_id` is queued or running, calling `progress` with each
/// snapshot; then reads the tasks' final states from `sacct` when the cluster keeps accounting
/// (`None` otherwise: the shard check is the ground truth either way).
pub fn wait(
    job_id: &str,
    poll: Duration,
    progress: &dyn Fn(&[TaskState]),
) -> Result<Option<Vec<TaskState>>> {
    // A busy controller times out now and then: give up only after several failures in a row.
    const TRIES: usize = 5;
    let mut failures = 0;
    loop {
        match commands::squeue(job_id) {
            Ok(queued) if queued.is_empty() => break,
            Ok(queued) => {
                failures = 0;
                progress(&queued);
            }
            Err(e @ SlurmError::ToolMissing { .. }) => return Err(e),
            Err(e) => {
                failures += 1;
                if failures >= TRIES {
                    return Err(e);
                }
                tracing::warn!("{e} (try {failures} of {TRIES}; polling again)");
            }
        }
        std::thread::sleep(poll);
    }
    commands::sacct(job_id)
}

/// Checks every shard of the job's workload and, when all are complete, merges them (see
/// [`Workload::verify`]); writes `verify.json` into the Slurm folder.
pub fn verify(job: &ArrayJob) -> Result<Verification> {
    let report = job.workload.verify(job.config.tasks)?;
    let dir = job.slurm_dir();
    std::fs::create_dir_all(&dir).map_err(|source| SlurmError::Io {
        path: dir.clone(),
        source,
    })?;
    let text = serde_json::to_string_pretty(&report).expect("plain data");
    write_file(&dir.join("verify.json"), text.as_bytes())?;
    Ok(report)
}

/// What `emobridge slurm` does after writing the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Print the script, submit nothing.
    DryRun,
    /// Submit every task; with `wait`, wait for the array, then check and merge.
    Submit { wait: bool },
    /// Submit the incomplete shards only; with `wait`, as `Submit`.
    Resubmit { wait: bool },
    /// Submit nothing: check and merge what earlier tasks wrote.
    Merge,
}

/// What [`run`] did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The script written (absent for `Merge`).
    pub launch: Option<Launch>,
    /// Final task states from `sacct`, when waited for and the cluster keeps accounting.
    pub states: Option<Vec<TaskState>>,
    /// The check (and merge), when waited for or asked for with `Merge`.
    pub verification: Option<Verification>,
}

/// The whole step: write the script, submit (or not), wait (or not), check and merge.
/// `progress` sees each `squeue` snapshot while waiting.
pub fn run(job: &ArrayJob, action: Action, progress: &dyn Fn(&[TaskState])) -> Result<Outcome> {
    job.validate()?;
    let (mode, wait) = match action {
        Action::Merge => {
            return Ok(Outcome {
                launch: None,
                states: None,
                verification: Some(verify(job)?),
            })
        }
        Action::DryRun => (LaunchMode::DryRun, false),
        Action::Submit { wait } => (LaunchMode::Submit, wait),
        Action::Resubmit { wait } => (LaunchMode::Resubmit, wait),
    };
    let launch = launch(job, mode)?;
    let job_id = launch.submission.as_ref().map(|s| s.job_id.clone());
    let mut outcome = Outcome {
        launch: Some(launch),
        states: None,
        verification: None,
    };
    if let (true, Some(id)) = (wait, job_id) {
        let poll = Duration::from_secs_f64(job.config.poll_interval_s);
        outcome.states = self::wait(&id, poll, progress)?;
        outcome.verification = Some(verify(job)?);
    }
    Ok(outcome)
}

/// The task logs of a submission, as `script` names them.
pub fn log_path(job: &ArrayJob, job_id: &str, task: usize) -> PathBuf {
    job.slurm_dir()
        .join("logs")
        .join(format!("emobridge-{}-{job_id}_{task}.log", job.command()))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    emobridge_store::write_atomic(path, bytes).map_err(SlurmError::from)
}
