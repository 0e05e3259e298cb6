//! Descriptor extraction over a manifest: eGeMAPS functionals per clip (a table) and eGeMAPS
//! LLD frames per clip (the embedding cache, one "layer"), so the FAD study and the probes can
//! treat hand-crafted descriptors exactly like an SSL layer.
//!
//! Clips are processed in parallel; a clip that cannot be read or analysed becomes one
//! [`ClipFailure`] and the rest go on. Clips already in the cache are not recomputed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use emobridge_acoustic::{egemaps, AcousticError, FeatureVector};
use emobridge_audio::{load, AudioError, DecodeOptions, IntScaling};
use emobridge_corpus::{Manifest, Record};
use emobridge_store::{ClipEntry, EmbeddingCache, EntryMetadata, StoreError, StoredDtype};
use rayon::prelude::*;

/// Why descriptors of a clip (or their table) could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Acoustic(#[from] AcousticError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("clip shorter than one analysis frame: no LLD frames")]
    NoFrames,
    #[error("no clip produced functionals")]
    NoFunctionals,
    #[error("{path}: {source}")]
    Csv { path: PathBuf, source: csv::Error },
    #[error("{path}: cannot write: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Refused(String),
    #[error("all {count} input file(s) failed; nothing written")]
    AllFailed { count: usize },
}

/// The cache tag under which eGeMAPS LLD frames are stored.
pub const EGEMAPS_LLD_TAG: &str = "egemaps-lld";

/// One clip that failed, with the reason.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClipFailure {
    pub id: String,
    pub path: String,
    pub error: String,
}

/// What [`egemaps_over_manifest`] produced.
#[derive(Debug, Default)]
pub struct DescriptorRun {
    /// (clip id, functionals) in manifest order, for the clips that succeeded.
    pub functionals: Vec<(String, FeatureVector)>,
    pub failures: Vec<ClipFailure>,
    /// Total audio analysed, seconds.
    pub audio_seconds: f64,
}

/// Computes eGeMAPS functionals for every record and, when `cache` is given, stores the LLD
/// frames as `[1, frames, 25]` entries. `progress(done, total)` is called as clips finish.
pub fn egemaps_over_manifest(
    manifest: &Manifest,
    records: &[&Record],
    cache: Option<&EmbeddingCache>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> DescriptorRun {
    let done = AtomicUsize::new(0);
    let results: Vec<Result<(String, FeatureVector, f64), ClipFailure>> = records
        .par_iter()
        .map(|r| {
            let out = one_clip(manifest, r, cache).map_err(|error| ClipFailure {
                id: r.id.clone(),
                path: manifest.audio_path(r).display().to_string(),
                error: error.to_string(),
            });
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, records.len());
            out
        })
        .collect();
    let mut run = DescriptorRun::default();
    for r in results {
        match r {
            Ok((id, f, secs)) => {
                run.audio_seconds += secs;
                run.functionals.push((id, f));
            }
            Err(f) => {
                tracing::error!("{}: {}", f.path, f.error);
                run.failures.push(f);
            }
        }
    }
    run
}

fn one_clip(
    manifest: &Manifest,
    r: &Record,
    cache: Option<&EmbeddingCache>,
) -> Result<(String, FeatureVector, f64), DescriptorError> {
    let path = manifest.audio_path(r);
    // openSMILE analyses at the file's own rate with its own integer scaling.
    let audio = load(
        &path,
        &DecodeOptions {
            int_scaling: IntScaling::OpenSmile,
            ..DecodeOptions::mono()
        },
    )?;
    let seconds = audio.duration_s();
    let rate = audio.sample_rate;
    let samples = audio.into_mono();
    let Some(cache) = cache.filter(|c| !c.contains(&r.id)) else {
        let functionals = egemaps::functionals(&samples, rate)?;
        return Ok((r.id.clone(), functionals, seconds));
    };
    // One analysis pass yields both the cached frames and the functionals.
    let (lld, functionals) = egemaps::lld_and_functionals(&samples, rate)?;
    if lld.is_empty() {
        return Err(DescriptorError::NoFrames);
    }
    let dim = lld.names.len();
    let flat: Vec<f32> = lld.values.iter().flatten().copied().collect();
    let meta = EntryMetadata {
        model: "eGeMAPSv02-lld".into(),
        sample_rate: rate,
        frame_rate_hz: 100.0,
        hidden_state_convention: "n/a".into(),
        source_file: r.path.clone(),
        audio_sha256: emobridge_store::sha256_file(&path)?,
        extra: Default::default(),
    };
    let entry = ClipEntry::from_frames(flat, [1, lld.len(), dim], StoredDtype::F32, meta)?;
    cache.write(&r.id, &entry)?;
    Ok((r.id.clone(), functionals, seconds))
}

/// Writes the functionals table: first column `file` (as the manifest names it), then `id`,
/// then openSMILE's feature names in order.
pub fn write_functionals_csv(
    path: &Path,
    manifest: &Manifest,
    run: &DescriptorRun,
) -> Result<(), DescriptorError> {
    let Some((_, first)) = run.functionals.first() else {
        return Err(DescriptorError::NoFunctionals);
    };
    let by_id: std::collections::HashMap<&str, &Record> = manifest
        .records
        .iter()
        .map(|r| (r.id.as_str(), r))
        .collect();
    let mut header = vec!["file".to_string(), "id".to_string()];
    header.extend(first.names.iter().cloned());
    let csv_err = |source| DescriptorError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header).map_err(csv_err)?;
    for (id, f) in &run.functionals {
        let file = by_id
            .get(id.as_str())
            .map_or(String::new(), |r| r.path.clone());
        let mut row = vec![file, id.clone()];
        row.extend(f.values.iter().map(|v| v.to_string()));
        w.write_record(&row).map_err(csv_err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| csv_err(csv::Error::from(e.into_error())))?;
    Ok(emobridge_store::write_atomic(path, &bytes)?)
}
