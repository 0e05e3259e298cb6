//! The `sbatch` job-array script.
//!
//! ```text
//! #!/bin/bash
//! #SBATCH --job-name=emobridge-extract
//! #SBATCH --array=0-3
//! #SBATCH --output=CACHE/<tag>/slurm/logs/emobridge-extract-%A_%a.log
//! #SBATCH --chdir=<the folder emobridge slurm ran in>
//! #SBATCH --partition=… --time=… --mem=… --cpus-per-task=… --gres=…   (one line each, when given)
//! set -euo pipefail
//! '/path/to/emobridge' 'extract' '--manifest' 'm.csv' … '--shard' "${SLURM_ARRAY_TASK_ID}/4" || { rc=$?; [ "$rc" -eq 3 ] || exit "$rc"; }
//! ```
//!
//! Exit status 3 (partial success: the shard's failed items are listed beside its output) ends
//! the task as completed; the merge reads those lists.
//!
//! `%A` is the array's job id and `%a` the task index, so each task logs to its own file (stdout
//! and stderr together). A resubmission runs the same script with `sbatch --array=<indices>`,
//! which overrides the script's `--array` line.

use crate::{ArrayJob, Result, SlurmError};

/// The script for `job` (every task; `sbatch --array=…` narrows it on resubmission).
pub fn render_script(job: &ArrayJob) -> Result<String> {
    let cfg = &job.config;
    let command = job.command();
    let logs = job.slurm_dir().join("logs");
    let logs = absolute(&job.workdir, &logs);
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!(
            "# Written by `emobridge slurm {command}`: one array task per shard (--shard I/{}).",
            cfg.tasks
        ),
        "# Resubmit unfinished shards with the same command and --resubmit.".to_string(),
        format!("#SBATCH --job-name=emobridge-{command}"),
        format!(
            "#SBATCH --array={}",
            array_spec(&(0..cfg.tasks).collect::<Vec<_>>())
        ),
    ];
    let log_pattern = logs.join(format!("emobridge-{command}-%A_%a.log"));
    lines.push(directive("--output", &log_pattern.to_string_lossy())?);
    lines.push(directive("--chdir", &job.workdir.to_string_lossy())?);
    for (name, value) in [
        ("--partition", cfg.partition.clone()),
        ("--time", cfg.time.clone()),
        ("--mem", cfg.mem.clone()),
        ("--cpus-per-task", cfg.cpus_per_task.map(|c| c.to_string())),
        ("--gres", cfg.gres.clone()),
    ] {
        if let Some(v) = value {
            lines.push(directive(name, &v)?);
        }
    }
    for arg in &cfg.sbatch_args {
        check_directive_value("--sbatch-arg", arg)?;
        lines.push(format!("#SBATCH {arg}"));
    }
    lines.push("set -euo pipefail".to_string());
    if job.workload.shardable() {
        lines.push(format!(
            "echo \"emobridge {command}: shard ${{SLURM_ARRAY_TASK_ID}}/{n}, job ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}} on $(hostname)\" >&2",
            n = cfg.tasks
        ));
    } else {
        lines.push(format!(
            "echo \"emobridge {command}: job ${{SLURM_JOB_ID}} on $(hostname)\" >&2"
        ));
    }
    let mut exec = vec![quote(&job.program.to_string_lossy())];
    exec.extend(job.args.iter().map(|a| quote(a)));
    if job.workload.shardable() {
        exec.push(quote("--shard"));
        exec.push(format!("\"${{SLURM_ARRAY_TASK_ID}}/{}\"", cfg.tasks));
    }
    // Exit status 3 is a partial success (failed items listed beside the shard's output, which
    // the merge reads): the task completed. Any other non-zero status fails the task.
    lines.push(format!(
        "{} || {{ rc=$?; [ \"$rc\" -eq 3 ] || exit \"$rc\"; }}",
        exec.join(" ")
    ));
    lines.push(String::new());
    Ok(lines.join("\n"))
}

