//! Harmonic descriptors from the voicing (60 ms Gaussian) magnitude spectrum, as openSMILE's
//! `cHarmonics` computes them: ACF harmonics-to-noise ratio, harmonic peaks with parabolic
//! interpolation, H1−H2, H1−A3 and the formant amplitudes relative to H1.

use realfft::{num_complex::Complex, RealFftPlanner};

/// Log-relative value written for unvoiced frames and missing harmonics.
pub const LOG_REL_FLOOR: f64 = -201.0;

/// Harmonic descriptors of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HarmonicFrame {
    /// HNR from the autocorrelation in dB (0 when unvoiced), within [−90, 110].
    pub hnr_acf_db: f64,
    /// openSMILE's "H1−H2" in dB (0 when unvoiced): log-relative level of harmonic slot 1 minus
    /// slot 2, where slot 0 is the fundamental (the config's "H1" indexes slot 1).
    pub h1_h2_db: f64,
    /// openSMILE's "H1−A3" in dB (0 when unvoiced): slot 1 minus the strongest harmonic within
    /// ±20 % of F3.
    pub h1_a3_db: f64,
    /// Amplitude of the strongest harmonic within ±20 % of F1..F3 relative to H1, dB
    /// (−201 when unvoiced, 0 when no harmonic is near the formant).
    pub formant_amplitude_db: [f64; 3],
}

#[derive(Debug, Clone, Copy, Default)]
struct Harmonic {
    bin: i64,
    freq: f64,
    magnitude: f64,
    magnitude_interp: f64,
    /// Removed as a duplicate of the slot before it.
    duplicate: bool,
}

/// Computes harmonic descriptors for magnitude spectra of `n_bins` bins spaced `bin_hz` apart.
pub struct HarmonicsAnalyser {
    bin_hz: f64,
    n_bins: usize,
    n_harmonics: usize,
    inverse: std::sync::Arc<dyn realfft::ComplexToReal<f64>>,
    spec: Vec<Complex<f64>>,
    acf: Vec<f64>,
    acf_abs: Vec<f64>,
    scratch: Vec<Complex<f64>>,
    /// The ACF lags the HNR reads, summed directly from the windowed frame (see [`LagSums`]).
    lags: LagSums,
    /// Harmonics of the current frame (reused between frames).
    harmonics: Vec<Harmonic>,
    /// Analysis window of the frames (empty: not known).
    window: Vec<f64>,
}

/// Most ACF lags [`HarmonicsAnalyser::acf_hnr_db`] sums directly before it takes the whole
/// ACF from one inverse FFT instead (the peak search walks outwards from the F0 lag; it almost
/// always stops within a few lags, but may walk far on noise-like frames).
const DIRECT_LAGS: usize = 16;

/// Lags of the circular autocorrelation of the windowed frame `y` (zero-padded to the FFT
/// length `N`), `acf[k] = N · Σ_n y[n] · y[(n + k) mod N]`: the real inverse FFT of the power
/// spectrum `|Y|²` that openSMILE's `cHarmonics` takes, summed directly in time for the few lags
/// around the F0 period that the HNR peak search reads (about `L` multiply-adds a lag, against
/// an `N`-point inverse FFT for all of them). Same values up to rounding.
struct LagSums {
    n_fft: usize,
    /// The windowed frame.
    y: Vec<f64>,
    /// `|acf[k]|` of the lags computed for the current frame (valid where `computed`).
    value: Vec<f64>,
    computed: Vec<bool>,
    /// Lags the peak search has read (what [`Lazy::known`] reports and the budget counts).
    read: Vec<bool>,
    touched: Vec<usize>,
    evaluated: usize,
}

impl LagSums {
    fn new(n_bins: usize) -> LagSums {
        LagSums {
            n_fft: (n_bins - 1) * 2,
            y: Vec::new(),
            value: vec![0.0; n_bins],
            computed: vec![false; n_bins],
            read: vec![false; n_bins],
            touched: Vec::new(),
            evaluated: 0,
        }
    }

