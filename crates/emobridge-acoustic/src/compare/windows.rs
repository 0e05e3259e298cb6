//! Windowed summary of the ComParE contours (Coutinho & Schuller 2017): the arithmetic mean and
//! standard deviation of the 65 LLDs and 65 deltas over 1 s windows every 0.5 s, i.e. 260
//! features at 2 Hz.
//!
//! Conventions (documented because the paper leaves them open):
//! - window `k` starts at `k · hop_s` and holds every LLD row whose `frameTime` `t` satisfies
//!   `k · hop_s ≤ t < k · hop_s + window_s`; its `frameTime` is that start time;
//! - windows are emitted while their start lies inside the contour (before the last row's time
//!   plus one 10 ms step); the last ones are partial and are summarised over the rows they hold,
//!   unless [`WindowConfig::drop_partial`] asks to keep complete windows only;
//! - the standard deviation is the population one (divide by n), as openSMILE's `stddev`;
//! - ranges (issue 17: `--hop-s 1e-9` once ran forever): window and hop lie in
//!   [0.010 s, 86 400 s] — below the 10 ms LLD step a window holds no frame of its own and the
//!   number of windows explodes — checked by [`WindowConfig::validate`] before any file is read;
//!   a file whose contour (LLD rows × 10 ms) is shorter than the window is an error for that
//!   file ([`AcousticError::WindowTooLong`]), and so is a clip too short for any LLD row;
//! - columns are per input column `<name>_amean`, `<name>_stddev`, in LLD order then delta order.

use std::collections::VecDeque;

use super::lld_with_deltas;
use crate::{AcousticError, FeatureFrames};

/// Window geometry of the summary.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WindowConfig {
    /// Window length in seconds (default 1.0).
    pub window_s: f64,
    /// Hop between window starts in seconds (default 0.5).
    pub hop_s: f64,
    /// Keep only windows that are complete (default false: trailing partial windows are kept).
    pub drop_partial: bool,
}

/// Smallest window or hop: one LLD step.
pub const MIN_WINDOW_S: f64 = LLD_STEP_S;
/// Largest window or hop: one day.
pub const MAX_WINDOW_S: f64 = 86_400.0;

impl WindowConfig {
    /// Checks the ranges (see the module docs); the CLI calls it when parsing its options.
    pub fn validate(&self) -> Result<(), AcousticError> {
        for (name, v) in [("window length", self.window_s), ("hop", self.hop_s)] {
            if !v.is_finite() || !(MIN_WINDOW_S - TIME_EPS..=MAX_WINDOW_S).contains(&v) {
                return Err(AcousticError::InvalidConfig(format!(
                    "{name} {v} s is outside [{MIN_WINDOW_S}, {MAX_WINDOW_S}] s (at least one 10 ms LLD step, at most a day)"
                )));
            }
        }
        Ok(())
    }
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            window_s: 1.0,
            hop_s: 0.5,
            drop_partial: false,
        }
    }
}

/// Tolerance for comparing frame times with window bounds (frame times are `i · hop / sr`).
const TIME_EPS: f64 = 1e-9;
/// Spacing of LLD rows in seconds (nominal; used only to decide where the contour ends).
const LLD_STEP_S: f64 = 0.010;

/// LLDs + deltas of a signal summarised over windows (260 columns with the ComParE set).
pub fn windows(
    samples: &[f32],
    sample_rate: u32,
    config: &WindowConfig,
) -> Result<FeatureFrames, AcousticError> {
    let contours = lld_with_deltas(samples, sample_rate)?;
    summarise_windows(&contours, config)
}

/// Mean and standard deviation of every column of `frames` over the configured windows.
pub fn summarise_windows(
    frames: &FeatureFrames,
    config: &WindowConfig,
) -> Result<FeatureFrames, AcousticError> {
    let mut summariser = WindowSummariser::new(config)?;
    let mut out = FeatureFrames {
        names: window_names(&frames.names),
        frame_times: Vec::new(),
        values: Vec::new(),
    };
    let mut take = |t: f64, v: &[f32]| {
        out.frame_times.push(t);
        out.values.push(v.to_vec());
    };
    for (&t, v) in frames.frame_times.iter().zip(&frames.values) {
        summariser.push(t, v, &mut take);
    }
    summariser.finish(&mut take)?;
    Ok(out)
}

/// The column names of the summary of columns `names`: `<name>_amean`, `<name>_stddev` each.
pub fn window_names(names: &[String]) -> Vec<String> {
    names
        .iter()
        .flat_map(|n| [format!("{n}_amean"), format!("{n}_stddev")])
        .collect()
}

/// The windowed summary of a stream of LLD rows, window by window as they complete: a window is
/// handed out as soon as a row at or past its end arrives, the partial ones at the end of
/// input by [`WindowSummariser::finish`]. Holds the rows of one window; the windows equal
/// [`summarise_windows`] of the whole contour.
pub struct WindowSummariser {
    config: WindowConfig,
    /// Index of the next window.
    k: usize,
    /// Rows not before the next window's start, oldest first.
    rows: VecDeque<(f64, Vec<f32>)>,
    spare: Vec<Vec<f32>>,
    last_time: Option<f64>,
}

impl WindowSummariser {
    /// A summariser with `config` (checked by [`WindowConfig::validate`]).
    pub fn new(config: &WindowConfig) -> Result<WindowSummariser, AcousticError> {
        config.validate()?;
        Ok(WindowSummariser {
            config: *config,
            k: 0,
            rows: VecDeque::new(),
            spare: Vec::new(),
            last_time: None,
        })
    }

