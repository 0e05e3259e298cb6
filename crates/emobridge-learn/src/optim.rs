//! First-order optimisers over a flat parameter vector: SGD with (classical) momentum, as
//! CURRENNT trains the paper's networks, and Adam (Kingma & Ba 2015, PyTorch's defaults
//! β = (0.9, 0.999), ε = 1e-8), with optional clipping of the gradient's global L2 norm.

use serde::{Deserialize, Serialize};

use crate::{LearnError, Result};

/// Which optimiser, with its knobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// `v ← μ v + g; θ ← θ − lr · v` (PyTorch's `SGD(momentum=μ)`).
    Sgd { lr: f64, momentum: f64 },
    /// Adam with bias correction.
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
    },
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        OptimizerConfig::Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl OptimizerConfig {
    /// Checks the knobs (positive finite rate, momentum and betas in [0, 1)).
    pub fn validate(&self) -> Result<()> {
        let ok = match *self {
            OptimizerConfig::Sgd { lr, momentum } => {
                lr > 0.0 && lr.is_finite() && (0.0..1.0).contains(&momentum)
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                lr > 0.0
                    && lr.is_finite()
                    && (0.0..1.0).contains(&beta1)
                    && (0.0..1.0).contains(&beta2)
                    && eps > 0.0
            }
        };
        if ok {
            Ok(())
        } else {
            Err(LearnError::Config(format!(
                "optimizer {self:?}: the rate must be > 0 and finite, momentum and betas in [0, 1), eps > 0"
            )))
        }
    }
}

/// An optimiser's state for one parameter vector.
#[derive(Debug, Clone)]
pub struct Optimizer {
    config: OptimizerConfig,
    m: Vec<f32>,
    v: Vec<f32>,
    steps: u64,
}

impl Optimizer {
    pub fn new(config: OptimizerConfig, n_params: usize) -> Result<Self> {
        config.validate()?;
        let v_len = if matches!(config, OptimizerConfig::Adam { .. }) {
            n_params
        } else {
            0
        };
        Ok(Optimizer {
            config,
            m: vec![0.0; n_params],
            v: vec![0.0; v_len],
            steps: 0,
        })
    }

    /// One update of `params` with `grad`, after scaling `grad` down to a global L2 norm of at
    /// most `clip` (when given).
    pub fn step(&mut self, params: &mut [f32], grad: &mut [f32], clip: Option<f64>) {
        assert_eq!(params.len(), self.m.len(), "optimizer: parameter count");
        assert_eq!(grad.len(), self.m.len(), "optimizer: gradient count");
        if let Some(c) = clip {
            let norm = grad.iter().map(|g| (*g as f64).powi(2)).sum::<f64>().sqrt();
            if norm > c && norm.is_finite() {
                let s = (c / norm) as f32;
                grad.iter_mut().for_each(|g| *g *= s);
            }
        }
        self.steps += 1;
        match self.config {
            OptimizerConfig::Sgd { lr, momentum } => {
                let (lr, mu) = (lr as f32, momentum as f32);
                for ((p, g), m) in params.iter_mut().zip(grad.iter()).zip(&mut self.m) {
                    *m = mu * *m + g;
                    *p -= lr * *m;
                }
            }
            OptimizerConfig::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                let t = self.steps as i32;
                let c1 = 1.0 - beta1.powi(t);
                let c2 = 1.0 - beta2.powi(t);
                let step = (lr / c1) as f32;
                let (b1, b2, c2s, eps) = (beta1 as f32, beta2 as f32, c2.sqrt() as f32, eps as f32);
                for (((p, g), m), v) in params
                    .iter_mut()
                    .zip(grad.iter())
                    .zip(&mut self.m)
                    .zip(&mut self.v)
                {
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *p -= step * *m / (v.sqrt() / c2s + eps);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_optimisers_minimise_a_quadratic() {
        for cfg in [
            OptimizerConfig::Sgd {
                lr: 0.05,
                momentum: 0.9,
            },
            OptimizerConfig::Adam {
                lr: 0.01,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
        ] {
            let mut opt = Optimizer::new(cfg, 2).unwrap();
            let mut p = vec![3.0f32, -2.0];
            for _ in 0..3000 {
                let mut g = vec![2.0 * (p[0] - 1.0), 20.0 * (p[1] + 0.5)];
                opt.step(&mut p, &mut g, Some(100.0));
            }
            assert!(
                (p[0] - 1.0).abs() < 1e-2 && (p[1] + 0.5).abs() < 1e-2,
                "{cfg:?}: {p:?}"
            );
        }
        assert!(Optimizer::new(
            OptimizerConfig::Sgd {
                lr: -1.0,
                momentum: 0.9
            },
            1
        )
        .is_err());
    }

    #[test]
    fn adam_first_step_matches_hand_computation() {
        // After one step Adam moves each weight by lr·sign(g) (bias-corrected m/√v = g/|g|).
        let mut opt = Optimizer::new(OptimizerConfig::default(), 2).unwrap();
        let mut p = vec![0.0f32, 0.0];
        opt.step(&mut p, &mut [0.3, -4.0], None);
        assert!((p[0] + 1e-3).abs() < 1e-7 && (p[1] - 1e-3).abs() < 1e-7);
    }
}