    /// Starts a frame: `frame` (samples, zero-padded) times `window`.
    fn start(&mut self, frame: &[f64], window: &[f64]) {
        for &k in &self.touched {
            self.computed[k] = false;
            self.read[k] = false;
        }
        self.touched.clear();
        self.evaluated = 0;
        let m = frame.len().min(window.len()).min(self.n_fft);
        // sized once per frame length: every value is written below
        self.y.resize(m, 0.0);
        emobridge_audio::frames::windowed(&mut self.y, &frame[..m], &window[..m]);
    }

    /// `|acf[k]|`, or `None` once the direct sums' budget is spent. The budget counts the lags
    /// read; a lag is summed together with its neighbours `k − 1 ..= k + 2` (four lags in one
    /// pass over the frame, each with the same sums as alone), which the search usually reads
    /// next.
    fn get(&mut self, k: usize) -> Option<f64> {
        if self.read[k] {
            return Some(self.value[k]);
        }
        if k != 0 {
            if self.evaluated == DIRECT_LAGS {
                return None;
            }
            self.evaluated += 1;
        }
        if !self.computed[k] {
            self.compute_around(k);
        }
        self.read[k] = true;
        Some(self.value[k])
    }

    /// Sums lag `k` (lag 0 alone; otherwise the lags `k − 1 ..= k + 2` that exist).
    fn compute_around(&mut self, k: usize) {
        let (y, n) = (&self.y, self.n_fft);
        let n_bins = self.value.len();
        let circular = |m: usize| lagged_dot(y, m) + lagged_dot(y, n - m);
        let mut put = |m: usize, acf: f64| {
            if !self.computed[m] {
                self.value[m] = (acf * n as f64).abs();
                self.computed[m] = true;
                self.touched.push(m);
            }
        };
        if k == 0 {
            put(0, lagged_dot(y, 0));
            return;
        }
        let first = k.saturating_sub(1).max(1);
        if first + 4 <= n_bins && first + 3 < y.len() {
            let direct = lagged_dots4(y, first);
            for (d, &v) in direct.iter().enumerate() {
                put(first + d, v + lagged_dot(y, n - first - d));
            }
        } else {
            put(k, circular(k));
        }
    }
}

/// `Σ_n y[n] · y[n + m]` (0 for `m ≥ len`), in four interleaved partial sums.
fn lagged_dot(y: &[f64], m: usize) -> f64 {
    emobridge_audio::dispatch_avx2!(lagged_dot_avx2, lagged_dot_body, (y, m))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lagged_dot_avx2(y: &[f64], m: usize) -> f64 {
    lagged_dot_body(y, m)
}

#[inline(always)]
fn lagged_dot_body(y: &[f64], m: usize) -> f64 {
    if m >= y.len() {
        return 0.0;
    }
    let (a, b) = (&y[..y.len() - m], &y[m..]);
    let (mut lo, mut hi) = ([0.0f64; 4], [0.0f64; 4]);
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, z) in (&mut ca).zip(&mut cb) {
        let x: &[f64; 8] = x.try_into().expect("chunks of 8");
        let z: &[f64; 8] = z.try_into().expect("chunks of 8");
        for l in 0..4 {
            lo[l] += x[l] * z[l];
            hi[l] += x[l + 4] * z[l + 4];
        }
    }
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, z)| x * z)
        .sum();
    let acc = [lo[0] + hi[0], lo[1] + hi[1], lo[2] + hi[2], lo[3] + hi[3]];
    ((acc[0] + acc[2]) + (acc[1] + acc[3])) + tail
}

/// [`lagged_dot`] for the four lags `m ..= m + 3` in one pass (needs `m + 3 < y.len()`): each
/// lag keeps its own eight partial sums, chunks, tail and final additions, so every value is
/// the same bits as [`lagged_dot`]'s.
fn lagged_dots4(y: &[f64], m: usize) -> [f64; 4] {
    emobridge_audio::dispatch_avx2!(lagged_dots4_avx2, lagged_dots4_body, (y, m))
}

