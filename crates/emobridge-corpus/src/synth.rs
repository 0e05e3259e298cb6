//! The synthetic shared-code corpus.
