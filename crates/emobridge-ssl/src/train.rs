//! Fine-tuning an encoder with a pooling + head on top: losses, AdamW with separate learning
//! rates for the encoder side and the head, warm-up with linear or cosine decay, gradient
//! accumulation, global-norm clipping, length-bucketed batches with attention masks (per-length
//! batches for group-norm models), early stopping on a dev share, and checkpoints holding only
//! the trainable parameters.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{Module, ParamsAdamW, VarMap};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::ConvNorm;
use crate::error::{InputError, Result, SslError};
use crate::peft::{Method, TrainableEncoder};

type CResult<T> = candle_core::Result<T>;

/// Sets up the process for training on the CPU; call it first thing (in `main`, or at the start
/// of a command that trains), before the first tensor operation:
///
/// * candle runs its elementwise ops (residual sums, and the gradient sums its backward pass
///   does for every edge of the graph) on the calling thread, unless `CANDLE_NUM_THREADS` is
///   set already. By default candle splits each op of ≥ 64 Ki values over a pool of its own
///   threads that spin while they wait; in training the cores are busy with the matrix
///   products' threads (rayon), and perf put 11 % of a BitFit step's CPU time (wav2vec2-base,
///   2 threads) in that pool's barrier. The ops are memory-bound, so one thread loses little.
/// * glibc's allocator keeps freed memory for reuse (allocations up to 32 MiB from its heaps,
///   which are not trimmed below 1 GiB of free space), instead of returning each step's
///   activation and gradient buffers to the system and faulting them in again, zero-filled,
///   the next step: 542 k → 255 k page faults over a BitFit run of 3 steps, 1.02 M → 0.68 M for
///   full fine-tuning (perf stat). Peak memory stays the same; memory freed after training
///   stays with the process for reuse.
pub fn prepare_process_for_training() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called with valid options.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// How frames become one vector per clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over valid frames.
    Mean,
    /// Softmax-weighted mean with a learned score per frame (a linear layer H → 1).
    Attentive,
}

/// The classifier / regressor on the pooled vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    Linear,
    /// Linear → ReLU → Linear.
    Mlp,
}

/// Learning-rate decay after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    Linear,
    Cosine,
}

/// Loss for continuous targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegressionLoss {
    Mse,
    /// 1 − concordance correlation coefficient, averaged over outputs.
    Ccc,
}

/// Which code computes a training step on the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ops {
    /// The fused CPU ops with hand-written backward passes (linear layers, softmax, layer norm,
    /// GELU, dropout, the positional conv), the frozen feature encoder on the packed kernels,
    /// AdamW and clipping in place: the default, for CPU f32 tensors (elsewhere, e.g. on a GPU,
    /// the plain route is taken whatever this says).
    #[default]
    Fused,
    /// candle's composed ops throughout, and candle's conv for the frozen feature encoder: the
    /// route a GPU takes, selectable on the CPU so that it is tested there against the fused one
    /// (same arithmetic; results agree to rounding, not bit for bit).
    Plain,
}

impl Ops {
    fn is_fused(&self) -> bool {
        *self == Ops::Fused
    }
}

/// What the head predicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Task {
    /// Cross-entropy over `classes`, optionally class-weighted (torch's weighted mean).
    Classification {
        classes: usize,
        class_weights: Option<Vec<f32>>,
    },
    /// `outputs` continuous values (e.g. arousal, valence).
    Regression {
        outputs: usize,
        loss: RegressionLoss,
    },
}

impl Task {
    fn outputs(&self) -> usize {
        match self {
            Task::Classification { classes, .. } => *classes,
            Task::Regression { outputs, .. } => *outputs,
        }
    }
}

/// Head and optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub pooling: Pooling,
    pub head: HeadKind,
    /// Hidden width of the MLP head.
    pub mlp_hidden: usize,
    /// `frozen` / full-model methods: which hidden state feeds the head (None = the last).
    pub layer: Option<usize>,
    pub epochs: usize,
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    pub grad_accum: usize,
    /// Learning rate of the encoder-side parameters (LoRA, adapters, biases, weights).
    pub lr_encoder: f64,
    /// Learning rate of the head (and the layer weights of `weighted-sum`).
    pub lr_head: f64,
    pub weight_decay: f64,
    /// Share of the optimiser steps spent warming up linearly from 0.
    pub warmup_share: f64,
    pub schedule: Schedule,
    /// Global gradient-norm clip (0 = none).
    pub clip_norm: f64,
    /// Epochs without dev-loss improvement before stopping (0 = never stop early).
    pub patience: usize,
    /// With a resume folder ([`FineTuner::train_resumable`]): also save the resume state every
    /// this many optimiser steps inside an epoch (0 = only at each epoch's end, the default;
    /// each save writes the trainable parameters three times over: values, moments, best).
    pub checkpoint_every: usize,
    pub seed: u64,
    /// Which code computes the steps on the CPU (default `fused`; `plain` = candle's ops, the
    /// GPU's route). Left out of the serialised form when `fused`, so settings and resume
    /// fingerprints of default runs stay as they were.
    #[serde(skip_serializing_if = "Ops::is_fused")]
    pub ops: Ops,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            pooling: Pooling::Mean,
            head: HeadKind::Linear,
            mlp_hidden: 256,
            layer: None,
            epochs: 20,
            batch_size: 8,
            grad_accum: 1,
            lr_encoder: 5e-5,
            lr_head: 1e-3,
            weight_decay: 0.01,
            warmup_share: 0.1,
            schedule: Schedule::Linear,
            clip_norm: 1.0,
            patience: 5,
            checkpoint_every: 0,
            seed: 0,
            ops: Ops::Fused,
        }
    }
}

impl TrainConfig {
    /// Rejects absurd values with a one-line reason.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(SslError::Input(InputError::Setting(m.to_string())));
        if self.epochs == 0 {
            return bad("epochs must be ≥ 1");
        }
        if self.batch_size == 0 || self.grad_accum == 0 {
            return bad("batch_size and grad_accum must be ≥ 1");
        }
        if self.head == HeadKind::Mlp && self.mlp_hidden == 0 {
            return bad("mlp_hidden must be ≥ 1");
        }
        for (name, lr) in [("lr_encoder", self.lr_encoder), ("lr_head", self.lr_head)] {
            if !(lr.is_finite() && lr >= 0.0) {
                return Err(InputError::Setting(format!("{name} must be ≥ 0, got {lr}")).into());
            }
        }
        if !(0.0..1.0).contains(&self.warmup_share) {
            return bad("warmup_share must be in [0, 1)");
        }
        if !(self.clip_norm.is_finite() && self.clip_norm >= 0.0) {
            return bad("clip_norm must be ≥ 0");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay must be ≥ 0");
        }
        Ok(())
    }
}

/// Learning-rate multiplier at optimiser step `step` (0-based) of `total`.
pub fn lr_factor(step: usize, total: usize, warmup: usize, schedule: Schedule) -> f64 {
    if step < warmup {
        return (step + 1) as f64 / warmup as f64;
    }
    let rest = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / rest).min(1.0);
    match schedule {
        Schedule::Constant => 1.0,
        Schedule::Linear => 1.0 - progress,
        Schedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
    }
}

/// A prepared clip (samples already normalised as the checkpoint asks) and its target.
#[derive(Debug, Clone)]
pub struct Example {
    pub samples: Vec<f32>,
    /// Class index (classification).
    pub label: usize,
    /// Continuous targets (regression).
    pub values: Vec<f32>,
}

/// Pooling and head parameters, all trainable (in their own `VarMap`, names `head.*`).
pub struct Head {
    vars: VarMap,
    layer_weights: Option<Tensor>,
    layer: usize,
    attention: Option<candle_nn::Linear>,
    hidden: Option<candle_nn::Linear>,
    out: candle_nn::Linear,
}

fn seeded_linear(
    vars: &VarMap,
    name: &str,
    inp: usize,
    out: usize,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> CResult<candle_nn::Linear> {
    use rand::Rng;
    let bound = 1.0 / (inp as f64).sqrt();
    let w: Vec<f32> = (0..inp * out)
        .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32)
        .collect();
    let b: Vec<f32> = (0..out)
        .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32)
        .collect();
    let mut data = vars.data().lock().unwrap_or_else(|e| e.into_inner());
    let w = Var::from_tensor(&Tensor::from_vec(w, (out, inp), device)?)?;
    let b = Var::from_tensor(&Tensor::from_vec(b, out, device)?)?;
    data.insert(format!("{name}.weight"), w.clone());
    data.insert(format!("{name}.bias"), b.clone());
    Ok(candle_nn::Linear::new(
        w.as_tensor().clone(),
        Some(b.as_tensor().clone()),
    ))
}

