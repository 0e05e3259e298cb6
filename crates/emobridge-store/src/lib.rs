//! # emobridge-store
//!
//! Owns the on-disk cache of features and embeddings: one file per clip, written atomically,
//! resumable after a kill, shardable across machines.
