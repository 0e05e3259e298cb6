//! Largest deviation per column between two descriptor tables (CSV with a header row, the same
//! columns and rows), for checking a numerics change against the previous build's output:
//!
//!     cargo run --release -p emobridge-studies --example table_deviation -- BEFORE.csv AFTER.csv [REL] [FLOOR]
//!
//! Text columns (`file`) must be equal. For every numeric column the bound on a value `a` of
//! BEFORE is `max(REL · |a|, FLOOR · scale)`, `scale` being the column's largest |value| in
//! BEFORE (defaults: REL = 1e-5, FLOOR = 1e-6). Prints, per column, the largest absolute
//! deviation, the largest relative deviation (where `a ≠ 0`) and the largest deviation over its
//! bound, worst first, and exits with status 1 when any value is out of bounds (2 on unusable
//! input, such as a table without data rows). NaN equals NaN; a NaN or infinity against
//! anything else is out of bounds. A value that is 0 in one table and not in the other (an
//! unvoiced frame turned voiced, a contour switched off) is counted as a zero flip and is out of
//! bounds whatever its size.

use std::process::ExitCode;

struct Column {
    name: String,
    scale: f64,
    max_abs: f64,
    max_rel: f64,
    /// Largest deviation over its bound.
    worst: f64,
    differing: usize,
    /// Values 0 in one table and not in the other.
    flips: usize,
}

fn read(path: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let mut r = csv::Reader::from_path(path).map_err(|e| format!("{path}: {e}"))?;
    let header: Vec<String> = r
        .headers()
        .map_err(|e| format!("{path}: {e}"))?
        .iter()
        .map(str::to_string)
        .collect();
    let rows = r
        .records()
        .map(|rec| {
            rec.map(|rec| rec.iter().map(str::to_string).collect())
                .map_err(|e| format!("{path}: {e}"))
        })
        .collect::<Result<Vec<Vec<String>>, _>>()?;
    // nothing to compare would pass every bound: refused instead
    if header.is_empty() || rows.is_empty() {
        return Err(format!(
            "{path}: no data rows (a header row and at least one row needed)"
        ));
    }
    Ok((header, rows))
}

fn run(args: &[String]) -> Result<bool, String> {
    let [before, after, rest @ ..] = args else {
        return Err("usage: table_deviation BEFORE.csv AFTER.csv [REL] [FLOOR]".into());
    };
    let number = |s: Option<&String>, default: f64| -> Result<f64, String> {
        s.map_or(Ok(default), |s| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or(format!("not a tolerance: {s}"))
        })
    };
    let rel = number(rest.first(), 1e-5)?;
    let floor = number(rest.get(1), 1e-6)?;
    let (ha, ra) = read(before)?;
    let (hb, rb) = read(after)?;
    if ha != hb {
        return Err(format!("{before} and {after} have different columns"));
    }
    if ra.len() != rb.len() {
        return Err(format!(
            "{before} has {} rows, {after} {}",
            ra.len(),
            rb.len()
        ));
    }
    let parse = |s: &str| s.parse::<f64>().ok();
    let numeric: Vec<bool> = (0..ha.len())
        .map(|c| ra.iter().all(|row| parse(&row[c]).is_some()))
        .collect();
    let mut columns: Vec<Column> = ha
        .iter()
        .enumerate()
        .filter(|&(c, _)| numeric[c])
        .map(|(c, name)| Column {
            name: name.clone(),
            scale: ra
                .iter()
                .filter_map(|row| parse(&row[c]))
                .filter(|v| v.is_finite())
                .fold(0.0, |m, v| m.max(v.abs())),
            max_abs: 0.0,
            max_rel: 0.0,
            worst: 0.0,
            differing: 0,
            flips: 0,
        })
        .collect();
    let index: Vec<usize> = (0..ha.len()).filter(|&c| numeric[c]).collect();
    for (i, (a, b)) in ra.iter().zip(&rb).enumerate() {
        for c in (0..ha.len()).filter(|&c| !numeric[c]) {
            if a[c] != b[c] {
                return Err(format!(
                    "row {}: column {} differs ({} / {})",
                    i + 1,
                    ha[c],
                    a[c],
                    b[c]
                ));
            }
        }
        for (col, &c) in columns.iter_mut().zip(&index) {
            let x = parse(&a[c]).expect("numeric column");
            let Some(y) = parse(&b[c]) else {
                return Err(format!(
                    "row {}: column {}: not a number in {after}: {}",
                    i + 1,
                    ha[c],
                    b[c]
                ));
            };
            if a[c] == b[c] || (x.is_nan() && y.is_nan()) {
                continue;
            }
            col.differing += 1;
            let d = (x - y).abs();
            let bound = (rel * x.abs()).max(floor * col.scale);
            let flip = (x == 0.0) != (y == 0.0);
            if flip {
                col.flips += 1;
            }
            let over = if d.is_finite() && !flip {
                d / bound
            } else {
                f64::INFINITY
            };
            col.max_abs = col.max_abs.max(d);
            if x != 0.0 {
                col.max_rel = col.max_rel.max(d / x.abs());
            }
            col.worst = col.worst.max(over);
        }
    }
    columns.sort_by(|a, b| b.worst.total_cmp(&a.worst));
    println!(
        "{} rows, {} numeric columns; bound max({rel:e}·|before|, {floor:e}·column scale)",
        ra.len(),
        columns.len()
    );
    println!("column\tvalues differing\tzero flips\tmax abs\tmax rel\tmax deviation / bound");
    for c in columns.iter().filter(|c| c.differing > 0) {
        println!(
            "{}\t{}\t{}\t{:.3e}\t{:.3e}\t{:.3e}",
            c.name, c.differing, c.flips, c.max_abs, c.max_rel, c.worst
        );
    }
    let same = columns.iter().filter(|c| c.differing == 0).count();
    let out = columns.iter().filter(|c| c.worst > 1.0).count();
    println!(
        "{same} columns identical as text; {out} columns out of bounds; worst deviation / bound {:.3e}",
        columns.first().map_or(0.0, |c| c.worst)
    );
    Ok(out == 0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("table_deviation: {e}");
            ExitCode::from(2)
        }
    }
}
