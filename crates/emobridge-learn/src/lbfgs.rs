//! Limited-memory BFGS for smooth unconstrained minimisation (Nocedal & Wright, Alg. 7.4/7.5),
//! with a backtracking Armijo line search and curvature-guarded updates. Enough for the convex
//! objectives of the probes, where it converges to the unique minimum.

use crate::{LearnError, Result};

/// Solver settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LbfgsConfig {
    /// Stop when max |gradient| ≤ `gtol` (scipy's `pgtol` without bounds).
    pub gtol: f64,
    /// Iteration limit.
    pub max_iter: usize,
    /// Correction pairs kept (scipy's default 10).
    pub memory: usize,
}

/// scipy's L-BFGS-B `ftol` as scikit-learn sets it (64 ε): a step that lowers the objective by
/// less than this, relative to its size, is at the resolution of f64 and ends the solve.
pub const FTOL: f64 = 64.0 * f64::EPSILON;

impl Default for LbfgsConfig {
    fn default() -> Self {
        LbfgsConfig {
            gtol: 1e-8,
            max_iter: 1000,
            memory: 10,
        }
    }
}

/// Where the solver stopped.
#[derive(Debug, Clone)]
pub struct LbfgsResult {
    pub x: Vec<f64>,
    pub value: f64,
    pub iterations: usize,
    /// max |gradient| at `x`.
    pub gradient_norm: f64,
    /// Whether `gradient_norm ≤ gtol`, or the objective stopped changing at f64 resolution
    /// (relative decrease ≤ [`FTOL`]); false when the iteration limit ended the solve.
    pub converged: bool,
}

/// Minimises `f` from `x0`; `f(x, grad)` returns the value and writes the gradient.
pub fn minimize(
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    x0: Vec<f64>,
    cfg: &LbfgsConfig,
) -> Result<LbfgsResult> {
    let n = x0.len();
    let mut x = x0;
    let mut g = vec![0.0; n];
    let mut value = f(&x, &mut g);
    if !value.is_finite() {
        return Err(LearnError::BadStart { value });
    }
    let mut history: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> = Default::default();
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    let mut iterations = 0;
    let mut stalled = false;
    while iterations < cfg.max_iter {
        if max_abs(&g) <= cfg.gtol {
            break;
        }
        let mut dir = two_loop(&g, &history);
        let mut slope = dot(&g, &dir);
        if slope >= 0.0 {
            // Not a descent direction (can follow a poor curvature pair): restart from -g.
            history.clear();
            dir = g.iter().map(|v| -v).collect();
            slope = -dot(&g, &g);
        }
        // The first step has no curvature information: keep it short.
        let mut step = if history.is_empty() {
            (1.0 / max_abs(&g)).min(1.0)
        } else {
            1.0
        };
        let mut accepted = false;
        for _ in 0..60 {
            for i in 0..n {
                x_new[i] = x[i] + step * dir[i];
            }
            let v = f(&x_new, &mut g_new);
            if v.is_finite() && v <= value + 1e-4 * step * slope {
                accepted = true;
                let s: Vec<f64> = (0..n).map(|i| x_new[i] - x[i]).collect();
                let y: Vec<f64> = (0..n).map(|i| g_new[i] - g[i]).collect();
                let sy = dot(&s, &y);
                if sy > 1e-12 * dot(&y, &y).sqrt() * dot(&s, &s).sqrt() {
                    if history.len() == cfg.memory {
                        history.pop_front();
                    }
                    history.push_back((s, y, 1.0 / sy));
                }
                std::mem::swap(&mut x, &mut x_new);
                std::mem::swap(&mut g, &mut g_new);
                stalled = value - v <= FTOL * value.abs().max(v.abs()).max(1.0);
                value = v;
                break;
            }
            step *= 0.5;
        }
        iterations += 1;
        if !accepted {
            // No decrease along a descent direction: at the limit of floating-point resolution.
            stalled = true;
        }
        if stalled {
            break;
        }
    }
    let gradient_norm = max_abs(&g);
    Ok(LbfgsResult {
        converged: gradient_norm <= cfg.gtol || stalled,
        x,
        value,
        iterations,
        gradient_norm,
    })
}

/// −H·g by the two-loop recursion over the stored pairs.
fn two_loop(
    g: &[f64],
    history: &std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)>,
) -> Vec<f64> {
    let mut q: Vec<f64> = g.to_vec();
    let mut alphas = Vec::with_capacity(history.len());
    for (s, y, rho) in history.iter().rev() {
        let a = rho * dot(s, &q);
        for (qi, yi) in q.iter_mut().zip(y) {
            *qi -= a * yi;
        }
        alphas.push(a);
    }
    if let Some((s, y, _)) = history.back() {
        let gamma = dot(s, y) / dot(y, y);
        q.iter_mut().for_each(|v| *v *= gamma);
    }
    for ((s, y, rho), a) in history.iter().zip(alphas.iter().rev()) {
        let b = rho * dot(y, &q);
        for (qi, si) in q.iter_mut().zip(s) {
            *qi += (a - b) * si;
        }
    }
    q.iter_mut().for_each(|v| *v = -*v);
    q
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs(a: &[f64]) -> f64 {
    a.iter().fold(0.0, |m, v| m.max(v.abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_rosenbrock_minimum() {
        let rosen = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let r = minimize(rosen, vec![-1.2, 1.0], &LbfgsConfig::default()).unwrap();
        assert!(r.converged, "{r:?}");
        assert!(
            (r.x[0] - 1.0).abs() < 1e-6 && (r.x[1] - 1.0).abs() < 1e-6,
            "{r:?}"
        );
    }

    #[test]
    fn solves_a_badly_scaled_quadratic() {
        // Condition number ≈ 280.
        let d: Vec<f64> = (0..50).map(|i| 10f64.powf(i as f64 / 20.0)).collect();
        let quad = |x: &[f64], g: &mut [f64]| {
            let mut v = 0.0;
            for i in 0..x.len() {
                g[i] = d[i] * (x[i] - 1.0);
                v += 0.5 * d[i] * (x[i] - 1.0).powi(2);
            }
            v
        };
        let r = minimize(
            quad,
            vec![0.0; 50],
            &LbfgsConfig {
                gtol: 1e-9,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(r.converged, "{} {}", r.iterations, r.gradient_norm);
        assert!(r.x.iter().all(|v| (v - 1.0).abs() < 1e-6), "{:?}", r.x);
    }
}