/// `0-3` for a contiguous run from the first index, else a comma list of runs (`1,3-4`).
pub fn array_spec(tasks: &[usize]) -> String {
    let mut sorted = tasks.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

fn directive(name: &str, value: &str) -> Result<String> {
    check_directive_value(name, value)?;
    Ok(format!("#SBATCH {name}={value}"))
}

/// `#SBATCH` lines are read by sbatch, not the shell: a value must fit on one line without
/// whitespace (sbatch would split it) and be non-empty.
pub(crate) fn check_directive_value(name: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(SlurmError::Invalid(format!("{name}: empty value")));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SlurmError::Invalid(format!(
            "{name} `{value}`: an #SBATCH value cannot contain whitespace (sbatch splits it)"
        )));
    }
    Ok(())
}

/// POSIX single-quoting: safe for any argument.
pub fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', "'\\''"))
}

fn absolute(base: &std::path::Path, path: &std::path::Path) -> std::path::PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SlurmConfig, Workload};
    use std::path::PathBuf;

    fn job(tasks: usize) -> ArrayJob {
        ArrayJob {
            program: PathBuf::from("/opt/emo bridge/emobridge"),
            args: vec![
                "extract".into(),
                "--manifest".into(),
                "it's.csv".into(),
                "--cache".into(),
                "cache".into(),
            ],
            workdir: PathBuf::from("/home/me/run"),
            workload: Workload::Extract {
                manifest: PathBuf::from("it's.csv"),
                cache_root: PathBuf::from("cache"),
                tag: "mert".into(),
            },
            config: SlurmConfig {
                tasks,
                partition: Some("gpu".into()),
                gres: Some("gpu:1".into()),
                cpus_per_task: Some(4),
                sbatch_args: vec!["--account=lab".into()],
                ..Default::default()
            },
        }
    }

    #[test]
    fn script_runs_each_shard_with_its_own_log() {
        let s = render_script(&job(4)).unwrap();
        assert!(s.starts_with("#!/bin/bash\n"));
        assert!(s.contains("#SBATCH --array=0-3\n"), "{s}");
        assert!(s.contains(
            "#SBATCH --output=/home/me/run/cache/mert/slurm/logs/emobridge-extract-%A_%a.log\n"
        ));
        assert!(s.contains("#SBATCH --chdir=/home/me/run\n"));
        assert!(s.contains(
            "#SBATCH --partition=gpu\n#SBATCH --cpus-per-task=4\n#SBATCH --gres=gpu:1\n"
        ));
        assert!(s.contains("#SBATCH --account=lab\n"));
        assert!(s.contains(
            "'/opt/emo bridge/emobridge' 'extract' '--manifest' 'it'\\''s.csv' '--cache' 'cache' '--shard' \"${SLURM_ARRAY_TASK_ID}/4\" || { rc=$?; [ \"$rc\" -eq 3 ] || exit \"$rc\"; }\n"
        ), "{s}");
        // Every directive comes before the first command (sbatch stops reading them there).
        let first_command = s.find("set -euo").unwrap();
        assert!(s.rfind("#SBATCH").unwrap() < first_command);
    }

    #[test]
    fn array_specs() {
        assert_eq!(array_spec(&[0, 1, 2, 3]), "0-3");
        assert_eq!(array_spec(&[2]), "2");
        assert_eq!(array_spec(&[4, 1, 3, 7, 8, 9]), "1,3-4,7-9");
    }

    #[test]
    fn bad_values_are_refused() {
        let mut j = job(2);
        j.config.partition = Some("a b".into());
        assert!(j.validate().unwrap_err().to_string().contains("whitespace"));
        let mut j = job(2);
        j.config.sbatch_args = vec!["--array=0-9".into()];
        assert!(j.validate().is_err());
        let mut j = job(2);
        j.config.sbatch_args = vec!["account".into()];
        assert!(j.validate().is_err());
        let mut j = job(0);
        assert!(j.validate().is_err());
        j = job(2);
        j.args.push("--shard=0/2".into());
        assert!(j.validate().unwrap_err().to_string().contains("--shard"));
    }
}
