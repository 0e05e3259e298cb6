//! Throughput of the ComParE-2016 LLD + delta extractor against SMILExtract, in the same run.
//!
//! ```text
//! cargo run --release -p emobridge-acoustic --example bench_compare -- \
//!     --smilextract PATH/SMILExtract --config-dir PATH/opensmile/core/config [--repeats 3] FILE.wav...
//! ```
//! For every repeat it times (1) SMILExtract with `ComParE_2016.conf`, LLD and delta CSV outputs,
//! one process per file, sequentially (SMILExtract is single-threaded); (2) emobridge on one
//! thread: decode + 65 LLDs + 65 deltas per file; (3) emobridge with one worker per core over the
//! files. It prints audio seconds per wall second for each and the ratios, best of the repeats,
//! and — because a shared machine under load stretches wall time unevenly — the CPU time each
//! run consumed (Linux: `/proc/self/stat`, this process and its waited-for children, assuming
//! 100 clock ticks per second).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use emobridge_acoustic::compare;
use emobridge_audio::{DecodeOptions, IntScaling, Mixdown};

struct Args {
    smilextract: PathBuf,
    config_dir: PathBuf,
    repeats: usize,
    files: Vec<PathBuf>,
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let (mut smilextract, mut config_dir, mut repeats, mut files) = (None, None, 3, Vec::new());
    while let Some(a) = it.next() {
        match a.as_str() {
            "--smilextract" => smilextract = it.next().map(PathBuf::from),
            "--config-dir" => config_dir = it.next().map(PathBuf::from),
            "--repeats" => repeats = it.next().and_then(|v| v.parse().ok()).expect("--repeats N"),
            _ => files.push(PathBuf::from(a)),
        }
    }
    let usage = "usage: bench_compare --smilextract BIN --config-dir DIR [--repeats N] FILE...";
    Args {
        smilextract: smilextract.expect(usage),
        config_dir: config_dir.expect(usage),
        repeats,
        files: if files.is_empty() {
            panic!("{usage}")
        } else {
            files
        },
    }
}

fn decode(path: &Path) -> (Vec<f32>, u32) {
    let opts = DecodeOptions {
        target_rate: None,
        mixdown: Mixdown::Mono,
        int_scaling: IntScaling::OpenSmile,
    };
    let audio = emobridge_audio::load(path, &opts).unwrap_or_else(|e| panic!("{e}"));
    let rate = audio.sample_rate;
    (audio.into_mono(), rate)
}

fn run_smilextract(args: &Args, tmp: &Path) {
    for (i, f) in args.files.iter().enumerate() {
        let lld = tmp.join(format!("{i}.lld.csv"));
        let de = tmp.join(format!("{i}.de.csv"));
        let _ = std::fs::remove_file(&lld);
        let _ = std::fs::remove_file(&de);
        let status = Command::new(&args.smilextract)
            .arg("-C")
            .arg(args.config_dir.join("compare/ComParE_2016.conf"))
            .arg("-source")
            .arg(args.config_dir.join("shared/standard_wave_input.conf.inc"))
            .arg("-sink")
            .arg(args.config_dir.join("shared/standard_data_output.conf.inc"))
            .arg("-I")
            .arg(f)
            .arg("-lld_csv_output")
            .arg(&lld)
            .arg("-lld_de_csv_output")
            .arg(&de)
            .args(["-l", "0"])
            .status()
            .expect("SMILExtract runs");
        assert!(status.success(), "SMILExtract failed on {}", f.display());
    }
}

fn run_ours(files: &[PathBuf]) -> usize {
    let mut rows = 0;
    for f in files {
        let (x, sr) = decode(f);
        rows += compare::lld_with_deltas(&x, sr).expect("extraction").len();
    }
    rows
}

fn run_ours_parallel(files: &[PathBuf], workers: usize) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(f) = files.get(i) else { break };
                let (x, sr) = decode(f);
                compare::lld_with_deltas(&x, sr).expect("extraction");
            });
        }
    });
}

/// (own CPU seconds, waited-for children's CPU seconds) so far, from `/proc/self/stat`.
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime, stime, cutime, cstime are 14–17.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let tick = 100.0;
    if f.len() < 15 {
        return (0.0, 0.0);
    }
    ((f[11] + f[12]) / tick, (f[13] + f[14]) / tick)
}

/// Best wall time and best CPU time (self + children) over the repeats.
fn best_of(repeats: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut best = (f64::INFINITY, f64::INFINITY);
    for _ in 0..repeats {
        let (s0, c0) = cpu_seconds();
        let t = Instant::now();
        f();
        let wall = t.elapsed().as_secs_f64();
        let (s1, c1) = cpu_seconds();
        best.0 = best.0.min(wall);
        best.1 = best.1.min((s1 - s0) + (c1 - c0));
    }
    best
}

fn main() {
    let args = parse_args();
    let audio_s: f64 = args
        .files
        .iter()
        .map(|f| {
            let (x, sr) = decode(f);
            x.len() as f64 / sr as f64
        })
        .sum();
    let tmp = std::env::temp_dir().join(format!("bench_compare_{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());

    let t_smile = best_of(args.repeats, || run_smilextract(&args, &tmp));
    let t_ours = best_of(args.repeats, || {
        run_ours(&args.files);
    });
    let t_par = best_of(args.repeats, || run_ours_parallel(&args.files, workers));
    let _ = std::fs::remove_dir_all(&tmp);

    println!(
        "files: {}, audio: {:.2} s, best of {} repeats",
        args.files.len(),
        audio_s,
        args.repeats
    );
    println!(
        "{:<42} {:>9} {:>12} {:>8} {:>9} {:>8}",
        "", "wall s", "audio-s/s", "ratio", "CPU s", "ratio"
    );
    let line = |label: &str, (wall, cpu): (f64, f64)| {
        println!(
            "{label:<42} {wall:>9.3} {:>12.1} {:>7.2}x {cpu:>9.2} {:>7.2}x",
            audio_s / wall,
            t_smile.0 / wall,
            t_smile.1 / cpu.max(1e-9)
        );
    };
    line("SMILExtract (1 thread, process per file)", t_smile);
    line("emobridge, 1 thread", t_ours);
    line(&format!("emobridge, {workers} workers"), t_par);
}
