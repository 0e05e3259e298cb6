//! CPU time of each step of one Fréchet distance on one thread, for two random covariances of
//! order D (Wishart-like, 4·D samples): the Cholesky factor of Σ₁, `X = Σ₂ L`, the lower
//! triangle of `M = Lᵀ X`, the eigenvalues of M by faer's solver and by
//! [`emobridge_fad::symeig`], and the same lower triangle of M by the blocked congruence
//! [`emobridge_fad::frechet::congruence_in_place`] (what the distance now runs in place of the
//! two products). Thread CPU time (`CLOCK_THREAD_CPUTIME_ID`), which a loaded
//! machine distorts less than wall time; medians over the repeats.
//!
//! `cargo run --release -p emobridge-fad --example distance_steps -- [D] [REPEATS] [THREADS]`
//! (768, 7, 1). With THREADS > 1 every step runs on that many threads and the times are wall
//! seconds instead (thread CPU time would miss the helper threads).

use emobridge_fad::frechet::{congruence_in_place, congruence_scratch, lower_cholesky};
use emobridge_fad::symeig::{faer_symmetric_eigenvalues, symmetric_eigenvalues};
use faer::linalg::matmul::triangular::{matmul as tri_matmul, BlockStructure};
use faer::{Accum, Mat, Par};
use rand::{Rng, SeedableRng};

fn wall() -> f64 {
    use std::sync::OnceLock;
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn covariance(d: usize, seed: u64) -> Mat<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mix = Mat::from_fn(d, d, |_, _| rng.random_range(-1.0..1.0));
    let x = Mat::from_fn(4 * d, d, |_, _| rng.random_range(-1.0..1.0)) * &mix;
    let mut c = x.transpose() * &x;
    c *= faer::Scale(1.0 / (4 * d) as f64);
    c
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let d: usize = args.first().map_or(768, |s| s.parse().expect("D"));
    let repeats: usize = args.get(1).map_or(7, |s| s.parse().expect("REPEATS"));
    let threads: usize = args.get(2).map_or(1, |s| s.parse().expect("THREADS"));
    let (par, clock): (Par, fn() -> f64) = if threads > 1 {
        (Par::rayon(threads), wall)
    } else {
        (Par::Seq, thread_cpu)
    };
    let (s1, s2) = (covariance(d, 1), covariance(d, 2));
    let mut t = vec![Vec::new(); 6];
    let mut congruence_diff = 0.0f64;
    let mut check = (0.0, 0.0);
    for _ in 0..repeats {
        let t0 = clock();
        let l = lower_cholesky(s1.as_ref(), par).expect("positive definite");
        let t1 = clock();
        let mut x = Mat::zeros(d, d);
        tri_matmul(
            x.as_mut(),
            BlockStructure::Rectangular,
            Accum::Replace,
            s2.as_ref(),
            BlockStructure::Rectangular,
            l.as_ref(),
            BlockStructure::TriangularLower,
            1.0,
            par,
        );
        let t2 = clock();
        let mut m = Mat::zeros(d, d);
        tri_matmul(
            m.as_mut(),
            BlockStructure::TriangularLower,
            Accum::Replace,
            l.transpose(),
            BlockStructure::TriangularUpper,
            x.as_ref(),
            BlockStructure::Rectangular,
            1.0,
            par,
        );
        let t3 = clock();
        let theirs = faer_symmetric_eigenvalues(m.as_ref(), par).expect("faer eigenvalues");
        let t4 = clock();
        let ours = symmetric_eigenvalues(m.as_ref(), par).expect("eigenvalues");
        let t5 = clock();
        // The same lower triangle of M by the blocked congruence, in place of Σ₂'s.
        let mut buf = vec![0.0; d * d];
        for j in 0..d {
            for i in j..d {
                buf[j * d + i] = s2[(i, j)];
            }
        }
        let mut scratch = vec![0.0; congruence_scratch(d)];
        let t6 = clock();
        congruence_in_place(&mut buf, l.as_ref(), d, &mut scratch, par);
        let t7 = clock();
        let mut worst = 0.0f64;
        for j in 0..d {
            for i in j..d {
                worst = worst
                    .max((buf[j * d + i] - m[(i, j)]).abs() / m[(i, i)].abs().max(m[(j, j)].abs()));
            }
        }
        congruence_diff = congruence_diff.max(worst);
        for (k, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5), (t6, t7)]
            .into_iter()
            .enumerate()
        {
            t[k].push(b - a);
        }
        check = (
            theirs.iter().map(|v| v.max(0.0).sqrt()).sum::<f64>(),
            ours.iter().map(|v| v.max(0.0).sqrt()).sum::<f64>(),
        );
    }
    let names = [
        "cholesky",
        "sigma2_l",
        "lt_x",
        "eigenvalues_faer",
        "eigenvalues_blocked",
        "congruence_blocked",
    ];
    let fields: Vec<String> = names
        .iter()
        .zip(t)
        .map(|(n, v)| format!("\"{n}_ms\": {:.2}", 1e3 * median(v)))
        .collect();
    println!(
        "{{\"dim\": {d}, \"repeats\": {repeats}, \"threads\": {threads}, {}, \"trace_sqrt_rel_diff\": {:.2e}, \"congruence_rel_diff\": {:.2e}}}",
        fields.join(", "),
        (check.0 - check.1).abs() / check.0,
        congruence_diff
    );
}
