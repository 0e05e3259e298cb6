//! Parameter-efficient fine-tuning of the encoder: LoRA on linear layers chosen by module name,
//! Houlsby / Pfeiffer bottleneck adapters, BitFit, full fine-tuning, or none (frozen).
//!
//! The trainable parameters are candle `Var`s in one `VarMap` ([`TrainableEncoder::vars`]);
//! every other tensor is a plain tensor of the checkpoint, so autograd never reaches it and an
//! optimiser over the `VarMap` cannot change it.
//!
//! * LoRA follows HF `peft` (`LoraLayer`): `y = W·x + b + (α/r)·B·A·dropout(x)`, A Kaiming-uniform
//!   with `a = √5` (bound 1/√in), B zeros, so that training starts from the pretrained function;
//!   targets match a module when its path equals the target or ends with `.target`.
//! * Adapters follow SpeechBrain's `HoulsbyAdapterLinear`: `y = L(x); y + up(act(down(y)))`
//!   with torch's default `nn.Linear` weight init, zero biases and Swish; Houlsby wraps the
//!   attention output projection and the feed-forward output, Pfeiffer only the latter.
//! * BitFit trains the bias vectors only (Ben Zaken et al., 2022).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Module, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::EncoderConfig;
use crate::dense::{Kernels, Linear};
use crate::error::{InputError, Result, SslError};
use crate::model::{Encoder, HiddenStateConvention};
use crate::weights::WeightSource;

type CResult<T> = candle_core::Result<T>;

/// Which parameters of the encoder are trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Encoder frozen; a head on one chosen layer.
    Frozen,
    /// Encoder frozen; learned softmax weights over all hidden states, then the head.
    WeightedSum,
    /// Every encoder weight (the conv feature encoder only when asked).
    Full,
    /// Low-rank updates of the target linear layers.
    Lora,
    /// Bottleneck adapters after attention and/or feed-forward.
    Adapter,
    /// The bias vectors only.
    #[serde(rename = "bitfit")]
    BitFit,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Method::Frozen,
        Method::WeightedSum,
        Method::Full,
        Method::Lora,
        Method::Adapter,
        Method::BitFit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Frozen => "frozen",
            Method::WeightedSum => "weighted-sum",
            Method::Full => "full",
            Method::Lora => "lora",
            Method::Adapter => "adapter",
            Method::BitFit => "bitfit",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether the encoder's forward pass needs gradients.
    pub fn trains_encoder(self) -> bool {
        !matches!(self, Method::Frozen | Method::WeightedSum)
    }
}

/// LoRA settings (MARBLE v2's defaults: r 8, α 16, dropout 0.1 on `q_proj`, `v_proj`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// Module names (`q_proj`) or paths (`encoder.layers.0.attention.q_proj`).
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            r: 8,
            alpha: 16.0,
            dropout: 0.1,
            targets: vec!["q_proj".into(), "v_proj".into()],
        }
    }
}

/// Where the bottleneck adapters go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    /// After the attention output projection and after the feed-forward output.
    Houlsby,
    /// After the feed-forward output only.
    Pfeiffer,
}

/// Bottleneck adapter settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdapterConfig {
    pub kind: AdapterKind,
    /// Width of the bottleneck.
    pub bottleneck: usize,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        AdapterConfig {
            kind: AdapterKind::Houlsby,
            bottleneck: 64,
        }
    }
}

/// What to train in the encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeftConfig {
    pub method: Method,
    pub lora: LoraConfig,
    pub adapter: AdapterConfig,
    /// `full` / `bitfit`: also train the conv feature encoder (frozen by default, as in the
    /// wav2vec 2.0 fine-tuning recipes).
    pub train_feature_encoder: bool,
}

impl Default for PeftConfig {
    fn default() -> Self {
        PeftConfig {
            method: Method::Lora,
            lora: LoraConfig::default(),
            adapter: AdapterConfig::default(),
            train_feature_encoder: false,
        }
    }
}

impl PeftConfig {
    pub fn with_method(method: Method) -> Self {
        PeftConfig {
            method,
            ..PeftConfig::default()
        }
    }

