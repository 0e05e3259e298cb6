//! A small multilayer perceptron, classifier or regressor, trained with Adam on mini-batches:
//! ReLU hidden layers (default 128 → 16, as the RAVDESS probing code of Sun et al. 2025), inverted
//! dropout after each hidden layer, an L2 penalty on the weights with scikit-learn's
//! `MLPClassifier` convention (α/2·‖W‖² per batch, divided by the batch's weight sum), Glorot-uniform
//! initialisation, optional per-row weights (class weighting), and early stopping on a dev share
//! held out of the training rows (best dev loss kept, `patience` epochs without improvement end
//! the fit).
//!
//! With several input matrices (one per hidden state of an SSL model) the network's input is their
//! learned softmax-weighted sum `Σₗ softmax(a)ₗ·Xₗ` — SUPERB's featurizer (Yang et al., 2021) —
//! and the layer logits `a` are trained with the rest; [`Mlp::layer_weights`] reports them.
//!
//! Losses: softmax cross-entropy (classification; two classes use two outputs) or half squared
//! error summed over outputs (regression), averaged over rows by their weights. Backpropagation is
//! written out by hand; `gradient_matches_finite_differences` checks it, and the parity test checks
//! loss and gradients against scikit-learn's `_backprop`.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::linalg::gemm;
use crate::{check_matrix, LearnError, Result};

/// Training settings; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MlpConfig {
    /// Hidden layer widths (default [128, 16]); empty = a linear (softmax / linear) head.
    pub hidden: Vec<usize>,
    /// Dropout probability after each hidden layer (default 0.2).
    pub dropout: f64,
    /// Adam step size (default 1e-3, scikit-learn's and PyTorch's).
    pub learning_rate: f64,
    /// Adam step size of the layer-weight logits of a weighted sum (default 1e-2: their
    /// gradients are averages over every feature, so at the network's step they hardly move
    /// from uniform within an early-stopped fit).
    pub layer_weight_learning_rate: f64,
    /// L2 penalty α on the weights (default 1e-4, scikit-learn's `alpha`).
    pub alpha: f64,
    /// Rows per mini-batch (default 32).
    pub batch_size: usize,
    /// Epoch limit (default 200).
    pub max_epochs: usize,
    /// Epochs without a dev-loss improvement that end training (default 10).
    pub patience: usize,
    /// Share of the training rows held out for early stopping (default 0.1; 0 = none, then the
    /// training loss decides when to stop).
    pub dev_share: f64,
    /// Seed of initialisation, shuffling, dropout and the dev split.
    pub seed: u64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        MlpConfig {
            hidden: vec![128, 16],
            dropout: 0.2,
            learning_rate: 1e-3,
            layer_weight_learning_rate: 1e-2,
            alpha: 1e-4,
            batch_size: 32,
            max_epochs: 200,
            patience: 10,
            dev_share: 0.1,
            seed: 0,
        }
    }
}

/// What the network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MlpTask {
    /// Softmax over `n_labels` classes.
    Classify { n_labels: usize },
    /// `outputs` real values.
    Regress { outputs: usize },
}

impl MlpTask {
    fn outputs(self) -> usize {
        match self {
            MlpTask::Classify { n_labels } => n_labels,
            MlpTask::Regress { outputs } => outputs,
        }
    }
}

/// Training targets.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// One label in `0..n_labels` per row.
    Classes { y: &'a [usize], n_labels: usize },
    /// [rows, outputs] row-major values.
    Values { y: &'a [f64], outputs: usize },
}

/// One fully connected layer: `w` is [fan_in, fan_out] row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    pub w: Vec<f64>,
    pub b: Vec<f64>,
    pub fan_in: usize,
    pub fan_out: usize,
}

/// A fitted network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mlp {
    pub task: MlpTask,
    pub dense: Vec<Dense>,
    /// Logits of the layer weights (one per input matrix; empty for a single input).
    pub mix: Vec<f64>,
    pub dim: usize,
    /// Epochs run, and the epoch whose parameters were kept.
    pub epochs: usize,
    pub best_epoch: usize,
    /// Dev loss (or training loss without a dev share) of the kept parameters.
    pub best_loss: f64,
}

/// Gradients (and Adam moments) in the same layout as the parameters.
#[derive(Debug, Clone)]
struct Grads {
    w: Vec<Vec<f64>>,
    b: Vec<Vec<f64>>,
    mix: Vec<f64>,
}

