//! `emobridge synth` (being built; see the issue that owns it).

#[derive(clap::Args)]
pub struct SynthArgs {}

pub fn run(_args: SynthArgs) -> anyhow::Result<()> {
    anyhow::bail!("`synth` is not available in this build yet")
}
