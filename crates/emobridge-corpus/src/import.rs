//! Corpus importers: turn a published corpus layout into a manifest (see the `import` command).
