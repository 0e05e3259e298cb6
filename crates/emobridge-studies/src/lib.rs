//! # emobridge-studies
//!
//! Owns the experiments of the two papers, each a readable pipeline over the lower crates that
//! writes a run folder (`run.json`, tables, plots).
