//! The arguments of `emobridge slurm`: its own options, and the workload of the wrapped command
//! parsed with that command's own parser.

use anyhow::bail;
use clap::{Args, FromArgMatches, Parser};
use emobridge_slurm::Workload;

/// The Slurm options, parsed out of the mixed argument list.
#[derive(Parser)]
#[command(name = "emobridge slurm", no_binary_name = true)]
pub(super) struct SlurmOptions {
    #[arg(long)]
    pub(super) tasks: usize,
    #[arg(long)]
    pub(super) partition: Option<String>,
    #[arg(long)]
    pub(super) time: Option<String>,
    #[arg(long)]
    pub(super) mem: Option<String>,
    #[arg(long)]
    pub(super) cpus_per_task: Option<usize>,
    #[arg(long)]
    pub(super) gres: Option<String>,
    #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
    pub(super) sbatch_args: Vec<String>,
    #[arg(long)]
    pub(super) wait: bool,
    #[arg(long, conflicts_with_all = ["resubmit", "merge"])]
    pub(super) dry_run: bool,
    #[arg(long, conflicts_with = "merge")]
    pub(super) resubmit: bool,
    #[arg(long)]
    pub(super) merge: bool,
    #[arg(long, default_value_t = emobridge_slurm::SlurmConfig::default().poll_interval_s)]
    pub(super) poll_s: f64,
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
    // The global -v flags are the top-level parser's; the tasks get them as they are.
    let args: Vec<&String> = args.iter().filter(|a| !is_verbose(a)).collect();
    let matches = cmd.try_get_matches_from(args).map_err(one_line)?;
    Ok(T::from_arg_matches(&matches)?)
}

pub(super) fn workload(command: &str, args: &[String]) -> anyhow::Result<Workload> {
    Ok(match command {
        "extract" => {
            let a: crate::commands::extract::ExtractArgs = parse(command, args)?;
            let tag = a
                .tag
                .clone()
                .unwrap_or_else(|| emobridge_ssl::extract::cache_tag(&a.encoder.model));
            Workload::Extract {
                manifest: a.manifest,
                cache_root: a.cache,
                tag,
            }
        }
        "features" => {
            let a: crate::commands::features::FeaturesArgs = parse(command, args)?;
            let Some(manifest) = a.manifest else {
                bail!("slurm features needs --manifest (shards split the manifest)")
            };
            Workload::Features {
                manifest,
                out: a.out,
            }
        }
        "fad" => {
            let a: crate::commands::fad::FadArgs = parse(command, args)?;
            let config = Box::new(crate::commands::fad::study_config(&a)?);
            let (Some(manifest), Some(cache_root), Some(tag), Some(out)) =
                (a.study.manifest, a.study.cache, a.study.model, a.study.out)
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
            let a: crate::commands::probe::ProbeArgs = parse(command, args)?;
            Workload::Probe { out: a.out }
        }
    })
}

fn is_verbose(a: &str) -> bool {
    a == "--verbose" || (a.len() > 1 && a.starts_with('-') && a[1..].chars().all(|c| c == 'v'))
}

/// A clap error on one line, without its usage block.
pub(super) fn one_line(e: clap::Error) -> anyhow::Error {
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    anyhow::anyhow!("{}", lines.join(" ").trim_start_matches("error: "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_flags_are_recognised() {
        assert!(is_verbose("-v") && is_verbose("-vv") && is_verbose("--verbose"));
        assert!(!is_verbose("-x") && !is_verbose("-"));
    }
}
