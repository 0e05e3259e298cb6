//! Training of the sequence regressors as Coutinho & Schuller (2017) did: Gaussian noise on the
//! inputs, early stopping on held-out development sequences, several random restarts, and the
//! mean prediction of the restarts that did best on the development set.
//!
//! Losses are per sequence and averaged over the sequences of a batch: mean squared error over
//! steps and outputs, or `1 − CCC` (CCC of each output over the sequence's steps, population
//! moments, averaged over outputs).

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::kernels::Scalar;
use crate::lstm::{LstmNet, LstmSpec, SeqBatch};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::{LearnError, Result};

/// The training objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeqLoss {
    /// Mean squared error (the paper's CURRENNT objective, up to scale).
    #[default]
    Mse,
    /// 1 − concordance correlation coefficient.
    Ccc,
}

/// Loss of one sequence's prediction `[len, outputs]` and its gradient.
pub fn sequence_loss<T: Scalar>(
    pred: &[T],
    target: &[T],
    outputs: usize,
    loss: SeqLoss,
) -> (f64, Vec<T>) {
    let len = pred.len() / outputs;
    let mut grad = vec![T::zero(); pred.len()];
    match loss {
        SeqLoss::Mse => {
            let n = pred.len() as f64;
            let mut total = 0.0;
            for i in 0..pred.len() {
                let e = (pred[i] - target[i]).as_f64();
                total += e * e;
                grad[i] = T::lit(2.0 * e / n);
            }
            (total / n, grad)
        }
        SeqLoss::Ccc => {
            let n = len as f64;
            let mut total = 0.0;
            for k in 0..outputs {
                let x = |t: usize| pred[t * outputs + k].as_f64();
                let y = |t: usize| target[t * outputs + k].as_f64();
                let mx = (0..len).map(x).sum::<f64>() / n;
                let my = (0..len).map(y).sum::<f64>() / n;
                let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
                for t in 0..len {
                    let (dx, dy) = (x(t) - mx, y(t) - my);
                    sxx += dx * dx;
                    syy += dy * dy;
                    sxy += dx * dy;
                }
                let (sxx, syy, sxy) = (sxx / n, syy / n, sxy / n);
                let num = 2.0 * sxy;
                let den = (sxx + syy + (mx - my) * (mx - my)).max(1e-12);
                let ccc = num / den;
                total += 1.0 - ccc;
                for t in 0..len {
                    let (dx, dy) = (x(t) - mx, y(t) - my);
                    let d_num = 2.0 * dy / n;
                    let d_den = 2.0 * dx / n + 2.0 * (mx - my) / n;
                    let d_ccc = (d_num * den - num * d_den) / (den * den);
                    grad[t * outputs + k] = T::lit(-d_ccc / outputs as f64);
                }
            }
            (total / outputs as f64, grad)
        }
    }
}

/// One sequence: features `[len, dim]` and targets `[len, outputs]`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
}