    /// Rejects absurd values with a one-line reason.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(SslError::Input(InputError::Setting(m)));
        if self.method == Method::Lora {
            if self.lora.r == 0 {
                return bad("lora.r must be ≥ 1".into());
            }
            if !(self.lora.alpha.is_finite() && self.lora.alpha > 0.0) {
                return bad(format!("lora.alpha must be > 0, got {}", self.lora.alpha));
            }
            if !(0.0..1.0).contains(&self.lora.dropout) {
                return bad(format!(
                    "lora.dropout must be in [0, 1), got {}",
                    self.lora.dropout
                ));
            }
            if self.lora.targets.is_empty() {
                return bad("lora.targets is empty".into());
            }
        }
        if self.method == Method::Adapter && self.adapter.bottleneck == 0 {
            return bad("adapter.bottleneck must be ≥ 1".into());
        }
        Ok(())
    }
}

/// Inverted dropout with its own seeded generator, active only while training.
pub struct Dropout {
    p: f32,
    training: AtomicBool,
    rng: Mutex<ChaCha8Rng>,
}

impl Dropout {
    fn new(p: f64, seed: u64) -> Self {
        Dropout {
            p: p as f32,
            training: AtomicBool::new(false),
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// The mask (0, or 1/(1 − p) for a kept value) for `n` values while training; None while
    /// evaluating or for p = 0.
    fn mask(&self, n: usize) -> Option<Vec<f32>> {
        if self.p == 0.0 || !self.training.load(Ordering::Relaxed) {
            return None;
        }
        let keep = 1.0 / (1.0 - self.p);
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        Some(
            (0..n)
                .map(|_| {
                    if rng.random::<f32>() < self.p {
                        0.0
                    } else {
                        keep
                    }
                })
                .collect(),
        )
    }

    fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        match self.mask(x.elem_count()) {
            None => Ok(x.clone()),
            Some(mask) => {
                crate::fused::mul_by_constant(x, &Tensor::from_vec(mask, x.shape(), x.device())?)
            }
        }
    }
}

/// A linear layer with a LoRA update.
pub struct LoraLinear {
    base: Linear,
    /// [r, in]
    a: Tensor,
    /// [out, r]
    b: Tensor,
    scale: f64,
    dropout: Arc<Dropout>,
}

impl LoraLinear {
    pub(crate) fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        let y = self.base.forward(x)?;
        if crate::fused::lora_applies(x, &self.a, &self.b) {
            // Dropout, both low-rank products and the scaling as one node (CPU f32).
            let mask = self.dropout.mask(x.elem_count());
            return y + crate::fused::lora_update(x, &self.a, &self.b, self.scale, mask)?;
        }
        let d = self.dropout.forward(x)?;
        let low = crate::fused::linear(&d, &self.a, None)?;
        let up = crate::fused::linear(&low, &self.b, None)?;
        y + (up * self.scale)?
    }

    /// The layer with `W + (α/r)·B·A` folded into the weight (candle form).
    fn merged(&self) -> CResult<Linear> {
        let Some(base) = self.base.as_candle() else {
            candle_core::bail!("LoRA merge needs a candle base layer");
        };
        let delta = (self.b.matmul(&self.a)? * self.scale)?;
        let w = (base.weight() + delta)?.detach();
        Ok(Linear::Candle(candle_nn::Linear::new(
            w,
            base.bias().map(|b| b.detach()),
        )))
    }
}

/// A linear layer followed by a residual bottleneck adapter.
pub struct AdapterLinear {
    base: Linear,
    down: candle_nn::Linear,
    up: candle_nn::Linear,
}

impl AdapterLinear {
    pub(crate) fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        let y = self.base.forward(x)?;
        let (down, up) = (&self.down, &self.up);
        let z = crate::fused::linear(&y, down.weight(), down.bias())?.silu()?;
        let z = crate::fused::linear(&z, up.weight(), up.bias())?;
        y + z
    }
}

/// Hands out the checkpoint's tensors; the ones `trainable` selects become `Var`s (copies) in
/// the `VarMap`.
struct SplitBackend {
    base: WeightSource,
    vars: VarMap,
    trainable: Box<dyn Fn(&str) -> bool + Send + Sync>,
}

impl SplitBackend {
    fn wrap(&self, name: &str, t: Tensor) -> CResult<Tensor> {
        if !(self.trainable)(name) {
            return Ok(t);
        }
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        self.vars
            .data()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), var);
        Ok(out)
    }
}

