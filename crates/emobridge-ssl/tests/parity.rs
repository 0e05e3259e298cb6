//! Every hidden state of tiny random-init encoders against transformers 4.57
//! (fixtures made by tools/fixtures/ssl_make_fixtures.py; see tests/fixtures/VERSIONS.json).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use emobridge_ssl::{
    normalize_utterance, EmbedOptions, HiddenStateConvention, LoadOptions, PretrainedEncoder,
    SslError,
};

mod common;
use common::max_abs_diff;

/// Largest absolute difference allowed per element, every layer (f32).
const TOL: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

fn expected(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixture(name).join("expected.safetensors"), &Device::Cpu)
        .unwrap()
}

fn assert_layers_close(got: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(got.dims(), want.dims(), "{what}: shapes differ");
    let mut worst = 0f32;
    for l in 0..want.dim(0).unwrap() {
        let d = max_abs_diff(&got.get(l).unwrap(), &want.get(l).unwrap());
        assert!(d <= TOL, "{what}: hidden state {l} differs by {d:e}");
        worst = worst.max(d);
    }
    eprintln!(
        "{what}: max abs diff over {} states {worst:.2e}",
        want.dim(0).unwrap()
    );
}

fn load(dir: &Path) -> PretrainedEncoder {
    PretrainedEncoder::from_dir(dir, LoadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// Loads `model_dir`, runs the fixture input of `name`, compares every layer.
fn check_single(name: &str, model_dir: &Path) -> (PretrainedEncoder, HashMap<String, Tensor>) {
    let model = load(model_dir);
    let exp = expected(name);
    let input: Vec<f32> = exp["input"].to_vec1().unwrap();
    let rate = model.preprocess().sampling_rate;
    let emb = model.embed(&input, rate, &EmbedOptions::default()).unwrap();
    assert_eq!(emb.num_states(), model.config().num_layers + 1);
    assert_layers_close(emb.hidden_states(), &exp["hidden_states"], name);
    (model, exp)
}

fn check_fixture(name: &str) -> (PretrainedEncoder, HashMap<String, Tensor>) {
    check_single(name, &fixture(name))
}

/// The padded batch of the fixture (full clip + a 0.6 s crop) through the masked path: all frames
/// of the raw forward, and each clip's valid frames through `embed_batch`.
fn check_batch(model: &PretrainedEncoder, exp: &HashMap<String, Tensor>, name: &str) {
    let input: Vec<f32> = exp["input"].to_vec1().unwrap();
    let lengths: Vec<usize> = exp["batch_lengths"]
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|n| n as usize)
        .collect();
    let clips: Vec<Vec<f32>> = lengths
        .iter()
        .map(|&n| {
            let mut c = input[..n].to_vec();
            normalize_utterance(&mut c);
            c
        })
        .collect();
    let longest = lengths[0];
    let mut flat = vec![0f32; clips.len() * longest];
    for (row, clip) in flat.chunks_mut(longest).zip(&clips) {
        row[..clip.len()].copy_from_slice(clip);
    }
    let batch = Tensor::from_vec(flat, (clips.len(), longest), &Device::Cpu).unwrap();
    let states = model
        .encoder()
        .forward(&batch, Some(&lengths), HiddenStateConvention::Transformers4)
        .unwrap();
    let got = Tensor::stack(&states, 0).unwrap();
    assert_layers_close(
        &got,
        &exp["batch_hidden_states"],
        &format!("{name} padded batch"),
    );

    let embs = model.embed_batch(&clips, &EmbedOptions::default()).unwrap();
    for (i, emb) in embs.iter().enumerate() {
        let frames = model.config().frames_for(lengths[i]);
        let want = exp["batch_hidden_states"]
            .narrow(1, i, 1)
            .unwrap()
            .squeeze(1)
            .unwrap()
            .narrow(1, 0, frames)
            .unwrap();
        assert_layers_close(
            emb.hidden_states(),
            &want,
            &format!("{name} embed_batch item {i}"),
        );
    }
}

fn check_pre_norm_last(model: &PretrainedEncoder, exp: &HashMap<String, Tensor>, name: &str) {
    let input: Vec<f32> = exp["input"].to_vec1().unwrap();
    let opts = EmbedOptions {
        convention: HiddenStateConvention::Transformers5,
        ..EmbedOptions::default()
    };
    let emb = model
        .embed(&input, model.preprocess().sampling_rate, &opts)
        .unwrap();
    let last = model.config().num_layers;
    let d = max_abs_diff(
        &emb.hidden_states().get(last).unwrap(),
        &exp["pre_norm_last"],
    );
    assert!(
        d <= TOL,
        "{name}: transformers-5 index {last} differs by {d:e}"
    );
    // The other indices do not depend on the convention.
    let d0 = max_abs_diff(
        &emb.hidden_states().get(0).unwrap(),
        &exp["hidden_states"].get(0).unwrap(),
    );
    assert!(d0 <= TOL);
}

#[test]
fn wav2vec2_group_norm_post_ln() {
    let (model, _) = check_fixture("wav2vec2_group_postln");
    assert_eq!(model.config().hop(), 320);
    assert_eq!(model.config().receptive_field(), 400);
    assert_eq!(model.frame_rate_hz(), 50.0);
}

#[test]
fn wav2vec2_from_pytorch_pickle_without_preprocessor_file() {
    check_single(
        "wav2vec2_group_postln",
        &fixture("wav2vec2_group_postln_bin"),
    );
}

#[test]
fn wav2vec2_layer_norm_pre_ln_single_batch_and_v5_convention() {
    let (model, exp) = check_fixture("wav2vec2_layer_preln");
    check_pre_norm_last(&model, &exp, "wav2vec2_layer_preln");
    check_batch(&model, &exp, "wav2vec2_layer_preln");
}

#[test]
fn hubert_group_norm_without_projection_norm_legacy_weight_norm_names() {
    let (model, _) = check_fixture("hubert_group_postln");
    assert!(!model.config().feat_proj_layer_norm);
}

#[test]
fn hubert_layer_norm_pre_ln_with_positional_batch_norm() {
    let (model, exp) = check_fixture("hubert_layer_preln_bn");
    check_pre_norm_last(&model, &exp, "hubert_layer_preln_bn");
}

#[test]
fn wavlm_group_norm_post_ln_relative_bias() {
    check_fixture("wavlm_group_postln");
}

#[test]
fn wavlm_layer_norm_pre_ln_relative_bias_and_batch() {
    let (model, exp) = check_fixture("wavlm_layer_preln");
    check_pre_norm_last(&model, &exp, "wavlm_layer_preln");
    check_batch(&model, &exp, "wavlm_layer_preln");
}

#[test]
fn data2vec_audio_from_sharded_checkpoint_and_batch() {
    let (model, exp) = check_fixture("data2vec_audio");
    check_batch(&model, &exp, "data2vec_audio");
}

#[test]
fn mert_like_hubert_at_24_khz() {
    let (model, _) = check_fixture("mert_like_24k");
    assert_eq!(model.preprocess().sampling_rate, 24_000);
    assert_eq!(model.config().family, emobridge_ssl::ModelFamily::Mert);
    assert_eq!(model.frame_rate_hz(), 75.0);
}

/// Copies a fixture folder, letting `edit` change its weights and config.
fn edited_copy(
    name: &str,
    edit: impl FnOnce(&mut HashMap<String, Tensor>, &mut serde_json::Value),
) -> tempfile::TempDir {
    let src = fixture(name);
    let tmp = tempfile::tempdir().unwrap();
    let mut tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    edit(&mut tensors, &mut config);
    candle_core::safetensors::save(&tensors, tmp.path().join("model.safetensors")).unwrap();
    std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        src.join("preprocessor_config.json"),
        tmp.path().join("preprocessor_config.json"),
    )
    .unwrap();
    tmp
}