/// [`lagged_dots4_body`] with the common chunks in AVX2 registers (lane `l` of lag `d`'s two
/// accumulators is its partial sum `l` and `l + 4`, as in the body).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lagged_dots4_avx2(y: &[f64], m: usize) -> [f64; 4] {
    use std::arch::x86_64::*;
    let len = y.len();
    assert!(m + 3 < len, "lags {m}..={} of {len} values", m + 3);
    let common = (len - m - 3) / 8;
    let p = y.as_ptr();
    let (mut lo, mut hi) = ([_mm256_setzero_pd(); 4], [_mm256_setzero_pd(); 4]);
    for c in 0..common {
        let j = 8 * c;
        // SAFETY: j + 8 ≤ len − m − 3, so every load lies inside y.
        unsafe {
            let (x0, x1) = (_mm256_loadu_pd(p.add(j)), _mm256_loadu_pd(p.add(j + 4)));
            for d in 0..4 {
                let z = p.add(j + m + d);
                lo[d] = _mm256_add_pd(lo[d], _mm256_mul_pd(x0, _mm256_loadu_pd(z)));
                hi[d] = _mm256_add_pd(hi[d], _mm256_mul_pd(x1, _mm256_loadu_pd(z.add(4))));
            }
        }
    }
    let mut parts = [[[0.0f64; 4]; 2]; 4];
    for d in 0..4 {
        // SAFETY: each store writes four values into an array of four.
        unsafe {
            _mm256_storeu_pd(parts[d][0].as_mut_ptr(), lo[d]);
            _mm256_storeu_pd(parts[d][1].as_mut_ptr(), hi[d]);
        }
    }
    std::array::from_fn(|d| {
        let [lo, hi] = parts[d];
        lagged_dot_finish(y, m + d, common, lo, hi)
    })
}

/// The rest of [`lagged_dot_body`] for lag `m` from chunk `from` on, given the partial sums of
/// the chunks before it.
#[inline(always)]
fn lagged_dot_finish(y: &[f64], m: usize, from: usize, mut lo: [f64; 4], mut hi: [f64; 4]) -> f64 {
    let n = y.len() - m;
    for c in from..n / 8 {
        let j = 8 * c;
        for l in 0..4 {
            lo[l] += y[j + l] * y[j + m + l];
            hi[l] += y[j + l + 4] * y[j + m + l + 4];
        }
    }
    let tail: f64 = (8 * (n / 8)..n).map(|j| y[j] * y[j + m]).sum();
    let acc = [lo[0] + hi[0], lo[1] + hi[1], lo[2] + hi[2], lo[3] + hi[3]];
    ((acc[0] + acc[2]) + (acc[1] + acc[3])) + tail
}

fn lagged_dots4_body(y: &[f64], m: usize) -> [f64; 4] {
    assert!(
        m + 3 < y.len(),
        "lags {m}..={} of {} values",
        m + 3,
        y.len()
    );
    std::array::from_fn(|d| lagged_dot_finish(y, m + d, 0, [0.0; 4], [0.0; 4]))
}

impl HarmonicsAnalyser {
    /// Analyser looking for up to 100 harmonics (eGeMAPS setting).
    pub fn new(n_bins: usize, bin_hz: f64) -> HarmonicsAnalyser {
        let n = (n_bins - 1) * 2;
        let inverse = RealFftPlanner::<f64>::new().plan_fft_inverse(n);
        HarmonicsAnalyser {
            bin_hz,
            n_bins,
            n_harmonics: 100,
            spec: inverse.make_input_vec(),
            acf: inverse.make_output_vec(),
            acf_abs: Vec::with_capacity(n_bins),
            scratch: inverse.make_scratch_vec(),
            inverse,
            lags: LagSums::new(n_bins),
            harmonics: Vec::new(),
            window: Vec::new(),
        }
    }

    fn freq(&self, bin: usize) -> f64 {
        bin as f64 * self.bin_hz
    }

    /// Nearest bin to `f` among the bins from `start` on: the first bin above `f` (at or
    /// after `start`, at least 1) or the one before it, whichever is nearer (0 if no bin from
    /// `start` on lies above `f`). The first bin above `f` is ⌊f / bin_hz⌋ + 1 up to rounding,
    /// checked against the bin frequencies (with a scan where the check fails), so the result
    /// is the scan's without a loop over the bins between.
    fn freq_to_bin(&self, f: f64, start: usize) -> usize {
        let (s, n) = (start.max(1), self.n_bins);
        let estimate = if f.is_nan() {
            s
        } else {
            ((f / self.bin_hz).max(0.0) as usize).saturating_add(1)
        };
        let mut b = estimate.max(s);
        if b > s && self.freq(b - 1) > f {
            b -= 1;
        }
        if b < n && self.freq(b) <= f {
            b += 1;
        }
        let first_above = (b == s || self.freq(b - 1) <= f) && (b >= n || self.freq(b) > f);
        if !first_above {
            return self.freq_to_bin_scan(f, start);
        }
        if b >= n {
            return 0;
        }
        if self.freq(b) - f > f - self.freq(b - 1) {
            b - 1
        } else {
            b
        }
    }

