//! Times the Fréchet distance on two sets of precomputed statistics from an `.npz`
//! (e.g. fadtk's `fma_pop.npz`). Driven by `tools/fixtures/fad_bench.py`, which times scipy and
//! fadtk on the same inputs in the same run.
//!
//! `cargo run --release -p emobridge-fad --example fad_bench -- STATS.npz NAME_A NAME_B [REPEATS]`
//! prints one JSON line: distance, median/min seconds (statistics already in memory, as for the
//! Python timings), and the thread count (`FAD_THREADS`, default: faer's, i.e. all cores).

use std::path::PathBuf;
use std::time::Instant;

use emobridge_fad::frechet::frechet_distance;
use emobridge_fad::io::read_stats_npz;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: fad_bench STATS.npz NAME_A NAME_B [REPEATS]");
        std::process::exit(2);
    }
    let path = PathBuf::from(&args[0]);
    let repeats: usize = args
        .get(3)
        .map(|r| r.parse().expect("REPEATS is a number"))
        .unwrap_or(5);
    if let Some(threads) = std::env::var("FAD_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
    {
        emobridge_fad::stats::set_threads(threads);
    }
    let a = read_stats_npz(&path, Some(&args[1])).unwrap_or_else(|e| panic!("{e}"));
    let b = read_stats_npz(&path, Some(&args[2])).unwrap_or_else(|e| panic!("{e}"));
    let mut times = Vec::with_capacity(repeats);
    let mut distance = f64::NAN;
    // One warm-up run (thread pool start-up, page faults) outside the timings.
    frechet_distance(&a, &b).expect("distance");
    for _ in 0..repeats {
        let t = Instant::now();
        distance = frechet_distance(&a, &b).expect("distance").distance;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let threads = match faer::get_global_parallelism() {
        faer::Par::Seq => 1,
        faer::Par::Rayon(n) => n.get(),
    };
    println!(
        "{}",
        serde_json::json!({"dim": a.dim(), "distance": distance, "median_s": times[times.len() / 2], "min_s": times[0], "repeats": repeats, "threads": threads})
    );
}