    /// Adds the next LLD row (times increasing); `out(start, values)` receives every window it
    /// completes.
    pub fn push(&mut self, time: f64, values: &[f32], out: &mut impl FnMut(f64, &[f32])) {
        loop {
            let start = self.k as f64 * self.config.hop_s;
            let stop = start + self.config.window_s;
            if time < stop - TIME_EPS {
                break;
            }
            self.window(start, stop, out);
        }
        let mut v = self.spare.pop().unwrap_or_default();
        v.clear();
        v.extend_from_slice(values);
        self.rows.push_back((time, v));
        self.last_time = Some(time);
    }

    /// Ends the input: the windows that start inside the contour and are not complete yet
    /// (unless `drop_partial`). A contour shorter than the window is
    /// [`AcousticError::WindowTooLong`] (no window was handed out then).
    pub fn finish(mut self, out: &mut impl FnMut(f64, &[f32])) -> Result<(), AcousticError> {
        let end = self.last_time.map_or(0.0, |t| t + LLD_STEP_S);
        if self.config.window_s > end + TIME_EPS {
            return Err(AcousticError::WindowTooLong {
                window_s: self.config.window_s,
                length_s: end,
            });
        }
        loop {
            let start = self.k as f64 * self.config.hop_s;
            if start >= end - TIME_EPS {
                break;
            }
            let stop = start + self.config.window_s;
            if self.config.drop_partial && stop > end + TIME_EPS {
                break;
            }
            self.window(start, stop, out);
        }
        Ok(())
    }

    /// Hands out window `k` (if it holds a row) over the rows received so far, and moves on.
    fn window(&mut self, start: f64, stop: f64, out: &mut impl FnMut(f64, &[f32])) {
        while self
            .rows
            .front()
            .is_some_and(|(t, _)| *t < start - TIME_EPS)
        {
            let (_, v) = self.rows.pop_front().expect("a row");
            self.spare.push(v);
        }
        let n = self
            .rows
            .iter()
            .take_while(|(t, _)| *t < stop - TIME_EPS)
            .count();
        if n > 0 {
            let rows = self.rows.make_contiguous();
            out(start, &mean_and_std(&rows[..n]));
        }
        self.k += 1;
    }
}

/// Per column: mean, population standard deviation (interleaved).
fn mean_and_std(rows: &[(f64, Vec<f32>)]) -> Vec<f32> {
    let n_cols = rows[0].1.len();
    let n = rows.len() as f64;
    let mut out = Vec::with_capacity(2 * n_cols);
    for c in 0..n_cols {
        let mean = rows.iter().map(|(_, r)| r[c] as f64).sum::<f64>() / n;
        let var = rows
            .iter()
            .map(|(_, r)| (r[c] as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        out.push(mean as f32);
        out.push(var.sqrt() as f32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(rows: usize) -> FeatureFrames {
        FeatureFrames {
            names: vec!["x".into()],
            frame_times: (0..rows).map(|i| i as f64 * 0.01).collect(),
            values: (0..rows).map(|i| vec![i as f32]).collect(),
        }
    }

    #[test]
    fn two_hertz_windows_over_a_ramp() {
        let w = summarise_windows(&ramp(300), &WindowConfig::default()).unwrap();
        assert_eq!(w.names, vec!["x_amean", "x_stddev"]);
        assert_eq!(w.frame_times, vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]);
        // First window: rows 0..=99 → mean 49.5, population std of 0..99.
        assert!((w.values[0][0] - 49.5).abs() < 1e-4);
        assert!((w.values[0][1] - 28.866_07).abs() < 1e-3);
        // Last window is partial: rows 250..=299.
        assert!((w.values[5][0] - 274.5).abs() < 1e-4);
    }

    #[test]
    fn complete_windows_only_on_request() {
        let cfg = WindowConfig {
            drop_partial: true,
            ..WindowConfig::default()
        };
        let w = summarise_windows(&ramp(300), &cfg).unwrap();
        assert_eq!(w.frame_times, vec![0.0, 0.5, 1.0, 1.5, 2.0]);
    }

    #[test]
    fn bad_geometry_is_rejected() {
        for (window_s, hop_s) in [
            (1.0, 0.0),
            (1.0, 1e-9), // once an endless loop growing memory (issue 17)
            (1.0, -0.5),
            (1.0, f64::NAN),
            (0.005, 0.5),
            (1e9, 0.5),
            (1.0, f64::INFINITY),
        ] {
            let cfg = WindowConfig {
                window_s,
                hop_s,
                ..WindowConfig::default()
            };
            assert!(cfg.validate().is_err(), "{window_s} {hop_s}");
            assert!(matches!(
                summarise_windows(&ramp(300), &cfg),
                Err(AcousticError::InvalidConfig(_))
            ));
        }
        let ok = WindowConfig {
            window_s: 0.01,
            hop_s: 0.01,
            ..WindowConfig::default()
        };
        assert!(ok.validate().is_ok());
        assert_eq!(summarise_windows(&ramp(300), &ok).unwrap().len(), 300);
    }

    #[test]
    fn a_window_longer_than_the_file_is_an_error_for_that_file() {
        // 0.5 s of contour, 1 s window.
        let e = summarise_windows(&ramp(50), &WindowConfig::default()).unwrap_err();
        assert!(matches!(e, AcousticError::WindowTooLong { .. }), "{e}");
        assert!(e.to_string().contains("longer than the file"), "{e}");
        // exactly one window's worth is fine
        assert_eq!(
            summarise_windows(&ramp(100), &WindowConfig::default())
                .unwrap()
                .frame_times[0],
            0.0
        );
    }
}
