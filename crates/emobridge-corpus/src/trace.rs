//! Time-continuous arousal/valence traces (`time,arousal,valence` CSVs, as the importers and the
//! synthetic corpus write them) and their alignment to feature frames.
//!
//! Rules for imperfect files (each occurrence is counted in [`TraceReport`]):
//! * a missing or unreadable file, a header without `time`, `arousal` and `valence`, or fewer
//!   than two usable rows: an error naming the file (the caller skips the sequence);
//! * a row whose time, arousal or valence is empty, not a number or not finite: dropped (the
//!   gap it leaves is bridged like any other gap);
//! * rows out of time order: sorted; a repeated time keeps its first row;
//! * gaps (a step longer than 1.5 × the median step): bridged by linear interpolation;
//! * any rate: the trace is resampled by linear interpolation at the label times the caller
//!   asks for (the feature frames' times plus the lag);
//! * shorter or longer than the audio: frames whose label time falls outside the annotated span
//!   (first − ½ step, last + ½ step) are trimmed from the sequence's start or end, annotation
//!   rows beyond the last frame are ignored.

use std::path::Path;

use serde::Serialize;

/// One parsed trace, sorted by time, every value finite.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub time: Vec<f64>,
    pub arousal: Vec<f64>,
    pub valence: Vec<f64>,
}

/// What had to be repaired while reading a trace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TraceReport {
    /// Rows dropped for an empty, unparsable or non-finite value.
    pub bad_rows: usize,
    /// True when the rows were not in time order.
    pub unsorted: bool,
    /// Rows dropped for repeating an earlier time.
    pub duplicate_times: usize,
    /// Steps longer than 1.5 × the median step (bridged by interpolation).
    pub gaps: usize,
}

/// Why a trace could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: {message}")]
    Unusable { path: String, message: String },
}

impl Trace {
    /// Median spacing of the time stamps (seconds).
    pub fn median_step(&self) -> f64 {
        let mut d: Vec<f64> = self.time.windows(2).map(|w| w[1] - w[0]).collect();
        d.sort_by(f64::total_cmp);
        d.get(d.len() / 2).copied().unwrap_or(0.0)
    }

    /// Linear interpolation of (arousal, valence) at `t`, or `None` outside
    /// `[first − tol, last + tol]` (inside the tolerance the end value is held).
    pub fn at(&self, t: f64, tol: f64) -> Option<(f64, f64)> {
        let (first, last) = (self.time[0], *self.time.last()?);
        if t < first - tol || t > last + tol {
            return None;
        }
        if t <= first {
            return Some((self.arousal[0], self.valence[0]));
        }
        if t >= last {
            let n = self.time.len() - 1;
            return Some((self.arousal[n], self.valence[n]));
        }
        let k = self.time.partition_point(|&x| x <= t);
        let (t0, t1) = (self.time[k - 1], self.time[k]);
        let w = (t - t0) / (t1 - t0);
        Some((
            self.arousal[k - 1] + w * (self.arousal[k] - self.arousal[k - 1]),
            self.valence[k - 1] + w * (self.valence[k] - self.valence[k - 1]),
        ))
    }
}

