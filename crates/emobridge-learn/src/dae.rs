//! Denoising autoencoder (Vincent et al. 2008) for feature-representation transfer: the input
//! is corrupted with Gaussian noise, the network reconstructs the clean input, and its hidden
//! code (or its reconstruction) replaces the raw features (Coutinho & Schuller 2017).
//!
//! Shape: `input → h₁ [→ h₂] → … mirrored … → input`, tanh hidden units, a linear output layer,
//! mean squared reconstruction error; parameters in one flat vector, trained with
//! [`crate::optim`] on minibatches of windows. The code is the deepest encoder layer (`h₁`
//! with one hidden layer, `h₂` with two).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::kernels::{matmul, Scalar, View};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::{check_matrix, LearnError, Result};

/// A stack of dense layers with tanh hidden units and a linear last layer.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseStack<T> {
    /// Layer widths, input first: `[d₀, d₁, …, d_L]`.
    pub dims: Vec<usize>,
    /// Per layer `W` [d_{k+1}, d_k] then `b` [d_{k+1}], concatenated.
    pub params: Vec<T>,
}

impl<T: Scalar> DenseStack<T> {
    /// Glorot-uniform weights, zero biases.
    pub fn new(dims: Vec<usize>, rng: &mut impl Rng) -> Result<Self> {
        if dims.len() < 2 || dims.contains(&0) {
            return Err(LearnError::Config(format!(
                "dense network widths {dims:?}: need ≥ 2 layers of width ≥ 1"
            )));
        }
        let n: usize = dims.windows(2).map(|w| w[0] * w[1] + w[1]).sum();
        let mut params = vec![T::zero(); n];
        let mut off = 0;
        for w in dims.windows(2) {
            let bound = (6.0 / (w[0] + w[1]) as f64).sqrt();
            for p in &mut params[off..off + w[0] * w[1]] {
                *p = T::lit(rng.random_range(-bound..bound));
            }
            off += w[0] * w[1] + w[1];
        }
        Ok(DenseStack { dims, params })
    }

    fn offsets(&self) -> Vec<(usize, usize)> {
        let mut off = 0;
        self.dims
            .windows(2)
            .map(|w| {
                let o = (off, off + w[0] * w[1]);
                off += w[0] * w[1] + w[1];
                o
            })
            .collect()
    }

    /// Activations of every layer for `rows` inputs `x` [rows, d₀]: index 0 is the input, the
    /// last is the (linear) output.
    pub fn forward(&self, x: &[T], rows: usize) -> Vec<Vec<T>> {
        let mut acts = vec![x.to_vec()];
        let last = self.dims.len() - 2;
        for (k, (w, b)) in self.offsets().into_iter().enumerate() {
            let (din, dout) = (self.dims[k], self.dims[k + 1]);
            let mut z = vec![T::zero(); rows * dout];
            matmul(
                rows,
                dout,
                din,
                &mut z,
                dout,
                false,
                View::rows(&acts[k], din),
                View::transposed(&self.params[w..w + din * dout], din),
            );
            let bias = &self.params[b..b + dout];
            for row in z.chunks_exact_mut(dout) {
                for (v, bb) in row.iter_mut().zip(bias) {
                    *v = *v + *bb;
                    if k < last {
                        *v = v.tanh();
                    }
                }
            }
            acts.push(z);
        }
        acts
    }

    /// Adds ∂loss/∂θ into `grad` given the activations and `d_out` = ∂loss/∂output.
    pub fn backward(&self, acts: &[Vec<T>], rows: usize, d_out: &[T], grad: &mut [T]) {
        let offs = self.offsets();
        let mut delta = d_out.to_vec();
        for k in (0..offs.len()).rev() {
            let (din, dout) = (self.dims[k], self.dims[k + 1]);
            let (w, b) = offs[k];
            matmul(
                dout,
                din,
                rows,
                &mut grad[w..w + din * dout],
                din,
                true,
                View::transposed(&delta, dout),
                View::rows(&acts[k], din),
            );
            for row in delta.chunks_exact(dout) {
                for (g, d) in grad[b..b + dout].iter_mut().zip(row) {
                    *g = *g + *d;
                }
            }
            if k == 0 {
                break;
            }
            let mut prev = vec![T::zero(); rows * din];
            matmul(
                rows,
                din,
                dout,
                &mut prev,
                din,
                false,
                View::rows(&delta, dout),
                View::rows(&self.params[w..w + din * dout], din),
            );
            // Through the tanh of layer k's output.
            for (p, a) in prev.iter_mut().zip(&acts[k]) {
                *p = *p * (T::one() - *a * *a);
            }
            delta = prev;
        }
    }
}

