//! The trainable path: autograd forward = inference forward for every fixture model, LoRA /
//! adapters / BitFit / full select the right parameters, only those receive gradients and
//! change, and LoRA merges.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use emobridge_ssl::weights::{read_tensors, weight_files};
use emobridge_ssl::{
    AdapterKind, Encoder, EncoderConfig, HiddenStateConvention, Kernels, Method, PeftConfig,
    Precision, TrainableEncoder, WeightSource,
};

mod common;
use common::max_abs_diff;

const FIXTURES: [&str; 9] = [
    "data2vec_audio",
    "hubert_group_postln",
    "hubert_layer_preln_bn",
    "mert_like_24k",
    "wav2vec2_group_postln",
    "wav2vec2_group_postln_bin",
    "wav2vec2_layer_preln",
    "wavlm_group_postln",
    "wavlm_layer_preln",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

fn load(name: &str) -> (EncoderConfig, HashMap<String, Tensor>) {
    let dir = fixture(name);
    let cfg = EncoderConfig::from_file(&dir.join("config.json")).unwrap();
    (cfg, read_tensors(&weight_files(&dir).unwrap()).unwrap())
}

fn input(b: usize, n: usize, seed: u32) -> Tensor {
    let x: Vec<f32> = (0..b * n)
        .map(|i| (i as f32 * 0.37 + seed as f32).sin() * 0.5)
        .collect();
    Tensor::from_vec(x, (b, n), &Device::Cpu).unwrap()
}

fn trainable(name: &str, peft: &PeftConfig) -> TrainableEncoder {
    let (cfg, tensors) = load(name);
    TrainableEncoder::new(&cfg, &WeightSource::new(tensors), peft, &Device::Cpu, 7).unwrap()
}

#[test]
fn autograd_forward_equals_the_inference_paths_for_every_fixture() {
    for name in FIXTURES {
        let (cfg, tensors) = load(name);
        let source = WeightSource::new(tensors);
        let x = input(2, 1600, 1);
        let lengths = [1600, 1200];
        let run = |kernels| {
            let enc =
                Encoder::new(&cfg, source.var_builder(DType::F32, &Device::Cpu), kernels).unwrap();
            enc.forward(&x, Some(&lengths), HiddenStateConvention::Transformers4)
                .unwrap()
        };
        let train = trainable(name, &PeftConfig::with_method(Method::Full));
        let got = train.forward(&x, Some(&lengths)).unwrap();
        for kernels in [Kernels::Candle, Kernels::Packed(Precision::F32)] {
            let want = run(kernels);
            assert_eq!(got.len(), want.len());
            for (l, (g, w)) in got.iter().zip(&want).enumerate() {
                let d = max_abs_diff(g, w);
                assert!(
                    d <= 1e-5,
                    "{name} vs {kernels:?}: state {l} differs by {d:e}"
                );
            }
        }
    }
}

#[test]
fn each_method_trains_exactly_its_parameters() {
    let name = "wav2vec2_layer_preln";
    let (cfg, _) = load(name);
    let (h, f, layers) = (cfg.hidden_size, cfg.intermediate_size, cfg.num_layers);
    let names = |peft: &PeftConfig| -> Vec<String> {
        trainable(name, peft)
            .named_vars()
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    for m in [Method::Frozen, Method::WeightedSum] {
        assert!(names(&PeftConfig::with_method(m)).is_empty(), "{m:?}");
    }
    let lora = PeftConfig::with_method(Method::Lora);
    let enc = trainable(name, &lora);
    assert_eq!(enc.trainable_parameters(), layers * 2 * 8 * (h + h));
    assert_eq!(enc.wrapped_modules().len(), layers * 2);
    for n in names(&lora) {
        assert!(
            (n.contains(".q_proj.") || n.contains(".v_proj.")) && n.contains(".lora_"),
            "{n}"
        );
    }
    let mut adapter = PeftConfig::with_method(Method::Adapter);
    adapter.adapter.bottleneck = 4;
    let enc = trainable(name, &adapter);
    let per = 2 * (h * 4) + 4 + h;
    assert_eq!(enc.trainable_parameters(), layers * 2 * per);
    adapter.adapter.kind = AdapterKind::Pfeiffer;
    assert_eq!(
        trainable(name, &adapter).trainable_parameters(),
        layers * per
    );
    let bitfit = names(&PeftConfig::with_method(Method::BitFit));
    assert!(!bitfit.is_empty());
    assert!(bitfit
        .iter()
        .all(|n| n.ends_with(".bias") && !n.starts_with("feature_extractor.")));
    assert!(bitfit.contains(&"encoder.layers.0.attention.q_proj.bias".to_string()));
    let full = names(&PeftConfig::with_method(Method::Full));
    assert!(full.contains(&"encoder.layers.1.feed_forward.intermediate_dense.weight".into()));
    assert!(full.iter().all(|n| !n.starts_with("feature_extractor.")));
    let mut with_cnn = PeftConfig::with_method(Method::Full);
    with_cnn.train_feature_encoder = true;
    assert!(names(&with_cnn)
        .iter()
        .any(|n| n.starts_with("feature_extractor.conv_layers.0")));
    let _ = f;
}

#[test]
fn a_lora_target_that_matches_nothing_lists_the_available_names() {
    let (cfg, tensors) = load("wavlm_layer_preln");
    let mut peft = PeftConfig::with_method(Method::Lora);
    peft.lora.targets = vec!["q_proj".into(), "query".into()];
    let err = TrainableEncoder::new(&cfg, &WeightSource::new(tensors), &peft, &Device::Cpu, 0)
        .err()
        .expect("an unknown target must fail")
        .to_string();
    assert!(err.contains("`query`"), "{err}");
    assert!(
        err.contains("q_proj") && err.contains("intermediate_dense"),
        "{err}"
    );
    peft.lora.r = 0;
    assert!(peft.validate().is_err());
}

/// A few AdamW steps on a toy loss: the chosen parameters move, every other tensor of the
/// encoder is bit-identical (its outputs with the PEFT parts removed are unchanged), gradients
/// exist for the trainable ones only.
#[test]
fn only_the_chosen_parameters_change() {
    let name = "wav2vec2_group_postln";
    let x = input(1, 1600, 3);
    for method in [Method::Lora, Method::Adapter, Method::BitFit, Method::Full] {
        let mut peft = PeftConfig::with_method(method);
        peft.lora.dropout = 0.0;
        let (cfg, tensors) = load(name);
        let before: HashMap<String, Vec<f32>> = tensors
            .iter()
            .map(|(k, t)| (k.clone(), t.flatten_all().unwrap().to_vec1().unwrap()))
            .collect();
        let source = WeightSource::new(tensors.clone());
        let enc = TrainableEncoder::new(&cfg, &source, &peft, &Device::Cpu, 1).unwrap();
        let vars = enc.named_vars();
        let start: Vec<Vec<f32>> = vars
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect();
        let mut opt = AdamW::new(
            vars.iter().map(|(_, v)| v.clone()).collect(),
            ParamsAdamW {
                lr: 1e-2,
                ..Default::default()
            },
        )
        .unwrap();
        for _ in 0..2 {
            let last = enc.forward(&x, None).unwrap().pop().unwrap();
            let loss = last.sqr().unwrap().mean_all().unwrap();
            let grads = loss.backward().unwrap();
            for (n, v) in &vars {
                assert!(
                    grads.get(v.as_tensor()).is_some(),
                    "{method:?}: no grad for {n}"
                );
            }
            opt.step(&grads).unwrap();
        }
        let moved = vars.iter().zip(&start).any(|((_, v), s)| {
            let now: Vec<f32> = v.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            now != *s
        });
        assert!(moved, "{method:?}: nothing was trained");
        // The checkpoint's own tensors (held by the source) never change; trained copies live
        // in the VarMap only.
        for (k, t) in &tensors {
            let now: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            assert!(now == before[k], "{method:?}: {k} changed");
        }
        // Frozen tensors used by the model are the source's tensors themselves.
        let trained: std::collections::BTreeSet<&str> =
            vars.iter().map(|(n, _)| n.as_str()).collect();
        assert!(!trained.contains("feature_extractor.conv_layers.0.conv.weight"));
    }
}

#[test]
fn lora_merge_gives_the_same_outputs_and_checkpoints_round_trip() {
    let name = "wavlm_layer_preln";
    let mut peft = PeftConfig::with_method(Method::Lora);
    peft.lora.targets = vec!["q_proj".into(), "v_proj".into(), "output_dense".into()];
    let mut enc = trainable(name, &peft);
    // Non-zero B so that the update matters.
    for (n, v) in enc.named_vars() {
        if n.contains("lora_B") {
            let shape = v.as_tensor().shape().clone();
            let t = Tensor::randn(0f32, 0.1, shape, &Device::Cpu).unwrap();
            v.set(&t).unwrap();
        }
    }
    let x = input(2, 1600, 5);
    let before = enc.forward(&x, Some(&[1600, 1000])).unwrap();
    let saved: HashMap<String, Tensor> = enc.checkpoint_tensors().into_iter().collect();
    assert!(saved
        .keys()
        .all(|k| k.starts_with("base_model.model.encoder.layers.") && k.contains(".lora_")));
    assert!(saved.contains_key("base_model.model.encoder.layers.0.attention.q_proj.lora_A.weight"));
    let fresh = trainable(name, &peft);
    fresh.load_checkpoint_tensors(&saved).unwrap();
    let reloaded = fresh.forward(&x, Some(&[1600, 1000])).unwrap();
    enc.merge_lora().unwrap();
    let merged = enc.forward(&x, Some(&[1600, 1000])).unwrap();
    for l in 0..before.len() {
        assert!(
            max_abs_diff(&before[l], &merged[l]) <= 1e-5,
            "merged state {l}"
        );
        assert!(
            max_abs_diff(&before[l], &reloaded[l]) == 0.0,
            "reloaded state {l}"
        );
    }
    let mut wrong = saved.clone();
    wrong.remove("base_model.model.encoder.layers.0.attention.q_proj.lora_A.weight");
    let err = fresh
        .load_checkpoint_tensors(&wrong)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing"), "{err}");
}

/// A LoRA / BitFit checkpoint folded into the weights of the packed inference encoder gives the
/// fine-tuned encoder's outputs; an adapter checkpoint is refused with the reason.
#[test]
fn fine_tuned_checkpoints_fold_into_the_inference_encoder() {
    use emobridge_ssl::train::{FineTuner, Task, TrainConfig};
    use emobridge_ssl::{EmbedOptions, LoadOptions, PretrainedEncoder};
    let name = "wav2vec2_layer_preln";
    for method in [Method::Lora, Method::BitFit, Method::Adapter] {
        let enc = trainable(name, &PeftConfig::with_method(method));
        for (n, v) in enc.named_vars() {
            if n.contains("lora_B") || method == Method::BitFit {
                let shape = v.as_tensor().shape().clone();
                let noise = Tensor::randn(0f32, 0.05, shape, &Device::Cpu).unwrap();
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
        let dir = tempfile::tempdir().unwrap();
        tuner.save_checkpoint(dir.path(), name).unwrap();
        let loaded = PretrainedEncoder::from_dir_with_adapter(
            &fixture(name),
            Some(dir.path()),
            LoadOptions::default(),
        );
        if method == Method::Adapter {
            let err = loaded.err().expect("adapters cannot fold").to_string();
            assert!(err.contains("cannot be folded"), "{err}");
            continue;
        }
        let loaded = loaded.unwrap();
        let samples: Vec<f32> = (0..1600).map(|i| (i as f32 * 0.21).sin() * 0.4).collect();
        let emb = loaded
            .embed(&samples, 16_000, &EmbedOptions::default())
            .unwrap();
        let mut prepared = samples.clone();
        if loaded.preprocess().do_normalize {
            emobridge_ssl::normalize_utterance(&mut prepared);
        }
        let x = Tensor::from_vec(prepared, (1, 1600), &Device::Cpu).unwrap();
        let want = tuner.encoder.forward(&x, None).unwrap();
        let last = want.len() - 1;
        let got = emb.hidden_states().get(last).unwrap();
        let d = max_abs_diff(&got, &want[last].squeeze(0).unwrap());
        assert!(d <= 1e-4, "{method:?}: folded encoder differs by {d:e}");
    }
}
