//! `emobridge extract` (being built; see the issue that owns it).

#[derive(clap::Args)]
pub struct ExtractArgs {}

pub fn run(_args: ExtractArgs) -> anyhow::Result<()> {
    anyhow::bail!("`extract` is not available in this build yet")
}