impl Head {
    /// A head for `states` hidden states of width `hidden`, initialised like torch's
    /// `nn.Linear` from `seed` (the values drawn on the CPU, so they are the same on any
    /// device), its parameters on `device`.
    pub fn new(
        method: Method,
        states: usize,
        hidden: usize,
        task: &Task,
        cfg: &TrainConfig,
        device: &Device,
    ) -> Result<Self> {
        let vars = VarMap::new();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x4ead);
        let layer = cfg.layer.unwrap_or(states - 1);
        if layer >= states {
            return Err(InputError::NoSuchLayer {
                layer,
                last: states - 1,
            }
            .into());
        }
        let layer_weights = if method == Method::WeightedSum {
            let v = Var::from_tensor(&Tensor::zeros(states, DType::F32, device)?)?;
            vars.data()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert("head.layer_weights".into(), v.clone());
            Some(v.as_tensor().clone())
        } else {
            None
        };
        let attention = match cfg.pooling {
            Pooling::Attentive => Some(seeded_linear(
                &vars,
                "head.attention",
                hidden,
                1,
                &mut rng,
                device,
            )?),
            Pooling::Mean => None,
        };
        let (hidden_layer, width) = match cfg.head {
            HeadKind::Mlp => (
                Some(seeded_linear(
                    &vars,
                    "head.dense",
                    hidden,
                    cfg.mlp_hidden,
                    &mut rng,
                    device,
                )?),
                cfg.mlp_hidden,
            ),
            HeadKind::Linear => (None, hidden),
        };
        let out = seeded_linear(&vars, "head.out", width, task.outputs(), &mut rng, device)?;
        Ok(Head {
            vars,
            layer_weights,
            layer,
            attention,
            hidden: hidden_layer,
            out,
        })
    }

    pub fn vars(&self) -> &VarMap {
        &self.vars
    }

    /// The softmax layer weights of `weighted-sum`.
    pub fn layer_weights(&self) -> Result<Option<Vec<f32>>> {
        match &self.layer_weights {
            Some(w) => Ok(Some(candle_nn::ops::softmax(w, 0)?.to_vec1()?)),
            None => Ok(None),
        }
    }

    /// The head on mean-pooled hidden states `pooled` [B, L+1, H] (every state's mean over a
    /// clip's valid frames): [`Self::forward`] with mean pooling, reordered (the layer weights'
    /// sum taken after pooling instead of before, equal up to rounding since both are linear).
    /// Attentive pooling needs the frames: use [`Self::forward`].
    pub fn forward_pooled(&self, pooled: &Tensor) -> CResult<Tensor> {
        if self.attention.is_some() {
            candle_core::bail!("attentive pooling needs the frames, not pooled states");
        }
        let x = match &self.layer_weights {
            Some(w) => {
                let n = w.dim(0)?;
                let w = candle_nn::ops::softmax(w, 0)?;
                pooled.broadcast_mul(&w.reshape((1, n, 1))?)?.sum(1)?
            }
            None => pooled.narrow(1, self.layer, 1)?.squeeze(1)?,
        };
        let z = match &self.hidden {
            Some(h) => h.forward(&x)?.relu()?,
            None => x,
        };
        self.out.forward(&z)
    }

    /// `states`: L+1 tensors [B, T, H]; `mask`: [B, T] (1 valid, 0 padding) → [B, outputs].
    pub fn forward(&self, states: &[Tensor], mask: &Tensor) -> CResult<Tensor> {
        let x = match &self.layer_weights {
            Some(w) => {
                let w = candle_nn::ops::softmax(w, 0)?;
                let stacked = Tensor::stack(states, 0)?;
                let n = states.len();
                stacked.broadcast_mul(&w.reshape((n, 1, 1, 1))?)?.sum(0)?
            }
            None => states[self.layer].clone(),
        };
        let m = mask.unsqueeze(2)?;
        let pooled = match &self.attention {
            None => {
                let sum = x.broadcast_mul(&m)?.sum(1)?;
                sum.broadcast_div(&m.sum(1)?)?
            }
            Some(att) => {
                let scores = att.forward(&x)?;
                let neg = ((m.ones_like()? - &m)? * -1e9)?;
                let p = candle_nn::ops::softmax(&(scores + neg)?, 1)?;
                x.broadcast_mul(&p)?.sum(1)?
            }
        };
        let z = match &self.hidden {
            Some(h) => h.forward(&pooled)?.relu()?,
            None => pooled,
        };
        self.out.forward(&z)
    }
}

/// The loss of `out` [B, outputs] against a batch's targets.
pub fn loss(task: &Task, out: &Tensor, batch: &[&Example]) -> CResult<Tensor> {
    let dev = out.device();
    match task {
        Task::Classification { class_weights, .. } => {
            let labels: Vec<u32> = batch.iter().map(|e| e.label as u32).collect();
            let n = labels.len();
            let logp = candle_nn::ops::log_softmax(out, D::Minus1)?;
            let picked = logp
                .gather(&Tensor::from_vec(labels.clone(), (n, 1), dev)?, 1)?
                .squeeze(1)?;
            let w: Vec<f32> = match class_weights {
                Some(cw) => labels.iter().map(|&l| cw[l as usize]).collect(),
                None => vec![1.0; n],
            };
            let total: f32 = w.iter().sum();
            let w = Tensor::from_vec(w, n, dev)?;
            (picked.mul(&w)?.sum_all()? * (-1.0 / total as f64))?.reshape(())
        }
        Task::Regression { outputs, loss } => {
            let vals: Vec<f32> = batch.iter().flat_map(|e| e.values.clone()).collect();
            let y = Tensor::from_vec(vals, (batch.len(), *outputs), dev)?;
            match loss {
                RegressionLoss::Mse => out.sub(&y)?.sqr()?.mean_all(),
                RegressionLoss::Ccc => {
                    let mx = out.mean_keepdim(0)?;
                    let my = y.mean_keepdim(0)?;
                    let dx = out.broadcast_sub(&mx)?;
                    let dy = y.broadcast_sub(&my)?;
                    let vx = dx.sqr()?.mean(0)?;
                    let vy = dy.sqr()?.mean(0)?;
                    let cov = dx.mul(&dy)?.mean(0)?;
                    let diff = mx.sub(&my)?.sqr()?.squeeze(0)?;
                    let ccc = ((cov * 2.0)? / (vx + vy + diff)?)?;
                    (1.0 - ccc.mean_all()?)?.reshape(())
                }
            }
        }
    }
}

/// One epoch's record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub train_loss: f64,
    pub dev_loss: f64,
    /// Learning-rate multiplier at the end of the epoch.
    pub lr_factor: f64,
}

/// What a training run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    pub curve: Vec<EpochLog>,
    /// The epoch whose parameters were kept (lowest dev loss).
    pub best_epoch: usize,
    pub best_dev_loss: f64,
    pub stopped_early: bool,
    pub optimizer_steps: usize,
    pub trainable_encoder: usize,
    pub trainable_head: usize,
}

/// Why training stopped without a result.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("training diverged: loss is {loss} at epoch {epoch}, step {step} (lower the learning rates or enable clipping); no checkpoint was written")]
    Diverged {
        epoch: usize,
        step: usize,
        loss: f32,
    },
    #[error(transparent)]
    Ssl(#[from] SslError),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
}

/// AdamW with decoupled weight decay, the same arithmetic as `candle_nn::AdamW` (and
/// `torch.optim.AdamW`), whose moments and step count can be saved and restored.
struct Adam {
    /// (parameter, first moment, second moment)
    vars: Vec<(Var, Var, Var)>,
    params: ParamsAdamW,
    step_t: usize,
}

impl Adam {
    fn new(vars: &[(String, Var)], params: ParamsAdamW) -> CResult<Self> {
        let vars = vars
            .iter()
            .map(|(_, v)| {
                let m = Var::zeros(v.shape(), v.dtype(), v.device())?;
                let s = Var::zeros(v.shape(), v.dtype(), v.device())?;
                Ok((v.clone(), m, s))
            })
            .collect::<CResult<Vec<_>>>()?;
        Ok(Adam {
            vars,
            params,
            step_t: 0,
        })
    }

