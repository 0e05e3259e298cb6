//! `emobridge import` (being built; see the issue that owns it).

#[derive(clap::Args)]
pub struct ImportArgs {}

pub fn run(_args: ImportArgs) -> anyhow::Result<()> {
    anyhow::bail!("`import` is not available in this build yet")
}
