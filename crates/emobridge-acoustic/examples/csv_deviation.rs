//! Largest deviation per column between two descriptor tables with the same layout (for
//! checking a numerics change against the previous build's output):
//!
//! `cargo run --release -p emobridge-acoustic --example csv_deviation -- NEW.csv OLD.csv [REL] [FLOOR]`
//!
//! Text columns (`file`, …) must be equal. For each numeric column it prints the largest
//! absolute deviation, the largest relative one (`|new − old| / |old|`, `old ≠ 0`) and the
//! worst ratio to the tolerance `max(REL · |old|, FLOOR · scale)`, `scale` the column's largest
//! `|old|` (defaults REL = 1e-5, FLOOR = 1e-6); exits with status 1 if any ratio exceeds 1.

use std::process::ExitCode;

fn read(path: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let mut lines = text.lines();
    let header = lines
        .next()
        .ok_or_else(|| format!("{path}: empty file"))?
        .split(',')
        .map(str::to_string)
        .collect::<Vec<_>>();
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').map(str::to_string).collect::<Vec<_>>())
        .collect::<Vec<_>>();
    if let Some(bad) = rows.iter().position(|r| r.len() != header.len()) {
        return Err(format!(
            "{path}: row {} has {} fields, header {}",
            bad + 1,
            rows[bad].len(),
            header.len()
        ));
    }
    Ok((header, rows))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: csv_deviation NEW.csv OLD.csv [REL] [FLOOR]");
        return ExitCode::from(2);
    }
    let rel: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1e-5);
    let floor: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1e-6);
    let ((h_new, new), (h_old, old)) = match (read(&args[0]), read(&args[1])) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if h_new != h_old || new.len() != old.len() {
        eprintln!(
            "the tables differ in columns or rows ({} vs {} rows)",
            new.len(),
            old.len()
        );
        return ExitCode::from(2);
    }
    let mut worst_all = 0.0f64;
    println!(
        "{:<40} {:>12} {:>12} {:>10}",
        "column", "max |Δ|", "max |Δ|/|old|", "tol ratio"
    );
    for (c, name) in h_old.iter().enumerate() {
        let parsed: Option<Vec<(f64, f64)>> = new
            .iter()
            .zip(&old)
            .map(|(a, b)| Some((a[c].parse::<f64>().ok()?, b[c].parse::<f64>().ok()?)))
            .collect();
        let Some(pairs) = parsed else {
            if let Some(r) = new.iter().zip(&old).position(|(a, b)| a[c] != b[c]) {
                eprintln!("text column {name} differs at row {}", r + 1);
                return ExitCode::from(1);
            }
            continue;
        };
        let scale = pairs.iter().fold(0.0f64, |m, &(_, b)| m.max(b.abs()));
        let (mut abs, mut relm, mut ratio) = (0.0f64, 0.0f64, 0.0f64);
        for &(a, b) in &pairs {
            let d = (a - b).abs();
            abs = abs.max(d);
            if b != 0.0 {
                relm = relm.max(d / b.abs());
            }
            let tol = (rel * b.abs()).max(floor * scale);
            ratio = ratio.max(if tol > 0.0 {
                d / tol
            } else if d > 0.0 {
                f64::INFINITY
            } else {
                0.0
            });
        }
        worst_all = worst_all.max(ratio);
        println!("{name:<40} {abs:>12.3e} {relm:>12.3e} {ratio:>10.3}");
    }
    println!("worst tolerance ratio {worst_all:.3} ({} rows)", old.len());
    if worst_all > 1.0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