#[test]
fn task_head_checkpoint_with_prefix_and_extra_tensors_loads_unchanged() {
    let dir = edited_copy("wav2vec2_layer_preln", |t, _| {
        let renamed: HashMap<String, Tensor> = t
            .drain()
            .map(|(k, v)| (format!("wav2vec2.{k}"), v))
            .collect();
        *t = renamed;
        let z =
            |shape: &[usize]| Tensor::zeros(shape, candle_core::DType::F32, &Device::Cpu).unwrap();
        t.insert("lm_head.weight".into(), z(&[10, 32]));
        t.insert("wav2vec2.masked_spec_embed".into(), z(&[32]));
        t.insert("quantizer.codevectors".into(), z(&[1, 8, 4]));
    });
    check_single("wav2vec2_layer_preln", dir.path());
}

#[test]
fn missing_and_misshaped_tensors_are_all_listed() {
    let dir = edited_copy("wav2vec2_group_postln", |t, _| {
        t.remove("encoder.layers.1.attention.k_proj.weight");
        let w = t.remove("feature_projection.projection.bias").unwrap();
        t.insert(
            "feature_projection.projection.bias".into(),
            w.narrow(0, 0, 31).unwrap(),
        );
    });
    let err = PretrainedEncoder::from_dir(dir.path(), LoadOptions::default())
        .err()
        .expect("must fail");
    let msg = err.to_string();
    assert!(matches!(err, SslError::Checkpoint { .. }), "{msg}");
    assert!(
        msg.contains(
            "missing tensor `encoder.layers.1.attention.k_proj.weight` (expected shape [32, 32])"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("`feature_projection.projection.bias` has shape [31], expected [32]"),
        "{msg}"
    );
}

#[test]
fn unsupported_config_values_name_the_key() {
    let cases: [(&str, &str, serde_json::Value, &str); 4] = [
        (
            "wav2vec2_group_postln",
            "feat_extract_norm",
            "batch".into(),
            "feat_extract_norm",
        ),
        (
            "wav2vec2_group_postln",
            "model_type",
            "wav2vec2-conformer".into(),
            "model_type",
        ),
        (
            "mert_like_24k",
            "feature_extractor_cqt",
            true.into(),
            "feature_extractor_cqt",
        ),
        (
            "wav2vec2_group_postln",
            "hidden_act",
            "mish".into(),
            "hidden_act",
        ),
    ];
    for (name, key, value, named) in cases {
        let dir = edited_copy(name, |_, c| {
            c[key] = value.clone();
        });
        let err = PretrainedEncoder::from_dir(dir.path(), LoadOptions::default())
            .err()
            .expect("must fail")
            .to_string();
        assert!(
            err.contains(&format!("`{named}`")) && err.contains("config.json"),
            "{err}"
        );
    }
}

#[test]
fn long_audio_is_chunked_on_the_frame_grid() {
    let model = load(&fixture("wav2vec2_layer_preln"));
    let exp = expected("wav2vec2_layer_preln");
    let input: Vec<f32> = exp["input"].to_vec1().unwrap();
    let prepared = model.prepare(&input, 16_000).unwrap();
    let whole = model
        .embed_prepared(&prepared, &EmbedOptions::default())
        .unwrap();
    // 0.2 s windows = 10 frames each: same frame count, and window k equals a separate pass over
    // exactly its samples.
    let opts = EmbedOptions {
        window_s: 0.2,
        ..EmbedOptions::default()
    };
    let chunked = model.embed_prepared(&prepared, &opts).unwrap();
    assert_eq!(chunked.frames(), whole.frames());
    assert_eq!(whole.frames(), 49);
    let second = model
        .embed_prepared(
            &prepared[10 * 320..19 * 320 + 400],
            &EmbedOptions::default(),
        )
        .unwrap();
    let got = chunked.hidden_states().narrow(1, 10, 10).unwrap();
    assert!(max_abs_diff(&got, second.hidden_states()) < 1e-6);
    // The last window holds the 9 remaining frames.
    let last = model
        .embed_prepared(&prepared[40 * 320..], &EmbedOptions::default())
        .unwrap();
    assert_eq!(last.frames(), 9);
    assert!(
        max_abs_diff(
            &chunked.hidden_states().narrow(1, 40, 9).unwrap(),
            last.hidden_states()
        ) < 1e-6
    );
}

#[test]
fn input_at_another_rate_is_resampled_and_short_input_refused() {
    let model = load(&fixture("wav2vec2_group_postln"));
    let tone: Vec<f32> = (0..44_100).map(|i| (i as f32 * 0.05).sin()).collect();
    let emb = model
        .embed(&tone, 44_100, &EmbedOptions::default())
        .unwrap();
    assert_eq!(emb.frames(), 49);
    let err = model
        .embed(&tone[..300], 16_000, &EmbedOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("receptive field"), "{err}");
}

#[test]
fn group_norm_batches_equal_single_clip_results() {
    let model = load(&fixture("hubert_group_postln"));
    let exp = expected("hubert_group_postln");
    let input: Vec<f32> = exp["input"].to_vec1().unwrap();
    let a = model.prepare(&input, 16_000).unwrap();
    let b = model.prepare(&input[..9_600], 16_000).unwrap();
    let embs = model
        .embed_batch(&[a.clone(), b.clone(), a.clone()], &EmbedOptions::default())
        .unwrap();
    let single_b = model.embed_prepared(&b, &EmbedOptions::default()).unwrap();
    assert_layers_close(
        embs[0].hidden_states(),
        &exp["hidden_states"],
        "group batch item 0",
    );
    assert_layers_close(
        embs[2].hidden_states(),
        &exp["hidden_states"],
        "group batch item 2",
    );
    assert!(max_abs_diff(embs[1].hidden_states(), single_b.hidden_states()) < 1e-6);
}

#[test]
fn candle_reference_kernels_match_too() {
    for name in [
        "wav2vec2_group_postln",
        "wavlm_layer_preln",
        "data2vec_audio",
    ] {
        let model = PretrainedEncoder::from_dir(
            &fixture(name),
            LoadOptions {
                candle_kernels: true,
                ..LoadOptions::default()
            },
        )
        .unwrap();
        let exp = expected(name);
        let input: Vec<f32> = exp["input"].to_vec1().unwrap();
        let emb = model
            .embed(
                &input,
                model.preprocess().sampling_rate,
                &EmbedOptions::default(),
            )
            .unwrap();
        assert_layers_close(
            emb.hidden_states(),
            &exp["hidden_states"],
            &format!("{name} (candle kernels)"),
        );
    }
}

/// The bf16 path's documented tolerance: every state within 5 % of the layer's largest value.
#[test]
fn bf16_products_stay_within_the_documented_tolerance() {
    for name in [
        "wav2vec2_group_postln",
        "wavlm_layer_preln",
        "data2vec_audio",
    ] {
        let opts = LoadOptions {
            precision: emobridge_ssl::Precision::Bf16,
            ..LoadOptions::default()
        };
        let model = PretrainedEncoder::from_dir(&fixture(name), opts).unwrap();
        let exp = expected(name);
        let input: Vec<f32> = exp["input"].to_vec1().unwrap();
        let emb = model
            .embed(
                &input,
                model.preprocess().sampling_rate,
                &EmbedOptions::default(),
            )
            .unwrap();
        for l in 0..exp["hidden_states"].dim(0).unwrap() {
            let want = exp["hidden_states"].get(l).unwrap();
            let scale = want
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            let d = max_abs_diff(&emb.hidden_states().get(l).unwrap(), &want);
            eprintln!("{name} bf16 state {l}: {d:.2e} (max |value| {scale:.2})");
            assert!(
                d <= 0.05 * scale,
                "{name} bf16 state {l}: {d:e} vs scale {scale}"
            );
        }
    }
}
