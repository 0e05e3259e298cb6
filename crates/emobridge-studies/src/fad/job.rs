//! The study as one job over files: manifest, cache folder and run folder named by path, the
//! whole study or one shard of it (the pipeline behind `emobridge fad --manifest …`).

use std::fmt::Write as _;
use std::path::PathBuf;

use emobridge_corpus::Manifest;
use emobridge_store::{EmbeddingCache, Shard};
use serde::Serialize;

use super::{
    run, run_shard, shard_dir, FadStudyConfig, FadStudyError, FadStudyOutcome, ShardRecord,
};
use crate::RunFailure;

/// What [`run_job`] reads and writes, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct FadJob {
    /// Corpus manifest (CSV or JSON Lines).
    pub manifest: PathBuf,
    /// Embedding cache root (`CACHE/<model>/<clip-id>.safetensors`).
    pub cache: PathBuf,
    /// Cache tag of the model (or descriptor set).
    pub model: String,
    /// Run folder to write.
    pub out: PathBuf,
    /// Only the clips of this shard (their per-layer statistics go under `OUT/shards/`).
    pub shard: Option<Shard>,
    pub study: FadStudyConfig,
}

/// What [`run_job`] produced.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum FadJobOutcome {
    /// The whole study.
    Study(FadStudyOutcome),
    /// One shard's statistics, saved in `dir`.
    Shard { record: ShardRecord, dir: PathBuf },
}

/// Reads the manifest, opens the cache and runs the study ([`run`]) or one shard of it
/// ([`run_shard`]).
pub fn run_job(job: &FadJob) -> Result<FadJobOutcome, FadStudyError> {
    let manifest = Manifest::read(&job.manifest).map_err(|source| FadStudyError::Manifest {
        path: job.manifest.clone(),
        source,
    })?;
    let cache = EmbeddingCache::open_existing(&job.cache, &job.model)?;
    Ok(match job.shard {
        Some(shard) => FadJobOutcome::Shard {
            record: run_shard(&job.study, &manifest, &cache, &job.out, shard)?,
            dir: shard_dir(&job.out, shard),
        },
        None => FadJobOutcome::Study(run(&job.study, &manifest, &cache, &job.out)?),
    })
}

impl FadJobOutcome {
    /// The clips left out.
    pub fn failures(&self) -> &[RunFailure] {
        match self {
            FadJobOutcome::Study(o) => &o.failures,
            FadJobOutcome::Shard { record, .. } => &record.failures,
        }
    }

    /// The file listing [`Self::failures`]: the run folder's `failures.json`, or the shard's
    /// `done.json`.
    pub fn failures_listed_in(&self) -> PathBuf {
        match self {
            FadJobOutcome::Study(o) => o.run_dir.join(crate::FAILURES_JSON),
            FadJobOutcome::Shard { dir, .. } => dir.join("done.json"),
        }
    }

    /// The result as text: the speech-vs-music table (tab-separated) and the run folder, or the
    /// shard's one line.
    pub fn summary(&self) -> String {
        match self {
            FadJobOutcome::Study(o) => o.summary(),
            FadJobOutcome::Shard { record, dir } => format!(
                "shard {}/{}: statistics of {} clips in {} ({} failures)",
                record.shard,
                record.count,
                record.clips,
                dir.display(),
                record.failures.len()
            ),
        }
    }
}

impl FadStudyOutcome {
    /// `layer emotion fad n_speech n_music` rows (tab-separated, with a header), then the run
    /// folder and the number of clips skipped.
    pub fn summary(&self) -> String {
        let mut text = String::from("layer\temotion\tfad\tn_speech\tn_music\n");
        for r in &self.speech_vs_music {
            let _ = writeln!(
                text,
                "{}\t{}\t{:.6}\t{}\t{}",
                r.layer, r.emotion, r.fad, r.n_speech, r.n_music
            );
        }
        let _ = write!(
            text,
            "run folder: {} ({} clips skipped)",
            self.run_dir.display(),
            self.failures.len()
        );
        text
    }
}