/// Mean squared error over all cells and its gradient with respect to the prediction.
pub fn mse_and_grad<T: Scalar>(pred: &[T], target: &[T]) -> (f64, Vec<T>) {
    let n = pred.len().max(1) as f64;
    let mut loss = 0.0;
    let scale = T::lit(2.0 / n);
    let grad = pred
        .iter()
        .zip(target)
        .map(|(p, t)| {
            let e = *p - *t;
            loss += e.as_f64() * e.as_f64();
            scale * e
        })
        .collect();
    (loss / n, grad)
}

/// What the autoencoder's output for the transfer experiments is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DaeOutput {
    /// The deepest encoder layer (default).
    #[default]
    Code,
    /// The reconstruction of the input.
    Reconstruction,
}

/// Denoising-autoencoder training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaeConfig {
    /// Encoder widths (1 or 2 layers); the decoder mirrors them.
    pub hidden: Vec<usize>,
    /// Standard deviation of the Gaussian corruption (on standardised features).
    pub noise_sd: f64,
    pub epochs: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerConfig,
    pub output: DaeOutput,
    pub seed: u64,
}

impl Default for DaeConfig {
    fn default() -> Self {
        DaeConfig {
            hidden: vec![150],
            noise_sd: 0.5,
            epochs: 30,
            batch_size: 64,
            optimizer: OptimizerConfig::default(),
            output: DaeOutput::Code,
            seed: 7,
        }
    }
}

/// A trained denoising autoencoder.
#[derive(Debug, Clone)]
pub struct Dae {
    pub net: DenseStack<f32>,
    pub output: DaeOutput,
    /// Mean reconstruction error of the clean input after each epoch.
    pub curve: Vec<f64>,
}

