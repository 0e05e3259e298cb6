//! Speaker/actor-independent folds.
