//! A sharded FAD study: `fad --shard I/N` saves each layer's per-group streaming statistics of the
//! clips the shard owns; [`merge_shards`] folds them together into the single-process result.
//!
//! Layout inside the run folder:
//!
//! ```text
//! OUT/shards/shard-I-of-N/layerNN.safetensors   per group: `<group>/mean` [D], `<group>/scatter`
//!                                               [D, D] (f64, co-moment matrix), count in metadata
//! OUT/shards/shard-I-of-N/done.json             written last: fingerprint, layers, failures
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use emobridge_corpus::Manifest;
use emobridge_fad::RunningStats;
use emobridge_store::{EmbeddingCache, Shard};
use serde::{Deserialize, Serialize};

use super::{
    accumulate_layers, group_name, layer_blocks, plan, study, validate, Accumulated,
    FadStudyConfig, FadStudyError, FadStudyOutcome, GroupKey, LayerSource, Plan, StatsPool,
};
use crate::RunFolderError;

/// What one shard of a sharded study saved (`OUT/shards/shard-I-of-N/done.json`, written last).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardRecord {
    pub shard: usize,
    pub count: usize,
    /// The plan's fingerprint (settings and clip list); every shard and the merge must agree.
    pub fingerprint: String,
    pub layers: Vec<usize>,
    /// Clips of this shard that contributed samples.
    pub clips: usize,
    /// Clips of this shard whose data did not read.
    pub failures: Vec<crate::RunFailure>,
}

/// The folder of one shard's statistics inside the run folder.
pub fn shard_dir(out_dir: &Path, shard: Shard) -> PathBuf {
    out_dir
        .join("shards")
        .join(format!("shard-{}-of-{}", shard.index, shard.count))
}

/// One shard of the study (`fad --shard I/N`): every shard plans the same sample selection (from
/// the cache headers of all clips), reads the frames of the clips it owns (membership by clip id,
/// as `extract --shard`), and saves each layer's per-group streaming statistics to
/// `OUT/shards/shard-I-of-N/layerNN.safetensors`, then `done.json`. [`merge_shards`] folds the
/// shards together (Chan's pairwise update) into the result a single process gives, up to
/// rounding. Bootstrap intervals resample whole clips from every row and need one process.
pub fn run_shard(
    config: &FadStudyConfig,
    manifest: &Manifest,
    cache: &EmbeddingCache,
    out_dir: &Path,
    shard: Shard,
) -> Result<ShardRecord, FadStudyError> {
    validate(config)?;
    if config.bootstrap >= 2 {
        return Err(FadStudyError::Invalid(
            "bootstrap intervals resample whole clips from every row and need one process: run the study without --shard, or without --bootstrap".into(),
        ));
    }
    let mut header_failures = Vec::new();
    let planned = plan(config, manifest, cache, &mut header_failures);
    let dir = shard_dir(out_dir, shard);
    std::fs::create_dir_all(&dir).map_err(|source| RunFolderError::Io {
        path: dir.clone(),
        source,
    })?;
    if config.strict && !header_failures.is_empty() {
        return Err(stop_shard(&dir, &header_failures));
    }
    let plan = planned?;
    // An earlier run's record must not mark this run finished if it stops early.
    let done = dir.join("done.json");
    if let Err(e) = std::fs::remove_file(&done) {
        if e.kind() != std::io::ErrorKind::NotFound {
            return Err(RunFolderError::Io {
                path: done,
                source: e,
            }
            .into());
        }
    }
    let owns = |id: &str| shard.owns(id);
    let clips = plan.clips.iter().filter(|c| owns(&c.record.id)).count();
    tracing::info!(
        "FAD shard {shard}: {clips} of {} usable clips, {} layers",
        plan.clips.len(),
        plan.layers.len()
    );
    let mut failures = Vec::new();
    let pool = StatsPool::new(plan.shape.dim);
    for block in layer_blocks(config, &plan) {
        let accumulated = accumulate_layers(config, &plan, &block, &owns, &mut failures, &pool)?;
        if config.strict && !failures.is_empty() {
            return Err(stop_shard(&dir, &failures));
        }
        for (layer, acc) in block.iter().zip(accumulated) {
            save_layer(&dir.join(format!("layer{layer:02}.safetensors")), &acc)?;
            pool.give(acc.running.into_values());
            pool.give(acc.units.into_values().flatten());
        }
        super::release_free_memory();
    }
    let record = ShardRecord {
        shard: shard.index,
        count: shard.count,
        fingerprint: plan.fingerprint.clone(),
        layers: plan.layers.clone(),
        clips,
        failures,
    };
    let text = serde_json::to_string_pretty(&record).expect("plain data");
    let done = dir.join("done.json");
    emobridge_store::write_atomic(&done, text.as_bytes())
        .map_err(|e| FadStudyError::Invalid(format!("{}: cannot write: {e}", done.display())))?;
    Ok(record)
}