impl SimpleBackend for SplitBackend {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> CResult<Tensor> {
        let t = self.base.get(s, name, h, dtype, dev)?;
        self.wrap(name, t)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> CResult<Tensor> {
        let t = self.base.get_unchecked(name, dtype, dev)?;
        self.wrap(name, t)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.base.contains_tensor(name)
    }
}

/// Which checkpoint tensors a method trains.
fn base_trainable(peft: &PeftConfig) -> Box<dyn Fn(&str) -> bool + Send + Sync> {
    let cnn = peft.train_feature_encoder;
    let in_scope = move |n: &str| cnn || !n.starts_with("feature_extractor.");
    let is_stat = |n: &str| {
        n.ends_with("running_mean") || n.ends_with("running_var") || n.ends_with("num_batches")
    };
    match peft.method {
        Method::Full => Box::new(move |n: &str| in_scope(n) && !is_stat(n)),
        Method::BitFit => Box::new(move |n: &str| in_scope(n) && n.ends_with(".bias")),
        _ => Box::new(|_: &str| false),
    }
}

/// What kind of trainable tensor a name is, for checkpoints.
fn is_peft_name(name: &str) -> bool {
    name.contains(".lora_A.") || name.contains(".lora_B.") || name.contains(".adapter_")
}

/// The prefix `peft` gives module paths in a saved LoRA adapter.
pub const PEFT_PREFIX: &str = "base_model.model.";

/// An encoder whose chosen parameters are trainable `Var`s.
pub struct TrainableEncoder {
    encoder: Encoder,
    vars: VarMap,
    dropout: Arc<Dropout>,
    peft: PeftConfig,
    /// Module paths LoRA or adapters wrap.
    wrapped: Vec<String>,
    base_parameters: usize,
}

/// The distinct module names (last path component) of the encoder's linear layers.
pub fn linear_module_names(encoder: &mut Encoder) -> Vec<String> {
    let names: BTreeSet<String> = encoder
        .linears_mut()
        .into_iter()
        .map(|(p, _)| p.rsplit('.').next().unwrap_or(&p).to_string())
        .collect();
    names.into_iter().collect()
}

/// Whether a `peft`-style target matches a module path.
fn target_matches(target: &str, path: &str) -> bool {
    path == target || path.ends_with(&format!(".{target}"))
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, bound: f64) -> Vec<f32> {
    (0..n)
        .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * bound) as f32)
        .collect()
}

