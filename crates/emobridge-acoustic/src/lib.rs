//! # emobridge-acoustic
//!
//! Owns the hand-crafted descriptors: eGeMAPS v02 (25 LLDs, 88 functionals) and ComParE-2016
//! (65 LLDs + deltas) as openSMILE defines them, and the windowed summaries of the
//! continuous-emotion paper (mean and std over 1 s windows, 0.5 s hop).