/// Strict: the shard stops at its first failure, listed in the shard folder's `failures.json`
/// (no `done.json`: the shard has not finished).
fn stop_shard(dir: &Path, failures: &[crate::RunFailure]) -> FadStudyError {
    let listed_in = dir.join(crate::FAILURES_JSON);
    let text = serde_json::to_string_pretty(failures).expect("plain data");
    if let Err(e) = emobridge_store::write_atomic(&listed_in, format!("{text}\n").as_bytes()) {
        return FadStudyError::Invalid(format!("{}: cannot write: {e}", listed_in.display()));
    }
    let first = &failures[0];
    RunFolderError::Strict {
        item: first.item.clone(),
        reason: first.reason.clone(),
        listed_in,
    }
    .into()
}

/// Shards of an `count`-way study whose `done.json` is missing or unreadable (to resubmit).
pub fn incomplete_shards(out_dir: &Path, count: usize) -> Vec<usize> {
    (0..count)
        .filter(|&index| shard_record(out_dir, Shard { index, count }).is_err())
        .collect()
}

/// What a finished shard recorded (`done.json`); an error names the file when the shard has not
/// finished or the record is unreadable.
pub fn shard_record(out_dir: &Path, shard: Shard) -> Result<ShardRecord, FadStudyError> {
    let path = shard_dir(out_dir, shard).join("done.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        FadStudyError::Invalid(format!(
            "{}: shard {shard} has not finished: {e}",
            path.display()
        ))
    })?;
    let record: ShardRecord = serde_json::from_str(&text)
        .map_err(|e| FadStudyError::Invalid(format!("{}: {e}", path.display())))?;
    if (record.shard, record.count) != (shard.index, shard.count) {
        return Err(FadStudyError::Invalid(format!(
            "{}: records shard {}/{}, expected {shard}",
            path.display(),
            record.shard,
            record.count
        )));
    }
    Ok(record)
}

/// The study from the statistics of `count` finished shards (see [`run_shard`]), written into
/// `out_dir` as [`run`] writes it.
pub fn merge_shards(
    config: &FadStudyConfig,
    manifest: &Manifest,
    cache: &EmbeddingCache,
    out_dir: &Path,
    count: usize,
) -> Result<FadStudyOutcome, FadStudyError> {
    if count == 0 {
        return Err(FadStudyError::Invalid(
            "a sharded study needs at least 1 shard".into(),
        ));
    }
    let missing = incomplete_shards(out_dir, count);
    if !missing.is_empty() {
        return Err(FadStudyError::Invalid(format!(
            "shards {missing:?} of {count} have not finished (no {}/shards/shard-I-of-{count}/done.json); run or resubmit them first",
            out_dir.display()
        )));
    }
    study(
        config,
        manifest,
        cache,
        out_dir,
        LayerSource::Shards {
            dir: out_dir,
            count,
        },
    )
}

pub(super) fn load_shard_records(
    out_dir: &Path,
    count: usize,
    fingerprint: &str,
) -> Result<Vec<ShardRecord>, FadStudyError> {
    (0..count)
        .map(|index| {
            let record = shard_record(out_dir, Shard { index, count })?;
            if record.fingerprint != fingerprint {
                return Err(FadStudyError::Invalid(format!(
                    "shard {index}/{count} was computed with other settings or another cache content than this merge (fingerprint {} vs {fingerprint}); rerun it",
                    record.fingerprint
                )));
            }
            Ok(record)
        })
        .collect()
}

