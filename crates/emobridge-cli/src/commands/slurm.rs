//! `emobridge slurm <extract|features|fad|probe> ARGS... --tasks N [...]`: the command as a Slurm
//! job array, one task per shard (see `emobridge_slurm` and docs/cluster.md).

use anyhow::{bail, Context};
use clap::{Args, Parser};
use emobridge_slurm::args::{shell_words, split_options};
use emobridge_slurm::{Action, ArrayJob, SlurmConfig};

mod options;
use options::{one_line, workload, SlurmOptions};

#[derive(Args)]
#[command(
    after_help = "Slurm options (anywhere after the command): --tasks N  --partition P  --time T  --mem M  \
--cpus-per-task C  --gres G  --sbatch-arg ARG (repeatable, e.g. --sbatch-arg=--account=lab)  --wait  --dry-run  \
--resubmit (only the incomplete shards)  --merge (check and merge only)  --poll-s S.\n\
Example: emobridge slurm extract --manifest m.csv --model m-a-p/MERT-v1-95M --cache cache --tasks 16 --time 2:00:00 --wait"
)]
pub struct SlurmArgs {
    /// The command to run as an array: extract, features, fad (the study) or probe.
    #[arg(value_parser = ["extract", "features", "fad", "probe"])]
    pub command: String,
    /// The command's own arguments, mixed with the Slurm options listed below.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

pub fn run(args: SlurmArgs) -> anyhow::Result<()> {
    let (ours, theirs) = split_options(&args.args);
    let opts = SlurmOptions::try_parse_from(&ours).map_err(one_line)?;
    let job = ArrayJob {
        program: std::env::current_exe().context("cannot locate the emobridge binary")?,
        args: std::iter::once(args.command.clone())
            .chain(theirs.iter().cloned())
            .collect(),
        workdir: std::env::current_dir().context("cannot read the current folder")?,
        workload: workload(&args.command, &theirs)?,
        config: SlurmConfig {
            tasks: opts.tasks,
            partition: opts.partition,
            time: opts.time,
            mem: opts.mem,
            cpus_per_task: opts.cpus_per_task,
            gres: opts.gres,
            sbatch_args: opts.sbatch_args,
            poll_interval_s: opts.poll_s,
        },
    };
    let action = match (opts.dry_run, opts.resubmit, opts.merge) {
        (true, ..) => Action::DryRun,
        (_, true, _) => Action::Resubmit { wait: opts.wait },
        (.., true) => Action::Merge,
        _ => Action::Submit { wait: opts.wait },
    };
    let outcome = emobridge_slurm::run(&job, action, &|q| {
        tracing::info!("{} element(s) queued or running", q.len())
    })?;
    let again = format!(
        "emobridge slurm {} {} --tasks {}",
        args.command,
        shell_words(&theirs),
        opts.tasks
    );
    if let Some(launch) = &outcome.launch {
        match &launch.submission {
            None if action == Action::DryRun => {
                print!("{}", launch.script);
                eprintln!(
                    "script written to {} (not submitted)",
                    launch.script_path.display()
                );
            }
            None => println!("every shard is complete: nothing to resubmit"),
            Some(sub) => {
                println!("{}", sub.job_id);
                eprintln!(
                    "submitted job {} (tasks {:?} of {}), logs in {}",
                    sub.job_id,
                    sub.tasks,
                    sub.shards,
                    job.slurm_dir().join("logs").display()
                );
            }
        }
    }
    for s in outcome.states.iter().flatten() {
        eprintln!("{} {}", s.id, s.raw);
    }
    let Some(report) = outcome.verification else {
        if outcome.launch.is_some_and(|l| l.submission.is_some()) {
            eprintln!("when it has finished, check and merge with: {again} --merge");
        }
        return Ok(());
    };
    for s in &report.shards {
        let note = s.note.as_ref().map_or(String::new(), |n| format!(": {n}"));
        eprintln!(
            "shard {}/{}: {} clips, {} done, {} failed{note}",
            s.shard, opts.tasks, s.clips, s.done, s.failed
        );
    }
    if !report.complete() {
        bail!(
            "shards {:?} of {} are incomplete; submit them again with: {again} --resubmit",
            report.incomplete(),
            opts.tasks
        );
    }
    println!(
        "merged: {}",
        report
            .merged
            .map_or(String::new(), |p| p.display().to_string())
    );
    Ok(())
}