/// Mean loss over `seqs` and its gradient (summed over sub-batches run in parallel when
/// `chunks > 1`). `noise` adds N(0, σ²) to every input value, drawn from `rng_seed`.
pub fn batch_gradient(
    net: &LstmNet<f32>,
    seqs: &[&Sequence],
    loss: SeqLoss,
    noise: Option<(f64, u64)>,
    chunks: usize,
) -> Result<(f64, Vec<f32>)> {
    let dim = net.spec.input;
    let o = net.spec.outputs;
    let per = seqs.len().div_ceil(chunks.max(1)).max(1);
    let parts: Vec<Result<(f64, Vec<f32>)>> = seqs
        .par_chunks(per)
        .enumerate()
        .map(|(ci, part)| {
            let noisy: Vec<Vec<f32>>;
            let xs: Vec<&[f32]> = match noise {
                Some((sd, seed)) if sd > 0.0 => {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((ci as u64) << 40));
                    noisy = part
                        .iter()
                        .map(|s| {
                            s.x.iter()
                                .map(|&v| {
                                    let e: f64 = StandardNormal.sample(&mut rng);
                                    v + (sd * e) as f32
                                })
                                .collect()
                        })
                        .collect();
                    noisy.iter().map(|v| v.as_slice()).collect()
                }
                _ => part.iter().map(|s| s.x.as_slice()).collect(),
            };
            let batch = SeqBatch::new(&xs, dim)?;
            let trace = net.forward(&batch)?;
            let preds = batch.unpack(&trace.y, o);
            let mut total = 0.0;
            let mut dys = Vec::with_capacity(part.len());
            for (p, s) in preds.iter().zip(part) {
                if s.y.len() != p.len() {
                    return Err(LearnError::Shape(format!(
                        "sequence of {} steps has {} target values for {o} outputs",
                        p.len() / o,
                        s.y.len()
                    )));
                }
                let (l, mut g) = sequence_loss(p, &s.y, o, loss);
                total += l;
                let scale = 1.0 / seqs.len() as f32;
                g.iter_mut().for_each(|v| *v *= scale);
                dys.push(g);
            }
            let dy = batch.pack(&dys, o);
            let mut grad = vec![0.0f32; net.params.len()];
            net.backward(&batch, &trace, &dy, &mut grad)?;
            Ok((total, grad))
        })
        .collect();
    let mut total = 0.0;
    let mut grad = vec![0.0f32; net.params.len()];
    for p in parts {
        let (l, g) = p?;
        total += l;
        grad.iter_mut().zip(&g).for_each(|(a, b)| *a += b);
    }
    Ok((total / seqs.len() as f64, grad))
}

/// Mean per-sequence loss without gradient.
pub fn mean_loss(net: &LstmNet<f32>, seqs: &[&Sequence], loss: SeqLoss) -> Result<f64> {
    let xs: Vec<&[f32]> = seqs.iter().map(|s| s.x.as_slice()).collect();
    let preds = net.predict(&SeqBatch::new(&xs, net.spec.input)?)?;
    Ok(preds
        .iter()
        .zip(seqs)
        .map(|(p, s)| sequence_loss(p, &s.y, net.spec.outputs, loss).0)
        .sum::<f64>()
        / seqs.len() as f64)
}

/// Settings of the sequence regressor and its training (defaults: the paper where it says).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeqTrainConfig {
    /// Units per recurrent layer (paper: 150 then 10).
    pub hidden: Vec<usize>,
    pub bidirectional: bool,
    pub loss: SeqLoss,
    /// Standard deviation of the Gaussian input noise during training (paper: 0.5).
    pub noise_sd: f64,
    pub optimizer: OptimizerConfig,
    /// Sequences per update.
    pub batch_size: usize,
    pub max_epochs: usize,
    /// Stop after this many epochs without a better development loss.
    pub patience: usize,
    /// Random restarts (paper: 10).
    pub restarts: usize,
    /// Restarts whose predictions are averaged, best on the development set first (paper: 5).
    pub keep_best: usize,
    /// Clip the gradient's global L2 norm to this (none when absent).
    pub clip_norm: Option<f64>,
    pub seed: u64,
}

impl Default for SeqTrainConfig {
    fn default() -> Self {
        SeqTrainConfig {
            hidden: vec![150, 10],
            bidirectional: false,
            loss: SeqLoss::Mse,
            noise_sd: 0.5,
            optimizer: OptimizerConfig::default(),
            batch_size: 4,
            max_epochs: 60,
            patience: 8,
            restarts: 10,
            keep_best: 5,
            clip_norm: Some(5.0),
            seed: 7,
        }
    }
}

impl SeqTrainConfig {
    /// Checks the knobs, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(LearnError::Config(m));
        if self.restarts == 0 || self.keep_best == 0 || self.keep_best > self.restarts {
            return bad(format!(
                "restarts {} and keep_best {}: need 1 ≤ keep_best ≤ restarts",
                self.restarts, self.keep_best
            ));
        }
        if self.batch_size == 0 || self.max_epochs == 0 {
            return bad("batch_size and max_epochs must be ≥ 1".into());
        }
        if !(self.noise_sd >= 0.0 && self.noise_sd.is_finite()) {
            return bad(format!("noise_sd {} must be ≥ 0 and finite", self.noise_sd));
        }
        if self.clip_norm.is_some_and(|c| !(c > 0.0)) {
            return bad("clip_norm must be > 0".into());
        }
        self.optimizer.validate()
    }
}