/// One layer's statistics merged over the shards, in shard order.
pub(super) fn merge_layer(
    plan: &Plan<'_>,
    out_dir: &Path,
    count: usize,
    layer: usize,
) -> Result<Accumulated, FadStudyError> {
    let dim = plan.shape.dim;
    let mut running: BTreeMap<GroupKey, RunningStats> = plan
        .selections
        .keys()
        .map(|k| (k.clone(), RunningStats::new(dim)))
        .collect();
    for index in 0..count {
        let path =
            shard_dir(out_dir, Shard { index, count }).join(format!("layer{layer:02}.safetensors"));
        let saved = load_layer(&path, dim)?;
        for (key, stats) in running.iter_mut() {
            let name = group_name(key);
            let part = saved.get(&name).ok_or_else(|| {
                FadStudyError::Invalid(format!(
                    "{}: no statistics for group {name}",
                    path.display()
                ))
            })?;
            stats.merge(part);
        }
    }
    Ok(Accumulated {
        dim,
        running,
        units: BTreeMap::new(),
    })
}

/// Saves each group's count, mean and co-moment matrix (f64) of one layer.
fn save_layer(path: &Path, acc: &Accumulated) -> Result<(), FadStudyError> {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype;
    let bytes = |v: &[f64]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let mut buffers = Vec::new();
    let mut metadata = std::collections::HashMap::new();
    for (key, stats) in &acc.running {
        let (n, mean, scatter) = stats.to_parts();
        let name = group_name(key);
        metadata.insert(format!("count/{name}"), n.to_string());
        buffers.push((format!("{name}/mean"), vec![acc.dim], bytes(&mean)));
        buffers.push((
            format!("{name}/scatter"),
            vec![acc.dim, acc.dim],
            bytes(&scatter),
        ));
    }
    let invalid = |e: String| FadStudyError::Invalid(format!("{}: {e}", path.display()));
    let views = buffers
        .iter()
        .map(|(name, shape, data)| {
            TensorView::new(Dtype::F64, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| invalid(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let data = safetensors::serialize(views, Some(metadata)).map_err(|e| invalid(e.to_string()))?;
    emobridge_store::write_atomic(path, &data).map_err(|e| invalid(e.to_string()))
}

/// Reads what [`save_layer`] wrote: group name → statistics.
fn load_layer(path: &Path, dim: usize) -> Result<HashMap<String, RunningStats>, FadStudyError> {
    let invalid = |e: String| FadStudyError::Invalid(format!("{}: {e}", path.display()));
    let data = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(&data).map_err(|e| invalid(e.to_string()))?;
    let tensors =
        safetensors::SafeTensors::deserialize(&data).map_err(|e| invalid(e.to_string()))?;
    let floats = |name: &str, len: usize| -> Result<Vec<f64>, FadStudyError> {
        let t = tensors
            .tensor(name)
            .map_err(|e| invalid(format!("{name}: {e}")))?;
        if t.dtype() != safetensors::Dtype::F64 || t.data().len() != len * 8 {
            return Err(invalid(format!("{name}: expected {len} f64 values")));
        }
        Ok(t.data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect())
    };
    let mut out = HashMap::new();
    for (key, value) in meta.metadata().iter().flatten() {
        let Some(name) = key.strip_prefix("count/") else {
            continue;
        };
        let n: u64 = value
            .parse()
            .map_err(|_| invalid(format!("count of {name} is `{value}`")))?;
        let mean = floats(&format!("{name}/mean"), dim)?;
        let scatter = floats(&format!("{name}/scatter"), dim * dim)?;
        let stats = RunningStats::from_parts(n, mean, &scatter)
            .map_err(|e| invalid(format!("{name}: {e}")))?;
        out.insert(name.to_string(), stats);
    }
    Ok(out)
}
