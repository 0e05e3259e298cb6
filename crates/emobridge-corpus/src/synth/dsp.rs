//! Small synthesis building blocks: resonators, one-pole filters, Gaussian noise.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// Klatt-style second-order resonator `y = A x + B y₁ + C y₂` with unit gain at DC.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resonator {
    a: f32,
    b: f32,
    c: f32,
    y1: f32,
    y2: f32,
}

impl Resonator {
    /// Sets centre frequency and bandwidth (Hz) without clearing the state (for gliding formants).
    pub fn tune(&mut self, freq: f32, bw: f32, sr: f32) {
        let r = (-std::f32::consts::PI * bw / sr).exp();
        self.c = -r * r;
        self.b = 2.0 * r * (2.0 * std::f32::consts::PI * freq / sr).cos();
        self.a = 1.0 - self.b - self.c;
    }

    pub fn tick(&mut self, x: f32) -> f32 {
        let y = self.a * x + self.b * self.y1 + self.c * self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// One-pole low-pass `y += k (x − y)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct OnePole {
    pub k: f32,
    y: f32,
}

impl OnePole {
    pub fn new(k: f32) -> Self {
        OnePole { k, y: 0.0 }
    }

    pub fn tick(&mut self, x: f32) -> f32 {
        self.y += self.k * (x - self.y);
        self.y
    }
}

/// One standard-normal draw.
pub fn gauss<R: Rng>(rng: &mut R) -> f32 {
    let v: f64 = StandardNormal.sample(rng);
    v as f32
}

/// A uniform draw in [lo, hi).
pub fn uniform<R: Rng>(rng: &mut R, lo: f32, hi: f32) -> f32 {
    lo + (hi - lo) * rng.random::<f32>()
}

/// dB to linear amplitude.
pub fn db(x: f32) -> f32 {
    10f32.powf(x / 20.0)
}

/// Soft limiter: linear below 0.7, smoothly saturating to ±1 (keeps loud takes from clipping).
pub fn soft_limit(x: f32) -> f32 {
    let knee = 0.7;
    if x.abs() <= knee {
        x
    } else {
        x.signum() * (knee + (1.0 - knee) * ((x.abs() - knee) / (1.0 - knee)).tanh())
    }
}
