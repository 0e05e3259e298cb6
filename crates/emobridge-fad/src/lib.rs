//! # emobridge-fad
//!
//! Owns the Fréchet audio distance: streaming statistics, the symmetric (never negative, never
//! complex) trace route on faer, FAD-∞, bootstrap intervals and per-emotion matrices.
