//! One module per subcommand: its clap arguments and its `run`.

pub mod continuous;
pub mod demo;
pub mod embed;
pub mod encoder;
pub mod extract;
pub mod fad;
pub mod fad_study;
pub mod features;
pub mod finetune;
pub mod import;
pub mod probe;
pub mod report;
pub mod slurm;
pub mod synth;