    /// [`HarmonicsAnalyser::freq_to_bin`] by scanning upwards from `start`.
    fn freq_to_bin_scan(&self, f: f64, start: usize) -> usize {
        for b in start.max(1)..self.n_bins {
            if self.freq(b) > f {
                return if self.freq(b) - f > f - self.freq(b - 1) {
                    b - 1
                } else {
                    b
                };
            }
        }
        0
    }

    /// The analysis window of the frames whose spectra [`HarmonicsAnalyser::frame`] gets, so
    /// that the HNR can sum the ACF lags it needs from the frame itself (see [`LagSums`]).
    pub fn with_window(mut self, window: Vec<f64>) -> HarmonicsAnalyser {
        self.window = window;
        self
    }

    /// HNR in dB from the autocorrelation (inverse FFT of the power spectrum) at the lag of F0:
    /// the nearest ACF peak to the F0 period. With the frame's samples `frame` (unwindowed,
    /// zero-padded; empty if not at hand) and a window set by
    /// [`HarmonicsAnalyser::with_window`], the lags the peak search reads are summed directly
    /// ([`LagSums`]); otherwise, or when the search walks further than a few lags, the whole
    /// ACF comes from an inverse FFT of `mags²` (same values up to rounding).
    pub fn acf_hnr_db(&mut self, mags: &[f64], frame: &[f64], f0: f64) -> f64 {
        if f0 <= 0.0 {
            return 0.0;
        }
        let fs = self.freq(self.n_bins - 1) * 2.0;
        let lag = (fs / f0).floor() as usize;
        if lag == 0 {
            return 0.0;
        }
        let idx = lag.min(self.n_bins - 1);
        if !frame.is_empty() && !self.window.is_empty() {
            let lags = &mut self.lags;
            lags.start(frame, &self.window);
            if let Some(peak) = closest_peak_by(self.n_bins, idx, lags) {
                // both were computed on the way (lag 0 costs no budget)
                if let (Some(a0), Some(ap)) = (lags.get(0), lags.get(peak)) {
                    return hnr_db(peak, a0, ap);
                }
            }
        }
        self.acf_hnr_db_fft(mags, idx)
    }

    /// [`HarmonicsAnalyser::acf_hnr_db`] from the whole ACF (one inverse FFT).
    fn acf_hnr_db_fft(&mut self, mags: &[f64], idx: usize) -> f64 {
        for (c, &m) in self.spec.iter_mut().zip(mags) {
            *c = Complex::new(m * m, 0.0);
        }
        if let Some(last) = self.spec.last_mut() {
            last.im = 0.0;
        }
        self.spec[0].im = 0.0;
        if self
            .inverse
            .process_with_scratch(&mut self.spec, &mut self.acf, &mut self.scratch)
            .is_err()
        {
            return 0.0;
        }
        self.acf_abs.clear();
        self.acf_abs
            .extend(self.acf[..self.n_bins].iter().map(|v| v.abs()));
        let acf = &self.acf_abs;
        let peak = closest_peak(acf, idx);
        hnr_db(peak, acf[0], acf[peak])
    }

    /// All descriptors of one frame given F0 (Hz, 0 = unvoiced) and formant frequencies F1..F3.
    /// `frame` holds the frame's samples for the HNR (see [`HarmonicsAnalyser::acf_hnr_db`]).
    pub fn frame(
        &mut self,
        mags: &[f64],
        frame: &[f64],
        f0: f64,
        formants: &[f64; 3],
    ) -> HarmonicFrame {
        self.frame_up_to(mags, frame, f0, formants, true)
    }

