//! Empty-statistics conventions: clips shorter than one 60 ms frame have no LLD rows and no
//! functionals (an error, not openSMILE's row of placeholders); digital silence and unvoiced
//! noise give openSMILE's values, never NaN or a panic.

use emobridge_acoustic::egemaps::{
    functionals, lld, lld_and_functionals, FUNCTIONAL_NAMES, LLD_NAMES,
};
use emobridge_acoustic::AcousticError;

#[test]
fn too_short_clip_has_no_lld_rows_and_no_functionals() {
    let x = vec![0.1f32; 959]; // one sample short of a 60 ms frame at 16 kHz
    let l = lld(&x, 16000).unwrap();
    assert!(l.is_empty());
    assert_eq!(l.names.len(), LLD_NAMES.len());
    assert!(lld(&[], 16000).unwrap().is_empty());
    // 1 sample, 10 ms and 59.9 ms: a stated error, not a silent row of 0 / -120 (issue 17).
    for n in [0usize, 1, 160, 959] {
        let e = functionals(&vec![0.1f32; n], 16000).unwrap_err();
        assert!(
            matches!(e, AcousticError::TooShort { needed: 960, .. }),
            "{n}: {e}"
        );
        assert!(e.to_string().contains("too short to analyse"), "{e}");
        assert!(lld_and_functionals(&vec![0.1f32; n], 16000).is_err());
    }
    let f = functionals(&vec![0.1f32; 960], 16000).unwrap();
    assert_eq!(f.values.len(), FUNCTIONAL_NAMES.len());
    assert!(f.values.iter().all(|v| v.is_finite()));
}

#[test]
fn silence_matches_smilextract_conventions() {
    let x = vec![0.0f32; 16000];
    let l = lld(&x, 16000).unwrap();
    assert_eq!(l.len(), 96); // ⌊(16000 − 960)/160⌋ + 2
    let f = functionals(&x, 16000).unwrap();
    assert!(f.values.iter().all(|v| v.is_finite()));
    // values SMILExtract writes for one second of digital silence
    assert!((f.get("loudness_sma3_amean").unwrap() - 1.033966e-3).abs() < 1e-6);
    assert_eq!(f.get("F0semitoneFrom27.5Hz_sma3nz_amean").unwrap(), 0.0);
    assert_eq!(f.get("F1amplitudeLogRelF0_sma3nz_amean").unwrap(), -201.0);
    assert!((f.get("MeanUnvoicedSegmentLength").unwrap() - 0.93).abs() < 1e-6);
    assert_eq!(f.get("equivalentSoundLevel_dBp").unwrap(), -120.0);
    assert!((f.get("slopeUV0-500_sma3nz_amean").unwrap() - 0.112).abs() < 1e-4);
}

#[test]
fn rejects_non_finite_samples_and_bad_rates() {
    assert!(lld(&[0.0, f32::NAN], 16000).is_err());
    assert!(functionals(&[0.0; 2000], 0).is_err());
}

#[test]
fn works_at_other_rates() {
    for sr in [8000u32, 22050, 44100] {
        let x: Vec<f32> = (0..sr as usize)
            .map(|i| 0.3 * (2.0 * std::f32::consts::PI * 150.0 * i as f32 / sr as f32).sin())
            .collect();
        let l = lld(&x, sr).unwrap();
        let hop = (0.010 * sr as f64).round() as usize;
        let w = (0.060 * sr as f64).round() as usize;
        assert_eq!(l.len(), (x.len() - w) / hop + 2, "{sr} Hz");
        assert!(l.values.iter().flatten().all(|v| v.is_finite()));
        assert!(functionals(&x, sr)
            .unwrap()
            .values
            .iter()
            .all(|v| v.is_finite()));
    }
}

#[test]
fn one_pass_gives_the_same_llds_and_functionals_as_two() {
    let sr = 16_000;
    let x: Vec<f32> = (0..sr)
        .map(|i| {
            let t = i as f32 / sr as f32;
            0.3 * (2.0 * std::f32::consts::PI * 140.0 * t).sin()
                + 0.1 * (2.0 * std::f32::consts::PI * 2300.0 * t).sin()
        })
        .collect();
    let (lld, func) = emobridge_acoustic::egemaps::lld_and_functionals(&x, sr as u32).unwrap();
    assert_eq!(
        lld,
        emobridge_acoustic::egemaps::lld(&x, sr as u32).unwrap()
    );
    assert_eq!(
        func,
        emobridge_acoustic::egemaps::functionals(&x, sr as u32).unwrap()
    );
}
