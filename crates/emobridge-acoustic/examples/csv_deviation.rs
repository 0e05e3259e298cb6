//! Largest deviation per column between two descriptor tables of the same shape (e.g. the
//! output of two builds on the same inputs), for checking a numerics change:
//!
//!     cargo run --release -p emobridge-acoustic --example csv_deviation -- OLD.csv NEW.csv [REL] [FLOOR]
//!
//! A value passes when `|new − old| ≤ max(REL · |old|, FLOOR · scale)`, where `scale` is the
//! largest `|old|` of its column (defaults: REL = 1e-5, FLOOR = 1e-6). A value that is 0 in one
//! table and not in the other (an unvoiced frame becoming voiced, or a contour switching off)
//! fails whatever its size, and so does any difference in a column that is not numeric. Prints
//! one line per column that differs at all (largest absolute and relative deviation, the ratio
//! to the allowance and the number of zero/non-zero flips), then a summary; exits with status 1
//! when any value fails, 2 on unreadable or mismatched tables.

use std::process::ExitCode;

fn read(path: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    // openSMILE writes ';'-separated tables, emobridge ','-separated ones
    let sep = if text.lines().next().unwrap_or("").contains(';') {
        ';'
    } else {
        ','
    };
    let mut lines = text.lines().filter(|l| !l.is_empty());
    let header: Vec<String> = lines
        .next()
        .ok_or(format!("{path}: empty table"))?
        .split(sep)
        .map(str::to_string)
        .collect();
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(sep).map(str::to_string).collect())
        .collect();
    if let Some((i, r)) = rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.len() != header.len())
    {
        return Err(format!(
            "{path}: row {} has {} fields, the header {}",
            i + 1,
            r.len(),
            header.len()
        ));
    }
    Ok((header, rows))
}

#[derive(Default)]
struct Column {
    max_abs: f64,
    max_rel: f64,
    worst_ratio: f64,
    flips: usize,
    text_diffs: usize,
    fails: usize,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 4 {
        eprintln!("usage: csv_deviation OLD.csv NEW.csv [REL (1e-5)] [FLOOR (1e-6)]");
        return ExitCode::from(2);
    }
    let parse = |i: usize, default: f64| -> Result<f64, String> {
        args.get(i).map_or(Ok(default), |s| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or(format!("{s}: a tolerance must be a finite number ≥ 0"))
        })
    };
    let run = || -> Result<bool, String> {
        let (rel, floor) = (parse(2, 1e-5)?, parse(3, 1e-6)?);
        let (h_old, old) = read(&args[0])?;
        let (h_new, new) = read(&args[1])?;
        if h_old != h_new {
            return Err(format!("{} and {}: the headers differ", args[0], args[1]));
        }
        if old.len() != new.len() {
            return Err(format!(
                "{} has {} rows, {} has {}",
                args[0],
                old.len(),
                args[1],
                new.len()
            ));
        }
        let num = |s: &str| s.trim().parse::<f64>().ok();
        let mut cols: Vec<Column> = (0..h_old.len()).map(|_| Column::default()).collect();
        for (c, col) in cols.iter_mut().enumerate() {
            let scale = old
                .iter()
                .filter_map(|r| num(&r[c]))
                .filter(|v| v.is_finite())
                .fold(0.0f64, |m, v| m.max(v.abs()));
            for (ro, rn) in old.iter().zip(&new) {
                let (so, sn) = (&ro[c], &rn[c]);
                if so == sn {
                    continue;
                }
                let (Some(a), Some(b)) = (num(so), num(sn)) else {
                    col.text_diffs += 1;
                    col.fails += 1;
                    continue;
                };
                if a.is_nan() && b.is_nan() {
                    continue;
                }
                let d = (b - a).abs();
                let allowed = (rel * a.abs()).max(floor * scale);
                col.max_abs = col.max_abs.max(d);
                if a != 0.0 {
                    col.max_rel = col.max_rel.max(d / a.abs());
                }
                let ratio = if allowed > 0.0 {
                    d / allowed
                } else {
                    f64::INFINITY
                };
                col.worst_ratio = col.worst_ratio.max(ratio);
                let flip = (a == 0.0) != (b == 0.0);
                if flip {
                    col.flips += 1;
                }
                if flip || !(d <= allowed) {
                    col.fails += 1;
                }
            }
        }
        let (mut differing, mut failing) = (0usize, 0usize);
        let mut overall = (0.0f64, 0.0f64);
        for (name, col) in h_old.iter().zip(&cols) {
            if col.max_abs == 0.0 && col.text_diffs == 0 && col.flips == 0 {
                continue;
            }
            differing += 1;
            if col.fails > 0 {
                failing += 1;
            }
            overall.0 = overall.0.max(col.max_rel);
            overall.1 = overall.1.max(col.worst_ratio);
            println!(
                "{name}: max |Δ| {:.3e}, max rel {:.3e}, {:.3} of the allowance, {} zero flips, \
                 {} text differences{}",
                col.max_abs,
                col.max_rel,
                col.worst_ratio,
                col.flips,
                col.text_diffs,
                if col.fails > 0 { "  FAIL" } else { "" }
            );
        }
        println!(
            "{} rows × {} columns: {differing} columns differ, {failing} fail; largest relative \
             deviation {:.3e}, largest share of the allowance {:.3} (REL {rel:e}, FLOOR {floor:e})",
            old.len(),
            h_old.len(),
            overall.0,
            overall.1
        );
        Ok(failing == 0)
    };
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("csv_deviation: {e}");
            ExitCode::from(2)
        }
    }
}