    /// [`HarmonicsAnalyser::frame`]; with `early_stop` the harmonic search ends at the first
    /// harmonic that can no longer lie within ±20 % of a formant (the descriptors read only
    /// slots 1 and 2 and the harmonics near F1..F3; each harmonic depends only on those below
    /// it), so the values are the same as with all 100 harmonics.
    fn frame_up_to(
        &mut self,
        mags: &[f64],
        frame: &[f64],
        f0: f64,
        formants: &[f64; 3],
        early_stop: bool,
    ) -> HarmonicFrame {
        let hnr = self.acf_hnr_db(mags, frame, f0);
        if f0 <= 0.0 {
            return HarmonicFrame {
                hnr_acf_db: hnr,
                formant_amplitude_db: [LOG_REL_FLOOR; 3],
                ..Default::default()
            };
        }
        let bounds = formants.map(|fc| ((0.8 * fc) as f32 as f64, (1.2 * fc) as f32 as f64));
        let highest = bounds.iter().fold(0.0f64, |m, b| m.max(b.1));
        self.find_harmonics(mags, f0, early_stop.then_some(highest));
        let harmonics = &self.harmonics;
        let formant_idx = bounds.map(|b| strongest_near(harmonics, b));
        let log_rel = |i: usize| log_rel(harmonics, i);
        // openSMILE parses "H1-H2" / "H1-A3" as harmonic slots 1 and 2 (slot 0 is F0 itself) and
        // the harmonic nearest formant 3, so these are differences of the 2nd harmonic.
        let h1_h2 = (log_rel(1) - log_rel(2)).clamp(-201.0, 201.0);
        let h1_a3 = match formant_idx[2] {
            Some(i) => (log_rel(1) - log_rel(i)).clamp(-201.0, 201.0),
            None => (log_rel(1) - 201.0).clamp(-201.0, 201.0),
        };
        let mut amp = [0.0; 3];
        for (a, idx) in amp.iter_mut().zip(&formant_idx) {
            *a = idx.map_or(0.0, log_rel);
        }
        HarmonicFrame {
            hnr_acf_db: hnr,
            h1_h2_db: h1_h2,
            h1_a3_db: h1_a3,
            formant_amplitude_db: amp,
        }
    }

    /// Fills `self.harmonics` with harmonic slots 0.. of F0 `f0`: all `n_harmonics` of them,
    /// or with `stop_above = Some(hz)` only up to the first slot whose peak cannot lie at or
    /// below `hz` (at least slots 0..3).
    fn find_harmonics(&mut self, mags: &[f64], f0: f64, stop_above: Option<f64>) {
        let n = self.n_bins;
        let mut last_bin = self.freq_to_bin(0.5 * f0, 1);
        let first_bin = self.freq_to_bin(0.5 * f0, last_bin);
        let count = match stop_above {
            Some(hz) => self.harmonics_needed(f0, hz),
            None => self.n_harmonics,
        };
        let mut hs = std::mem::take(&mut self.harmonics);
        hs.clear();
        hs.resize(count, Harmonic::default());
        for (i, h) in hs.iter_mut().enumerate() {
            if (i as f64 + 0.5) * f0 > self.freq(n - 1) {
                // past the Nyquist frequency every harmonic maps to bin 0 and is removed as a
                // duplicate; none of them can reach a descriptor
                h.bin = 0;
                continue;
            }
            let cand = self.freq_to_bin((i + 1) as f64 * f0, last_bin);
            if cand >= n {
                h.bin = -1;
                continue;
            }
            let mut peak: Option<usize> = if is_peak(mags, cand) {
                Some(cand)
            } else {
                None
            };
            if peak.is_none() {
                let lower = self.freq_to_bin((i as f64 + 0.5) * f0, last_bin) as i64;
                let upper = self.freq_to_bin((i as f64 + 1.5) * f0, cand) as i64;
                let (mut l, mut r) = (cand as i64 - 1, cand as i64 + 1);
                while (l >= lower || r <= upper) && peak.is_none() {
                    if r <= upper {
                        if r >= 0 && is_peak(mags, r as usize) {
                            peak = Some(r as usize);
                            break;
                        }
                        r += 1;
                    }
                    if l >= lower {
                        if l >= 0 && is_peak(mags, l as usize) {
                            peak = Some(l as usize);
                            break;
                        }
                        l -= 1;
                    }
                }
            }
            match peak {
                Some(p) if p >= first_bin && p + 1 < n && p >= 1 => {
                    let (fx, my) = super::shs::quad_peak(
                        self.freq(p - 1),
                        mags[p - 1],
                        self.freq(p),
                        mags[p],
                        self.freq(p + 1),
                        mags[p + 1],
                    );
                    *h = Harmonic {
                        bin: p as i64,
                        freq: fx,
                        magnitude: mags[p],
                        magnitude_interp: my as f32 as f64,
                        duplicate: false,
                    };
                }
                _ => {
                    h.bin = cand as i64;
                }
            }
            last_bin = cand;
        }
        // duplicates removed (a slot on the same bin as the slot before it, itself possibly
        // removed, becomes an empty slot at bin 0)
        for i in 1..hs.len() {
            if hs[i].bin == hs[i - 1].bin {
                hs[i] = Harmonic {
                    bin: 0,
                    duplicate: true,
                    ..Default::default()
                };
            }
        }
        self.harmonics = hs;
    }

