//! eGeMAPS v02 parity against SMILExtract 3.0 (fixtures from `tools/fixtures/opensmile_egemaps.py`).
//!
//! Bars (issue 3): functionals — median relative error over clips ≤ 2 % for ≥ 84 of 88 and
//! Pearson r ≥ 0.95 across clips; LLDs — frame-wise r ≥ 0.99 for loudness, MFCC 1–4, flux,
//! alpha ratio, Hammarberg and F0 (co-voiced frames), ≥ 0.95 for the rest, voicing agreement
//! ≥ 95 %. The assertions below hold the bars this implementation reaches (see PARITY.md).

use emobridge_acoustic::egemaps::{self, FUNCTIONAL_NAMES, LLD_NAMES};
use emobridge_audio::{load, DecodeOptions, IntScaling};
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/egemaps")
}

fn clips() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".wav").map(str::to_string))
        .collect();
    v.sort();
    v
}

fn read_csv(name: &str) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(fixture_dir().join(name)).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(';')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(';').map(|x| x.parse().unwrap()).collect())
        .collect();
    (header, rows)
}

fn samples(clip: &str) -> (Vec<f32>, u32) {
    let opts = DecodeOptions {
        int_scaling: IntScaling::OpenSmile,
        ..Default::default()
    };
    let audio = load(fixture_dir().join(format!("{clip}.wav")), &opts).unwrap();
    (audio.mono(), audio.sample_rate)
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut c, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        c += (x - ma) * (y - mb);
        va += (x - ma).powi(2);
        vb += (y - mb).powi(2);
    }
    if va == 0.0 && vb == 0.0 {
        1.0
    } else {
        c / (va.sqrt() * vb.sqrt())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

#[test]
fn lld_matrix_matches_smilextract_frame_by_frame() {
    let mut ours_cols: Vec<Vec<f64>> = vec![Vec::new(); 25];
    let mut ref_cols: Vec<Vec<f64>> = vec![Vec::new(); 25];
    let (mut agree, mut total) = (0usize, 0usize);
    let (mut f0_ours, mut f0_ref) = (Vec::new(), Vec::new());
    for clip in clips() {
        let (x, sr) = samples(&clip);
        let lld = egemaps::lld(&x, sr).unwrap();
        let (header, rows) = read_csv(&format!("{clip}.lld.csv"));
        assert_eq!(
            &header[1..],
            &LLD_NAMES.map(String::from)[..],
            "{clip}: column names"
        );
        assert_eq!(lld.len(), rows.len(), "{clip}: row count");
        for (r, (ours, reference)) in lld.values.iter().zip(&rows).enumerate() {
            assert!(
                (lld.frame_times[r] - reference[0]).abs() < 1e-6,
                "{clip}: frameTime {r}"
            );
            for k in 0..25 {
                assert!(
                    ours[k].is_finite(),
                    "{clip}: non-finite {} at {r}",
                    LLD_NAMES[k]
                );
                ours_cols[k].push(ours[k] as f64);
                ref_cols[k].push(reference[k + 1]);
            }
            let (vo, vr) = (ours[10] > 0.0, reference[11] > 0.0);
            agree += (vo == vr) as usize;
            total += 1;
            if vo && vr {
                f0_ours.push(ours[10] as f64);
                f0_ref.push(reference[11]);
            }
        }
    }
    let voicing_agreement = agree as f64 / total as f64;
    println!("voicing agreement {voicing_agreement:.4} over {total} frames");
    assert!(
        voicing_agreement >= 0.999,
        "voicing agreement {voicing_agreement}"
    );
    let r_f0 = pearson(&f0_ours, &f0_ref);
    println!(
        "{:32} r = {r_f0:.6} (co-voiced frames)",
        "F0semitoneFrom27.5Hz_sma3nz"
    );
    assert!(r_f0 >= 0.999, "F0 r = {r_f0}");
    for k in 0..25 {
        let r = pearson(&ours_cols[k], &ref_cols[k]);
        println!("{:32} r = {r:.6}", LLD_NAMES[k]);
        let name = LLD_NAMES[k];
        if k < 10 {
            // loudness, alpha ratio, Hammarberg, slopes, flux, MFCC 1-4
            assert!(r >= 0.9999, "{name}: r = {r}");
        } else if k == 10
            || name.starts_with("shimmer")
            || name.starts_with("HNR")
            || name.starts_with("logRel")
        {
            assert!(r >= 0.998, "{name}: r = {r}");
        } else {
            // jitter (period matching) and the LPC formant tracks; measured ≥ 0.978 (PARITY.md)
            assert!(r >= 0.975, "{name}: r = {r}");
        }
    }
}

#[test]
fn functionals_match_smilextract_across_clips() {
    let mut ours: Vec<Vec<f64>> = vec![Vec::new(); 88];
    let mut refs: Vec<Vec<f64>> = vec![Vec::new(); 88];
    for clip in clips() {
        let (header, rows) = read_csv(&format!("{clip}.func.csv"));
        let (x, sr) = samples(&clip);
        assert_eq!(&header[1..], &FUNCTIONAL_NAMES.map(String::from)[..]);
        if rows.is_empty() {
            // SMILExtract writes no functionals row for a clip shorter than one 60 ms frame;
            // emobridge says so with an error instead of a row of placeholders (issue 17).
            let e = egemaps::functionals(&x, sr).unwrap_err();
            assert!(
                matches!(e, emobridge_acoustic::AcousticError::TooShort { .. }),
                "{clip}: {e}"
            );
            continue;
        }
        let f = egemaps::functionals(&x, sr).unwrap();
        assert!(
            f.values.iter().all(|v| v.is_finite()),
            "{clip}: non-finite functional"
        );
        let Some(row) = rows.first() else { continue };
        for k in 0..88 {
            ours[k].push(f.values[k] as f64);
            refs[k].push(row[k + 1]);
        }
    }
    let mut within = 0;
    let mut correlated = 0;
    for k in 0..88 {
        // relative error with an absolute floor of 1e-3 of the feature's largest magnitude
        let scale = refs[k].iter().map(|v| v.abs()).fold(0.0, f64::max) * 1e-3;
        let errs: Vec<f64> = ours[k]
            .iter()
            .zip(&refs[k])
            .map(|(o, r)| (o - r).abs() / r.abs().max(scale).max(1e-12))
            .collect();
        let med = median(errs);
        let r = pearson(&ours[k], &refs[k]);
        println!(
            "{:45} median rel err {:8.4} %   r = {r:.4}",
            FUNCTIONAL_NAMES[k],
            med * 100.0
        );
        within += (med <= 0.02) as usize;
        correlated += (r >= 0.95) as usize;
        assert!(
            med <= 0.005,
            "{}: median relative error {med}",
            FUNCTIONAL_NAMES[k]
        );
        // one feature stays below 0.95: on music_loop_amen the period matcher keeps fewer
        // periods than SMILExtract's (PARITY.md)
        let floor = if FUNCTIONAL_NAMES[k] == "jitterLocal_sma3nz_amean" {
            0.93
        } else {
            0.95
        };
        assert!(r >= floor, "{}: r = {r}", FUNCTIONAL_NAMES[k]);
    }
    println!("median rel err <= 2 %: {within}/88; Pearson r >= 0.95: {correlated}/88");
    assert_eq!(within, 88);
    assert!(correlated >= 87);
}
