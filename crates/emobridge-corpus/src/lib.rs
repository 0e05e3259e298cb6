//! # emobridge-corpus
//!
//! Owns what a corpus *is* to emobridge: the manifest format (CSV or JSON Lines, see
//! [`manifest`]), the canonical emotion [`taxonomy`] with its circumplex points and quadrants,
//! speaker-independent [`folds`], the corpus importers ([`import`]), time-continuous annotation
//! traces and their alignment to feature frames ([`trace`]) and the deterministic synthetic
//! shared-code corpus ([`synth`]).

pub mod folds;
pub mod import;
pub mod import_job;
pub mod manifest;
pub mod synth;
pub mod taxonomy;
pub mod trace;

pub use manifest::{Domain, Manifest, ManifestError, Record};
pub use taxonomy::{Emotion, Quadrant};