    /// Number of harmonic slots to search so that every slot whose interpolated peak can lie at
    /// or below `hz` is included: slot `i`'s peak lies at or above the bin nearest `(i + ½)·F0`
    /// (its search window starts there), so its interpolated frequency is above
    /// `(i + ½)·F0 − 3 bins` with room to spare. Slots at exactly the Nyquist bin search from
    /// bin 0 and are never cut.
    fn harmonics_needed(&self, f0: f64, hz: f64) -> usize {
        let nyquist = self.freq(self.n_bins - 1);
        if !(f0 > 3.0 * self.bin_hz) || !hz.is_finite() {
            return self.n_harmonics;
        }
        let mut count = 3;
        while count < self.n_harmonics && (count as f64 + 0.5) * f0 - 3.0 * self.bin_hz <= hz {
            count += 1;
        }
        if (count..self.n_harmonics).any(|i| (i as f64 + 0.5) * f0 == nyquist) {
            return self.n_harmonics;
        }
        count
    }
}

/// Level of harmonic slot `i` relative to slot 0 in dB: 0 for slot 0, −201 for a removed
/// duplicate or when slot 0 has no magnitude, else `20·log10(interpolated / slot 0)` floored
/// at −200 (−200 for a slot without a peak).
fn log_rel(hs: &[Harmonic], i: usize) -> f64 {
    if i == 0 {
        return 0.0;
    }
    let h1 = hs[0].magnitude as f32 as f64;
    let h = &hs[i];
    if h.duplicate || h1 == 0.0 {
        LOG_REL_FLOOR
    } else if h.magnitude_interp > 0.0 {
        (20.0 * (h.magnitude_interp.log10() - h1.log10())).max(-200.0)
    } else {
        -200.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(mut seed: u64) -> impl FnMut() -> f64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// Magnitude spectra of harmonic tones with noise, `n_bins` bins `bin_hz` apart.
    fn tone_spectra(n_bins: usize, bin_hz: f64, count: usize) -> Vec<(Vec<f64>, f64)> {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        (0..count)
            .map(|_| {
                let f0 = 55.0 + 500.0 * next();
                let noise = 1e-3 + 0.3 * next();
                let mags = (0..n_bins)
                    .map(|b| {
                        let f = b as f64 * bin_hz;
                        let h = f / f0;
                        let d = (h - h.round()).abs() * f0 / bin_hz;
                        let tone = if h >= 0.5 {
                            (-d * d).exp() / h.round()
                        } else {
                            0.0
                        };
                        tone + noise * next()
                    })
                    .collect();
                (mags, f0)
            })
            .collect()
    }

    #[test]
    fn four_lags_at_once_equal_one_at_a_time_bit_for_bit() {
        let mut next = xorshift(5);
        for len in [4usize, 9, 17, 100, 2646] {
            let y: Vec<f64> = (0..len).map(|_| next() - 0.5).collect();
            for m in [0usize, 1, 5, 7, 8, 13, len.saturating_sub(4), len / 3] {
                if m + 3 >= len {
                    continue;
                }
                let (got, scalar) = (lagged_dots4(&y, m), lagged_dots4_body(&y, m));
                for (d, (g, s)) in got.iter().zip(&scalar).enumerate() {
                    let want = lagged_dot(&y, m + d);
                    assert_eq!(g.to_bits(), want.to_bits(), "len {len} lag {}", m + d);
                    assert_eq!(s.to_bits(), want.to_bits(), "len {len} lag {}", m + d);
                }
            }
        }
    }

    #[test]
    fn direct_lag_sums_equal_the_inverse_fft() {
        use crate::egemaps::frames::{gauss, MagnitudeFft};
        // 60 ms frames at 8 and 44.1 kHz: voiced tones with noise, and pure noise
        for (rate, len) in [(8000.0, 480usize), (44100.0, 2646)] {
            let nfft = (len as usize).next_power_of_two();
            let n_bins = nfft / 2 + 1;
            let window = gauss(len, 0.4);
            let mut h =
                HarmonicsAnalyser::new(n_bins, rate / nfft as f64).with_window(window.clone());
            let mut fft = MagnitudeFft::new(nfft);
            let mut next = xorshift(77);
            for case in 0..40 {
                let f0 = 60.0 + 400.0 * next();
                let noise = if case % 5 == 0 { 1.0 } else { 0.05 * next() };
                let frame: Vec<f64> = (0..len)
                    .map(|i| {
                        let t = i as f64 / rate;
                        let v: f64 = (1..=10)
                            .map(|k| {
                                (2.0 * std::f64::consts::PI * f0 * k as f64 * t).sin() / k as f64
                            })
                            .sum();
                        v * 0.3 + noise * (next() - 0.5)
                    })
                    .collect();
                let mut mags = Vec::new();
                fft.magnitudes(&frame, &window, &mut mags);
                assert!(h.acf_hnr_db_fft(&mags, 1).is_finite());
                let acf = h.acf_abs.clone();
                h.lags.start(&frame, &window);
                for k in [0usize, 1, 2, 50, 100, n_bins / 2, n_bins - 2, n_bins - 1] {
                    h.lags.evaluated = 0;
                    let v = h.lags.get(k).expect("within budget");
                    assert!(
                        (v - acf[k]).abs() <= 1e-12 * acf[0],
                        "lag {k}: {v} vs {}",
                        acf[k]
                    );
                }
                // the HNR from direct sums equals the one from the whole ACF
                let lag = (rate / f0).floor() as usize;
                let want = h.acf_hnr_db_fft(&mags, lag.min(n_bins - 1));
                let got = h.acf_hnr_db(&mags, &frame, f0);
                assert!(
                    (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                    "{got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn early_stop_gives_the_values_of_all_harmonics() {
        for (n_bins, bin_hz) in [
            (2049usize, 44100.0 / 4096.0),
            (2049, 48000.0 / 4096.0),
            (1025, 16000.0 / 1024.0),
            (257, 8000.0 / 512.0),
        ] {
            let mut h = HarmonicsAnalyser::new(n_bins, bin_hz);
            let spectra = tone_spectra(n_bins, bin_hz, 60);
            for (s, (mags, f0)) in spectra.iter().enumerate() {
                for formants in [
                    [500.0, 1500.0, 2500.0],
                    [300.0 + s as f64 * 13.0, 2200.0, 3900.0 + s as f64 * 20.0],
                    [0.0, 0.0, 0.0],
                    [700.0, 0.0, 5400.0],
                ] {
                    let full = h.frame_up_to(mags, &[], *f0, &formants, false);
                    let cut = h.frame_up_to(mags, &[], *f0, &formants, true);
                    assert_eq!(
                        format!("{full:?}"),
                        format!("{cut:?}"),
                        "f0 {f0} formants {formants:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn nearest_bin_equals_the_scan() {
        for (n_bins, bin_hz) in [
            (2049usize, 44100.0 / 4096.0),
            (257, 8000.0 / 512.0),
            (9, 0.1),
        ] {
            let h = HarmonicsAnalyser::new(n_bins, bin_hz);
            let top = bin_hz * n_bins as f64 * 1.1;
            let mut fs: Vec<f64> = (0..4000).map(|i| top * i as f64 / 3999.0).collect();
            // exactly on bins and half-way between them, negative, huge, NaN
            fs.extend((0..n_bins + 2).map(|b| b as f64 * bin_hz));
            fs.extend((0..n_bins).map(|b| (b as f64 + 0.5) * bin_hz));
            fs.extend([-5.0, 1e300, f64::INFINITY, f64::NAN]);
            for &f in &fs {
                for start in [0usize, 1, 2, 7, n_bins / 2, n_bins - 1, n_bins, n_bins + 3] {
                    assert_eq!(
                        h.freq_to_bin(f, start),
                        h.freq_to_bin_scan(f, start),
                        "f {f} start {start} bins {n_bins}"
                    );
                }
            }
        }
    }
}

/// Index of the harmonic with the largest magnitude within `[lo, hi]` (0.8 and 1.2 × the
/// formant frequency, rounded to f32).
fn strongest_near(hs: &[Harmonic], (lo, hi): (f64, f64)) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut max = 0.0;
    for (i, h) in hs.iter().enumerate() {
        if h.freq >= lo && h.freq <= hi && h.magnitude > max {
            best = Some(i);
            max = h.magnitude;
        }
    }
    best
}

fn is_peak(x: &[f64], n: usize) -> bool {
    let len = x.len();
    if n >= len {
        return false;
    }
    if n + 1 < len {
        if n > 0 {
            x[n] > x[n - 1] && x[n] > x[n + 1]
        } else {
            x[0] > x[1]
        }
    } else {
        n > 0 && x[n] > x[n - 1]
    }
}

/// HNR in dB from the ACF at lag 0 and at the chosen peak (0 dB when the peak is lag 0).
fn hnr_db(peak: usize, acf0: f64, acf_peak: f64) -> f64 {
    if peak == 0 {
        return 0.0;
    }
    let d = acf0 - acf_peak;
    let ratio = if d == 0.0 { 1e11 } else { acf_peak / d };
    10.0 * ratio.clamp(1e-9, 1e11).log10()
}

/// Nearest local maximum to `idx`, searching outwards (left first at equal distance).
fn closest_peak(x: &[f64], idx: usize) -> usize {
    closest_peak_by(x.len(), idx, &mut { x }).expect("a slice has every value")
}

/// Values of a sequence read on demand: `get(i)` (`None` when the source gives up) and whether
/// value `i` is already at hand (reading it costs nothing).
trait Lazy {
    fn get(&mut self, i: usize) -> Option<f64>;
    fn known(&self, i: usize) -> bool;
}

impl Lazy for &[f64] {
    fn get(&mut self, i: usize) -> Option<f64> {
        Some(self[i])
    }
    fn known(&self, _: usize) -> bool {
        true
    }
}

impl Lazy for LagSums {
    fn get(&mut self, i: usize) -> Option<f64> {
        LagSums::get(self, i)
    }
    fn known(&self, i: usize) -> bool {
        self.read[i]
    }
}

/// [`is_peak`] over a [`Lazy`] sequence of length `len`, reading only the values the test
/// needs (of the two neighbours, the one at hand first: the outcome does not depend on the
/// order); `None` when the source gives up.
fn is_peak_by(len: usize, n: usize, x: &mut impl Lazy) -> Option<bool> {
    if n >= len {
        return Some(false);
    }
    Some(if n + 1 < len {
        if n > 0 {
            let v = x.get(n)?;
            let (first, second) = if !x.known(n - 1) && x.known(n + 1) {
                (n + 1, n - 1)
            } else {
                (n - 1, n + 1)
            };
            v > x.get(first)? && v > x.get(second)?
        } else {
            x.get(0)? > x.get(1)?
        }
    } else {
        n > 0 && x.get(n)? > x.get(n - 1)?
    })
}

/// [`closest_peak`] over a [`Lazy`] sequence of length `n`; `None` when the source gives up.
fn closest_peak_by(n: usize, idx: usize, x: &mut impl Lazy) -> Option<usize> {
    if is_peak_by(n, idx, x)? {
        return Some(idx);
    }
    let mut o = 1usize;
    while idx > o || idx + o < n - 1 {
        if idx > o && is_peak_by(n, idx - o, x)? {
            return Some(idx - o);
        }
        if idx + o < n - 1 && is_peak_by(n, idx + o, x)? {
            return Some(idx + o);
        }
        o += 1;
    }
    let (first, last, at) = (x.get(0)?, x.get(n - 1)?, x.get(idx)?);
    Some(if first > at && last <= at {
        0
    } else if first <= at && last > at {
        n - 1
    } else if first > at && last > at {
        if idx < n / 2 {
            0
        } else {
            n - 1
        }
    } else {
        idx
    })
}
