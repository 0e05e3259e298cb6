//! `emobridge embed --adapter CKPT`: the encoder with a fine-tuned LoRA / BitFit checkpoint of
//! `emobridge finetune` merged into its weights gives other hidden states than the pretrained
//! one, and the same as the training path's forward with the checkpoint (≤ 1e-5, every layer).

mod common;

use common::fixture;

use std::path::Path;
use std::process::Command;

use emobridge_ssl::candle_core::{Device, Tensor};
use emobridge_ssl::train::{FineTuner, Task, TrainConfig};
use emobridge_ssl::weights::{read_tensors, weight_files};
use emobridge_ssl::{EncoderConfig, Method, PeftConfig, TrainableEncoder, WeightSource};

/// `hidden_states` of an embed output as rows of f32 per layer.
fn hidden_states(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("hidden_states").unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), v)
}

fn embed(wav: &Path, out: &Path, adapter: Option<&Path>) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_emobridge"));
    c.args([
        "embed",
        "--precision",
        "f32",
        "--convention",
        "transformers4",
    ])
    .args(["--device", "cpu", "--model"])
    .arg(fixture("wav2vec2_layer_preln"))
    .arg("--out")
    .arg(out)
    .arg(wav);
    if let Some(a) = adapter {
        c.arg("--adapter").arg(a);
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn embed_with_a_fine_tuned_checkpoint_uses_the_fine_tuned_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tmp.path().join("clip.wav");
    let x: Vec<f32> = (0..8000)
        .map(|i| 0.3 * (i as f32 * 0.031).sin() + 0.1 * (i as f32 * 0.17).cos())
        .collect();
    emobridge_audio::wav::write_wav_mono16(&wav, &x, 16_000).unwrap();
    let base = tmp.path().join("base.safetensors");
    embed(&wav, &base, None);
    let (shape, base) = hidden_states(&base);

    let dir = fixture("wav2vec2_layer_preln");
    let cfg = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
    let source = WeightSource::new(read_tensors(&weight_files(&dir).unwrap()).unwrap());
    for method in [Method::Lora, Method::BitFit] {
        let enc = TrainableEncoder::new(
            &cfg,
            &source,
            &PeftConfig::with_method(method),
            &Device::Cpu,
            9,
        )
        .unwrap();
        // Trained-looking values: LoRA B (zero at start) and the biases moved.
        for (n, v) in enc.named_vars() {
            if n.contains("lora_B") || method == Method::BitFit {
                let noise = Tensor::randn(0f32, 0.02, v.shape(), &Device::Cpu).unwrap();
                v.set(&(v.as_tensor() + noise).unwrap()).unwrap();
            }
        }
        let tuner = FineTuner::new(
            enc,
            Task::Classification {
                classes: 2,
                class_weights: None,
            },
            TrainConfig::default(),
        )
        .unwrap();
        let ckpt = tmp.path().join(method.as_str());
        tuner.save_checkpoint(&ckpt, "fixture").unwrap();
        let out = tmp.path().join(format!("{}.safetensors", method.as_str()));
        embed(&wav, &out, Some(&ckpt));
        let (got_shape, got) = hidden_states(&out);
        assert_eq!(got_shape, shape);

        // The training path on the same decoded, normalised samples.
        let audio =
            emobridge_audio::load(&wav, &emobridge_audio::DecodeOptions::mono_at(16_000)).unwrap();
        let mut samples = audio.channels[0].clone();
        let pre = emobridge_ssl::PreprocessConfig::from_file(
            &dir.join("preprocessor_config.json"),
            cfg.family,
        )
        .unwrap();
        if pre.do_normalize {
            emobridge_ssl::normalize_utterance(&mut samples);
        }
        let n = samples.len();
        let want = tuner
            .encoder
            .forward(
                &Tensor::from_vec(samples, (1, n), &Device::Cpu).unwrap(),
                None,
            )
            .unwrap();
        let want: Vec<f32> = Tensor::cat(&want, 0)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(want.len(), got.len());
        let max = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
        };
        let d = max(&got, &want);
        assert!(
            d <= 1e-5,
            "{method:?}: embed --adapter differs from training by {d:e}"
        );
        let moved = max(&got, &base);
        assert!(
            moved > 1e-3,
            "{method:?}: the adapter changed nothing ({moved:e})"
        );
    }

    // A bottleneck-adapter checkpoint cannot be merged: a one-line error naming the reason.
    let enc = TrainableEncoder::new(
        &cfg,
        &source,
        &PeftConfig::with_method(Method::Adapter),
        &Device::Cpu,
        9,
    )
    .unwrap();
    let tuner = FineTuner::new(
        enc,
        Task::Classification {
            classes: 2,
            class_weights: None,
        },
        TrainConfig::default(),
    )
    .unwrap();
    let ckpt = tmp.path().join("adapter");
    tuner.save_checkpoint(&ckpt, "fixture").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_emobridge"))
        .args(["embed", "--model"])
        .arg(fixture("wav2vec2_layer_preln"))
        .arg("--adapter")
        .arg(&ckpt)
        .arg("--out")
        .arg(tmp.path().join("x.safetensors"))
        .arg(&wav)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot be folded"), "{err}");
}
