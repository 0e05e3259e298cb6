//! `emobridge slurm <extract|features|fad|probe> ARGS... --tasks N [...]`: the command as a Slurm
//! job array, one task per shard (see `emobridge_slurm` and docs/cluster.md).

use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, FromArgMatches, Parser};
use emobridge_slurm::{ArrayJob, LaunchMode, SlurmConfig, Workload};

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

/// The Slurm options, parsed out of the mixed argument list.
#[derive(Parser)]
#[command(name = "emobridge slurm", no_binary_name = true)]
struct SlurmOptions {
    #[arg(long)]
    tasks: usize,
    #[arg(long)]
    partition: Option<String>,
    #[arg(long)]
    time: Option<String>,
    #[arg(long)]
    mem: Option<String>,
    #[arg(long)]
    cpus_per_task: Option<usize>,
    #[arg(long)]
    gres: Option<String>,
    #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
    sbatch_args: Vec<String>,
    #[arg(long)]
    wait: bool,
    #[arg(long, conflicts_with_all = ["resubmit", "merge"])]
    dry_run: bool,
    #[arg(long, conflicts_with = "merge")]
    resubmit: bool,
    #[arg(long)]
    merge: bool,
    #[arg(long, default_value_t = 10.0)]
    poll_s: f64,
}

const VALUED: [&str; 8] = [
    "--tasks",
    "--partition",
    "--time",
    "--mem",
    "--cpus-per-task",
    "--gres",
    "--sbatch-arg",
    "--poll-s",
];
const SWITCHES: [&str; 4] = ["--wait", "--dry-run", "--resubmit", "--merge"];

/// Splits the mixed list into (Slurm options, the command's own arguments).
fn split(args: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let name = a.split('=').next().unwrap_or(a);
        if SWITCHES.contains(&a.as_str()) || (VALUED.contains(&name) && a.contains('=')) {
            ours.push(a.clone());
        } else if VALUED.contains(&a.as_str()) {
            ours.push(a.clone());
            ours.extend(it.next().cloned());
        } else {
            theirs.push(a.clone());
        }
    }
    (ours, theirs)
}

/// Parses the command's arguments with its own parser, as `emobridge <command>` would.
fn parse<T: Args + FromArgMatches>(command: &str, args: &[String]) -> anyhow::Result<T> {
    let name = match command {
        "extract" => "emobridge extract",
        "features" => "emobridge features",
        "fad" => "emobridge fad",
        _ => "emobridge probe",
    };
    let cmd = T::augment_args(clap::Command::new(name).no_binary_name(true));
    let matches = cmd
        .try_get_matches_from(args)
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
    Ok(T::from_arg_matches(&matches)?)
}

fn workload(command: &str, args: &[String]) -> anyhow::Result<Workload> {
    Ok(match command {
        "extract" => {
            let a: super::extract::ExtractArgs = parse(command, args)?;
            let tag = a.tag.clone().unwrap_or_else(|| a.encoder.default_tag());
            Workload::Extract {
                manifest: a.manifest,
                cache_root: a.cache,
                tag,
            }
        }
        "features" => {
            let a: super::features::FeaturesArgs = parse(command, args)?;
            let Some(manifest) = a.manifest else {
                bail!("slurm features needs --manifest (shards split the manifest)")
            };
            Workload::Features {
                manifest,
                out: a.out,
            }
        }
        "fad" => {
            let a: super::fad::FadArgs = parse(command, args)?;
            let config = Box::new(super::fad::study_config(&a)?);
            let (Some(manifest), Some(cache_root), Some(tag), Some(out)) =
                (a.manifest, a.cache, a.model, a.out)
            else {
                bail!("slurm fad runs the study: give --manifest, --cache, --model and --out")
            };
            Workload::Fad {
                manifest,
                cache_root,
                tag,
                out,
                config,
            }
        }
        _ => {
            let a: super::probe::ProbeArgs = parse(command, args)?;
            Workload::Probe { out: a.out }
        }
    })
}

pub fn run(args: SlurmArgs) -> anyhow::Result<()> {
    let (ours, theirs) = split(&args.args);
    let opts = SlurmOptions::try_parse_from(&ours)
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
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
    job.validate()?;
    let again = format!("emobridge slurm {} {}", args.command, shell_words(&theirs));
    if !opts.merge {
        let mode = match (opts.dry_run, opts.resubmit) {
            (true, _) => LaunchMode::DryRun,
            (_, true) => LaunchMode::Resubmit,
            _ => LaunchMode::Submit,
        };
        let launch = emobridge_slurm::launch(&job, mode)?;
        let Some(sub) = launch.submission else {
            if mode == LaunchMode::DryRun {
                print!("{}", launch.script);
                eprintln!(
                    "script written to {} (not submitted)",
                    launch.script_path.display()
                );
            } else {
                println!("every shard is complete: nothing to resubmit");
            }
            return Ok(());
        };
        println!("{}", sub.job_id);
        eprintln!(
            "submitted job {} (tasks {:?} of {}), logs in {}",
            sub.job_id,
            sub.tasks,
            sub.shards,
            job.slurm_dir().join("logs").display()
        );
        if !opts.wait {
            eprintln!(
                "when it has finished, check and merge with: {again} --tasks {} --merge",
                opts.tasks
            );
            return Ok(());
        }
        let poll = Duration::from_secs_f64(opts.poll_s);
        let states = emobridge_slurm::wait(&sub.job_id, poll, &|q| {
            tracing::info!("{} element(s) queued or running", q.len())
        })?;
        for s in states.iter().flatten() {
            eprintln!("{} {}", s.id, s.raw);
        }
    }
    let report = emobridge_slurm::verify(&job)?;
    for s in &report.shards {
        eprintln!(
            "shard {}/{}: {} clips, {} done, {} failed{}",
            s.shard,
            opts.tasks,
            s.clips,
            s.done,
            s.failed,
            s.note.as_ref().map_or(String::new(), |n| format!(": {n}"))
        );
    }
    if !report.complete() {
        bail!("shards {:?} of {} are incomplete; submit them again with: {again} --tasks {} --resubmit", report.incomplete(), opts.tasks, opts.tasks);
    }
    println!(
        "merged: {}",
        report
            .merged
            .as_ref()
            .map_or(String::new(), |p| p.display().to_string())
    );
    Ok(())
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
            {
                a.clone()
            } else {
                emobridge_slurm::script::quote(a)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
