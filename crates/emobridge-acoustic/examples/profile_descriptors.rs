//! Runs one descriptor set on a synthetic speech-like signal at a given rate (for profilers:
//! `valgrind --tool=callgrind target/release/examples/profile_descriptors egemaps 44100 3`).
//!
//! Arguments: `egemaps|compare RATE SECONDS`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let set = args.first().map_or("egemaps", |s| s.as_str());
    let rate: u32 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(44_100);
    let seconds: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let n = (seconds * rate as f64) as usize;
    // A vowel-like tone with a gliding F0, harmonics and some noise, and a pause every second.
    let mut seed = 12345u64;
    let x: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * 0.01;
            let voiced = (t % 1.0) < 0.7;
            let f0 = 120.0 + 30.0 * (2.0 * std::f64::consts::PI * 0.5 * t).sin();
            let mut v = 0.0;
            if voiced {
                for h in 1..=8 {
                    v += (0.3 / h as f64) * (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin();
                }
            }
            (v + noise) as f32
        })
        .collect();
    let t = std::time::Instant::now();
    let (rows, digest) = match set {
        "compare" => {
            digest(&emobridge_acoustic::compare::lld_with_deltas(&x, rate).expect("compare"))
        }
        "egemaps-lld" => digest(&emobridge_acoustic::egemaps::lld(&x, rate).expect("egemaps")),
        _ => {
            let f = emobridge_acoustic::egemaps::functionals(&x, rate).expect("egemaps");
            (1, hash(f.values.iter()))
        }
    };
    eprintln!(
        "{set} {rate} Hz {seconds} s: {rows} rows in {:.3} s, digest {digest:016x}",
        t.elapsed().as_secs_f64()
    );
}

/// FNV-1a over the bit patterns of the values (any change of any value changes it).
fn hash<'a>(values: impl Iterator<Item = &'a f32>) -> u64 {
    values.fold(0xcbf29ce484222325u64, |h, v| {
        (h ^ v.to_bits() as u64).wrapping_mul(0x100000001b3)
    })
}

fn digest(f: &emobridge_acoustic::FeatureFrames) -> (usize, u64) {
    (f.len(), hash(f.values.iter().flatten()))
}