impl Mlp {
    /// A network with Glorot-uniform weights (scikit-learn's initialisation for ReLU nets:
    /// U(±√(6 / (fan_in + fan_out))) for weights and biases) and uniform layer weights.
    pub fn init(task: MlpTask, inputs: usize, dim: usize, hidden: &[usize], seed: u64) -> Mlp {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let widths: Vec<usize> = std::iter::once(dim)
            .chain(hidden.iter().copied())
            .chain(std::iter::once(task.outputs()))
            .collect();
        let dense = widths
            .windows(2)
            .map(|w| {
                let bound = (6.0 / (w[0] + w[1]) as f64).sqrt();
                let mut draw = || rng.random_range(-bound..bound);
                Dense {
                    w: (0..w[0] * w[1]).map(|_| draw()).collect(),
                    b: (0..w[1]).map(|_| draw()).collect(),
                    fan_in: w[0],
                    fan_out: w[1],
                }
            })
            .collect();
        Mlp {
            task,
            dense,
            mix: if inputs > 1 {
                vec![0.0; inputs]
            } else {
                Vec::new()
            },
            dim,
            epochs: 0,
            best_epoch: 0,
            best_loss: f64::NAN,
        }
    }

    /// Trains on `inputs` (one [rows, dim] matrix per layer; one for a plain MLP).
    pub fn fit(
        inputs: &[&[f64]],
        rows: usize,
        dim: usize,
        targets: Targets<'_>,
        sample_weight: Option<&[f64]>,
        cfg: &MlpConfig,
    ) -> Result<Mlp> {
        check_config(cfg)?;
        check_inputs(inputs, rows, dim)?;
        let task = check_targets(targets, rows)?;
        if let Some(w) = sample_weight {
            if w.len() != rows || w.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(LearnError::SampleWeights { rows });
            }
        }
        let mut model = Mlp::init(task, inputs.len(), dim, &cfg.hidden, cfg.seed);
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5348_5546_464C_4531);
        let mut order: Vec<usize> = (0..rows).collect();
        order.shuffle(&mut rng);
        let n_dev = if cfg.dev_share > 0.0 {
            ((rows as f64 * cfg.dev_share).round() as usize).clamp(1, rows.saturating_sub(2))
        } else {
            0
        };
        let n_dev = if rows >= 4 { n_dev } else { 0 };
        let (dev, mut train) = (order[..n_dev].to_vec(), order[n_dev..].to_vec());
        let weight = |i: usize| sample_weight.map_or(1.0, |w| w[i]);
        let mut m = model.zero_grads();
        let mut v = model.zero_grads();
        let mut g = model.zero_grads();
        let mut step = 0i32;
        let mut best = (f64::INFINITY, model.clone(), 0usize);
        let mut since_best = 0usize;
        let mut epochs = 0;
        for epoch in 1..=cfg.max_epochs {
            epochs = epoch;
            train.shuffle(&mut rng);
            let mut train_loss = 0.0;
            for batch in train.chunks(cfg.batch_size) {
                let bw: Vec<f64> = batch.iter().map(|&i| weight(i)).collect();
                train_loss += model.loss_grad(
                    inputs,
                    dim,
                    batch,
                    &bw,
                    targets,
                    cfg.alpha,
                    Some((&mut rng, cfg.dropout)),
                    &mut g,
                ) * batch.len() as f64;
                step += 1;
                model.adam(
                    &g,
                    &mut m,
                    &mut v,
                    step,
                    cfg.learning_rate,
                    cfg.layer_weight_learning_rate,
                );
            }
            let loss = if dev.is_empty() {
                train_loss / train.len() as f64
            } else {
                let dw: Vec<f64> = dev.iter().map(|&i| weight(i)).collect();
                model.loss_grad(inputs, dim, &dev, &dw, targets, 0.0, None, &mut g)
            };
            if !loss.is_finite() {
                return Err(LearnError::Diverged(format!(
                    "MLP loss became {loss} at epoch {epoch} (lower the learning rate)"
                )));
            }
            if best.0.is_infinite() || loss < best.0 - 1e-4 * best.0.abs() {
                best = (loss, model.clone(), epoch);
                since_best = 0;
            } else {
                since_best += 1;
                if since_best >= cfg.patience {
                    break;
                }
            }
        }
        let (best_loss, mut kept, best_epoch) = best;
        kept.epochs = epochs;
        kept.best_epoch = best_epoch;
        kept.best_loss = best_loss;
        Ok(kept)
    }

    /// The softmax layer weights of the input sum (`[1.0]` for a single input).
    pub fn layer_weights(&self) -> Vec<f64> {
        if self.mix.is_empty() {
            vec![1.0]
        } else {
            softmax(&self.mix)
        }
    }

    /// Raw outputs [rows, outputs]: class scores (logits) or regression values.
    pub fn outputs(&self, inputs: &[&[f64]], rows: usize) -> Result<Vec<f64>> {
        check_inputs(inputs, rows, self.dim)?;
        if inputs.len() != self.mix.len().max(1) {
            return Err(LearnError::Shape(format!(
                "the model takes {} input layer(s), got {}",
                self.mix.len().max(1),
                inputs.len()
            )));
        }
        let idx: Vec<usize> = (0..rows).collect();
        let mut out = Vec::with_capacity(rows * self.task.outputs());
        for chunk in idx.chunks(1024) {
            let x = self.mixed(inputs, self.dim, chunk);
            let acts = self.forward(x, chunk.len(), None).0;
            out.extend_from_slice(acts.last().expect("at least one layer"));
        }
        Ok(out)
    }

    /// Most probable label per row (ties: the lowest label).
    pub fn predict(&self, inputs: &[&[f64]], rows: usize) -> Result<Vec<usize>> {
        let k = self.task.outputs();
        Ok(self
            .outputs(inputs, rows)?
            .chunks_exact(k)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold(
                        (0, f64::NEG_INFINITY),
                        |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                    )
                    .0
            })
            .collect())
    }

    fn zero_grads(&self) -> Grads {
        Grads {
            w: self.dense.iter().map(|d| vec![0.0; d.w.len()]).collect(),
            b: self.dense.iter().map(|d| vec![0.0; d.b.len()]).collect(),
            mix: vec![0.0; self.mix.len()],
        }
    }

    /// The network input for rows `idx`: the single input, or the softmax-weighted layer sum.
    fn mixed(&self, inputs: &[&[f64]], dim: usize, idx: &[usize]) -> Vec<f64> {
        let mut x = vec![0.0; idx.len() * dim];
        let weights = self.layer_weights();
        for (input, a) in inputs.iter().zip(&weights) {
            for (dst, &i) in x.chunks_exact_mut(dim).zip(idx) {
                for (d, s) in dst.iter_mut().zip(&input[i * dim..(i + 1) * dim]) {
                    *d += a * s;
                }
            }
        }
        x
    }

    /// Activations of every layer (input first) and the per-layer activation scale used by
    /// dropout (1/keep where kept, 0 where dropped; `None` without dropout).
    #[allow(clippy::type_complexity)]
    fn forward(
        &self,
        x: Vec<f64>,
        n: usize,
        mut dropout: Option<(&mut ChaCha8Rng, f64)>,
    ) -> (Vec<Vec<f64>>, Vec<Option<Vec<f64>>>) {
        let mut acts = vec![x];
        let mut masks = Vec::new();
        for (l, d) in self.dense.iter().enumerate() {
            let mut z = vec![0.0; n * d.fan_out];
            gemm(
                &mut z, &acts[l], &d.w, n, d.fan_in, d.fan_out, false, false, false,
            );
            for row in z.chunks_exact_mut(d.fan_out) {
                for (v, b) in row.iter_mut().zip(&d.b) {
                    *v += b;
                }
            }
            if l + 1 < self.dense.len() {
                z.iter_mut().for_each(|v| *v = v.max(0.0));
                match dropout.as_mut() {
                    Some((rng, p)) if *p > 0.0 => {
                        let keep = 1.0 - *p;
                        let mask: Vec<f64> = (0..z.len())
                            .map(|_| {
                                if rng.random::<f64>() < keep {
                                    1.0 / keep
                                } else {
                                    0.0
                                }
                            })
                            .collect();
                        z.iter_mut().zip(&mask).for_each(|(v, m)| *v *= m);
                        masks.push(Some(mask));
                    }
                    _ => masks.push(None),
                }
            }
            acts.push(z);
        }
        (acts, masks)
    }

    /// Loss on rows `idx` (weights `w`) and its gradient into `g`; dropout when `dropout` is set.
    #[allow(clippy::too_many_arguments)]
    fn loss_grad(
        &self,
        inputs: &[&[f64]],
        dim: usize,
        idx: &[usize],
        w: &[f64],
        targets: Targets<'_>,
        alpha: f64,
        dropout: Option<(&mut ChaCha8Rng, f64)>,
        g: &mut Grads,
    ) -> f64 {
        let n = idx.len();
        let total: f64 = w.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let x = self.mixed(inputs, dim, idx);
        let (acts, masks) = self.forward(x, n, dropout);
        let out = acts.last().expect("at least one layer");
        let k = self.task.outputs();
        let mut delta = vec![0.0; n * k];
        let mut loss = 0.0;
        for (r, &i) in idx.iter().enumerate() {
            let (o, d) = (&out[r * k..(r + 1) * k], &mut delta[r * k..(r + 1) * k]);
            let wr = w[r] / total;
            match targets {
                Targets::Classes { y, .. } => {
                    let lse = log_sum_exp(o);
                    loss += wr * (lse - o[y[i]]);
                    for (c, dv) in d.iter_mut().enumerate() {
                        *dv = wr * ((o[c] - lse).exp() - if c == y[i] { 1.0 } else { 0.0 });
                    }
                }
                Targets::Values { y, .. } => {
                    for (c, dv) in d.iter_mut().enumerate() {
                        let e = o[c] - y[i * k + c];
                        loss += wr * 0.5 * e * e;
                        *dv = wr * e;
                    }
                }
            }
        }
        let mut reg = 0.0;
        for l in (0..self.dense.len()).rev() {
            let d = &self.dense[l];
            gemm(
                &mut g.w[l],
                &acts[l],
                &delta,
                d.fan_in,
                n,
                d.fan_out,
                true,
                false,
                false,
            );
            for (gw, wv) in g.w[l].iter_mut().zip(&d.w) {
                *gw += alpha * wv / total;
                reg += wv * wv;
            }
            g.b[l].iter_mut().for_each(|v| *v = 0.0);
            for row in delta.chunks_exact(d.fan_out) {
                for (gb, dv) in g.b[l].iter_mut().zip(row) {
                    *gb += dv;
                }
            }
            if l == 0 && self.mix.is_empty() {
                break;
            }
            let mut below = vec![0.0; n * d.fan_in];
            gemm(
                &mut below, &delta, &d.w, n, d.fan_out, d.fan_in, false, true, false,
            );
            if l > 0 {
                // Through ReLU (and dropout's scale) of the layer below.
                let a = &acts[l];
                match &masks[l - 1] {
                    Some(mask) => below
                        .iter_mut()
                        .zip(a)
                        .zip(mask)
                        .for_each(|((v, &av), &mv)| *v = if av > 0.0 { *v * mv } else { 0.0 }),
                    None => below
                        .iter_mut()
                        .zip(a)
                        .for_each(|(v, &av)| *v = if av > 0.0 { *v } else { 0.0 }),
                }
            } else {
                // d loss / d layer weight αₗ = Σ dx · Xₗ; then through the softmax.
                let alphas = self.layer_weights();
                let gl: Vec<f64> = inputs
                    .iter()
                    .map(|input| {
                        below
                            .chunks_exact(dim)
                            .zip(idx)
                            .map(|(dx, &i)| {
                                dx.iter()
                                    .zip(&input[i * dim..(i + 1) * dim])
                                    .map(|(a, b)| a * b)
                                    .sum::<f64>()
                            })
                            .sum()
                    })
                    .collect();
                let mean: f64 = alphas.iter().zip(&gl).map(|(a, g)| a * g).sum();
                for ((gm, a), gv) in g.mix.iter_mut().zip(&alphas).zip(&gl) {
                    *gm = a * (gv - mean);
                }
            }
            delta = below;
        }
        loss + 0.5 * alpha * reg / total
    }

    /// One Adam step (β₁ 0.9, β₂ 0.999, ε 1e-8); `mix_lr` for the layer-weight logits.
    fn adam(&mut self, g: &Grads, m: &mut Grads, v: &mut Grads, t: i32, lr: f64, mix_lr: f64) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let correction = (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
        let update = |p: &mut [f64], g: &[f64], m: &mut [f64], v: &mut [f64], lr: f64| {
            let step = lr * correction;
            for i in 0..p.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                p[i] -= step * m[i] / (v[i].sqrt() + eps);
            }
        };
        for l in 0..self.dense.len() {
            update(&mut self.dense[l].w, &g.w[l], &mut m.w[l], &mut v.w[l], lr);
            update(&mut self.dense[l].b, &g.b[l], &mut m.b[l], &mut v.b[l], lr);
        }
        update(&mut self.mix, &g.mix, &mut m.mix, &mut v.mix, mix_lr);
    }

    /// Loss and flat gradient [W₀, b₀, W₁, b₁, …, mix] on all rows without dropout — the
    /// quantity scikit-learn's `_backprop` returns, for parity tests and gradient checks.
    pub fn loss_and_gradient(
        &self,
        inputs: &[&[f64]],
        rows: usize,
        targets: Targets<'_>,
        alpha: f64,
    ) -> Result<(f64, Vec<f64>)> {
        check_inputs(inputs, rows, self.dim)?;
        check_targets(targets, rows)?;
        let idx: Vec<usize> = (0..rows).collect();
        let mut g = self.zero_grads();
        let loss = self.loss_grad(
            inputs,
            self.dim,
            &idx,
            &vec![1.0; rows],
            targets,
            alpha,
            None,
            &mut g,
        );
        let mut flat = Vec::new();
        for l in 0..self.dense.len() {
            flat.extend_from_slice(&g.w[l]);
            flat.extend_from_slice(&g.b[l]);
        }
        flat.extend_from_slice(&g.mix);
        Ok((loss, flat))
    }
}