/// Losses after each epoch of one restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    pub restart: usize,
    /// Mean training loss over the epoch's updates (noisy inputs).
    pub train: Vec<f64>,
    /// Development loss after the epoch (clean inputs).
    pub dev: Vec<f64>,
    /// The epoch (1-based) whose weights were kept.
    pub best_epoch: usize,
}

/// The kept restarts of a training run.
#[derive(Debug, Clone)]
pub struct Ensemble {
    /// Best `keep_best` restarts, best first.
    pub members: Vec<LstmNet<f32>>,
    /// Their development losses.
    pub dev_loss: Vec<f64>,
    /// Every restart's learning curve.
    pub curves: Vec<Curve>,
}

impl Ensemble {
    /// The mean prediction of the members, per sequence `[len, outputs]`.
    pub fn predict(&self, xs: &[&[f32]]) -> Result<Vec<Vec<f32>>> {
        let first = &self.members[0];
        let batch = SeqBatch::new(xs, first.spec.input)?;
        let mut sum: Option<Vec<Vec<f32>>> = None;
        for m in &self.members {
            let p = m.predict(&batch)?;
            sum = Some(match sum {
                None => p,
                Some(mut s) => {
                    for (a, b) in s.iter_mut().zip(&p) {
                        a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    }
                    s
                }
            });
        }
        let k = self.members.len() as f32;
        let mut out = sum.expect("≥ 1 member");
        out.iter_mut()
            .for_each(|s| s.iter_mut().for_each(|v| *v /= k));
        Ok(out)
    }

    /// Each member's own prediction (for the spread over restarts).
    pub fn predict_members(&self, xs: &[&[f32]]) -> Result<Vec<Vec<Vec<f32>>>> {
        let batch = SeqBatch::new(xs, self.members[0].spec.input)?;
        self.members.iter().map(|m| m.predict(&batch)).collect()
    }
}

/// Trains `restarts` networks (in parallel) on `train`, early-stopped on `dev`, and keeps the
/// best `keep_best`. `progress(done, total)` counts finished restarts.
pub fn train_ensemble(
    train: &[Sequence],
    dev: &[Sequence],
    dim: usize,
    outputs: usize,
    cfg: &SeqTrainConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Ensemble> {
    cfg.validate()?;
    if train.is_empty() || dev.is_empty() {
        return Err(LearnError::TooLittleData(format!(
            "sequence training needs training and development sequences ({} and {})",
            train.len(),
            dev.len()
        )));
    }
    for (what, set) in [("training", train), ("development", dev)] {
        for (i, s) in set.iter().enumerate() {
            let len = s.x.len() / dim.max(1);
            if s.x.is_empty() || s.x.len() != len * dim || s.y.len() != len * outputs {
                return Err(LearnError::Shape(format!(
                    "{what} sequence {i}: {} feature values and {} targets do not make whole {dim}-dim steps with {outputs} outputs",
                    s.x.len(),
                    s.y.len()
                )));
            }
            if let Some(j) = s.x.iter().chain(&s.y).position(|v| !v.is_finite()) {
                return Err(LearnError::NonFinite(format!(
                    "{what} sequence {i}: non-finite value at position {j}"
                )));
            }
        }
    }
    let spec = LstmSpec {
        input: dim,
        hidden: cfg.hidden.clone(),
        bidirectional: cfg.bidirectional,
        outputs,
    };
    spec.validate()?;
    let done = AtomicUsize::new(0);
    let runs: Vec<Result<(LstmNet<f32>, f64, Curve)>> = (0..cfg.restarts)
        .into_par_iter()
        .map(|r| {
            let out = one_restart(train, dev, &spec, cfg, r);
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, cfg.restarts);
            out
        })
        .collect();
    let mut runs: Vec<(LstmNet<f32>, f64, Curve)> = runs.into_iter().collect::<Result<_>>()?;
    let curves = runs.iter().map(|r| r.2.clone()).collect();
    runs.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.2.restart.cmp(&b.2.restart)));
    runs.truncate(cfg.keep_best);
    Ok(Ensemble {
        dev_loss: runs.iter().map(|r| r.1).collect(),
        members: runs.into_iter().map(|r| r.0).collect(),
        curves,
    })
}

