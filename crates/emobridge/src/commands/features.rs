//! `emobridge features` (being built; see the issue that owns it).

#[derive(clap::Args)]
pub struct FeaturesArgs {}

pub fn run(_args: FeaturesArgs) -> anyhow::Result<()> {
    anyhow::bail!("`features` is not available in this build yet")
}
