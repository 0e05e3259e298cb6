//! Forward pass and gradients equal to PyTorch's `nn.LSTM` on committed fixtures made by
//! `tools/fixtures/lstm_torch.py` (packed sequences of different lengths).

use emobridge_learn::lstm::{LstmNet, LstmSpec, SeqBatch};
use safetensors::{Dtype, SafeTensors};

const FIXTURE: &[u8] = include_bytes!("fixtures/lstm_torch.safetensors");

fn values(st: &SafeTensors<'_>, name: &str) -> (Vec<f64>, Vec<usize>) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("fixture lacks {name}"));
    let v = match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        Dtype::F64 => t
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        other => panic!("{name}: unexpected {other:?}"),
    };
    (v, t.shape().to_vec())
}

fn check(case: &str, spec: LstmSpec) {
    let st = SafeTensors::deserialize(FIXTURE).unwrap();
    let mut params = vec![0.0f64; spec.n_params()];
    for slot in spec.tensors() {
        let (v, shape) = values(&st, &format!("{case}.{}", slot.name));
        assert_eq!(shape, slot.shape, "{}", slot.name);
        params[slot.offset..slot.offset + slot.len()].copy_from_slice(&v);
    }
    let (x, xs) = values(&st, &format!("{case}.x"));
    let (lens, _) = values(&st, &format!("{case}.lens"));
    let (y_ref, _) = values(&st, &format!("{case}.y"));
    let (r, _) = values(&st, &format!("{case}.r"));
    let (b, t, dim, o) = (xs[0], xs[1], xs[2], spec.outputs);
    let seqs: Vec<Vec<f64>> = (0..b)
        .map(|s| x[s * t * dim..(s * t + lens[s] as usize) * dim].to_vec())
        .collect();
    let per_seq = |v: &[f64], s: usize| v[s * t * o..(s * t + lens[s] as usize) * o].to_vec();

    // f64: the exact computation.
    let net = LstmNet::from_params(spec.clone(), params.clone()).unwrap();
    let refs: Vec<&[f64]> = seqs.iter().map(|s| s.as_slice()).collect();
    let batch = SeqBatch::new(&refs, dim).unwrap();
    let trace = net.forward(&batch).unwrap();
    let preds = batch.unpack(&trace.y, o);
    let mut worst: f64 = 0.0;
    for s in 0..b {
        for (p, q) in preds[s].iter().zip(per_seq(&y_ref, s)) {
            worst = worst.max((p - q).abs());
        }
    }
    assert!(worst < 1e-12, "{case}: f64 forward differs by {worst:e}");
    let dys: Vec<Vec<f64>> = (0..b).map(|s| per_seq(&r, s)).collect();
    let mut grad = vec![0.0; params.len()];
    net.backward(&batch, &trace, &batch.pack(&dys, o), &mut grad)
        .unwrap();
    let mut worst_grad: f64 = 0.0;
    for slot in spec.tensors() {
        let (g, _) = values(&st, &format!("{case}.grad.{}", slot.name));
        for (k, (a, e)) in grad[slot.offset..slot.offset + slot.len()]
            .iter()
            .zip(&g)
            .enumerate()
        {
            assert!(
                (a - e).abs() < 1e-10,
                "{case} grad {}[{k}]: {a} vs {e}",
                slot.name
            );
            worst_grad = worst_grad.max((a - e).abs());
        }
    }

    // f32: the training precision, within 1e-5 of PyTorch's float64 result.
    let net32 = LstmNet::from_params(spec, params.iter().map(|&v| v as f32).collect()).unwrap();
    let seqs32: Vec<Vec<f32>> = seqs
        .iter()
        .map(|s| s.iter().map(|&v| v as f32).collect())
        .collect();
    let refs32: Vec<&[f32]> = seqs32.iter().map(|s| s.as_slice()).collect();
    let preds32 = net32
        .predict(&SeqBatch::new(&refs32, dim).unwrap())
        .unwrap();
    let mut worst32: f64 = 0.0;
    for s in 0..b {
        for (p, q) in preds32[s].iter().zip(per_seq(&y_ref, s)) {
            worst32 = worst32.max((*p as f64 - q).abs());
        }
    }
    assert!(
        worst32 <= 1e-5,
        "{case}: f32 forward differs by {worst32:e}"
    );
    eprintln!(
        "{case}: f64 forward {worst:.1e}, gradients {worst_grad:.1e}, f32 forward {worst32:.1e}"
    );
}

#[test]
fn bidirectional_two_layer_lstm_matches_pytorch() {
    check(
        "bi",
        LstmSpec {
            input: 6,
            hidden: vec![5, 5],
            bidirectional: true,
            outputs: 2,
        },
    );
}

#[test]
fn stacked_lstms_of_different_widths_match_pytorch() {
    check(
        "uni",
        LstmSpec {
            input: 6,
            hidden: vec![5, 3],
            bidirectional: false,
            outputs: 2,
        },
    );
}