impl TrainableEncoder {
    /// Builds the encoder of `cfg` from `source` (a checkpoint) for training with `peft`; new
    /// parameters (LoRA, adapters) are initialised from `seed`.
    pub fn new(
        cfg: &EncoderConfig,
        source: &WeightSource,
        peft: &PeftConfig,
        device: &Device,
        seed: u64,
    ) -> Result<Self> {
        peft.validate()?;
        let vars = VarMap::new();
        let backend = SplitBackend {
            base: source.clone(),
            vars: vars.clone(),
            trainable: base_trainable(peft),
        };
        let vb = VarBuilder::from_backend(Box::new(backend), DType::F32, device.clone());
        let mut encoder = Encoder::new(cfg, vb, Kernels::Autograd)?;
        let base_parameters = count_base(&mut encoder);
        let dropout = Arc::new(Dropout::new(peft.lora.dropout, seed ^ 0x5eed_d20b));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut wrapped = Vec::new();
        match peft.method {
            Method::Lora => {
                let names = linear_module_names(&mut encoder);
                for target in &peft.lora.targets {
                    let hit = encoder
                        .linears_mut()
                        .iter()
                        .any(|(p, _)| target_matches(target, p));
                    if !hit {
                        return Err(InputError::UnknownLoraTarget {
                            target: target.clone(),
                            available: names.clone(),
                        }
                        .into());
                    }
                }
                let scale = peft.lora.alpha / peft.lora.r as f64;
                let r = peft.lora.r;
                for (path, linear) in encoder.linears_mut() {
                    if !peft.lora.targets.iter().any(|t| target_matches(t, &path)) {
                        continue;
                    }
                    let (out, inp) = linear_dims(linear)?;
                    let a = new_var(
                        &vars,
                        &format!("{path}.lora_A.weight"),
                        uniform(&mut rng, r * inp, 1.0 / (inp as f64).sqrt()),
                        (r, inp),
                        device,
                    )?;
                    let b = new_var(
                        &vars,
                        &format!("{path}.lora_B.weight"),
                        vec![0.0; out * r],
                        (out, r),
                        device,
                    )?;
                    let base = std::mem::replace(linear, placeholder(device)?);
                    *linear = Linear::Lora(Box::new(LoraLinear {
                        base,
                        a,
                        b,
                        scale,
                        dropout: dropout.clone(),
                    }));
                    wrapped.push(path);
                }
            }
            Method::Adapter => {
                let bn = peft.adapter.bottleneck;
                for (path, linear) in encoder.linears_mut() {
                    let wanted = path.ends_with(".feed_forward.output_dense")
                        || (peft.adapter.kind == AdapterKind::Houlsby
                            && path.ends_with(".attention.out_proj"));
                    if !wanted {
                        continue;
                    }
                    let (out, _) = linear_dims(linear)?;
                    let mk = |name: &str, o: usize, i: usize, rng: &mut ChaCha8Rng| {
                        let w = new_var(
                            &vars,
                            &format!("{path}.{name}.weight"),
                            uniform(rng, o * i, 1.0 / (i as f64).sqrt()),
                            (o, i),
                            device,
                        )?;
                        let b = new_var(
                            &vars,
                            &format!("{path}.{name}.bias"),
                            vec![0.0; o],
                            o,
                            device,
                        )?;
                        Ok::<_, SslError>(candle_nn::Linear::new(w, Some(b)))
                    };
                    let down = mk("adapter_down", bn, out, &mut rng)?;
                    let up = mk("adapter_up", out, bn, &mut rng)?;
                    let base = std::mem::replace(linear, placeholder(device)?);
                    *linear = Linear::Adapter(Box::new(AdapterLinear { base, down, up }));
                    wrapped.push(path);
                }
            }
            _ => {}
        }
        Ok(TrainableEncoder {
            encoder,
            vars,
            dropout,
            peft: peft.clone(),
            wrapped,
            base_parameters,
        })
    }

    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// A frozen feature encoder (every method's default) gets no gradient, so it needs no
    /// autograd graph: this runs it on the packed CPU kernels from now on (CPU with AVX-512;
    /// otherwise, and when it trains, nothing changes). The fine-tuner's fused route does this
    /// ([`crate::train::FineTuner::new`]); the plain route keeps candle's conv, as on a GPU.
    pub(crate) fn pack_frozen_feature_encoder(&mut self) -> CResult<()> {
        if !self.peft.train_feature_encoder {
            self.encoder.pack_feature_encoder()?;
        }
        Ok(())
    }

    pub fn peft(&self) -> &PeftConfig {
        &self.peft
    }

    /// The trainable variables (a shared handle).
    pub fn vars(&self) -> &VarMap {
        &self.vars
    }

