//! Descriptor extraction over a manifest: eGeMAPS functionals per clip (a table) and eGeMAPS
//! LLD frames per clip (the embedding cache, one "layer"), so the FAD study and the probes can
//! treat hand-crafted descriptors exactly like an SSL layer.
//!
//! Clips are processed in parallel; a clip that cannot be read or analysed becomes one
//! [`ClipFailure`] and the rest go on. Clips already in the cache are not recomputed.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use emobridge_acoustic::{egemaps, FeatureVector};
use emobridge_audio::{load, DecodeOptions, IntScaling};
use emobridge_corpus::{Manifest, Record};
use emobridge_store::{ClipEntry, EmbeddingCache, EntryMetadata, StoredDtype};
use rayon::prelude::*;

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
                error,
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
) -> Result<(String, FeatureVector, f64), String> {
    let path = manifest.audio_path(r);
    // openSMILE analyses at the file's own rate with its own integer scaling.
    let audio = load(
        &path,
        &DecodeOptions {
            int_scaling: IntScaling::OpenSmile,
            ..DecodeOptions::mono()
        },
    )
    .map_err(|e| e.to_string())?;
    let seconds = audio.duration_s();
    let rate = audio.sample_rate;
    let samples = audio.into_mono();
    let Some(cache) = cache.filter(|c| !c.contains(&r.id)) else {
        let functionals = egemaps::functionals(&samples, rate).map_err(|e| e.to_string())?;
        return Ok((r.id.clone(), functionals, seconds));
    };
    // One analysis pass yields both the cached frames and the functionals.
    let (lld, functionals) =
        egemaps::lld_and_functionals(&samples, rate).map_err(|e| e.to_string())?;
    if lld.is_empty() {
        return Err("clip shorter than one analysis frame: no LLD frames".into());
    }
    let dim = lld.names.len();
    let flat: Vec<f32> = lld.values.iter().flatten().copied().collect();
    let meta = EntryMetadata {
        model: "eGeMAPSv02-lld".into(),
        sample_rate: rate,
        frame_rate_hz: 100.0,
        hidden_state_convention: "n/a".into(),
        source_file: r.path.clone(),
        audio_sha256: emobridge_store::sha256_file(&path).map_err(|e| e.to_string())?,
        extra: Default::default(),
    };
    let entry = ClipEntry::from_frames(flat, [1, lld.len(), dim], StoredDtype::F32, meta)
        .map_err(|e| e.to_string())?;
    cache.write(&r.id, &entry).map_err(|e| e.to_string())?;
    Ok((r.id.clone(), functionals, seconds))
}

/// Writes the functionals table: first column `file` (as the manifest names it), then `id`,
/// then openSMILE's feature names in order.
pub fn write_functionals_csv(
    path: &Path,
    manifest: &Manifest,
    run: &DescriptorRun,
) -> Result<(), String> {
    let Some((_, first)) = run.functionals.first() else {
        return Err("no clip produced functionals".into());
    };
    let by_id: std::collections::HashMap<&str, &Record> = manifest
        .records
        .iter()
        .map(|r| (r.id.as_str(), r))
        .collect();
    let mut w = csv::Writer::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut header = vec!["file".to_string(), "id".to_string()];
    header.extend(first.names.iter().cloned());
    w.write_record(&header).map_err(|e| e.to_string())?;
    for (id, f) in &run.functionals {
        let file = by_id
            .get(id.as_str())
            .map_or(String::new(), |r| r.path.clone());
        let mut row = vec![file, id.clone()];
        row.extend(f.values.iter().map(|v| v.to_string()));
        w.write_record(&row).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| format!("{}: {e}", path.display()))
}

/// A clip-level descriptor set for the probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipDescriptors {
    /// eGeMAPS v02 functionals (88).
    Egemaps,
    /// ComParE-2016: mean and population std over the clip of the 65 LLDs and their 65 deltas
    /// (260), the clip-level form of the continuous-emotion paper's window summary.
    Compare,
}

impl ClipDescriptors {
    pub fn as_str(self) -> &'static str {
        match self {
            ClipDescriptors::Egemaps => "egemaps-functionals",
            ClipDescriptors::Compare => "compare-lld-mean-std",
        }
    }
}

/// One feature row per record (in `records` order, failures left out and returned):
/// `progress(done, total)` is called as clips finish.
pub fn clip_descriptors(
    manifest: &Manifest,
    records: &[&Record],
    set: ClipDescriptors,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> (Vec<(String, Vec<f64>)>, Vec<ClipFailure>) {
    if set == ClipDescriptors::Egemaps {
        let run = egemaps_over_manifest(manifest, records, None, progress);
        let rows = run
            .functionals
            .into_iter()
            .map(|(id, f)| (id, f.values.iter().map(|&v| v as f64).collect()))
            .collect();
        return (rows, run.failures);
    }
    let done = AtomicUsize::new(0);
    let results: Vec<Result<(String, Vec<f64>), ClipFailure>> = records
        .par_iter()
        .map(|r| {
            let path = manifest.audio_path(r);
            let out = load(
                &path,
                &DecodeOptions {
                    int_scaling: IntScaling::OpenSmile,
                    ..DecodeOptions::mono()
                },
            )
            .map_err(|e| e.to_string())
            .and_then(|audio| {
                let rate = audio.sample_rate;
                emobridge_acoustic::compare::lld_with_deltas(&audio.into_mono(), rate)
                    .map_err(|e| e.to_string())
            })
            .and_then(|frames| {
                if frames.values.is_empty() {
                    return Err("clip shorter than one analysis frame".to_string());
                }
                let n = frames.values.len() as f64;
                let cols = frames.names.len();
                let mut mean = vec![0.0f64; cols];
                for row in &frames.values {
                    for (m, &v) in mean.iter_mut().zip(row) {
                        *m += v as f64 / n;
                    }
                }
                let mut var = vec![0.0f64; cols];
                for row in &frames.values {
                    for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                        *s += (v as f64 - m).powi(2) / n;
                    }
                }
                Ok((
                    r.id.clone(),
                    mean.into_iter()
                        .chain(var.into_iter().map(f64::sqrt))
                        .collect(),
                ))
            })
            .map_err(|error| ClipFailure {
                id: r.id.clone(),
                path: path.display().to_string(),
                error,
            });
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, records.len());
            out
        })
        .collect();
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok(row) => rows.push(row),
            Err(f) => failures.push(f),
        }
    }
    (rows, failures)
}
