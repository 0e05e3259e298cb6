//! Back-propagation through time against central finite differences, in f64, on tiny nets with
//! sequences of different lengths (so padding and the backward direction's start are covered).

use emobridge_learn::lstm::{LstmNet, LstmSpec, SeqBatch};
use emobridge_learn::seqtrain::{sequence_loss, SeqLoss};
use rand::SeedableRng;

fn loss_of(net: &LstmNet<f64>, seqs: &[Vec<f64>], targets: &[Vec<f64>], loss: SeqLoss) -> f64 {
    let refs: Vec<&[f64]> = seqs.iter().map(|s| s.as_slice()).collect();
    let batch = SeqBatch::new(&refs, net.spec.input).unwrap();
    let preds = net.predict(&batch).unwrap();
    preds
        .iter()
        .zip(targets)
        .map(|(p, t)| sequence_loss(p, t, net.spec.outputs, loss).0)
        .sum()
}

fn check(spec: LstmSpec, lens: &[usize], loss: SeqLoss) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let net = LstmNet::<f64>::new(spec.clone(), &mut rng).unwrap();
    let (dim, o) = (spec.input, spec.outputs);
    let seqs: Vec<Vec<f64>> = lens
        .iter()
        .enumerate()
        .map(|(s, &len)| {
            (0..len * dim)
                .map(|i| ((i + 13 * s) as f64 * 0.61).sin() * 1.5)
                .collect()
        })
        .collect();
    let targets: Vec<Vec<f64>> = lens
        .iter()
        .enumerate()
        .map(|(s, &len)| {
            (0..len * o)
                .map(|i| ((i + 7 * s) as f64 * 0.43).cos() * 0.6)
                .collect()
        })
        .collect();
    let refs: Vec<&[f64]> = seqs.iter().map(|s| s.as_slice()).collect();
    let batch = SeqBatch::new(&refs, dim).unwrap();
    let trace = net.forward(&batch).unwrap();
    let preds = batch.unpack(&trace.y, o);
    let dys: Vec<Vec<f64>> = preds
        .iter()
        .zip(&targets)
        .map(|(p, t)| sequence_loss(p, t, o, loss).1)
        .collect();
    let dy = batch.pack(&dys, o);
    let mut grad = vec![0.0; net.params.len()];
    net.backward(&batch, &trace, &dy, &mut grad).unwrap();
    let mut worst: f64 = 0.0;
    for i in 0..net.params.len() {
        let h = 1e-6;
        let (mut a, mut b) = (net.clone(), net.clone());
        a.params[i] += h;
        b.params[i] -= h;
        let fd =
            (loss_of(&a, &seqs, &targets, loss) - loss_of(&b, &seqs, &targets, loss)) / (2.0 * h);
        let err = (fd - grad[i]).abs() / (1e-4 + fd.abs().max(grad[i].abs()));
        worst = worst.max(err);
        assert!(
            (fd - grad[i]).abs() < 1e-6 * (1.0 + fd.abs()),
            "{spec:?} {loss:?}: parameter {i}: backprop {} vs finite difference {fd}",
            grad[i]
        );
    }
    assert!(grad.iter().any(|g| g.abs() > 1e-6), "all-zero gradient");
    eprintln!("{spec:?} {loss:?}: worst relative error {worst:.2e}");
}

#[test]
fn bidirectional_two_layers_of_different_widths() {
    let spec = LstmSpec {
        input: 3,
        hidden: vec![4, 3],
        bidirectional: true,
        outputs: 2,
    };
    check(spec, &[5, 3, 5, 1], SeqLoss::Mse);
}

#[test]
fn unidirectional_three_layers_with_ccc_loss() {
    let spec = LstmSpec {
        input: 2,
        hidden: vec![3, 4, 2],
        bidirectional: false,
        outputs: 2,
    };
    check(spec, &[6, 2, 4], SeqLoss::Ccc);
}

#[test]
fn bidirectional_single_layer_single_output() {
    let spec = LstmSpec {
        input: 4,
        hidden: vec![3],
        bidirectional: true,
        outputs: 1,
    };
    check(spec, &[7], SeqLoss::Ccc);
}