    /// Trainable variables by name, sorted.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.vars.data().lock().unwrap_or_else(|e| e.into_inner());
        let map: BTreeMap<String, Var> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        map.into_iter().collect()
    }

    /// Number of trainable scalars in the encoder.
    pub fn trainable_parameters(&self) -> usize {
        self.named_vars()
            .iter()
            .map(|(_, v)| v.as_tensor().elem_count())
            .sum()
    }

    /// Number of scalars (weights and biases) of the pretrained encoder's linear layers
    /// (projection, attention, feed-forward), before LoRA/adapters: the scale for ratios.
    pub fn base_parameters(&self) -> usize {
        self.base_parameters
    }

    /// Module paths wrapped by LoRA or adapters.
    pub fn wrapped_modules(&self) -> &[String] {
        &self.wrapped
    }

    /// Switches dropout on (training) or off (evaluation).
    pub fn set_training(&self, training: bool) {
        self.dropout.training.store(training, Ordering::Relaxed);
    }

    /// Position of the dropout generator's stream (ChaCha word position): with
    /// [`Self::set_dropout_position`], a resumed run draws the same masks as an uninterrupted one.
    pub fn dropout_position(&self) -> u128 {
        let rng = self.dropout.rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.get_word_pos()
    }

    /// Moves the dropout generator to `pos` (see [`Self::dropout_position`]).
    pub fn set_dropout_position(&self, pos: u128) {
        let mut rng = self.dropout.rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.set_word_pos(pos);
    }

    /// Every hidden state (transformers 4 convention) for prepared samples [B, N].
    pub fn forward(&self, samples: &Tensor, lengths: Option<&[usize]>) -> CResult<Vec<Tensor>> {
        self.encoder
            .forward(samples, lengths, HiddenStateConvention::Transformers4)
    }

    /// [`Self::forward`] below the first transformer layer: the first layer's input [B, T, H].
    pub(crate) fn forward_front(
        &self,
        samples: &Tensor,
        lengths: Option<&[usize]>,
    ) -> CResult<Tensor> {
        self.encoder.forward_front(samples, lengths)
    }

    /// [`Self::forward`] from the first layer's input `x` [B, T, H] on.
    pub(crate) fn forward_layers(
        &self,
        x: Tensor,
        lengths: Option<&[usize]>,
    ) -> CResult<Vec<Tensor>> {
        self.encoder
            .forward_layers(x, lengths, HiddenStateConvention::Transformers4)
    }

    /// Whether nothing below the first transformer layer trains (conv feature encoder, feature
    /// projection, positional conv, and a post-LN model's encoder layer norm): then the first
    /// layer's input of a clip ([`Self::forward_front`]) is the same in every pass, training
    /// or not, since dropout acts only inside LoRA's branch. True for LoRA and adapters on
    /// their default targets; false for BitFit, full fine-tuning, and LoRA on the projection.
    pub fn front_is_frozen(&self) -> bool {
        let pre_ln = self.encoder.config().pre_ln;
        self.named_vars().iter().all(|(name, _)| {
            name.starts_with("encoder.layers.")
                || (pre_ln && name.starts_with("encoder.layer_norm."))
        })
    }

    /// Whether dropout is on ([`Self::set_training`]).
    pub fn is_training(&self) -> bool {
        self.dropout.training.load(Ordering::Relaxed)
    }

    /// Folds every LoRA update into its layer's weight (evaluation only afterwards).
    pub fn merge_lora(&mut self) -> CResult<()> {
        for (_, linear) in self.encoder.linears_mut() {
            if let Linear::Lora(l) = linear {
                *linear = l.merged()?;
            }
        }
        Ok(())
    }

    /// The trainable tensors under checkpoint names: LoRA as `peft` saves it
    /// (`base_model.model.<path>.lora_A.weight`), adapters as `<path>.adapter_down.weight`,
    /// trained checkpoint tensors under their own names.
    pub fn checkpoint_tensors(&self) -> Vec<(String, Tensor)> {
        self.named_vars()
            .into_iter()
            .map(|(name, var)| {
                let key = if name.contains(".lora_") {
                    format!("{PEFT_PREFIX}{name}")
                } else {
                    name
                };
                (key, var.as_tensor().detach())
            })
            .collect()
    }

    /// Sets the trainable tensors from [`Self::checkpoint_tensors`]' names; every trainable
    /// tensor must be present with its shape, and nothing else.
    pub fn load_checkpoint_tensors(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let vars = self.named_vars();
        let mut problems = Vec::new();
        let mut seen = BTreeSet::new();
        for (name, var) in &vars {
            let key = if name.contains(".lora_") {
                format!("{PEFT_PREFIX}{name}")
            } else {
                name.clone()
            };
            match tensors.get(&key) {
                None => problems.push(format!("missing `{key}`")),
                Some(t) if t.dims() != var.as_tensor().dims() => problems.push(format!(
                    "`{key}` has shape {:?}, expected {:?}",
                    t.dims(),
                    var.dims()
                )),
                Some(t) => {
                    var.set(&t.to_dtype(DType::F32)?.to_device(var.device())?)?;
                }
            }
            seen.insert(key);
        }
        for key in tensors.keys() {
            if !seen.contains(key) {
                problems.push(format!("unexpected `{key}`"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(InputError::AdapterMismatch { problems }.into())
        }
    }

    /// `peft`'s `adapter_config.json` for a LoRA checkpoint.
    pub fn peft_adapter_config(&self, base_model: &str) -> serde_json::Value {
        serde_json::json!({
            "peft_type": "LORA",
            "task_type": null,
            "base_model_name_or_path": base_model,
            "r": self.peft.lora.r,
            "lora_alpha": self.peft.lora.alpha,
            "lora_dropout": self.peft.lora.dropout,
            "target_modules": self.peft.lora.targets,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "modules_to_save": null,
        })
    }
}

/// Whether a checkpoint tensor name belongs to LoRA or an adapter (vs a base weight).
pub fn is_adapter_tensor(name: &str) -> bool {
    is_peft_name(name)
}

fn count_base(encoder: &mut Encoder) -> usize {
    encoder
        .linears_mut()
        .iter()
        .map(|(_, l)| linear_dims(l).map(|(o, i)| o * i + o).unwrap_or(0))
        .sum()
}

fn linear_dims(linear: &Linear) -> Result<(usize, usize)> {
    match linear.as_candle() {
        Some(l) => Ok(l.weight().dims2()?),
        None => Err(InputError::NeedsCandleLinear.into()),
    }
}

fn new_var<S: Into<Shape>>(
    vars: &VarMap,
    name: &str,
    data: Vec<f32>,
    shape: S,
    device: &Device,
) -> Result<Tensor> {
    let var = Var::from_tensor(&Tensor::from_vec(data, shape, device)?)?;
    let t = var.as_tensor().clone();
    vars.data()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string(), var);
    Ok(t)
}

fn placeholder(device: &Device) -> CResult<Linear> {
    Ok(Linear::Candle(candle_nn::Linear::new(
        Tensor::zeros((1, 1), DType::F32, device)?,
        None,
    )))
}

/// Folds a checkpoint written by `FineTuner::save_checkpoint` (folder with
/// `adapter_model.safetensors` and `adapter_config.json`) into a model's tensors: LoRA pairs are
/// merged into their layer's weight with the config's α/r, other tensors replace the model's
/// tensor of the same name; adapter tensors are refused (they add layers).
pub fn fold_checkpoint(tensors: &mut HashMap<String, Tensor>, dir: &std::path::Path) -> Result<()> {
    let cfg_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| SslError::Io {
        path: cfg_path.clone(),
        source: e,
    })?;
    let cfg: serde_json::Value = serde_json::from_str(&text).map_err(|e| SslError::Json {
        path: cfg_path.clone(),
        source: e,
    })?;
    let st = dir.join("adapter_model.safetensors");
    let saved =
        candle_core::safetensors::load(&st, &Device::Cpu).map_err(|e| SslError::Weights {
            path: st.clone(),
            reason: e.to_string(),
        })?;
    let scale = match (cfg["lora_alpha"].as_f64(), cfg["r"].as_f64()) {
        (Some(a), Some(r)) if r > 0.0 => Some(a / r),
        _ => None,
    };
    let bad = |reason: String| SslError::Weights {
        path: st.clone(),
        reason,
    };
    for (name, t) in &saved {
        if name.contains(".adapter_") {
            return Err(bad(format!(
                "`{name}` is a bottleneck adapter, which adds layers and cannot be folded into the encoder's weights"
            )));
        }
        if name.contains(".lora_B.") {
            continue;
        }
        if let Some(path) = name
            .strip_prefix(PEFT_PREFIX)
            .and_then(|n| n.strip_suffix(".lora_A.weight"))
        {
            let scale = scale.ok_or_else(|| {
                bad("LoRA tensors but adapter_config.json has no r / lora_alpha".into())
            })?;
            let b_name = format!("{PEFT_PREFIX}{path}.lora_B.weight");
            let b = saved
                .get(&b_name)
                .ok_or_else(|| bad(format!("`{b_name}` missing")))?;
            let w_name = format!("{path}.weight");
            let w = tensors
                .get(&w_name)
                .ok_or_else(|| bad(format!("the model has no `{w_name}` for `{name}`")))?;
            let delta = (b.matmul(t)? * scale)?;
            if delta.dims() != w.dims() {
                return Err(bad(format!(
                    "`{name}`: update {:?} does not fit `{w_name}` {:?}",
                    delta.dims(),
                    w.dims()
                )));
            }
            let merged = (w.to_dtype(DType::F32)? + delta)?;
            tensors.insert(w_name, merged);
            continue;
        }
        match tensors.get(name) {
            Some(old) if old.dims() == t.dims() => {
                tensors.insert(name.clone(), t.clone());
            }
            Some(old) => {
                return Err(bad(format!(
                    "`{name}` has shape {:?}, the model's {:?}",
                    t.dims(),
                    old.dims()
                )))
            }
            None => return Err(bad(format!("the model has no tensor `{name}`"))),
        }
    }
    Ok(())
}
