//! Throughput of eGeMAPS v02 functionals: emobridge vs SMILExtract on the same clips, same run.
//!
//! ```text
//! cargo run --release -p emobridge-acoustic --example bench_egemaps -- \
//!     --smilextract PATH/SMILExtract --config-dir PATH/opensmile/core/config [--repeat 5] [WAV...]
//! ```
//! Without WAV arguments the committed parity clips are used. SMILExtract runs once per clip as a
//! process (its normal use; single-threaded), emobridge on one thread in-process (decode
//! included). Reports audio-seconds per wall-second for both and their ratio.

use emobridge_audio::{load, DecodeOptions, IntScaling};
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

/// CPU seconds (user + system) of this process and of its waited-for children, from
/// `/proc/self/stat` (Linux; zeros elsewhere). Under a loaded machine CPU time is the fairer
/// single-thread comparison; wall time is reported too.
fn cpu_seconds() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    let Some(rest) = stat.rsplit(')').next() else {
        return (0.0, 0.0);
    };
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // after the command name: state is field 3, utime/stime/cutime/cstime are fields 14–17
    let tick = 100.0;
    if f.len() < 15 {
        return (0.0, 0.0);
    }
    ((f[11] + f[12]) / tick, (f[13] + f[14]) / tick)
}

struct Args {
    smilextract: PathBuf,
    config_dir: PathBuf,
    repeat: usize,
    wavs: Vec<PathBuf>,
}

fn parse_args() -> Args {
    let mut it = std::env::args().skip(1);
    let (mut smilextract, mut config_dir, mut repeat, mut wavs) = (None, None, 5usize, Vec::new());
    while let Some(a) = it.next() {
        match a.as_str() {
            "--smilextract" => smilextract = it.next().map(PathBuf::from),
            "--config-dir" => config_dir = it.next().map(PathBuf::from),
            "--repeat" => repeat = it.next().and_then(|v| v.parse().ok()).unwrap_or(5),
            _ => wavs.push(PathBuf::from(a)),
        }
    }
    if wavs.is_empty() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/egemaps");
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("fixture folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wav"))
            .collect();
        found.sort();
        wavs = found;
    }
    Args {
        smilextract: smilextract.expect("--smilextract PATH is required"),
        config_dir: config_dir.expect("--config-dir PATH is required"),
        repeat,
        wavs,
    }
}

fn main() {
    let args = parse_args();
    let opts = DecodeOptions {
        int_scaling: IntScaling::OpenSmile,
        ..Default::default()
    };
    let audio_s: f64 = args
        .wavs
        .iter()
        .map(|w| load(w, &opts).map(|a| a.duration_s()).unwrap_or(0.0))
        .sum::<f64>()
        * args.repeat as f64;
    let out = std::env::temp_dir().join(format!("bench_egemaps_{}.csv", std::process::id()));
    let cfg = &args.config_dir;
    let (_, child0) = cpu_seconds();
    let t0 = Instant::now();
    for _ in 0..args.repeat {
        for w in &args.wavs {
            let _ = std::fs::remove_file(&out);
            let status = Command::new(&args.smilextract)
                .arg("-C")
                .arg(cfg.join("egemaps/v02/eGeMAPSv02.conf"))
                .arg("-source")
                .arg(cfg.join("shared/standard_wave_input.conf.inc"))
                .arg("-sink")
                .arg(cfg.join("shared/standard_data_output_no_lld_de.conf.inc"))
                .arg("-I")
                .arg(w)
                .arg("-func_csv_output")
                .arg(&out)
                .arg("-l")
                .arg("0")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .expect("SMILExtract runs");
            assert!(status.success());
        }
    }
    let smile_s = t0.elapsed().as_secs_f64();
    let smile_cpu = cpu_seconds().1 - child0;
    let _ = std::fs::remove_file(&out);
    let (self0, _) = cpu_seconds();
    let t1 = Instant::now();
    let mut checksum = 0.0f64;
    for _ in 0..args.repeat {
        for w in &args.wavs {
            let a = load(w, &opts).expect("decodable");
            let f = emobridge_acoustic::egemaps::functionals(&a.mono(), a.sample_rate)
                .expect("functionals");
            checksum += f.values[0] as f64;
        }
    }
    let ours_s = t1.elapsed().as_secs_f64();
    let ours_cpu = cpu_seconds().0 - self0;
    let (smile_rate, ours_rate) = (audio_s / smile_s, audio_s / ours_s);
    println!(
        "clips {} x{}  audio {:.1} s  (checksum {checksum:.3})",
        args.wavs.len(),
        args.repeat,
        audio_s
    );
    println!("SMILExtract  {smile_s:8.3} s wall  {smile_rate:8.1} audio-s/s   {smile_cpu:7.2} s CPU  {:8.1} audio-s/CPU-s", audio_s / smile_cpu);
    println!("emobridge    {ours_s:8.3} s wall  {ours_rate:8.1} audio-s/s   {ours_cpu:7.2} s CPU  {:8.1} audio-s/CPU-s (1 thread)", audio_s / ours_cpu);
    println!(
        "ratio emobridge/SMILExtract: wall {:.2}x, CPU {:.2}x",
        ours_rate / smile_rate,
        smile_cpu / ours_cpu
    );
}