    fn step(&mut self, grads: &candle_core::backprop::GradStore) -> CResult<()> {
        self.step_t += 1;
        let p = &self.params;
        let (lr, beta1, beta2) = (p.lr, p.beta1, p.beta2);
        let lr_lambda = lr * p.weight_decay;
        let scale_m = 1f64 / (1f64 - beta1.powi(self.step_t as i32));
        let scale_v = 1f64 / (1f64 - beta2.powi(self.step_t as i32));
        let fused = crate::fused::AdamStep {
            lr,
            weight_decay: p.weight_decay,
            beta1,
            beta2,
            eps: p.eps,
            scale_m,
            scale_v,
        };
        for (theta, m, v) in &self.vars {
            if let Some(g) = grads.get(theta) {
                // CPU f32: in place, in three passes; elsewhere candle's ops below.
                if crate::fused::adamw_in_place(theta, m, v, g, &fused)? {
                    continue;
                }
                let next_m = ((m.as_tensor() * beta1)? + (g * (1.0 - beta1))?)?;
                let next_v = ((v.as_tensor() * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
                let m_hat = (&next_m * scale_m)?;
                let v_hat = (&next_v * scale_v)?;
                let next_theta = (theta.as_tensor() * (1f64 - lr_lambda))?;
                let adjusted = (m_hat / (v_hat.sqrt()? + p.eps)?)?;
                let next_theta = (next_theta - (adjusted * lr)?)?;
                m.set(&next_m)?;
                v.set(&next_v)?;
                theta.set(&next_theta)?;
            }
        }
        Ok(())
    }
}

/// The resume state's scalar part (`state.json`); its tensors are in the file it names.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeRecord {
    /// What the state belongs to: the training config, task, data sizes and parameter names.
    fingerprint: String,
    tensors: String,
    /// Epochs finished.
    epoch: usize,
    step: usize,
    /// The current epoch's shuffled batches and the next group to run (None: between epochs).
    batches: Option<Vec<Vec<usize>>>,
    next_group: usize,
    loss_sum: f64,
    seen: usize,
    /// Word positions of the shuffle and dropout generators (decimal u128).
    shuffle_rng: String,
    dropout_rng: String,
    enc_step_t: usize,
    head_step_t: usize,
    curve: Vec<EpochLog>,
    best_dev_loss: Option<f64>,
    best_epoch: usize,
    since_best: usize,
    stopped_early: bool,
}

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// An encoder with its head, ready to train.
pub struct FineTuner {
    pub encoder: TrainableEncoder,
    pub head: Head,
    pub task: Task,
    pub cfg: TrainConfig,
    /// Per-clip encoder outputs that do not change while training (see [`ClipCache`]), keyed
    /// by the clip's content ([`clip_key`]), not its index: the training, dev and test sets
    /// index their clips from 0 each. Shared with other fine-tuners by [`Self::share_cache`].
    cache: ClipCache,
    /// A frozen encoder with mean pooling trains the head on each clip's pooled hidden states
    /// (the default); off, on the padded frames (the route before; tests compare the two).
    pooled_route: bool,
    /// Nothing below the first transformer layer trains ([`TrainableEncoder::front_is_frozen`]),
    /// so each clip's first-layer input is computed once and reused.
    front_route: bool,
    passes: PassCounts,
}

/// How much encoder work a fine-tuner has done, in clips and samples (sum of their lengths):
/// what the training loop's cost is made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PassCounts {
    /// Clips that went through the layers below the first transformer layer (conv feature
    /// encoder, projection, positional conv), computed (not taken from the cache).
    pub front_clips: usize,
    pub front_samples: usize,
    /// Clips whose first-layer input came from the cache instead.
    pub front_reused: usize,
    /// Clips through the transformer layers with a backward pass (training batches of a
    /// method that trains the encoder).
    pub train_clips: usize,
    pub train_samples: usize,
    /// Clips through the transformer layers, forward only (dev and test of such a method).
    pub eval_clips: usize,
    pub eval_samples: usize,
    /// Clips through a frozen encoder (whole forward, once per clip).
    pub frozen_clips: usize,
    pub frozen_samples: usize,
    /// Clip passes of a frozen encoder answered from the cache (head only).
    pub frozen_reused: usize,
    /// Process CPU seconds (every thread, [`process_cpu_seconds`]) of the training batches'
    /// forward passes and losses (the fronts computed there included), of their backward
    /// passes, of clipping and the optimiser steps, and of the dev and test passes.
    pub cpu_forward: f64,
    pub cpu_backward: f64,
    pub cpu_update: f64,
    pub cpu_eval: f64,
}

/// CPU seconds this process has used so far, all threads (user + system; `getrusage`), or 0
/// where that is not available.
pub fn process_cpu_seconds() -> f64 {
    #[cfg(unix)]
    {
        // SAFETY: getrusage writes into the zeroed struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } == 0 {
            let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 * 1e-6;
            return t(u.ru_utime) + t(u.ru_stime);
        }
    }
    0.0
}

/// Most bytes of first-layer inputs a [`ClipCache`] keeps (2 GiB: a base-size encoder's
/// inputs of about 3.9 hours of audio); clips beyond it are recomputed in every pass.
pub const FRONT_CACHE_BYTES: usize = 2 << 30;

type ClipKey = (u64, usize);

#[derive(Default)]
struct CacheInner {
    /// Frozen encoder, mean pooling: every hidden state's mean over the clip's frames, [L+1, H].
    pooled: HashMap<ClipKey, Tensor>,
    /// Frozen encoder, attentive pooling: every hidden state's frames, L+1 × [1, T, H].
    frames: HashMap<ClipKey, Vec<Tensor>>,
    /// Trained encoder with a frozen front: the first transformer layer's input [1, T, H].
    front: HashMap<ClipKey, Tensor>,
    front_bytes: usize,
    /// Also keep the first-layer inputs a frozen encoder's passes produce (its hidden state 0).
    fronts_from_frozen: bool,
}

impl CacheInner {
    /// Keeps `x` as `key`'s first-layer input while the budget has room.
    fn keep_front(&mut self, key: ClipKey, x: &Tensor) {
        let bytes = x.elem_count() * x.dtype().size_in_bytes();
        if !self.front.contains_key(&key) && self.front_bytes + bytes <= FRONT_CACHE_BYTES {
            self.front_bytes += bytes;
            self.front.insert(key, x.clone());
        }
    }
}

/// Per-clip encoder outputs that stay the same while training, computed once per clip: a
/// frozen encoder's pooled hidden states (its frames with attentive pooling), and, for a method
/// that trains only inside the transformer layers (LoRA, adapters), the first layer's input.
/// A fine-tuner has its own; [`FineTuner::share_cache`] lets fine-tuners of one study (folds,
/// stages, directions, methods) share one, so that no clip goes through the frozen parts twice.
/// Share it only between fine-tuners built from the same pretrained weights: the entries are
/// keyed by the clip's samples, not by the model. Cloning shares the same cache.
#[derive(Clone, Default)]
pub struct ClipCache {
    inner: Arc<Mutex<CacheInner>>,
}

impl ClipCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Clips held: (pooled, frames, first-layer inputs).
    pub fn len(&self) -> (usize, usize, usize) {
        let c = self.lock();
        (c.pooled.len(), c.frames.len(), c.front.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0, 0)
    }

    /// Also keep the first-layer input (hidden state 0) of every clip a frozen encoder passes,
    /// for the fine-tuners of LoRA or adapters sharing this cache: their first pass over a
    /// clip then skips the frozen front too. Off by default (it costs memory a study of frozen
    /// methods alone does not need).
    pub fn keep_fronts_from_frozen(&self, on: bool) {
        self.lock().fronts_from_frozen = on;
    }
}

fn snapshot(vars: &[(String, Var)]) -> CResult<Vec<Tensor>> {
    vars.iter()
        .map(|(_, v)| v.as_tensor().copy().map(|t| t.detach()))
        .collect()
}

fn restore(vars: &[(String, Var)], values: &[Tensor]) -> CResult<()> {
    for ((_, v), t) in vars.iter().zip(values) {
        v.set(&t.to_device(v.device())?)?;
    }
    Ok(())
}

/// A CPU copy of `t` (the tensor itself, shared, when it is on the CPU already): what
/// checkpoints and resume states are written from, so that their bytes do not depend on the
/// device.
fn on_cpu(t: &Tensor) -> CResult<Tensor> {
    t.detach().to_device(&Device::Cpu)
}

/// A clip's identity for the frozen-encoder cache: a hash of its samples' bits and its length.
fn clip_key(samples: &[f32]) -> (u64, usize) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for x in samples {
        x.to_bits().hash(&mut h);
    }
    (h.finish(), samples.len())
}

/// Runs `f` on each distinct clip of `clips` (key, samples) alone, as [1, N]. Alone, not in
/// batches: a clip's cached result must not depend on which clips it first came with, so that
/// a study resumed in a new process (whose cache starts empty) computes the same values.
fn each_clip_alone(
    clips: &[(ClipKey, &[f32])],
    mut f: impl FnMut(&Tensor) -> CResult<Vec<Tensor>>,
) -> CResult<Vec<(ClipKey, Vec<Tensor>)>> {
    let mut out: Vec<(ClipKey, Vec<Tensor>)> = Vec::with_capacity(clips.len());
    for &(key, samples) in clips {
        if out.iter().any(|(k, _)| *k == key) {
            continue;
        }
        let x = Tensor::from_slice(samples, (1, samples.len()), &Device::Cpu)?;
        out.push((key, f(&x)?));
    }
    Ok(out)
}