/// Reads a `time,arousal,valence` CSV (extra columns ignored, header names case-insensitive).
pub fn read_trace(path: &Path) -> Result<(Trace, TraceReport), TraceError> {
    let err = |message: String| TraceError::Unusable {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    parse_trace(&text).map_err(err)
}

/// [`read_trace`] on text already in memory.
pub fn parse_trace(text: &str) -> Result<(Trace, TraceReport), String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or("empty file")?;
    let sep = if header.contains(',') { ',' } else { ';' };
    let names: Vec<String> = header
        .split(sep)
        .map(|s| s.trim().trim_matches('"').to_ascii_lowercase())
        .collect();
    let col = |n: &str| {
        names
            .iter()
            .position(|x| x == n)
            .ok_or_else(|| format!("header `{header}` has no `{n}` column"))
    };
    let (ct, ca, cv) = (col("time")?, col("arousal")?, col("valence")?);
    let mut report = TraceReport::default();
    let mut rows: Vec<(f64, f64, f64)> = Vec::new();
    for line in lines {
        let cells: Vec<&str> = line.split(sep).map(|s| s.trim()).collect();
        let get = |c: usize| {
            cells
                .get(c)
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.is_finite())
        };
        match (get(ct), get(ca), get(cv)) {
            (Some(t), Some(a), Some(v)) => rows.push((t, a, v)),
            _ => report.bad_rows += 1,
        }
    }
    if rows.windows(2).any(|w| w[1].0 < w[0].0) {
        report.unsorted = true;
        rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let before = rows.len();
    rows.dedup_by(|b, a| b.0 == a.0);
    report.duplicate_times = before - rows.len();
    if rows.len() < 2 {
        return Err(format!(
            "{} usable row(s); a trace needs at least 2 ({} unreadable)",
            rows.len(),
            report.bad_rows
        ));
    }
    let trace = Trace {
        time: rows.iter().map(|r| r.0).collect(),
        arousal: rows.iter().map(|r| r.1).collect(),
        valence: rows.iter().map(|r| r.2).collect(),
    };
    let step = trace.median_step();
    report.gaps = trace
        .time
        .windows(2)
        .filter(|w| w[1] - w[0] > 1.5 * step)
        .count();
    Ok((trace, report))
}

/// Labels of frames at `label_times` (frame time + lag): the contiguous run of frames whose
/// label time lies in the annotated span, as `(first frame index, [(arousal, valence)])`.
/// `None` when no frame falls in the span.
pub fn align(trace: &Trace, label_times: &[f64]) -> Option<(usize, Vec<(f64, f64)>)> {
    let tol = 0.5 * trace.median_step();
    let start = label_times
        .iter()
        .position(|&t| trace.at(t, tol).is_some())?;
    let labels: Vec<(f64, f64)> = label_times[start..]
        .iter()
        .map_while(|&t| trace.at(t, tol))
        .collect();
    Some((start, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repairs_are_counted_and_interpolation_is_linear() {
        let text = "Time,Arousal,Valence\n1.0,0.2,0.0\n0.0,0.0,0.0\n0.5,0.1,nan\n0.5,0.1,0\n1.0,9,9\n2.5,0.5,1.0\n3.0,x,0\n3.0,0.6,1\n";
        let (t, r) = parse_trace(text).unwrap();
        assert_eq!(
            r,
            TraceReport {
                bad_rows: 2,
                unsorted: true,
                duplicate_times: 1,
                gaps: 1
            }
        );
        assert_eq!(t.time, vec![0.0, 0.5, 1.0, 2.5, 3.0]);
        let (a, v) = t.at(1.75, 0.0).unwrap();
        assert!((a - 0.35).abs() < 1e-12 && (v - 0.5).abs() < 1e-12);
        assert!(t.at(3.3, 0.5).is_some() && t.at(3.6, 0.5).is_none());
        assert!(parse_trace("time,arousal\n0,1\n")
            .unwrap_err()
            .contains("valence"));
        assert!(parse_trace("time,arousal,valence\n0,1,1\n")
            .unwrap_err()
            .contains("1 usable"));
    }

    #[test]
    fn alignment_trims_frames_outside_the_annotated_span() {
        // Annotated from 15 s to 20 s at 2 Hz (as PMEmo/DEAM); frames every 0.5 s from 0.
        let mut text = String::from("time,arousal,valence\n");
        for k in 0..=10 {
            text.push_str(&format!(
                "{},{},0\n",
                15.0 + 0.5 * k as f64,
                k as f64 / 10.0
            ));
        }
        let (t, _) = parse_trace(&text).unwrap();
        let times: Vec<f64> = (0..60).map(|k| 0.5 * k as f64).collect();
        let (start, labels) = align(&t, &times).unwrap();
        assert_eq!(start, 30);
        assert_eq!(labels.len(), 11);
        assert!((labels[10].0 - 1.0).abs() < 1e-12);
        // A lag of 0.2 s shifts the label times between annotation points.
        let lagged: Vec<f64> = times.iter().map(|t| t + 0.2).collect();
        let (s2, l2) = align(&t, &lagged).unwrap();
        assert_eq!((s2, l2.len()), (30, 11));
        assert!((l2[0].0 - 0.04).abs() < 1e-12);
        assert!(align(&t, &[100.0]).is_none());
    }
}