fn one_restart(
    train: &[Sequence],
    dev: &[Sequence],
    spec: &LstmSpec,
    cfg: &SeqTrainConfig,
    restart: usize,
) -> Result<(LstmNet<f32>, f64, Curve)> {
    let seed = cfg
        .seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(restart as u64 + 1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut net = LstmNet::<f32>::new(spec.clone(), &mut rng)?;
    let mut opt = Optimizer::new(cfg.optimizer, net.params.len())?;
    let dev_refs: Vec<&Sequence> = dev.iter().collect();
    let mut best = (f64::INFINITY, net.params.clone(), 0usize);
    let mut curve = Curve {
        restart,
        train: Vec::new(),
        dev: Vec::new(),
        best_epoch: 0,
    };
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut since_best = 0;
    for epoch in 1..=cfg.max_epochs {
        rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
        let mut epoch_loss = 0.0;
        let mut updates = 0;
        for chunk in order.chunks(cfg.batch_size) {
            let seqs: Vec<&Sequence> = chunk.iter().map(|&i| &train[i]).collect();
            let noise_seed = rand::Rng::random::<u64>(&mut rng);
            let (l, mut g) =
                batch_gradient(&net, &seqs, cfg.loss, Some((cfg.noise_sd, noise_seed)), 1)?;
            if !l.is_finite() {
                return Err(LearnError::Diverged(format!(
                    "restart {restart}: training loss became {l} in epoch {epoch}; lower the learning rate"
                )));
            }
            opt.step(&mut net.params, &mut g, cfg.clip_norm);
            epoch_loss += l;
            updates += 1;
        }
        let d = mean_loss(&net, &dev_refs, cfg.loss)?;
        curve.train.push(epoch_loss / updates as f64);
        curve.dev.push(d);
        if d < best.0 {
            best = (d, net.params.clone(), epoch);
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= cfg.patience {
                break;
            }
        }
    }
    curve.best_epoch = best.2;
    net.params = best.1;
    Ok((net, best.0, curve))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ccc_loss_gradient_matches_finite_differences() {
        let pred: Vec<f64> = (0..14).map(|i| (i as f64 * 0.7).sin()).collect();
        let target: Vec<f64> = (0..14)
            .map(|i| (i as f64 * 0.3).cos() * 0.5 + 0.1)
            .collect();
        for loss in [SeqLoss::Ccc, SeqLoss::Mse] {
            let (l0, g) = sequence_loss(&pred, &target, 2, loss);
            assert!(l0.is_finite());
            for i in 0..pred.len() {
                let (mut a, mut b) = (pred.clone(), pred.clone());
                a[i] += 1e-6;
                b[i] -= 1e-6;
                let fd = (sequence_loss(&a, &target, 2, loss).0
                    - sequence_loss(&b, &target, 2, loss).0)
                    / 2e-6;
                assert!((fd - g[i]).abs() < 1e-7, "{loss:?} {i}: {fd} vs {}", g[i]);
            }
        }
        // Identity gives CCC 1, loss 0.
        assert!(sequence_loss(&target, &target, 2, SeqLoss::Ccc).0.abs() < 1e-12);
    }

    #[test]
    fn config_rules_name_the_knob() {
        let c = SeqTrainConfig {
            keep_best: 11,
            ..SeqTrainConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("keep_best"));
        let c = SeqTrainConfig {
            noise_sd: f64::NAN,
            ..SeqTrainConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("noise_sd"));
    }
}
