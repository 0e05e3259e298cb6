//! The Slurm options of `emobridge slurm`, mixed on one command line with the arguments of the
//! command the array runs: which tokens are whose.

/// Slurm options that take a value (`--tasks 4` or `--tasks=4`).
pub const VALUED: [&str; 8] = [
    "--tasks",
    "--partition",
    "--time",
    "--mem",
    "--cpus-per-task",
    "--gres",
    "--sbatch-arg",
    "--poll-s",
];

/// Slurm switches.
pub const SWITCHES: [&str; 4] = ["--wait", "--dry-run", "--resubmit", "--merge"];

/// Splits a mixed argument list into (Slurm options, the command's own arguments). A valued
/// option always takes the next token, so `--sbatch-arg --hold` works.
pub fn split_options(args: &[String]) -> (Vec<String>, Vec<String>) {
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

/// The arguments as one shell line (quoted only where needed), for the commands printed to the user.
pub fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c));
            if plain {
                a.clone()
            } else {
                crate::script::quote(a)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn slurm_options_are_split_from_the_command_arguments() {
        let (ours, theirs) = split_options(&words(
            "--manifest m.csv --tasks 4 --cache c --sbatch-arg --hold --wait --time=1:00:00 -v",
        ));
        assert_eq!(
            ours,
            [
                "--tasks",
                "4",
                "--sbatch-arg",
                "--hold",
                "--wait",
                "--time=1:00:00"
            ]
        );
        assert_eq!(theirs, ["--manifest", "m.csv", "--cache", "c", "-v"]);
    }

    #[test]
    fn printed_commands_quote_what_the_shell_would_split() {
        assert_eq!(shell_words(&words("--manifest m.csv")), "--manifest m.csv");
        assert_eq!(
            shell_words(&["my data/m.csv".to_string(), String::new()]),
            "'my data/m.csv' ''"
        );
    }
}
