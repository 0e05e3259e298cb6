//! Bounded memory for long recordings (issue 17 item 9), whole process: the peak resident set
//! of `emobridge extract` on a 20-minute file stays within 1.5× of its peak on a 30 s file
//! (tiny MERT-like fixture encoder, 16 kHz input resampled to its 24 kHz, frames kept as f16).
//! Before decoding and resampling streamed, the 20-minute file alone held ~200 MB of samples.

mod common;

use common::tiny_model;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;

/// A 16-bit mono 16 kHz WAV of `seconds`, written a block at a time (a tone plus a little
/// deterministic noise).
fn long_wav(path: &Path, seconds: usize) {
    let rate = 16_000u32;
    let n = seconds as u32 * rate;
    let mut w = BufWriter::new(File::create(path).unwrap());
    let data = n * 2;
    w.write_all(b"RIFF").unwrap();
    w.write_all(&(36 + data).to_le_bytes()).unwrap();
    w.write_all(b"WAVEfmt ").unwrap();
    w.write_all(&16u32.to_le_bytes()).unwrap();
    w.write_all(&1u16.to_le_bytes()).unwrap(); // PCM
    w.write_all(&1u16.to_le_bytes()).unwrap(); // mono
    w.write_all(&rate.to_le_bytes()).unwrap();
    w.write_all(&(rate * 2).to_le_bytes()).unwrap();
    w.write_all(&2u16.to_le_bytes()).unwrap();
    w.write_all(&16u16.to_le_bytes()).unwrap();
    w.write_all(b"data").unwrap();
    w.write_all(&data.to_le_bytes()).unwrap();
    for k in 0..n {
        let t = k as f32 / rate as f32;
        let x = 0.2 * (2.0 * std::f32::consts::PI * 220.0 * t).sin()
            + 0.02 * (((k.wrapping_mul(7919)) % 113) as f32 / 113.0 - 0.5);
        w.write_all(&((x * 32767.0) as i16).to_le_bytes()).unwrap();
    }
    w.flush().unwrap();
}

/// Runs `emobridge extract` on a one-clip manifest and returns the child's peak RSS (kB, from
/// `wait4`) and the entry's frame count.
fn extract_peak_kb(dir: &Path, name: &str) -> (i64, usize) {
    std::fs::write(
        dir.join(format!("{name}.csv")),
        format!("id,path,domain\n{name},{name}.wav,speech\n"),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_emobridge"))
        .args(["extract", "--manifest", &format!("{name}.csv"), "--model"])
        .arg(tiny_model())
        .args(["--cache", "cache", "--tag", name])
        .current_dir(dir)
        .env("EMOBRIDGE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: plain syscall on our own child; `usage` is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "extract {name}: status {status}"
    );
    let cache = emobridge_store::EmbeddingCache::open(&dir.join("cache"), name).unwrap();
    let frames = cache.shape(name).unwrap().frames;
    (usage.ru_maxrss, frames)
}

#[test]
fn peak_memory_of_extract_does_not_grow_with_the_file_length() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    long_wav(&d.join("short.wav"), 30);
    long_wav(&d.join("long.wav"), 20 * 60);
    let (short_kb, short_frames) = extract_peak_kb(d, "short");
    let (long_kb, long_frames) = extract_peak_kb(d, "long");
    assert!(
        long_frames > 35 * short_frames,
        "{long_frames} vs {short_frames} frames"
    );
    assert!(
        long_kb as f64 <= 1.5 * short_kb as f64,
        "peak RSS {long_kb} kB for 20 min vs {short_kb} kB for 30 s"
    );
}
