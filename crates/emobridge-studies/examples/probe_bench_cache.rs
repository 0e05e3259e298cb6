//! Writes a synthetic embedding cache shaped like a 12-layer SSL model's (13 hidden states × 768)
//! for the probe benchmark: 2,520 clips (speech: 20 speakers × 6 emotions × 10; music: 20
//! performers × 6 × 11), one pooled frame per clip, through the store's writer.
//!
//! Features are class-structured: state l of a clip is `s_l·μ(emotion) + speaker offset + noise`,
//! with the emotion signal strongest in the middle states and music sharing part of speech's
//! emotion directions, so the probe has something to find and the curves have a shape.
//!
//! ```text
//! cargo run --release -p emobridge-studies --example probe_bench_cache -- OUT_DIR
//! ```
//! writes `OUT_DIR/manifest.csv` and `OUT_DIR/cache/bench/*.safetensors`.

use emobridge_store::{ClipEntry, EmbeddingCache, EntryMetadata, StoredDtype};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const STATES: usize = 13;
const DIM: usize = 768;
const EMOTIONS: [&str; 6] = ["neutral", "calm", "happy", "sad", "angry", "fearful"];

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    // Box–Muller.
    let (u, v): (f32, f32) = (rng.random::<f32>().max(1e-7), rng.random());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: probe_bench_cache OUT_DIR")?,
    );
    std::fs::create_dir_all(&out)?;
    let cache = EmbeddingCache::open(&out.join("cache"), "bench")?;
    let mut rng = ChaCha8Rng::seed_from_u64(20261129);
    // Emotion directions per state: speech's, and music's = 0.6·speech + 0.8·own.
    let mut dirs = |_: ()| -> Vec<Vec<f32>> {
        (0..EMOTIONS.len() * STATES)
            .map(|_| (0..DIM).map(|_| gauss(&mut rng)).collect())
            .collect()
    };
    let speech_dirs = dirs(());
    let own = dirs(());
    let music_dirs: Vec<Vec<f32>> = speech_dirs
        .iter()
        .zip(&own)
        .map(|(a, b)| a.iter().zip(b).map(|(x, y)| 0.6 * x + 0.8 * y).collect())
        .collect();
    let strength = |l: usize| 0.03 + 0.09 * (-((l as f32 - 7.0) / 3.5).powi(2)).exp();
    let mut manifest =
        String::from("id,path,domain,corpus,speaker,emotion,arousal,valence,split,annotation\n");
    for (domain, people, per_cell, dirs) in [
        ("speech", 20, 10, &speech_dirs),
        ("music", 20, 11, &music_dirs),
    ] {
        for p in 0..people {
            let offset: Vec<f32> = (0..STATES * DIM).map(|_| 0.3 * gauss(&mut rng)).collect();
            for (e, emotion) in EMOTIONS.iter().enumerate() {
                for k in 0..per_cell {
                    let id = format!("{domain}_{p:02}_{emotion}_{k:02}");
                    let mut frames = Vec::with_capacity(STATES * DIM);
                    for l in 0..STATES {
                        let d = &dirs[e * STATES + l];
                        for j in 0..DIM {
                            frames.push(strength(l) * d[j] + offset[l * DIM + j] + gauss(&mut rng));
                        }
                    }
                    let meta = EntryMetadata {
                        model: "synthetic-bench".into(),
                        sample_rate: 16_000,
                        frame_rate_hz: 50.0,
                        hidden_state_convention: "transformers4".into(),
                        source_file: format!("{id}.wav"),
                        ..EntryMetadata::default()
                    };
                    let entry =
                        ClipEntry::from_frames(frames, [STATES, 1, DIM], StoredDtype::F16, meta)?;
                    cache.write(&id, &entry)?;
                    manifest.push_str(&format!(
                        "{id},{id}.wav,{domain},bench,{domain}{p:02},{emotion},,,,\n"
                    ));
                }
            }
        }
    }
    std::fs::write(out.join("manifest.csv"), manifest)?;
    println!("{}", out.join("manifest.csv").display());
    Ok(())
}
