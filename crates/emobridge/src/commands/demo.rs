//! `emobridge demo` (being built; see the issue that owns it).

#[derive(clap::Args)]
pub struct DemoArgs {}

pub fn run(_args: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("`demo` is not available in this build yet")
}
