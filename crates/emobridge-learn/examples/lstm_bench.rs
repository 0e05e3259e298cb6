//! Training throughput of the LSTM regressor: forward + backward (BPTT) of a batch of equally
//! long 260-dim sequences through the paper's 150/10 network with two linear outputs and an MSE
//! loss, as `tools/lstm_bench.sh` compares it with PyTorch's `nn.LSTM`.
//!
//! ```text
//! cargo run --release -p emobridge-learn --example lstm_bench -- [BATCH] [STEPS] [THREADS] [ITERS]
//! ```
//! Prints one line: `rust batch=.. steps=.. threads=.. seq_steps_per_s=..` (median iteration).

use std::time::Instant;

use emobridge_learn::lstm::{LstmNet, LstmSpec};
use emobridge_learn::seqtrain::{batch_gradient, SeqLoss, Sequence};
use rand::{Rng, SeedableRng};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments are integers"))
        .collect();
    let batch = args.first().copied().unwrap_or(16);
    let steps = args.get(1).copied().unwrap_or(200);
    let threads = args.get(2).copied().unwrap_or(1);
    let iters = args.get(3).copied().unwrap_or(10);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let spec = LstmSpec {
        input: 260,
        hidden: vec![150, 10],
        bidirectional: false,
        outputs: 2,
    };
    let net = LstmNet::<f32>::new(spec, &mut rng).expect("net");
    let seqs: Vec<Sequence> = (0..batch)
        .map(|_| Sequence {
            x: (0..steps * 260)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect(),
            y: (0..steps * 2)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect(),
        })
        .collect();
    let refs: Vec<&Sequence> = seqs.iter().collect();
    let mut times = Vec::new();
    pool.install(|| {
        // One warm-up pass.
        batch_gradient(&net, &refs, SeqLoss::Mse, None, threads).expect("gradient");
        for _ in 0..iters {
            let t = Instant::now();
            let (loss, grad) =
                batch_gradient(&net, &refs, SeqLoss::Mse, None, threads).expect("gradient");
            times.push(t.elapsed().as_secs_f64());
            assert!(loss.is_finite() && grad.iter().all(|g| g.is_finite()));
        }
    });
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "rust batch={batch} steps={steps} threads={threads} seq_steps_per_s={:.0}",
        (batch * steps) as f64 / median
    );
}
