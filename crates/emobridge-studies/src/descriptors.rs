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
    /// ComParE functionals were asked for; only its LLDs and windows are provided.
    #[error("eGeMAPS has no deltas level (only ComParE-2016 does)")]
    EgemapsDeltas,
    #[error("no input files")]
    NoInputs,
    #[error("cannot start worker threads: {0}")]
    ThreadPool(#[source] rayon::ThreadPoolBuildError),
    /// A file whose descriptor columns differ from the first file's.
    #[error("{label}: descriptor columns differ from the first file's")]
    ColumnsDiffer { label: String },
    #[error("all {count} input file(s) failed; nothing written")]
    AllFailed { count: usize },
    #[error("{first} (strict: stopped at the first failure; nothing written)")]
    Strict { first: String },
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
/// Under `strict` the first failure stops the clips not yet started.
pub fn egemaps_over_manifest(
    manifest: &Manifest,
    records: &[&Record],
    cache: Option<&EmbeddingCache>,
    strict: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> DescriptorRun {
    let done = AtomicUsize::new(0);
    let results = crate::par_until_failure(records, strict, |r| {
        let out = one_clip(manifest, r, cache).map_err(|error| ClipFailure {
            id: r.id.clone(),
            path: manifest.audio_path(r).display().to_string(),
            error: error.to_string(),
        });
        progress(done.fetch_add(1, Ordering::Relaxed) + 1, records.len());
        out
    });
    let mut run = DescriptorRun::default();
    for r in results.into_iter().flatten() {
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
    if cache.is_none_or(|c| c.contains(&r.id)) {
        let (functionals, seconds) = egemaps_functionals_of_file(&path)?;
        return Ok((r.id.clone(), functionals, seconds));
    }
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

/// eGeMAPS functionals of an audio file in one streaming pass (decoded block by block at the
/// file's own rate with openSMILE's integer scaling, mono), so memory does not grow with the
/// file's length; also returns the file's duration in seconds. Equal to decoding the whole
/// file and calling `egemaps::functionals`.
pub fn egemaps_functionals_of_file(path: &Path) -> Result<(FeatureVector, f64), DescriptorError> {
    let mut stream: Option<Result<egemaps::EgemapsStream, AcousticError>> = None;
    let info = emobridge_audio::stream_mono(path, IntScaling::OpenSmile, |block, rate| {
        if let Ok(s) = stream.get_or_insert_with(|| egemaps::EgemapsStream::new(rate)) {
            s.push(block);
        }
    })?;
    // stream_mono succeeds only after delivering at least one sample
    let stream = stream.ok_or(DescriptorError::NoFrames)??;
    let seconds = info.frames as f64 / info.sample_rate as f64;
    Ok((stream.finish_functionals()?, seconds))
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

impl std::str::FromStr for ClipDescriptors {
    type Err = String;
    /// `egemaps` or `compare` (the descriptor set's name; `as_str` names the clip-level form).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "egemaps" => Ok(ClipDescriptors::Egemaps),
            "compare" => Ok(ClipDescriptors::Compare),
            _ => Err(format!("`{s}` is not one of egemaps, compare")),
        }
    }
}

/// One feature row per record (in `records` order, failures left out and returned):
/// `progress(done, total)` is called as clips finish. Under `strict` the first failure stops
/// the clips not yet started.
pub fn clip_descriptors(
    manifest: &Manifest,
    records: &[&Record],
    set: ClipDescriptors,
    strict: bool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> (Vec<(String, Vec<f64>)>, Vec<ClipFailure>) {
    if set == ClipDescriptors::Egemaps {
        let run = egemaps_over_manifest(manifest, records, None, strict, progress);
        let rows = run
            .functionals
            .into_iter()
            .map(|(id, f)| (id, f.values.iter().map(|&v| v as f64).collect()))
            .collect();
        return (rows, run.failures);
    }
    let done = AtomicUsize::new(0);
    let results: Vec<Option<Result<(String, Vec<f64>), ClipFailure>>> =
        crate::par_until_failure(records, strict, |r| {
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
        });
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for r in results.into_iter().flatten() {
        match r {
            Ok(row) => rows.push(row),
            Err(f) => failures.push(f),
        }
    }
    (rows, failures)
}

/// Settings of [`summarise`]; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DescriptorSummaryConfig {
    /// eGeMAPS functionals to profile (openSMILE names). Default: fourteen that the emotion
    /// literature reads first — pitch level, variation and range, loudness and its peak rate,
    /// spectral flux, balance (alpha ratio, Hammarberg index, slope), MFCC 1, jitter, shimmer,
    /// harmonics-to-noise ratio and the rate of voiced segments.
    pub descriptors: Vec<String>,
}

impl Default for DescriptorSummaryConfig {
    fn default() -> Self {
        DescriptorSummaryConfig {
            descriptors: [
                "F0semitoneFrom27.5Hz_sma3nz_amean",
                "F0semitoneFrom27.5Hz_sma3nz_stddevNorm",
                "F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2",
                "loudness_sma3_amean",
                "loudnessPeaksPerSec",
                "spectralFlux_sma3_amean",
                "alphaRatioV_sma3nz_amean",
                "hammarbergIndexV_sma3nz_amean",
                "slopeV0-500_sma3nz_amean",
                "mfcc1_sma3_amean",
                "jitterLocal_sma3nz_amean",
                "shimmerLocaldB_sma3nz_amean",
                "HNRdBACF_sma3nz_amean",
                "VoicedSegmentsPerSec",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// Why [`summarise`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorSummaryError {
    #[error(transparent)]
    Run(#[from] crate::RunFolderError),
    #[error(transparent)]
    Report(#[from] emobridge_report::ReportError),
    #[error("descriptor summary: {0}")]
    NoData(String),
}

/// A descriptor's name as a reader knows it (the openSMILE name when not one of the defaults).
pub fn descriptor_label(name: &str) -> String {
    match name {
        "F0semitoneFrom27.5Hz_sma3nz_amean" => "F0 mean (semitones)",
        "F0semitoneFrom27.5Hz_sma3nz_stddevNorm" => "F0 variation",
        "F0semitoneFrom27.5Hz_sma3nz_pctlrange0-2" => "F0 range (semitones)",
        "loudness_sma3_amean" => "loudness",
        "loudnessPeaksPerSec" => "loudness peaks per s",
        "spectralFlux_sma3_amean" => "spectral flux",
        "alphaRatioV_sma3nz_amean" => "alpha ratio",
        "hammarbergIndexV_sma3nz_amean" => "Hammarberg index",
        "slopeV0-500_sma3nz_amean" => "spectral slope 0–500 Hz",
        "mfcc1_sma3_amean" => "MFCC 1",
        "jitterLocal_sma3nz_amean" => "jitter",
        "shimmerLocaldB_sma3nz_amean" => "shimmer (dB)",
        "HNRdBACF_sma3nz_amean" => "HNR (dB)",
        "VoicedSegmentsPerSec" => "voiced segments per s",
        other => other,
    }
    .to_string()
}

/// One (domain, emotion) group's descriptor means.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DescriptorProfile {
    pub domain: String,
    pub emotion: String,
    pub clips: usize,
    /// Raw means, one per configured descriptor (NaN when no clip had a finite value).
    pub means: Vec<f64>,
    /// The means as z-scores against every emotion-labelled clip of the domain.
    pub z: Vec<f64>,
}

/// What [`summarise`] found.
#[derive(Debug, Clone)]
pub struct DescriptorSummary {
    pub run_dir: std::path::PathBuf,
    pub profiles: Vec<DescriptorProfile>,
    /// Pearson r between the speech and music z-profiles over shared emotions × descriptors.
    pub profile_correlation: Option<f64>,
}

/// The descriptor study of the demo: per domain and emotion, the means of a few interpretable
/// eGeMAPS functionals (`profiles.csv`), the same as z-scores within each domain in a heatmap
/// (`profiles.{svg,png}`), how much each descriptor separates the emotions (η², the share of
/// variance between emotions; `separation.csv`), and how alike the speech and music profiles are
/// (Pearson r over shared emotions × descriptors), written as a run folder at `out`.
pub fn summarise(
    config: &DescriptorSummaryConfig,
    manifest: &Manifest,
    descriptors: &DescriptorRun,
    out: &Path,
) -> Result<DescriptorSummary, DescriptorSummaryError> {
    use emobridge_corpus::Domain;
    use emobridge_report::{Heatmap, Table};
    let mut run = crate::RunFolder::create(out, "descriptors")?;
    run.set_config(config, 0);
    run.hash_bytes("manifest", &manifest.to_csv());
    if config.descriptors.is_empty() {
        return Err(DescriptorSummaryError::NoData(
            "the configuration names no descriptors".into(),
        ));
    }
    let Some((_, first)) = descriptors.functionals.first() else {
        return Err(DescriptorSummaryError::NoData(
            "no clip produced functionals".into(),
        ));
    };
    let columns: Vec<usize> = config
        .descriptors
        .iter()
        .map(|d| {
            first.names.iter().position(|n| n == d).ok_or_else(|| {
                DescriptorSummaryError::NoData(format!("`{d}` is not an eGeMAPS functional"))
            })
        })
        .collect::<Result<_, _>>()?;
    let by_id: std::collections::HashMap<&str, &Record> = manifest
        .records
        .iter()
        .map(|r| (r.id.as_str(), r))
        .collect();
    for f in &descriptors.failures {
        run.fail(f.id.clone(), f.path.clone(), f.error.clone())?;
    }
    // (domain, emotion, values) of every labelled clip.
    let clips: Vec<(Domain, emobridge_corpus::Emotion, Vec<f64>)> = descriptors
        .functionals
        .iter()
        .filter_map(|(id, f)| {
            let r = by_id.get(id.as_str())?;
            let values = columns.iter().map(|&c| f.values[c] as f64).collect();
            Some((r.domain, r.emotion?, values))
        })
        .collect();
    let mut profiles = Vec::new();
    // η² per descriptor (rows) and domain (columns).
    let mut eta_by_domain: Vec<(String, Vec<f64>)> = Vec::new();
    for domain in [Domain::Speech, Domain::Music] {
        let in_domain: Vec<&(Domain, emobridge_corpus::Emotion, Vec<f64>)> =
            clips.iter().filter(|c| c.0 == domain).collect();
        if in_domain.is_empty() {
            continue;
        }
        let mut emotions: Vec<emobridge_corpus::Emotion> = in_domain.iter().map(|c| c.1).collect();
        emotions.sort();
        emotions.dedup();
        let k = columns.len();
        let finite = |d: usize| {
            in_domain
                .iter()
                .map(move |c| c.2[d])
                .filter(|v| v.is_finite())
        };
        let centre: Vec<f64> = (0..k)
            .map(|d| finite(d).sum::<f64>() / finite(d).count().max(1) as f64)
            .collect();
        let spread: Vec<f64> = (0..k)
            .map(|d| {
                let n = finite(d).count();
                (finite(d).map(|v| (v - centre[d]).powi(2)).sum::<f64>() / n.max(1) as f64).sqrt()
            })
            .collect();
        let mut between = vec![0.0f64; k];
        for &e in &emotions {
            let members: Vec<&&(Domain, emobridge_corpus::Emotion, Vec<f64>)> =
                in_domain.iter().filter(|c| c.1 == e).collect();
            let means: Vec<f64> = (0..k)
                .map(|d| {
                    let vals: Vec<f64> = members
                        .iter()
                        .map(|c| c.2[d])
                        .filter(|v| v.is_finite())
                        .collect();
                    if vals.is_empty() {
                        f64::NAN
                    } else {
                        vals.iter().sum::<f64>() / vals.len() as f64
                    }
                })
                .collect();
            for d in 0..k {
                let n = members.iter().filter(|c| c.2[d].is_finite()).count() as f64;
                if means[d].is_finite() {
                    between[d] += n * (means[d] - centre[d]).powi(2);
                }
            }
            let z = (0..k)
                .map(|d| {
                    if spread[d] > 0.0 {
                        (means[d] - centre[d]) / spread[d]
                    } else {
                        0.0
                    }
                })
                .collect();
            profiles.push(DescriptorProfile {
                domain: domain.as_str().into(),
                emotion: e.as_str().into(),
                clips: members.len(),
                means,
                z,
            });
        }
        let mut best: Option<(usize, f64)> = None;
        let mut etas = Vec::with_capacity(k);
        for d in 0..k {
            let total: f64 = finite(d).map(|v| (v - centre[d]).powi(2)).sum();
            let eta = if total > 0.0 {
                between[d] / total
            } else {
                f64::NAN
            };
            etas.push(eta);
            if eta.is_finite() && best.is_none_or(|(_, b)| eta > b) {
                best = Some((d, eta));
            }
        }
        eta_by_domain.push((domain.as_str().to_string(), etas));
        if let Some((d, eta)) = best {
            let label = descriptor_label(&config.descriptors[d]);
            run.headline(
                &format!("top_descriptor_{}", domain.as_str()),
                serde_json::json!({ "descriptor": config.descriptors[d], "eta_squared": eta }),
                format!(
                    "In {}, {label} separates the emotions most among these descriptors (η² {}: \
                     the share of its variance that lies between emotions).",
                    domain.as_str(),
                    emobridge_report::table::format_significant(eta, 2)
                ),
            );
        }
    }
    if profiles.is_empty() {
        return Err(DescriptorSummaryError::NoData(
            "no clip has both functionals and an emotion label".into(),
        ));
    }
    // Raw means table.
    let mut t = Table::new(
        ["domain", "emotion", "clips"]
            .map(String::from)
            .into_iter()
            .chain(config.descriptors.iter().map(|d| descriptor_label(d))),
    );
    for p in &profiles {
        t.push(
            [
                p.domain.clone().into(),
                p.emotion.clone().into(),
                p.clips.into(),
            ]
            .into_iter()
            .chain(p.means.iter().map(|&v| v.into()))
            .collect(),
        )?;
    }
    // z-profile heatmap.
    let heatmap = Heatmap {
        title: "Emotion profiles of the descriptors (z-scores within each domain)".into(),
        row_labels: profiles
            .iter()
            .map(|p| format!("{} · {}", p.domain, p.emotion))
            .collect(),
        col_labels: config
            .descriptors
            .iter()
            .map(|d| descriptor_label(d))
            .collect(),
        values: profiles.iter().map(|p| p.z.clone()).collect(),
        row_axis: "domain · emotion".into(),
        col_axis: "descriptor".into(),
        value_label: "z-score".into(),
    };
    emobridge_report::write_heatmap(
        &heatmap,
        &run.path("profiles.png"),
        &run.path("profiles.svg"),
    )?;
    run.figure(
        "profiles.svg",
        "Emotion profiles of the descriptors",
        "Each cell is an emotion's mean descriptor value in standard deviations from its domain's \
         mean (bright: above, dark: below).\nRows of the same emotion that look alike in speech and \
         in music are the shared acoustic code.",
    );
    run.output("profiles.png");
    t.write_csv(&run.path("profiles.csv"))?;
    run.table(
        "profiles.csv",
        "Descriptor means by domain and emotion",
        "Each row averages the clips of one emotion in one domain, in the descriptors' own units \
         (semitones, sones, dB).\nRead down a column to see how an emotion moves that descriptor.",
    );
    let mut separation = Table::new(
        std::iter::once("descriptor".to_string()).chain(
            eta_by_domain
                .iter()
                .map(|(d, _)| format!("eta_squared_{d}")),
        ),
    );
    for (d, name) in config.descriptors.iter().enumerate() {
        separation.push(
            std::iter::once(descriptor_label(name).into())
                .chain(eta_by_domain.iter().map(|(_, e)| e[d].into()))
                .collect(),
        )?;
    }
    separation.write_csv(&run.path("separation.csv"))?;
    run.table(
        "separation.csv",
        "How much each descriptor separates the emotions",
        "η² is the share of a descriptor's variance that lies between the emotion means (0: none, \
         1: all), one column per domain.\nHigh values mark the descriptors that carry emotion; \
         high in both columns, a cue the two domains share.",
    );
    // Speech vs music profile similarity over shared emotions.
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    let mut shared = 0;
    for s in profiles.iter().filter(|p| p.domain == "speech") {
        if let Some(m) = profiles
            .iter()
            .find(|p| p.domain == "music" && p.emotion == s.emotion)
        {
            shared += 1;
            pairs.extend(
                s.z.iter()
                    .zip(&m.z)
                    .filter(|(a, b)| a.is_finite() && b.is_finite())
                    .map(|(a, b)| (*a, *b)),
            );
        }
    }
    let profile_correlation = pearson(&pairs);
    if let Some(r) = profile_correlation {
        run.headline(
            "profile_correlation",
            serde_json::json!({ "r": r, "emotions": shared, "descriptors": columns.len() }),
            format!(
                "Over {shared} shared emotions × {} descriptors, the speech and music emotion \
                 profiles correlate at r = {}: {}.",
                columns.len(),
                emobridge_report::table::format_significant(r, 2),
                if r >= 0.5 {
                    "emotions move the descriptors the same way in both domains"
                } else if r > 0.0 {
                    "emotions move the descriptors partly the same way in both domains"
                } else {
                    "emotions move the descriptors differently in the two domains"
                }
            ),
        );
    }
    run.note("clips_profiled", clips.len());
    let run_dir = run.dir().to_path_buf();
    run.finish()?;
    Ok(DescriptorSummary {
        run_dir,
        profiles,
        profile_correlation,
    })
}

/// Pearson correlation of (x, y) pairs; `None` with fewer than 3 pairs or no variance.
fn pearson(pairs: &[(f64, f64)]) -> Option<f64> {
    let n = pairs.len() as f64;
    if pairs.len() < 3 {
        return None;
    }
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for &(x, y) in pairs {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx).powi(2);
        syy += (y - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

#[cfg(test)]
mod summary_tests {
    use super::*;
    use emobridge_corpus::{Domain, Emotion};

    fn functionals(names: &[String], loud: f32) -> FeatureVector {
        FeatureVector {
            names: names.to_vec(),
            values: names
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 3 { loud } else { i as f32 })
                .collect(),
        }
    }

    #[test]
    fn profiles_separation_and_shared_code() {
        let names = DescriptorSummaryConfig::default().descriptors;
        let mut records = Vec::new();
        let mut run = DescriptorRun::default();
        for (d, domain) in [Domain::Speech, Domain::Music].into_iter().enumerate() {
            for (e, emotion) in [Emotion::Angry, Emotion::Sad, Emotion::Happy]
                .into_iter()
                .enumerate()
            {
                for k in 0..3 {
                    let id = format!("{d}-{e}-{k}");
                    let mut r = Record::new(&id, format!("{id}.wav"), domain, "c", "s");
                    r.emotion = Some(emotion);
                    records.push(r);
                    // Loudness: angry > happy > sad in both domains, plus a little spread.
                    let base = [3.0, 1.0, 2.0][e] + 0.1 * k as f32 + d as f32;
                    run.functionals.push((id, functionals(&names, base)));
                }
            }
        }
        let manifest = Manifest {
            records,
            ..Manifest::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let out = summarise(
            &DescriptorSummaryConfig::default(),
            &manifest,
            &run,
            &dir.path().join("d"),
        )
        .unwrap();
        assert_eq!(out.profiles.len(), 6);
        // Only loudness varies, identically in both domains: the profiles correlate perfectly.
        assert!((out.profile_correlation.unwrap() - 1.0).abs() < 1e-9);
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("d/run.json")).unwrap())
                .unwrap();
        assert_eq!(json["study"], "descriptors");
        let keys: Vec<&str> = json["headlines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["key"].as_str().unwrap())
            .collect();
        assert!(keys.contains(&"top_descriptor_speech"), "{keys:?}");
        assert!(json["headlines"][0]["text"]
            .as_str()
            .unwrap()
            .contains("loudness"));
        for f in [
            "profiles.csv",
            "profiles.svg",
            "profiles.png",
            "separation.csv",
        ] {
            assert!(dir.path().join("d").join(f).is_file(), "{f}");
        }
        let bad = DescriptorSummaryConfig {
            descriptors: vec!["nope".into()],
        };
        let err = summarise(&bad, &manifest, &run, &dir.path().join("e")).unwrap_err();
        assert!(err.to_string().contains("`nope`"), "{err}");
    }
}
