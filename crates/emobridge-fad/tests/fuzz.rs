//! Fuzzing on stable Rust (issue 17 item 12): mutated `.npy` and safetensors embedding files and
//! cache entries load to rows or a typed error naming the file, within the time and memory
//! bounds; never a panic. Findings: `docs/fuzzing.md`. Budget: `PROPTEST_CASES`.

#[path = "../../emobridge-audio/tests/support/mutate.rs"]
mod mutate;

use std::path::Path;

use emobridge_fad::io::{load, read_npy_rows, LoadOptions, SafetensorsSelect};
use emobridge_store::{read_clip_shape, CachedClip};
use mutate::{apply, bounded, config, mutations, Mutation};
use proptest::prelude::*;

fn npy_seed(fortran: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.npy");
    let a = ndarray::Array2::from_shape_fn((6, 3), |(i, j)| (i * 3 + j) as f32 * 0.25);
    if fortran {
        ndarray_npy::write_npy(&p, &a.reversed_axes()).unwrap();
    } else {
        ndarray_npy::write_npy(&p, &a).unwrap();
    }
    std::fs::read(p).unwrap()
}

/// A cache entry as the store writes it: hidden_states F16 [3, 4, 2], mean and std F32 [3, 2].
fn entry_seed() -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let hs: Vec<u8> = (0..24)
        .flat_map(|i| half::f16::from_f32(i as f32 * 0.5).to_le_bytes())
        .collect();
    let stats: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let tensors = vec![
        (
            "hidden_states",
            TensorView::new(Dtype::F16, vec![3, 4, 2], &hs).unwrap(),
        ),
        (
            "mean",
            TensorView::new(Dtype::F32, vec![3, 2], &stats).unwrap(),
        ),
        (
            "std",
            TensorView::new(Dtype::F32, vec![3, 2], &stats).unwrap(),
        ),
    ];
    let meta = [("model".to_string(), "tiny".to_string())]
        .into_iter()
        .collect();
    safetensors::tensor::serialize(tensors, Some(meta)).unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn check_npy(seed: &[u8], edits: &[Mutation]) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "x.npy", &apply(seed, edits));
    let input = edits.to_vec();
    bounded("npy", &input, move || {
        let _dir = dir;
        if let Err(e) = read_npy_rows(&p) {
            assert!(e.to_string().contains("x.npy"), "{e}");
        }
        for pool in [false, true] {
            let opts = LoadOptions {
                pool,
                ..Default::default()
            };
            if let Err(e) = load(&p, &opts) {
                assert!(e.to_string().contains("x.npy"), "{e}");
            }
        }
    });
}

fn check_safetensors(seed: &[u8], edits: &[Mutation]) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "x.safetensors", &apply(seed, edits));
    let input = edits.to_vec();
    bounded("safetensors", &input, move || {
        let _dir = dir;
        let _ = read_clip_shape(&p);
        if let Ok(clip) = CachedClip::open(&p) {
            for layer in 0..clip.shape().states.min(8) + 1 {
                let _ = clip.layer_mean(layer);
                let _ = clip.layer_frames(layer);
            }
            let _ = clip.metadata();
        }
        for layer in [None, Some(0), Some(2), Some(9)] {
            let opts = LoadOptions {
                select: SafetensorsSelect {
                    tensor: None,
                    layer,
                },
                ..Default::default()
            };
            if let Err(e) = load(&p, &opts) {
                assert!(e.to_string().contains("x.safetensors"), "{e}");
            }
        }
    });
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_npy(edits in mutations(), fortran in any::<bool>()) {
        check_npy(&npy_seed(fortran), &edits);
    }

    #[test]
    fn mutated_safetensors_entry(edits in mutations()) {
        check_safetensors(&entry_seed(), &edits);
    }

    /// A header rewritten as text: shapes, dtypes and offsets that lie.
    #[test]
    fn lying_safetensors_header(
        shape in prop::collection::vec(prop_oneof![0usize..5, Just(usize::MAX / 3), any::<usize>()], 0..4),
        dtype in prop::sample::select(vec!["F16", "F32", "F64", "BF16", "I8", "BOOL", "U8"]),
        start in prop_oneof![Just(0usize), any::<usize>()],
        end in prop_oneof![Just(48usize), any::<usize>()],
    ) {
        let header = format!(
            "{{\"hidden_states\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{start},{end}]}}}}"
        );
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(std::iter::repeat_n(0u8, 48));
        check_safetensors(&bytes, &[]);
    }

    /// A `.npy` header rewritten as text.
    #[test]
    fn lying_npy_header(
        shape in prop::collection::vec(prop_oneof![0usize..5, any::<usize>()], 0..4),
        descr in prop::sample::select(vec!["<f2", "<f4", ">f8", "<i4", "|b1", "<c16"]),
        fortran in any::<bool>(),
    ) {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let tuple = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
        let mut header = format!(
            "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {tuple}, }}",
            if fortran { "True" } else { "False" }
        );
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(std::iter::repeat_n(0x3Cu8, 96));
        check_npy(&bytes, &[]);
    }
}

#[test]
fn the_seeds_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "a.npy", &npy_seed(false));
    assert_eq!(read_npy_rows(&p).unwrap().shape(), &[6, 3]);
    let p = write(dir.path(), "a.safetensors", &entry_seed());
    let clip = CachedClip::open(&p).unwrap();
    assert_eq!(clip.shape().frames, 4);
    assert_eq!(clip.layer_mean(2).unwrap(), vec![4.0, 5.0]);
}

/// Issue 17 item 10: a 1-D `.npy` given as one embedding set is a shape error, not "got 1
/// sample" further on.
#[test]
fn a_one_dimensional_npy_is_a_shape_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.npy");
    ndarray_npy::write_npy(&p, &ndarray::Array1::from(vec![1.0f32, 2.0, 3.0])).unwrap();
    let e = load(&p, &LoadOptions::default()).unwrap_err().to_string();
    assert!(
        e.contains("v.npy") && e.contains("[3]") && e.contains("[N, D]"),
        "{e}"
    );
    let p = dir.path().join("empty.npy");
    ndarray_npy::write_npy(&p, &ndarray::Array2::<f32>::zeros((0, 4))).unwrap();
    let e = load(
        &p,
        &LoadOptions {
            pool: true,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no embedding rows"), "{e}");
}