fn check_config(cfg: &MlpConfig) -> Result<()> {
    let bad = |what: String| Err(LearnError::Config(format!("MLP config: {what}")));
    if !(0.0..1.0).contains(&cfg.dropout) {
        return bad(format!("dropout must be in [0, 1), got {}", cfg.dropout));
    }
    if !(cfg.layer_weight_learning_rate > 0.0 && cfg.layer_weight_learning_rate.is_finite()) {
        return bad(format!(
            "layer weight learning rate must be positive, got {}",
            cfg.layer_weight_learning_rate
        ));
    }
    if !(cfg.learning_rate > 0.0 && cfg.learning_rate.is_finite()) {
        return bad(format!(
            "learning rate must be positive, got {}",
            cfg.learning_rate
        ));
    }
    if !(cfg.alpha >= 0.0 && cfg.alpha.is_finite()) {
        return bad(format!("alpha must be ≥ 0, got {}", cfg.alpha));
    }
    if cfg.batch_size == 0 || cfg.max_epochs == 0 || cfg.patience == 0 {
        return bad("batch size, max epochs and patience must be ≥ 1".into());
    }
    if !(0.0..0.9).contains(&cfg.dev_share) {
        return bad(format!(
            "dev share must be in [0, 0.9), got {}",
            cfg.dev_share
        ));
    }
    if cfg.hidden.contains(&0) {
        return bad("hidden layer widths must be ≥ 1".into());
    }
    Ok(())
}