/// `t` [1, T, H] zero-padded along time to `t_max` frames.
fn pad_frames(t: &Tensor, t_max: usize) -> CResult<Tensor> {
    let have = t.dim(1)?;
    if have < t_max {
        t.pad_with_zeros(1, 0, t_max - have)
    } else {
        Ok(t.clone())
    }
}

fn named(map: &VarMap) -> Vec<(String, Var)> {
    let data = map.data().lock().unwrap_or_else(|e| e.into_inner());
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

impl FineTuner {
    /// The fine-tuner of `encoder` on the encoder's device. With the fused route
    /// ([`Ops::Fused`], the default) a frozen feature encoder moves onto the packed CPU kernels.
    pub fn new(mut encoder: TrainableEncoder, task: Task, cfg: TrainConfig) -> Result<Self> {
        cfg.validate()?;
        if let Task::Classification {
            classes,
            class_weights: Some(w),
        } = &task
        {
            if w.len() != *classes || w.iter().any(|x| !(x.is_finite() && *x >= 0.0)) {
                return Err(InputError::ClassWeights {
                    classes: *classes,
                    given: w.clone(),
                }
                .into());
            }
        }
        if task.outputs() == 0 {
            return Err(InputError::NoOutputs.into());
        }
        if cfg.ops == Ops::Fused {
            encoder.pack_frozen_feature_encoder()?;
        }
        let ecfg = encoder.encoder().config();
        let head = Head::new(
            encoder.peft().method,
            ecfg.num_layers + 1,
            ecfg.hidden_size,
            &task,
            &cfg,
            encoder.encoder().device(),
        )?;
        Ok(FineTuner {
            encoder,
            head,
            task,
            cfg,
            cache: ClipCache::new(),
            pooled_route: true,
            front_route: false,
            passes: PassCounts::default(),
        }
        .with_front_route())
    }

    fn with_front_route(mut self) -> Self {
        self.front_route =
            self.encoder.peft().method.trains_encoder() && self.encoder.front_is_frozen();
        self
    }

    /// Uses `cache` for the per-clip outputs that do not change while training, instead of
    /// this fine-tuner's own (see [`ClipCache`]: only between fine-tuners of the same
    /// pretrained weights).
    pub fn share_cache(&mut self, cache: &ClipCache) {
        self.cache = cache.clone();
    }

    /// The encoder work done so far (cumulative over every training and prediction call).
    pub fn passes(&self) -> PassCounts {
        self.passes
    }

    fn group_norm(&self) -> bool {
        self.encoder.encoder().config().conv_norm == ConvNorm::Group
    }

    /// Index batches: sorted by length and cut into `batch_size` runs (group-norm models: only
    /// equal lengths share a batch, since their first conv normalises over time).
    pub fn batches(&self, examples: &[Example], order: &[usize]) -> Vec<Vec<usize>> {
        let mut idx: Vec<usize> = order.to_vec();
        idx.sort_by_key(|&i| (examples[i].samples.len(), i));
        let mut out: Vec<Vec<usize>> = Vec::new();
        for i in idx {
            let fits = out.last().is_some_and(|b: &Vec<usize>| {
                b.len() < self.cfg.batch_size
                    && (!self.group_norm()
                        || examples[b[0]].samples.len() == examples[i].samples.len())
            });
            if fits {
                out.last_mut().expect("checked").push(i);
            } else {
                out.push(vec![i]);
            }
        }
        out
    }

    /// Hidden states and frame mask of a batch.
    fn states(&mut self, examples: &[Example], batch: &[usize]) -> CResult<(Vec<Tensor>, Tensor)> {
        let ecfg = self.encoder.encoder().config().clone();
        let frames: Vec<usize> = batch
            .iter()
            .map(|&i| ecfg.frames_for(examples[i].samples.len()))
            .collect();
        let t_max = *frames.iter().max().unwrap_or(&0);
        let mut mask = vec![0f32; batch.len() * t_max];
        for (r, &f) in frames.iter().enumerate() {
            mask[r * t_max..r * t_max + f].fill(1.0);
        }
        let dev = self.encoder.encoder().device().clone();
        let mask = Tensor::from_vec(mask, (batch.len(), t_max), &dev)?;
        if self.encoder.peft().method.trains_encoder() {
            let lengths: Vec<usize> = batch.iter().map(|&i| examples[i].samples.len()).collect();
            let n = lengths.iter().copied().max().unwrap_or(0);
            let samples: usize = lengths.iter().sum();
            if self.encoder.is_training() {
                self.passes.train_clips += batch.len();
                self.passes.train_samples += samples;
            } else {
                self.passes.eval_clips += batch.len();
                self.passes.eval_samples += samples;
            }
            let same = lengths.iter().all(|&l| l == n);
            let lengths_arg = if same { None } else { Some(&lengths[..]) };
            if self.front_route {
                // The frozen front of each clip once, alone; its valid frames equal the
                // batch's (padded frames are zeroed before the positional conv, and frames
                // past an item's length are masked out of attention and pooling).
                let x = self.fronts(examples, batch, t_max)?;
                let states = self.encoder.forward_layers(x, lengths_arg)?;
                return Ok((states, mask));
            }
            self.passes.front_clips += batch.len();
            self.passes.front_samples += samples;
            let mut x = vec![0f32; batch.len() * n];
            for (r, &i) in batch.iter().enumerate() {
                x[r * n..r * n + lengths[r]].copy_from_slice(&examples[i].samples);
            }
            let x = Tensor::from_vec(x, (batch.len(), n), &dev)?;
            let states = self.encoder.forward(&x, lengths_arg)?;
            return Ok((states, mask));
        }
        // Frozen encoder: each clip's states once, alone (no padding), then padded here.
        let keys: Vec<ClipKey> = batch
            .iter()
            .map(|&i| clip_key(&examples[i].samples))
            .collect();
        for (&i, &key) in batch.iter().zip(&keys) {
            if self.cache.lock().frames.contains_key(&key) {
                self.passes.frozen_reused += 1;
                continue;
            }
            let states = self.frozen_states(&examples[i].samples)?;
            self.cache.lock().frames.insert(key, states);
        }
        let cache = self.cache.lock();
        let layers = ecfg.num_layers + 1;
        let mut out = Vec::with_capacity(layers);
        for l in 0..layers {
            let rows = keys
                .iter()
                .map(|key| pad_frames(&cache.frames[key][l], t_max))
                .collect::<CResult<Vec<_>>>()?;
            out.push(Tensor::cat(&rows, 0)?);
        }
        Ok((out, mask))
    }

    /// A frozen encoder's hidden states of one clip alone: L+1 × [1, T, H].
    fn frozen_states(&mut self, s: &[f32]) -> CResult<Vec<Tensor>> {
        let dev = self.encoder.encoder().device().clone();
        let x = Tensor::from_slice(s, (1, s.len()), &dev)?;
        self.passes.frozen_clips += 1;
        self.passes.frozen_samples += s.len();
        Ok(self
            .encoder
            .forward(&x, None)?
            .into_iter()
            .map(|t| t.detach())
            .collect())
    }

    /// The first transformer layer's input of a batch [B, t_max, H] from each clip's cached
    /// front (computed alone on a miss; kept while the cache has room), zero-padded.
    fn fronts(&mut self, examples: &[Example], batch: &[usize], t_max: usize) -> CResult<Tensor> {
        let keys: Vec<ClipKey> = batch
            .iter()
            .map(|&i| clip_key(&examples[i].samples))
            .collect();
        let mut got: HashMap<ClipKey, Tensor> = HashMap::new();
        {
            let cache = self.cache.lock();
            for k in &keys {
                if let Some(x) = cache.front.get(k) {
                    got.insert(*k, x.clone());
                }
            }
        }
        self.passes.front_reused += keys.iter().filter(|k| got.contains_key(k)).count();
        let missing: Vec<(ClipKey, &[f32])> = batch
            .iter()
            .zip(&keys)
            .filter(|(_, k)| !got.contains_key(k))
            .map(|(&i, &k)| (k, &examples[i].samples[..]))
            .collect();
        let encoder = &self.encoder;
        let computed = each_clip_alone(&missing, |x| {
            let out = encoder.forward_front(x, None)?.detach();
            Ok(vec![out])
        })?;
        for (key, mut parts) in computed {
            let x = parts.pop().expect("one tensor per clip");
            self.passes.front_clips += 1;
            self.passes.front_samples += key.1;
            self.cache.lock().keep_front(key, &x);
            got.insert(key, x);
        }
        let rows = keys
            .iter()
            .map(|k| pad_frames(&got[k], t_max))
            .collect::<CResult<Vec<_>>>()?;
        Tensor::cat(&rows, 0)
    }

    /// Whether this batch takes the pooled route: a frozen encoder (`frozen`, `weighted-sum`)
    /// with mean pooling.
    fn takes_pooled_route(&self) -> bool {
        self.pooled_route
            && !self.encoder.peft().method.trains_encoder()
            && self.cfg.pooling == Pooling::Mean
    }

    /// Every hidden state's mean over each clip's frames, [B, L+1, H], from the cache
    /// (computed alone on a miss, as the frame route computes the clip).
    fn pooled(&mut self, examples: &[Example], batch: &[usize]) -> CResult<Tensor> {
        let keys: Vec<ClipKey> = batch
            .iter()
            .map(|&i| clip_key(&examples[i].samples))
            .collect();
        let mut got: HashMap<ClipKey, Tensor> = HashMap::new();
        let mut framed: Vec<(ClipKey, Vec<Tensor>)> = Vec::new();
        {
            let cache = self.cache.lock();
            for k in &keys {
                if let Some(p) = cache.pooled.get(k) {
                    got.insert(*k, p.clone());
                } else if let Some(f) = cache.frames.get(k) {
                    framed.push((*k, f.clone()));
                }
            }
        }
        self.passes.frozen_reused += keys
            .iter()
            .filter(|k| got.contains_key(k) || framed.iter().any(|(f, _)| f == *k))
            .count();
        let missing: Vec<(ClipKey, &[f32])> = batch
            .iter()
            .zip(&keys)
            .filter(|(_, k)| !got.contains_key(k) && !framed.iter().any(|(f, _)| f == *k))
            .map(|(&i, &k)| (k, &examples[i].samples[..]))
            .collect();
        let encoder = &self.encoder;
        let computed = each_clip_alone(&missing, |x| {
            Ok(encoder
                .forward(x, None)?
                .into_iter()
                .map(|t| t.detach())
                .collect())
        })?;
        for (key, states) in &computed {
            self.passes.frozen_clips += 1;
            self.passes.frozen_samples += key.1;
            let mut cache = self.cache.lock();
            if cache.fronts_from_frozen {
                // Hidden state 0 is the first layer's input: the front's output.
                cache.keep_front(*key, &states[0]);
            }
        }
        for (key, states) in framed.into_iter().chain(computed) {
            // [L+1, T, H] summed over T, divided by T: the frame route's masked mean.
            let stacked = Tensor::cat(&states, 0)?;
            let t = stacked.dim(1)?;
            let count = Tensor::new(&[t as f32], stacked.device())?;
            let p = stacked.sum(1)?.broadcast_div(&count)?;
            self.cache.lock().pooled.insert(key, p.clone());
            got.insert(key, p);
        }
        let rows: Vec<Tensor> = keys.iter().map(|k| got[k].clone()).collect();
        Tensor::stack(&rows, 0)
    }

    /// Outputs [B, outputs] for a batch (no dropout).
    fn forward_batch(&mut self, examples: &[Example], batch: &[usize]) -> CResult<Tensor> {
        if self.takes_pooled_route() {
            let pooled = self.pooled(examples, batch)?;
            return self.head.forward_pooled(&pooled);
        }
        let (states, mask) = self.states(examples, batch)?;
        self.head.forward(&states, &mask)
    }

    /// Predictions for every example (rows in `examples` order), evaluation mode.
    pub fn predict(&mut self, examples: &[Example]) -> Result<Vec<Vec<f32>>> {
        crate::fused::with_plain_ops(self.cfg.ops == Ops::Plain, || self.predict_inner(examples))
    }

    fn predict_inner(&mut self, examples: &[Example]) -> Result<Vec<Vec<f32>>> {
        let cpu = process_cpu_seconds();
        self.encoder.set_training(false);
        let all: Vec<usize> = (0..examples.len()).collect();
        let mut out = vec![Vec::new(); examples.len()];
        for batch in self.batches(examples, &all) {
            let y = self.forward_batch(examples, &batch)?.detach();
            for (r, &i) in batch.iter().enumerate() {
                out[i] = y.get(r)?.to_vec1()?;
            }
        }
        self.passes.cpu_eval += process_cpu_seconds() - cpu;
        Ok(out)
    }

    fn mean_loss(&mut self, examples: &[Example]) -> Result<f64> {
        let cpu = process_cpu_seconds();
        self.encoder.set_training(false);
        let all: Vec<usize> = (0..examples.len()).collect();
        let (mut sum, mut n) = (0.0, 0usize);
        for batch in self.batches(examples, &all) {
            let y = self.forward_batch(examples, &batch)?;
            let refs: Vec<&Example> = batch.iter().map(|&i| &examples[i]).collect();
            let l = loss(&self.task, &y, &refs)?.to_scalar::<f32>()? as f64;
            sum += l * batch.len() as f64;
            n += batch.len();
        }
        self.passes.cpu_eval += process_cpu_seconds() - cpu;
        Ok(sum / n.max(1) as f64)
    }

    /// Trains on `train`, keeping the parameters of the epoch with the lowest loss on `dev`
    /// (or the last epoch when `dev` is empty). `progress(epoch, epochs)`.
    pub fn train(
        &mut self,
        train: &[Example],
        dev: &[Example],
        progress: &dyn Fn(usize, usize),
    ) -> Result<TrainReport, TrainError> {
        self.train_resumable(train, dev, progress, None)
    }

    /// [`Self::train`] that saves its whole state (trainable parameters, optimiser moments and
    /// step, generator positions, the epoch's batch order, the best-on-dev snapshot) to
    /// `resume` at each epoch's end and every `checkpoint_every` steps, atomically (the tensors
    /// first, then `state.json` naming them, by rename). Started again with the same data,
    /// settings and folder after a kill, it continues from the last saved state and ends with
    /// bit-identical parameters and report. A state saved for other data or settings is an
    /// error naming the folder. A diverging loss stops before anything is saved, so the last
    /// good state stays.
    pub fn train_resumable(
        &mut self,
        train: &[Example],
        dev: &[Example],
        progress: &dyn Fn(usize, usize),
        resume: Option<&Path>,
    ) -> Result<TrainReport, TrainError> {
        crate::fused::with_plain_ops(self.cfg.ops == Ops::Plain, || {
            self.train_inner(train, dev, progress, resume)
        })
    }

    fn train_inner(
        &mut self,
        train: &[Example],
        dev: &[Example],
        progress: &dyn Fn(usize, usize),
        resume: Option<&Path>,
    ) -> Result<TrainReport, TrainError> {
        if train.is_empty() {
            return Err(SslError::Input(InputError::NoTrainingExamples).into());
        }
        let enc_vars = self.encoder.named_vars();
        let head_vars = named(self.head.vars());
        let params = |lr| ParamsAdamW {
            lr,
            weight_decay: self.cfg.weight_decay,
            ..Default::default()
        };
        let mut opt_enc = Adam::new(&enc_vars, params(self.cfg.lr_encoder))?;
        let mut opt_head = Adam::new(&head_vars, params(self.cfg.lr_head))?;
        let all_vars: Vec<(String, Var)> = enc_vars.iter().chain(&head_vars).cloned().collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.cfg.seed);
        let order: Vec<usize> = (0..train.len()).collect();
        let per_epoch = self
            .batches(train, &order)
            .len()
            .div_ceil(self.cfg.grad_accum);
        let total = per_epoch * self.cfg.epochs;
        let warmup = (self.cfg.warmup_share * total as f64).round() as usize;
        let fingerprint = format!(
            "{}|{}|{}|{}|{}",
            serde_json::to_string(&TrainConfig {
                checkpoint_every: 0,
                ..self.cfg.clone()
            })
            .unwrap_or_default(),
            serde_json::to_string(&self.task).unwrap_or_default(),
            train.len(),
            dev.len(),
            all_vars
                .iter()
                .map(|(n, v)| format!("{n}{:?}", v.dims()))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut st = ResumeRecord {
            fingerprint,
            tensors: String::new(),
            epoch: 0,
            step: 0,
            batches: None,
            next_group: 0,
            loss_sum: 0.0,
            seen: 0,
            shuffle_rng: String::new(),
            dropout_rng: String::new(),
            enc_step_t: 0,
            head_step_t: 0,
            curve: Vec::new(),
            best_dev_loss: None,
            best_epoch: 0,
            since_best: 0,
            stopped_early: false,
        };
        let mut best: Option<Vec<Tensor>> = None;
        if let Some(dir) = resume {
            if let Some((record, values, b)) =
                self.load_resume(dir, &st.fingerprint, &opt_enc, &opt_head, &all_vars)?
            {
                restore(&all_vars, &values)?;
                opt_enc.step_t = record.enc_step_t;
                opt_head.step_t = record.head_step_t;
                rng.set_word_pos(record.shuffle_rng.parse().unwrap_or(0));
                self.encoder
                    .set_dropout_position(record.dropout_rng.parse().unwrap_or(0));
                best = b;
                st = record;
            }
        }
        while st.epoch < self.cfg.epochs && !st.stopped_early {
            let epoch = st.epoch;
            if st.batches.is_none() {
                progress(epoch, self.cfg.epochs);
                let mut batches = self.batches(train, &order);
                batches.shuffle(&mut rng);
                st.batches = Some(batches);
                st.next_group = 0;
                st.loss_sum = 0.0;
                st.seen = 0;
            }
            let groups: Vec<Vec<Vec<usize>>> = st
                .batches
                .as_ref()
                .expect("set above")
                .chunks(self.cfg.grad_accum)
                .map(|g| g.to_vec())
                .collect();
            while st.next_group < groups.len() {
                let group = &groups[st.next_group];
                let step = st.step;
                self.encoder.set_training(true);
                let mut acc: Option<candle_core::backprop::GradStore> = None;
                let items: usize = group.iter().map(|b| b.len()).sum();
                for batch in group {
                    let cpu = process_cpu_seconds();
                    let y = self.forward_batch(train, batch)?;
                    let refs: Vec<&Example> = batch.iter().map(|&i| &train[i]).collect();
                    let l = loss(&self.task, &y, &refs)?;
                    let value = l.to_scalar::<f32>()?;
                    let cpu_mid = process_cpu_seconds();
                    self.passes.cpu_forward += cpu_mid - cpu;
                    if !value.is_finite() {
                        return Err(TrainError::Diverged {
                            epoch,
                            step,
                            loss: value,
                        });
                    }
                    st.loss_sum += value as f64 * batch.len() as f64;
                    st.seen += batch.len();
                    // Each micro-batch weighs by its share of the step's items.
                    let scaled = (l * (batch.len() as f64 / items as f64))?;
                    let grads = scaled.backward()?;
                    self.passes.cpu_backward += process_cpu_seconds() - cpu_mid;
                    acc = Some(match acc {
                        None => grads,
                        Some(mut a) => {
                            for (_, v) in &all_vars {
                                if let Some(g) = grads.get(v.as_tensor()) {
                                    let sum = match a.get(v.as_tensor()) {
                                        Some(prev) => (prev + g)?,
                                        None => g.clone(),
                                    };
                                    a.insert(v.as_tensor(), sum);
                                }
                            }
                            a
                        }
                    });
                }
                let mut grads = acc.expect("a group holds ≥ 1 batch");
                let cpu_update = process_cpu_seconds();
                let mut sq = 0f64;
                for (_, v) in &all_vars {
                    if let Some(g) = grads.get(v.as_tensor()) {
                        sq += crate::fused::sum_of_squares(g)?;
                    }
                }
                let norm = sq.sqrt();
                if !norm.is_finite() {
                    return Err(TrainError::Diverged {
                        epoch,
                        step,
                        loss: norm as f32,
                    });
                }
                if self.cfg.clip_norm > 0.0 && norm > self.cfg.clip_norm {
                    // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6).
                    let coef = self.cfg.clip_norm / (norm + 1e-6);
                    for (_, v) in &all_vars {
                        if let Some(g) = grads.get(v.as_tensor()) {
                            // The gradient store owns these tensors: scaled in place on the
                            // CPU, replaced elsewhere.
                            if !crate::fused::scale_in_place(g, coef)? {
                                let g = (g * coef)?;
                                grads.insert(v.as_tensor(), g);
                            }
                        }
                    }
                }
                let f = lr_factor(step, total, warmup, self.cfg.schedule);
                opt_enc.params.lr = self.cfg.lr_encoder * f;
                opt_head.params.lr = self.cfg.lr_head * f;
                if !enc_vars.is_empty() {
                    opt_enc.step(&grads)?;
                }
                opt_head.step(&grads)?;
                self.passes.cpu_update += process_cpu_seconds() - cpu_update;
                st.step += 1;
                st.next_group += 1;
                let every = self.cfg.checkpoint_every;
                if let Some(dir) = resume {
                    if every > 0 && st.step % every == 0 && st.next_group < groups.len() {
                        self.save_resume(
                            dir,
                            &mut st,
                            &rng,
                            &opt_enc,
                            &opt_head,
                            &all_vars,
                            best.as_deref(),
                        )?;
                    }
                }
            }
            let train_loss = st.loss_sum / st.seen.max(1) as f64;
            let dev_loss = if dev.is_empty() {
                train_loss
            } else {
                self.mean_loss(dev)?
            };
            if !dev_loss.is_finite() {
                return Err(TrainError::Diverged {
                    epoch,
                    step: st.step,
                    loss: dev_loss as f32,
                });
            }
            st.curve.push(EpochLog {
                epoch: epoch + 1,
                train_loss,
                dev_loss,
                lr_factor: lr_factor(st.step.saturating_sub(1), total, warmup, self.cfg.schedule),
            });
            let improved = st.best_dev_loss.is_none_or(|b| dev_loss < b);
            if improved || dev.is_empty() {
                st.best_dev_loss = Some(dev_loss);
                st.best_epoch = epoch + 1;
                best = Some(snapshot(&all_vars)?);
                st.since_best = 0;
            } else {
                st.since_best += 1;
                if self.cfg.patience > 0 && st.since_best >= self.cfg.patience {
                    st.stopped_early = true;
                }
            }
            st.epoch += 1;
            st.batches = None;
            st.next_group = 0;
            if let Some(dir) = resume {
                self.save_resume(
                    dir,
                    &mut st,
                    &rng,
                    &opt_enc,
                    &opt_head,
                    &all_vars,
                    best.as_deref(),
                )?;
            }
        }
        progress(self.cfg.epochs, self.cfg.epochs);
        let values = best.expect("≥ 1 epoch ran");
        restore(&all_vars, &values)?;
        self.encoder.set_training(false);
        Ok(TrainReport {
            curve: st.curve,
            best_epoch: st.best_epoch,
            best_dev_loss: st.best_dev_loss.expect("≥ 1 epoch ran"),
            stopped_early: st.stopped_early,
            optimizer_steps: st.step,
            trainable_encoder: self.encoder.trainable_parameters(),
            trainable_head: self.trainable_head(),
        })
    }

    /// Saves the resume state to `dir`: `state-<step>.safetensors` (values, moments and best
    /// snapshot; all finite or nothing is written), then `state.json` naming it (the commit
    /// point), then the previous tensors file is removed.
    #[allow(clippy::too_many_arguments)]
    fn save_resume(
        &self,
        dir: &Path,
        st: &mut ResumeRecord,
        rng: &ChaCha8Rng,
        opt_enc: &Adam,
        opt_head: &Adam,
        vars: &[(String, Var)],
        best: Option<&[Tensor]>,
    ) -> Result<(), TrainError> {
        let err = |reason: String| TrainError::Checkpoint {
            path: dir.to_path_buf(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let mut map: HashMap<String, Tensor> = HashMap::new();
        for (i, (name, v)) in vars.iter().enumerate() {
            map.insert(format!("value/{name}"), on_cpu(v.as_tensor())?);
            if let Some(b) = best {
                map.insert(format!("best/{name}"), on_cpu(&b[i])?);
            }
        }
        for (prefix, opt) in [("enc", opt_enc), ("head", opt_head)] {
            for (i, (_, m, v)) in opt.vars.iter().enumerate() {
                map.insert(format!("{prefix}.m/{i}"), on_cpu(m.as_tensor())?);
                map.insert(format!("{prefix}.v/{i}"), on_cpu(v.as_tensor())?);
            }
        }
        for (name, t) in &map {
            let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
            if v.iter().any(|x| !x.is_finite()) {
                return Err(err(format!(
                    "`{name}` holds NaN/Inf; the last good resume state was kept"
                )));
            }
        }
        let previous = std::mem::take(&mut st.tensors);
        st.tensors = format!("state-{}-{}.safetensors", st.epoch, st.step);
        let tmp = dir.join(format!(".{}.partial", st.tensors));
        candle_core::safetensors::save(&map, &tmp).map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, dir.join(&st.tensors)).map_err(|e| err(e.to_string()))?;
        st.shuffle_rng = rng.get_word_pos().to_string();
        st.dropout_rng = self.encoder.dropout_position().to_string();
        st.enc_step_t = opt_enc.step_t;
        st.head_step_t = opt_head.step_t;
        let json = serde_json::to_vec_pretty(&st).map_err(|e| err(e.to_string()))?;
        write_atomic(&dir.join("state.json"), &json).map_err(|e| err(e.to_string()))?;
        if !previous.is_empty() && previous != st.tensors {
            let _ = std::fs::remove_file(dir.join(previous));
        }
        Ok(())
    }

    /// The saved state in `dir` (None when there is none), its moments loaded into the
    /// optimisers; returns the record, the parameter values and the best snapshot.
    #[allow(clippy::type_complexity)]
    fn load_resume(
        &self,
        dir: &Path,
        fingerprint: &str,
        opt_enc: &Adam,
        opt_head: &Adam,
        vars: &[(String, Var)],
    ) -> Result<Option<(ResumeRecord, Vec<Tensor>, Option<Vec<Tensor>>)>, TrainError> {
        let path = dir.join("state.json");
        if !path.is_file() {
            return Ok(None);
        }
        let err = |p: &Path, reason: String| TrainError::Checkpoint {
            path: p.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| err(&path, e.to_string()))?;
        let record: ResumeRecord =
            serde_json::from_str(&text).map_err(|e| err(&path, e.to_string()))?;
        if record.fingerprint != fingerprint {
            return Err(err(
                &path,
                "this resume state belongs to other data or settings; use a new output folder or delete it".into(),
            ));
        }
        let tpath = dir.join(&record.tensors);
        let map = candle_core::safetensors::load(&tpath, &Device::Cpu)
            .map_err(|e| err(&tpath, e.to_string()))?;
        let get = |k: &str| {
            map.get(k)
                .cloned()
                .ok_or_else(|| err(&tpath, format!("missing `{k}`")))
        };
        let values = vars
            .iter()
            .map(|(n, _)| get(&format!("value/{n}")))
            .collect::<Result<Vec<_>, _>>()?;
        let best = if record.best_dev_loss.is_some() {
            Some(
                vars.iter()
                    .map(|(n, _)| get(&format!("best/{n}")))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        } else {
            None
        };
        for (prefix, opt) in [("enc", opt_enc), ("head", opt_head)] {
            for (i, (_, m, v)) in opt.vars.iter().enumerate() {
                m.set(&get(&format!("{prefix}.m/{i}"))?.to_device(m.device())?)?;
                v.set(&get(&format!("{prefix}.v/{i}"))?.to_device(v.device())?)?;
            }
        }
        Ok(Some((record, values, best)))
    }

    pub fn trainable_head(&self) -> usize {
        named(self.head.vars())
            .iter()
            .map(|(_, v)| v.as_tensor().elem_count())
            .sum()
    }

    /// Writes the trainable parameters to `dir`: `adapter_model.safetensors` (encoder side:
    /// LoRA under `peft`'s names, adapters as `<path>.adapter_*`, trained base tensors under their
    /// own names), `head.safetensors`, `adapter_config.json` (`peft`'s for LoRA). Every tensor
    /// must be finite; files are written beside and renamed, so an existing checkpoint is only
    /// replaced by a complete, finite one.
    pub fn save_checkpoint(&self, dir: &Path, base_model: &str) -> Result<(), TrainError> {
        let err = |reason: String| TrainError::Checkpoint {
            path: dir.to_path_buf(),
            reason,
        };
        let enc = self
            .encoder
            .checkpoint_tensors()
            .into_iter()
            .map(|(k, t)| Ok((k, on_cpu(&t)?)))
            .collect::<CResult<Vec<_>>>()?;
        let head = named(self.head.vars())
            .into_iter()
            .map(|(k, v)| Ok((k, on_cpu(v.as_tensor())?)))
            .collect::<CResult<Vec<(String, Tensor)>>>()?;
        for (name, t) in enc.iter().chain(&head) {
            let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
            if v.iter().any(|x| !x.is_finite()) {
                return Err(err(format!(
                    "`{name}` holds NaN/Inf; the checkpoint was not written"
                )));
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let config = match self.encoder.peft().method {
            Method::Lora => self.encoder.peft_adapter_config(base_model),
            _ => serde_json::json!({
                "emobridge_method": self.encoder.peft().method.as_str(),
                "peft": self.encoder.peft(),
                "base_model_name_or_path": base_model,
            }),
        };
        let write = |name: &str, f: &dyn Fn(&Path) -> Result<(), TrainError>| {
            let tmp = dir.join(format!(".{name}.partial"));
            f(&tmp)?;
            std::fs::rename(&tmp, dir.join(name)).map_err(|e| err(e.to_string()))
        };
        let st = |tensors: &[(String, Tensor)], p: &Path| -> Result<(), TrainError> {
            let map: HashMap<String, Tensor> = tensors.iter().cloned().collect();
            candle_core::safetensors::save(&map, p).map_err(|e| err(e.to_string()))
        };
        write("adapter_model.safetensors", &|p| st(&enc, p))?;
        write("head.safetensors", &|p| st(&head, p))?;
        write("adapter_config.json", &|p| {
            std::fs::write(
                p,
                serde_json::to_vec_pretty(&config).map_err(|e| err(e.to_string()))?,
            )
            .map_err(|e| err(e.to_string()))
        })?;
        Ok(())
    }

    /// Loads a checkpoint written by [`Self::save_checkpoint`] into this (same-shaped) model.
    pub fn load_checkpoint(&self, dir: &Path) -> Result<(), TrainError> {
        let read = |name: &str| {
            candle_core::safetensors::load(dir.join(name), &Device::Cpu).map_err(|e| {
                TrainError::Checkpoint {
                    path: dir.join(name),
                    reason: e.to_string(),
                }
            })
        };
        self.encoder
            .load_checkpoint_tensors(&read("adapter_model.safetensors")?)?;
        let head = read("head.safetensors")?;
        for (name, var) in named(self.head.vars()) {
            let Some(t) = head.get(&name) else {
                return Err(TrainError::Checkpoint {
                    path: dir.join("head.safetensors"),
                    reason: format!("missing `{name}`"),
                });
            };
            if t.dims() != var.dims() {
                return Err(TrainError::Checkpoint {
                    path: dir.join("head.safetensors"),
                    reason: format!(
                        "`{name}` has shape {:?}, expected {:?}",
                        t.dims(),
                        var.dims()
                    ),
                });
            }
            var.set(&t.to_device(var.device())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::{read_tensors, weight_files};
    use crate::{EncoderConfig, PeftConfig, WeightSource};

    fn fixture_tuner(model: &str, method: Method, cfg: TrainConfig) -> FineTuner {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(model);
        let ecfg = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
        let source = WeightSource::new(read_tensors(&weight_files(&dir).unwrap()).unwrap());
        let mut peft = PeftConfig::with_method(method);
        peft.lora.dropout = 0.1;
        let enc = TrainableEncoder::new(&ecfg, &source, &peft, &Device::Cpu, 5).unwrap();
        let task = Task::Classification {
            classes: 3,
            class_weights: Some(vec![1.0, 2.0, 0.5]),
        };
        FineTuner::new(enc, task, cfg).unwrap()
    }

    /// Clips of unequal lengths (padded batches on a layer-norm model), three classes.
    fn uneven_examples(n: usize, offset: usize) -> Vec<Example> {
        (0..n)
            .map(|i| Example {
                samples: (0..1200 + 160 * ((i * 7) % 5))
                    .map(|j| ((j * (i + offset + 2)) as f32 * 0.03).sin() * 0.4)
                    .collect(),
                label: i % 3,
                values: vec![],
            })
            .collect()
    }

    fn all_values(t: &FineTuner) -> Vec<(String, Vec<f32>)> {
        t.encoder
            .named_vars()
            .into_iter()
            .chain(named(t.head.vars()))
            .map(|(n, v)| (n, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
            .collect()
    }

    fn assert_close(what: &str, a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)], tol: f32) {
        assert_eq!(a.len(), b.len(), "{what}");
        for ((name, x), (_, y)) in a.iter().zip(b) {
            let scale = x.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
            for (p, q) in x.iter().zip(y) {
                assert!((p - q).abs() <= tol * scale, "{what}: {name}: {p} vs {q}");
            }
        }
    }

    fn short_run() -> TrainConfig {
        TrainConfig {
            epochs: 3,
            batch_size: 3,
            lr_encoder: 1e-2,
            lr_head: 1e-2,
            patience: 0,
            ..TrainConfig::default()
        }
    }

    /// A frozen encoder's head trained on each clip's pooled hidden states (the pooled route)
    /// ends with the head weights, dev losses and predictions of the head trained on the padded
    /// frames (the route before it), for `frozen` and `weighted-sum`; and each clip goes through
    /// the encoder once, however many epochs and predictions follow.
    #[test]
    fn the_pooled_route_trains_the_frozen_head_as_the_frame_route_does() {
        let (train, dev, test) = (
            uneven_examples(7, 0),
            uneven_examples(3, 11),
            uneven_examples(4, 23),
        );
        for method in [Method::Frozen, Method::WeightedSum] {
            let mut out = Vec::new();
            for pooled in [false, true] {
                let mut t = fixture_tuner("wav2vec2_layer_preln", method, short_run());
                t.pooled_route = pooled;
                let report = t.train(&train, &dev, &|_, _| {}).unwrap();
                let pred = t.predict(&test).unwrap();
                out.push((all_values(&t), report, pred, t.passes()));
            }
            let what = method.as_str();
            assert_close(what, &out[0].0, &out[1].0, 1e-5);
            for (a, b) in out[0].1.curve.iter().zip(&out[1].1.curve) {
                assert!(
                    (a.dev_loss - b.dev_loss).abs() <= 1e-5 * a.dev_loss.abs(),
                    "{what}"
                );
            }
            assert_eq!(out[0].1.best_epoch, out[1].1.best_epoch, "{what}");
            for (a, b) in out[0].2.iter().zip(&out[1].2) {
                assert_eq!(argmax(a), argmax(b), "{what}: {a:?} vs {b:?}");
                for (x, y) in a.iter().zip(b) {
                    assert!(
                        (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                        "{what}: {a:?} vs {b:?}"
                    );
                }
            }
            for passes in [out[0].3, out[1].3] {
                assert_eq!(passes.frozen_clips, 7 + 3 + 4, "{what}: {passes:?}");
                assert_eq!(passes.train_clips + passes.front_clips, 0, "{what}");
            }
        }
    }

    fn argmax(v: &[f32]) -> usize {
        (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
    }

    /// LoRA and adapters train only inside the transformer layers, so each clip's first-layer
    /// input is computed once and reused: the run ends with the weights of the route that
    /// recomputes it in every batch (padded batches on the layer-norm model, equal-length ones
    /// on the group-norm model), with dropout on; BitFit, whose biases reach below, recomputes.
    #[test]
    fn the_cached_front_trains_as_the_whole_forward_does() {
        let (train, dev, test) = (
            uneven_examples(7, 0),
            uneven_examples(3, 11),
            uneven_examples(4, 23),
        );
        for model in ["wav2vec2_layer_preln", "wav2vec2_group_postln"] {
            for method in [Method::Lora, Method::Adapter] {
                let mut out = Vec::new();
                for front in [false, true] {
                    let mut t = fixture_tuner(model, method, short_run());
                    assert!(t.front_route, "{model} {}", method.as_str());
                    t.front_route = front;
                    t.train(&train, &dev, &|_, _| {}).unwrap();
                    let pred = t.predict(&test).unwrap();
                    out.push((all_values(&t), pred, t.passes()));
                }
                let what = format!("{model} {}", method.as_str());
                assert_close(&what, &out[0].0, &out[1].0, 1e-5);
                for (a, b) in out[0].1.iter().zip(&out[1].1) {
                    for (x, y) in a.iter().zip(b) {
                        assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{what}");
                    }
                }
                let (whole, cached) = (out[0].2, out[1].2);
                // 3 epochs of 7 training clips, 3 dev evaluations of 3 clips, 4 test clips.
                assert_eq!(whole.train_clips, 21, "{what}");
                assert_eq!(whole.eval_clips, 9 + 4, "{what}");
                assert_eq!(whole.front_clips, 21 + 13, "{what}");
                assert_eq!(cached.front_clips, 7 + 3 + 4, "{what}");
                assert_eq!(cached.front_reused, 20, "{what}");
                assert_eq!((cached.train_clips, cached.eval_clips), (21, 13), "{what}");
            }
        }
        let bitfit = fixture_tuner("wav2vec2_layer_preln", Method::BitFit, short_run());
        assert!(!bitfit.front_route);
    }

    /// Fine-tuners sharing one cache compute each clip's frozen parts once between them.
    #[test]
    fn a_shared_cache_serves_every_fine_tuner() {
        let data = uneven_examples(5, 3);
        let cache = ClipCache::new();
        for (method, first) in [
            (Method::Frozen, true),
            (Method::WeightedSum, false),
            (Method::Lora, true),
            (Method::Adapter, false),
        ] {
            let mut t = fixture_tuner("wav2vec2_layer_preln", method, short_run());
            t.share_cache(&cache);
            t.predict(&data).unwrap();
            let p = t.passes();
            let computed = p.frozen_clips + p.front_clips;
            assert_eq!(computed, if first { 5 } else { 0 }, "{}", method.as_str());
        }
        assert_eq!(cache.len(), (5, 0, 5));
        // With the frozen passes' hidden state 0 kept, LoRA computes no front at all, and
        // predicts as it does from its own fronts.
        let cache = ClipCache::new();
        cache.keep_fronts_from_frozen(true);
        let mut frozen = fixture_tuner("wav2vec2_layer_preln", Method::Frozen, short_run());
        frozen.share_cache(&cache);
        frozen.predict(&data).unwrap();
        let mut lora = fixture_tuner("wav2vec2_layer_preln", Method::Lora, short_run());
        lora.share_cache(&cache);
        let shared = lora.predict(&data).unwrap();
        assert_eq!(
            (lora.passes().front_clips, lora.passes().front_reused),
            (0, 5)
        );
        let mut own = fixture_tuner("wav2vec2_layer_preln", Method::Lora, short_run());
        assert_eq!(own.predict(&data).unwrap(), shared);
    }

    /// The gradient of every trainable tensor on one training batch (dropout on), by the fused
    /// route and by the plain one (the GPU's): equal to 1e-5 of the largest, for every method,
    /// on a group-norm and a layer-norm model. Adam's first steps see mostly the gradients'
    /// signs, so this checks their magnitudes, which the three-step test cannot.
    #[test]
    fn both_routes_give_the_same_gradients_for_every_method() {
        for model in ["wav2vec2_group_postln", "wav2vec2_layer_preln"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(model);
            let ecfg = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
            let source = WeightSource::new(read_tensors(&weight_files(&dir).unwrap()).unwrap());
            let ex: Vec<Example> = [1200usize, 1200]
                .iter()
                .enumerate()
                .map(|(i, &n)| Example {
                    samples: (0..n)
                        .map(|j| ((j * (i + 2)) as f32 * 0.05).sin() * 0.3)
                        .collect(),
                    label: i,
                    values: vec![],
                })
                .collect();
            let mut cases: Vec<PeftConfig> = Method::ALL
                .iter()
                .map(|&m| PeftConfig::with_method(m))
                .collect();
            let mut cnn = PeftConfig::with_method(Method::Full);
            cnn.train_feature_encoder = true;
            cases.push(cnn);
            for mut peft in cases {
                peft.lora.dropout = 0.1;
                let what = format!(
                    "{model} {} (cnn {})",
                    peft.method.as_str(),
                    peft.train_feature_encoder
                );
                let mut out = Vec::new();
                for ops in [Ops::Fused, Ops::Plain] {
                    let enc =
                        TrainableEncoder::new(&ecfg, &source, &peft, &Device::Cpu, 5).unwrap();
                    let cfg = TrainConfig {
                        ops,
                        pooling: Pooling::Attentive,
                        ..TrainConfig::default()
                    };
                    let task = Task::Classification {
                        classes: 2,
                        class_weights: None,
                    };
                    let mut t = FineTuner::new(enc, task, cfg).unwrap();
                    t.encoder.set_training(true);
                    let vars: Vec<(String, Var)> = t
                        .encoder
                        .named_vars()
                        .into_iter()
                        .chain(named(t.head.vars()))
                        .collect();
                    let grads = crate::fused::with_plain_ops(ops == Ops::Plain, || {
                        let y = t.forward_batch(&ex, &[0, 1]).unwrap();
                        let refs: Vec<&Example> = ex.iter().collect();
                        loss(&t.task, &y, &refs).unwrap().backward().unwrap()
                    });
                    let g: Vec<(String, Option<Vec<f32>>)> = vars
                        .iter()
                        .map(|(n, v)| {
                            let g = grads.get(v.as_tensor());
                            (
                                n.clone(),
                                g.map(|g| g.flatten_all().unwrap().to_vec1().unwrap()),
                            )
                        })
                        .collect();
                    out.push(g);
                }
                let mut reached = 0;
                for ((name, a), (_, b)) in out[0].iter().zip(&out[1]) {
                    let (a, b) = match (a, b) {
                        (Some(a), Some(b)) => (a, b),
                        (None, None) => continue,
                        _ => panic!("{what}: {name} has a gradient on one route only"),
                    };
                    reached += 1;
                    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
                    for (x, y) in a.iter().zip(b) {
                        assert!(
                            (x - y).abs() <= 1e-5 * scale.max(1e-3),
                            "{what}: {name}: {x} vs {y} (largest {scale})"
                        );
                    }
                }
                assert!(reached > 0, "{what}: no gradients");
            }
        }
    }
}