impl Dae {
    /// Trains on `rows` unlabelled windows `x` [rows, dim] (standardised beforehand).
    pub fn fit(
        x: &[f32],
        rows: usize,
        dim: usize,
        cfg: &DaeConfig,
        progress: &dyn Fn(usize, usize),
    ) -> Result<Dae> {
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        check_matrix(&x64, rows, dim, "autoencoder training windows")?;
        if rows == 0 {
            return Err(LearnError::TooLittleData(
                "autoencoder: no training windows".into(),
            ));
        }
        if cfg.hidden.is_empty() || cfg.hidden.len() > 2 {
            return Err(LearnError::Config(format!(
                "autoencoder hidden layers {:?}: 1 or 2 are supported",
                cfg.hidden
            )));
        }
        if !(cfg.noise_sd >= 0.0 && cfg.noise_sd.is_finite()) || cfg.batch_size == 0 {
            return Err(LearnError::Config(format!(
                "autoencoder: noise_sd {} must be ≥ 0 and batch_size {} ≥ 1",
                cfg.noise_sd, cfg.batch_size
            )));
        }
        let mut dims = vec![dim];
        dims.extend(&cfg.hidden);
        dims.extend(cfg.hidden.iter().rev().skip(1));
        dims.push(dim);
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut net = DenseStack::<f32>::new(dims, &mut rng)?;
        let mut opt = Optimizer::new(cfg.optimizer, net.params.len())?;
        let mut order: Vec<usize> = (0..rows).collect();
        let mut curve = Vec::new();
        for epoch in 0..cfg.epochs {
            rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rng);
            for chunk in order.chunks(cfg.batch_size) {
                let n = chunk.len();
                let mut clean = Vec::with_capacity(n * dim);
                for &r in chunk {
                    clean.extend_from_slice(&x[r * dim..(r + 1) * dim]);
                }
                let noisy: Vec<f32> = clean
                    .iter()
                    .map(|&v| {
                        let e: f64 = StandardNormal.sample(&mut rng);
                        v + (cfg.noise_sd * e) as f32
                    })
                    .collect();
                let acts = net.forward(&noisy, n);
                let (_, d) = mse_and_grad(acts.last().expect("output"), &clean);
                let mut grad = vec![0.0f32; net.params.len()];
                net.backward(&acts, n, &d, &mut grad);
                opt.step(&mut net.params, &mut grad, Some(10.0));
            }
            let acts = net.forward(x, rows);
            curve.push(mse_and_grad(acts.last().expect("output"), x).0);
            progress(epoch + 1, cfg.epochs);
        }
        Ok(Dae {
            net,
            output: cfg.output,
            curve,
        })
    }

    /// Width of [`Dae::transform`]'s output.
    pub fn output_dim(&self) -> usize {
        match self.output {
            DaeOutput::Code => self.net.dims[self.net.dims.len() / 2],
            DaeOutput::Reconstruction => *self.net.dims.last().expect("dims"),
        }
    }

    /// The code (or reconstruction) of `rows` clean windows.
    pub fn transform(&self, x: &[f32], rows: usize) -> Result<Vec<f32>> {
        let dim = self.net.dims[0];
        if x.len() != rows * dim {
            return Err(LearnError::Shape(format!(
                "autoencoder input: {} values for {rows} rows × {dim}",
                x.len()
            )));
        }
        let mut acts = self.net.forward(x, rows);
        Ok(match self.output {
            DaeOutput::Code => acts.swap_remove(self.net.dims.len() / 2),
            DaeOutput::Reconstruction => acts.pop().expect("output"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlp_gradient_matches_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for dims in [vec![4, 3, 4], vec![4, 3, 2, 3, 4]] {
            let net = DenseStack::<f64>::new(dims, &mut rng).unwrap();
            let rows = 5;
            let x: Vec<f64> = (0..rows * 4)
                .map(|i| ((i * 7) as f64 * 0.31).sin())
                .collect();
            let target: Vec<f64> = (0..rows * 4).map(|i| (i as f64 * 0.17).cos()).collect();
            let loss =
                |n: &DenseStack<f64>| mse_and_grad(n.forward(&x, rows).last().unwrap(), &target).0;
            let acts = net.forward(&x, rows);
            let (_, d) = mse_and_grad(acts.last().unwrap(), &target);
            let mut grad = vec![0.0; net.params.len()];
            net.backward(&acts, rows, &d, &mut grad);
            for i in 0..net.params.len() {
                let (mut a, mut b) = (net.clone(), net.clone());
                a.params[i] += 1e-6;
                b.params[i] -= 1e-6;
                let fd = (loss(&a) - loss(&b)) / 2e-6;
                assert!(
                    (fd - grad[i]).abs() < 1e-7 * (1.0 + fd.abs()),
                    "param {i}: analytic {} vs numeric {fd}",
                    grad[i]
                );
            }
        }
    }

    #[test]
    fn dae_learns_to_denoise_a_low_rank_signal() {
        // 8-dim windows on a 2-dim subspace: a 2-unit code reconstructs them well.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let rows = 400;
        let mut x = Vec::new();
        for _ in 0..rows {
            let (a, b): (f32, f32) = (rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
            for k in 0..8 {
                x.push(a * (k as f32 * 0.5).sin() + b * (k as f32 * 0.3).cos());
            }
        }
        let var: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len() as f64;
        let cfg = DaeConfig {
            hidden: vec![6, 2],
            noise_sd: 0.1,
            epochs: 60,
            batch_size: 32,
            ..DaeConfig::default()
        };
        let dae = Dae::fit(&x, rows, 8, &cfg, &|_, _| {}).unwrap();
        let last = *dae.curve.last().unwrap();
        assert!(
            last < 0.1 * var,
            "reconstruction error {last} vs variance {var}"
        );
        assert_eq!(dae.output_dim(), 2);
        assert_eq!(dae.transform(&x[..16], 2).unwrap().len(), 4);
        let bad = Dae::fit(&[f32::NAN; 8], 1, 8, &cfg, &|_, _| {});
        assert!(bad.unwrap_err().to_string().contains("non-finite"));
    }
}