fn check_inputs(inputs: &[&[f64]], rows: usize, dim: usize) -> Result<()> {
    if inputs.is_empty() {
        return Err(LearnError::TooLittleData("MLP: no input matrix".into()));
    }
    if rows == 0 {
        return Err(LearnError::TooLittleData("MLP: no rows".into()));
    }
    for (l, x) in inputs.iter().enumerate() {
        check_matrix(x, rows, dim, &format!("MLP input {l}"))?;
    }
    Ok(())
}

fn check_targets(targets: Targets<'_>, rows: usize) -> Result<MlpTask> {
    match targets {
        Targets::Classes { y, n_labels } => {
            if y.len() != rows {
                return Err(LearnError::LabelCount {
                    labels: y.len(),
                    rows,
                });
            }
            if let Some(bad) = y.iter().find(|&&l| l >= n_labels) {
                return Err(LearnError::LabelOutOfRange {
                    label: *bad,
                    n_labels,
                });
            }
            Ok(MlpTask::Classify { n_labels })
        }
        Targets::Values { y, outputs } => {
            check_matrix(y, rows, outputs, "MLP targets")?;
            Ok(MlpTask::Regress { outputs })
        }
    }
}

fn softmax(v: &[f64]) -> Vec<f64> {
    let lse = log_sum_exp(v);
    v.iter().map(|x| (x - lse).exp()).collect()
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(rows: usize, dim: usize, layers: usize) -> Vec<Vec<f64>> {
        (0..layers)
            .map(|l| {
                (0..rows * dim)
                    .map(|i| ((i * 31 + l * 17) as f64 * 0.173).sin())
                    .collect()
            })
            .collect()
    }

    /// Central differences agree with backpropagation, through the softmax layer weights too.
    #[test]
    fn gradient_matches_finite_differences() {
        let (rows, dim) = (7, 5);
        let x = data(rows, dim, 3);
        let inputs: Vec<&[f64]> = x.iter().map(|v| v.as_slice()).collect();
        let y = [0usize, 2, 1, 1, 0, 2, 2];
        let yv: Vec<f64> = (0..rows * 2).map(|i| (i as f64 * 0.4).cos()).collect();
        for targets in [
            Targets::Classes { y: &y, n_labels: 3 },
            Targets::Values { y: &yv, outputs: 2 },
        ] {
            let task = check_targets(targets, rows).unwrap();
            let mut model = Mlp::init(task, 3, dim, &[4, 3], 5);
            model.mix = vec![0.3, -0.2, 0.1];
            let (_, g) = model
                .loss_and_gradient(&inputs, rows, targets, 0.01)
                .unwrap();
            let mut flat_index = 0;
            let mut check = |model: &mut Mlp, get: &dyn Fn(&mut Mlp) -> &mut f64| {
                let orig = *get(model);
                *get(model) = orig + 1e-6;
                let hi = model
                    .loss_and_gradient(&inputs, rows, targets, 0.01)
                    .unwrap()
                    .0;
                *get(model) = orig - 1e-6;
                let lo = model
                    .loss_and_gradient(&inputs, rows, targets, 0.01)
                    .unwrap()
                    .0;
                *get(model) = orig;
                let num = (hi - lo) / 2e-6;
                assert!(
                    (num - g[flat_index]).abs() < 1e-6,
                    "param {flat_index}: {num} vs {}",
                    g[flat_index]
                );
                flat_index += 1;
            };
            for l in 0..model.dense.len() {
                for i in 0..model.dense[l].w.len() {
                    check(&mut model, &|m: &mut Mlp| &mut m.dense[l].w[i]);
                }
                for i in 0..model.dense[l].b.len() {
                    check(&mut model, &|m: &mut Mlp| &mut m.dense[l].b[i]);
                }
            }
            for i in 0..3 {
                check(&mut model, &|m: &mut Mlp| &mut m.mix[i]);
            }
        }
    }

    /// The weighted sum learns to favour the one layer that carries the label.
    #[test]
    fn weighted_sum_finds_the_informative_layer() {
        let (rows, dim) = (240, 4);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let y: Vec<usize> = (0..rows).map(|i| i % 3).collect();
        let noise = |rng: &mut ChaCha8Rng| rng.random_range(-1.0..1.0);
        let layers: Vec<Vec<f64>> = (0..3)
            .map(|l| {
                (0..rows * dim)
                    .map(|i| {
                        let signal = if l == 1 && i % dim == y[i / dim] {
                            1.5
                        } else {
                            0.0
                        };
                        signal + noise(&mut rng)
                    })
                    .collect()
            })
            .collect();
        let inputs: Vec<&[f64]> = layers.iter().map(|v| v.as_slice()).collect();
        let cfg = MlpConfig {
            hidden: vec![],
            dropout: 0.0,
            learning_rate: 0.03,
            max_epochs: 60,
            ..MlpConfig::default()
        };
        let m = Mlp::fit(
            &inputs,
            rows,
            dim,
            Targets::Classes { y: &y, n_labels: 3 },
            None,
            &cfg,
        )
        .unwrap();
        let w = m.layer_weights();
        assert!(w[1] > 0.6, "{w:?}");
        let pred = m.predict(&inputs, rows).unwrap();
        let acc = pred.iter().zip(&y).filter(|(a, b)| a == b).count() as f64 / rows as f64;
        assert!(acc > 0.8, "accuracy {acc}");
        let err = Mlp::fit(
            &inputs,
            rows,
            dim,
            Targets::Classes { y: &y, n_labels: 3 },
            None,
            &MlpConfig {
                dropout: 1.0,
                ..cfg
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("dropout"), "{err}");
    }
}
