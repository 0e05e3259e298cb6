//! Writes a synthetic frame-level embedding cache shaped like a base-size SSL model's
//! (13 hidden states × 768) for the per-emotion FAD study benchmark (`tools/bench/fad_study.sh`):
//! speech clips of 6 emotions and music clips of 4, `CLIPS` in all (default 240), each with
//! 120–180 frames, through the store's writer (f16, as `extract` writes).
//!
//! Frames are `centre(emotion, state) + shared factors + noise`: a few per-frame factors are
//! spread over all dimensions, so covariances are correlated and full rank.
//!
//! ```text
//! cargo run --release -p emobridge-studies --example fad_study_cache -- OUT_DIR [CLIPS] [STATES] [DIM]
//! ```
//! writes `OUT_DIR/manifest.csv` and `OUT_DIR/cache/bench/*.safetensors`.

use emobridge_store::{ClipEntry, EmbeddingCache, EntryMetadata, StoredDtype};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SPEECH: [&str; 6] = ["neutral", "calm", "happy", "sad", "angry", "fearful"];
const MUSIC: [&str; 4] = ["happy", "sad", "angry", "calm"];
const FACTORS: usize = 8;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = std::path::PathBuf::from(
        args.first()
            .ok_or("usage: fad_study_cache OUT_DIR [CLIPS] [STATES] [DIM]")?,
    );
    let number = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(args
            .get(i)
            .map(|a| a.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (clips, states, dim) = (number(1, 240)?, number(2, 13)?, number(3, 768)?);
    std::fs::create_dir_all(&out)?;
    let cache = EmbeddingCache::open(&out.join("cache"), "bench")?;
    let mut rng = ChaCha8Rng::seed_from_u64(20261129);
    let loadings: Vec<f32> = (0..FACTORS * dim)
        .map(|_| rng.random_range(-0.6f32..0.6))
        .collect();
    let mut manifest =
        String::from("id,path,domain,corpus,speaker,emotion,arousal,valence,split,annotation\n");
    let cells: Vec<(&str, usize, &str)> = SPEECH
        .iter()
        .enumerate()
        .map(|(e, l)| ("speech", e, *l))
        .chain(MUSIC.iter().enumerate().map(|(e, l)| ("music", e + 10, *l)))
        .collect();
    for k in 0..clips {
        let (domain, e, emotion) = cells[k % cells.len()];
        let frames = 120 + (k * 37) % 61;
        let mut values = Vec::with_capacity(states * frames * dim);
        for l in 0..states {
            let centre = 0.05 * (e as f32 + 1.0) * (1.0 + l as f32 / states as f32);
            for _ in 0..frames {
                let z: Vec<f32> = (0..FACTORS)
                    .map(|_| rng.random_range(-1.0f32..1.0))
                    .collect();
                for j in 0..dim {
                    let shared: f32 = (0..FACTORS).map(|f| z[f] * loadings[f * dim + j]).sum();
                    values.push(centre + shared + rng.random_range(-1.0f32..1.0));
                }
            }
        }
        let id = format!("{domain}_{emotion}_{k:04}");
        let meta = EntryMetadata {
            model: "synthetic-bench".into(),
            sample_rate: 16_000,
            frame_rate_hz: 50.0,
            hidden_state_convention: "transformers4".into(),
            source_file: format!("{id}.wav"),
            ..EntryMetadata::default()
        };
        let entry = ClipEntry::from_frames(values, [states, frames, dim], StoredDtype::F16, meta)?;
        cache.write(&id, &entry)?;
        manifest.push_str(&format!(
            "{id},{id}.wav,{domain},bench,{domain}{:02},{emotion},,,,\n",
            k % 12
        ));
    }
    std::fs::write(out.join("manifest.csv"), manifest)?;
    println!("{}", out.join("manifest.csv").display());
    Ok(())
}
