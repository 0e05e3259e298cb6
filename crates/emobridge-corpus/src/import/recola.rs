//! RECOLA (Ringeval et al., FG 2013) and the AVEC 2015–2018 releases of it: French remote
//! dyadic interactions, the first 5 minutes rated time-continuously for arousal and valence by
//! six raters (ANNEMO, 40 ms steps, values in [-1, 1]).
//!
//! Layout (searched anywhere under ROOT): one folder named `arousal` and one named `valence`
//! (e.g. `ratings_individual/arousal/`, `RECOLA-Annotation/emotional_behaviour/arousal/`), each
//! holding one CSV per recording, `<name>.csv`, with a `time` column and one column per rater
//! (`FM1, FM2, FM3, FF1, FF2, FF3`), separated by `,` or `;`; the audio `<name>.wav` anywhere
//! under ROOT (`recordings_audio/`, `RECOLA-Audio-recordings/`). Names are participants (`P16`)
//! or AVEC 2016 partitions (`train_1`, `dev_3`).
//!
//! Gold standard per dimension: the mean of the raters at each time (default), or with the
//! `ccc-weighted` preset the raters' traces weighted by their agreement — each rater's weight is
//! max(0, CCC) between that rater and the mean of the other raters, as the evaluator-weighted
//! estimator of the AVEC 2018 gold-standard sub-challenge does (plain mean when every weight is
//! 0). Time = the file's `time` column in seconds. Emotion: none; clip arousal/valence = mean of
//! the gold trace. Group = the recording name; `split` = `train`/`dev`/`test` from an AVEC name.
//! Id = `recola_<name>`. Extra columns: `raters`, `gold_standard`, `av_scale`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::util::{self, list_files};
use super::{AvPoint, Corpus, ImportError, Imported, IssueKind, Preset};
use crate::manifest::{Domain, Record};

/// Per-rater values of one dimension of one recording: times and one column per rater.
struct Ratings {
    time: Vec<f64>,
    raters: Vec<String>,
    /// `values[r][t]`.
    values: Vec<Vec<f64>>,
}

fn read_ratings(path: &Path) -> Result<Ratings, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or("empty file")?;
    let sep = if header.contains(';') { ';' } else { ',' };
    let names: Vec<String> = header
        .split(sep)
        .map(|s| s.trim().trim_matches('"').to_string())
        .collect();
    let tcol = names
        .iter()
        .position(|n| n.eq_ignore_ascii_case("time"))
        .ok_or_else(|| format!("header `{header}` has no `time` column"))?;
    let rater_cols: Vec<usize> = (0..names.len()).filter(|&i| i != tcol).collect();
    if rater_cols.is_empty() {
        return Err("no rater columns beside `time`".into());
    }
    let mut r = Ratings {
        time: Vec::new(),
        raters: rater_cols.iter().map(|&i| names[i].clone()).collect(),
        values: vec![Vec::new(); rater_cols.len()],
    };
    for (k, line) in lines.enumerate() {
        let cells: Vec<&str> = line.split(sep).map(|s| s.trim()).collect();
        let num = |i: usize| {
            cells
                .get(i)
                .and_then(|c| c.parse::<f64>().ok())
                .filter(|v| v.is_finite())
        };
        let row: Option<Vec<f64>> = std::iter::once(tcol)
            .chain(rater_cols.iter().copied())
            .map(num)
            .collect();
        let Some(row) = row else {
            return Err(format!(
                "line {}: a value is missing or not a number",
                k + 2
            ));
        };
        r.time.push(row[0]);
        for (j, v) in row[1..].iter().enumerate() {
            r.values[j].push(*v);
        }
    }
    if r.time.len() < 2 {
        return Err(format!("{} rating row(s); need at least 2", r.time.len()));
    }
    Ok(r)
}

fn ccc(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut vx, mut vy, mut c) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        vx += (a - mx) * (a - mx);
        vy += (b - my) * (b - my);
        c += (a - mx) * (b - my);
    }
    let den = vx / n + vy / n + (mx - my) * (mx - my);
    if den > 0.0 {
        2.0 * c / n / den
    } else {
        0.0
    }
}

/// The gold-standard trace of one dimension (see the module docs).
pub fn gold_standard(values: &[Vec<f64>], weighted: bool) -> Vec<f64> {
    let (k, n) = (values.len(), values[0].len());
    let mean_of = |skip: Option<usize>| -> Vec<f64> {
        let m = (0..k).filter(|&r| Some(r) != skip).count().max(1) as f64;
        (0..n)
            .map(|t| {
                (0..k)
                    .filter(|&r| Some(r) != skip)
                    .map(|r| values[r][t])
                    .sum::<f64>()
                    / m
            })
            .collect()
    };
    if !weighted || k < 2 {
        return mean_of(None);
    }
    let w: Vec<f64> = (0..k)
        .map(|r| ccc(&values[r], &mean_of(Some(r))).max(0.0))
        .collect();
    let total: f64 = w.iter().sum();
    if total <= 0.0 {
        return mean_of(None);
    }
    (0..n)
        .map(|t| (0..k).map(|r| w[r] * values[r][t]).sum::<f64>() / total)
        .collect()
}

