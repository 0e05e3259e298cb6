//! `emobridge fad` (being built; see the issue that owns it).

#[derive(clap::Args)]
pub struct FadArgs {}

pub fn run(_args: FadArgs) -> anyhow::Result<()> {
    anyhow::bail!("`fad` is not available in this build yet")
}
