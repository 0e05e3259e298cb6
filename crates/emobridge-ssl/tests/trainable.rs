//! The encoder built on candle's `VarBuilder`: the differentiable path gives the checkpoint's
//! transformers outputs, a `VarMap` gets exactly the checkpoint's tensor names, and gradients
//! reach the weights (fixtures of tests/parity.rs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use emobridge_ssl::weights::{read_tensors, weight_files};
use emobridge_ssl::{
    normalize_utterance, Encoder, EncoderConfig, HiddenStateConvention, Kernels, Precision,
    WeightSource,
};

mod common;
use common::max_abs_diff;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

fn expected(name: &str) -> (Tensor, Tensor) {
    let exp =
        candle_core::safetensors::load(fixture(name).join("expected.safetensors"), &Device::Cpu)
            .unwrap();
    (exp["input"].clone(), exp["hidden_states"].clone())
}

/// The fixture's input, normalised when its feature extractor asks for it, as [1, N].
fn prepared_input(name: &str, input: &Tensor) -> Tensor {
    let pre: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(name).join("preprocessor_config.json")).unwrap(),
    )
    .unwrap();
    let mut x: Vec<f32> = input.to_vec1().unwrap();
    if pre["do_normalize"].as_bool().unwrap_or(false) {
        normalize_utterance(&mut x);
    }
    let n = x.len();
    Tensor::from_vec(x, (1, n), &Device::Cpu).unwrap()
}

fn build(name: &str, kernels: Kernels) -> (Encoder, WeightSource) {
    let dir = fixture(name);
    let cfg = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
    let source = WeightSource::new(read_tensors(&weight_files(&dir).unwrap()).unwrap());
    let enc = Encoder::new(&cfg, source.var_builder(DType::F32, &Device::Cpu), kernels).unwrap();
    (enc, source)
}

#[test]
fn every_kernel_choice_reproduces_transformers() {
    for name in [
        "wavlm_layer_preln",
        "hubert_layer_preln_bn",
        "wav2vec2_group_postln",
    ] {
        let (input, want) = expected(name);
        let x = prepared_input(name, &input);
        for kernels in [
            Kernels::Autograd,
            Kernels::Candle,
            Kernels::Packed(Precision::F32),
        ] {
            let (enc, source) = build(name, kernels);
            source.finish(&fixture(name)).unwrap();
            let states = enc
                .forward(&x, None, HiddenStateConvention::Transformers4)
                .unwrap();
            assert_eq!(states.len(), want.dim(0).unwrap());
            for (l, got) in states.iter().enumerate() {
                let d = max_abs_diff(&got.squeeze(0).unwrap(), &want.get(l).unwrap());
                assert!(d <= 1e-4, "{name} {kernels:?}: state {l} differs by {d:e}");
            }
        }
    }
}

#[test]
fn a_varmap_gets_the_checkpoint_names_and_gradients_reach_them() {
    let name = "wav2vec2_group_postln";
    let dir = fixture(name);
    let cfg = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
    let mut varmap = VarMap::new();
    let enc = Encoder::new(
        &cfg,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
        Kernels::Autograd,
    )
    .unwrap();
    // The variables are the tensors a checkpoint load uses (the checkpoint also holds
    // `masked_spec_embed`, which the encoder does not use).
    let (_, source) = build(name, Kernels::Candle);
    let unused: BTreeSet<String> = source.finish(&dir).unwrap().into_iter().collect();
    let checkpoint: BTreeSet<String> = read_tensors(&weight_files(&dir).unwrap())
        .unwrap()
        .into_keys()
        .filter(|k| !unused.contains(k))
        .collect();
    let vars: BTreeSet<String> = varmap.data().lock().unwrap().keys().cloned().collect();
    assert_eq!(vars, checkpoint);

    // Loaded with the checkpoint's values, the trainable encoder gives transformers' outputs.
    varmap.load(dir.join("model.safetensors")).unwrap();
    let (input, want) = expected(name);
    let x = prepared_input(name, &input);
    let states = enc
        .forward(&x, None, HiddenStateConvention::Transformers4)
        .unwrap();
    let last = states.last().unwrap();
    let d = max_abs_diff(
        &last.squeeze(0).unwrap(),
        &want.get(want.dim(0).unwrap() - 1).unwrap(),
    );
    assert!(d <= 1e-4, "last state differs by {d:e}");

    let loss = last.sqr().unwrap().mean_all().unwrap();
    let grads = loss.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    for name in [
        "feature_extractor.conv_layers.0.conv.weight",
        "encoder.pos_conv_embed.conv.parametrizations.weight.original0",
        "encoder.layers.0.attention.q_proj.weight",
        "encoder.layers.1.feed_forward.output_dense.bias",
        "encoder.layer_norm.weight",
    ] {
        let var = &data[name];
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            norm.is_finite() && norm > 0.0,
            "{name}: gradient norm {norm}"
        );
    }
}