fn split_of(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    for s in ["train", "dev", "test"] {
        if lower.starts_with(&format!("{s}_")) {
            return s.to_string();
        }
    }
    String::new()
}

pub(crate) fn import(root: &Path, preset: Preset) -> Result<Imported, ImportError> {
    let weighted = preset == Preset::CccWeighted;
    let mut out = Imported::new(Corpus::Recola);
    let (Some(a_dir), Some(v_dir)) = (
        util::find_dir_named(root, "arousal", 4),
        util::find_dir_named(root, "valence", 4),
    ) else {
        return Err(ImportError::Layout {
            path: root.to_path_buf(),
            message: "no `arousal` and `valence` rating folders under it".into(),
        });
    };
    let csvs = |dir: &Path| -> Result<BTreeMap<String, PathBuf>, ImportError> {
        Ok(list_files(dir)?
            .into_iter()
            .filter(|p| util::extension(p).as_deref() == Some("csv"))
            .map(|p| (util::stem(&p), p))
            .collect())
    };
    let (a_files, v_files) = (csvs(&a_dir)?, csvs(&v_dir)?);
    let audio: BTreeMap<String, PathBuf> = util::list_audio(root)?
        .into_iter()
        .map(|p| (util::stem(&p), p))
        .collect();
    for (name, a_path) in &a_files {
        let Some(v_path) = v_files.get(name) else {
            out.issue(
                IssueKind::NoAnnotation,
                a_path,
                format!("no valence ratings `{name}.csv` in {}", v_dir.display()),
            );
            continue;
        };
        let Some(wav) = audio.get(name) else {
            out.issue(
                IssueKind::MissingAudio,
                a_path,
                format!("no audio file named `{name}` under the root"),
            );
            continue;
        };
        let (a, v) = match (read_ratings(a_path), read_ratings(v_path)) {
            (Ok(a), Ok(v)) => (a, v),
            (Err(e), _) => {
                out.issue(IssueKind::BadAnnotation, a_path, e);
                continue;
            }
            (_, Err(e)) => {
                out.issue(IssueKind::BadAnnotation, v_path, e);
                continue;
            }
        };
        if a.time != v.time {
            out.issue(
                IssueKind::Conflict,
                v_path,
                "arousal and valence ratings have different time stamps; recording skipped",
            );
            continue;
        }
        if let Some(bad) = a
            .values
            .iter()
            .chain(&v.values)
            .flatten()
            .find(|x| x.abs() > 1.0)
        {
            out.issue(
                IssueKind::BadAnnotation,
                a_path,
                format!("rating {bad} outside [-1, 1]; recording skipped"),
            );
            continue;
        }
        let (ga, gv) = (
            gold_standard(&a.values, weighted),
            gold_standard(&v.values, weighted),
        );
        let id = format!("recola_{}", util::file_safe(name));
        let mut r = Record::new(
            id.clone(),
            util::path_string(wav),
            Domain::Speech,
            Corpus::Recola.as_str(),
            name.clone(),
        );
        r.split = split_of(name);
        let n = ga.len() as f64;
        r.arousal = Some((ga.iter().sum::<f64>() / n) as f32);
        r.valence = Some((gv.iter().sum::<f64>() / n) as f32);
        r.set_extra("raters", a.raters.join(" "));
        r.set_extra(
            "gold_standard",
            if weighted {
                "ccc-weighted"
            } else {
                "rater-mean"
            },
        );
        r.set_extra("av_scale", "[-1,1] as rated");
        out.dynamics.insert(
            id,
            a.time
                .iter()
                .zip(ga.iter().zip(&gv))
                .map(|(&t, (&ar, &va))| AvPoint {
                    time: t as f32,
                    arousal: ar as f32,
                    valence: va as f32,
                })
                .collect(),
        );
        out.records.push(r);
    }
    for (name, v_path) in &v_files {
        if !a_files.contains_key(name) {
            out.issue(
                IssueKind::NoAnnotation,
                v_path,
                format!("no arousal ratings `{name}.csv` in {}", a_dir.display()),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_gold_standard_downweights_the_dissenting_rater() {
        let t: Vec<f64> = (0..50).map(|i| (i as f64 * 0.2).sin() * 0.5).collect();
        let contrary: Vec<f64> = t.iter().map(|v| -v).collect();
        let scaled = |k: f64| t.iter().map(|v| v * k).collect::<Vec<f64>>();
        let values = vec![t.clone(), scaled(0.9), scaled(1.1), contrary];
        let mean = gold_standard(&values, false);
        assert!((mean[7] - t[7] * 2.0 / 4.0).abs() < 1e-12);
        // The contrary rater's CCC with the others' mean is negative → weight 0; the rest agree,
        // so the fusion lies between 0.9 and 1.1 times the shared trace.
        let ewe = gold_standard(&values, true);
        let ratio = ewe[7] / t[7];
        assert!((0.9..=1.1).contains(&ratio), "{ratio}");
    }
}
