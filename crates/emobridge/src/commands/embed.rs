//! `emobridge embed` (being built; see the issue that owns it).

#[derive(clap::Args)]
pub struct EmbedArgs {}

pub fn run(_args: EmbedArgs) -> anyhow::Result<()> {
    anyhow::bail!("`embed` is not available in this build yet")
}
