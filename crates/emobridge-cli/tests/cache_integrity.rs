//! The embedding cache under hostile conditions, through the binary (issue 17 items 4 and 8):
//! `kill -9` during extraction then resume, two processes on one cache, damaged entries, and a
//! cache of another extraction under the same tag. Tiny random-init MERT-like fixture model.

mod common;

use common::tiny_model;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `emobridge extract` of `manifest` into `cache`/t, with extra arguments.
fn extract(manifest: &Path, cache: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_emobridge"));
    c.env("EMOBRIDGE_LOG", "info")
        .args(["extract", "--manifest"])
        .arg(manifest)
        .arg("--model")
        .arg(tiny_model())
        .arg("--cache")
        .arg(cache)
        .args(["--tag", "t"])
        .args(extra);
    c
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(cmd: &mut Command) -> String {
    let (success, stderr) = run(cmd);
    assert!(success, "{cmd:?} failed:\n{stderr}");
    stderr
}

/// `n` clips of `seconds` at 24 kHz (tones differing per clip) and their manifest.
fn corpus(dir: &Path, n: usize, seconds: f32) -> PathBuf {
    let mut rows =
        vec!["id,path,domain,corpus,speaker,emotion,arousal,valence,split,annotation".to_string()];
    for i in 0..n {
        let f = 150.0 + 37.0 * i as f32;
        let x: Vec<f32> = (0..(24_000.0 * seconds) as usize)
            .map(|k| {
                let t = k as f32 / 24_000.0;
                0.3 * (2.0 * std::f32::consts::PI * f * t).sin()
                    + 0.02 * ((k * 7919 + i * 31) % 101) as f32 / 101.0
            })
            .collect();
        let name = format!("clip{i:02}.wav");
        emobridge_audio::wav::write_wav_mono16(&dir.join(&name), &x, 24_000).unwrap();
        rows.push(format!(
            "spk{}/clip{i:02},{name},speech,t,spk{},happy,,,,",
            i % 3,
            i % 3
        ));
    }
    let m = dir.join("m.csv");
    std::fs::write(&m, rows.join("\n") + "\n").unwrap();
    m
}

/// Every file of a tag folder (name → bytes), temporary and claim files included.
fn files(cache: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(cache.join("t"))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The entries only (`*.safetensors`).
fn entries(cache: &Path) -> BTreeMap<String, Vec<u8>> {
    files(cache)
        .into_iter()
        .filter(|(k, _)| k.ends_with(".safetensors") && !k.starts_with('.'))
        .collect()
}

/// The counts of the summary line `N clips: A already cached, E extracted, O extracted by
/// another process, R refreshed, F failed`.
fn summary(stderr: &str) -> [usize; 6] {
    let line = stderr
        .lines()
        .find(|l| l.contains("already cached,") && l.contains("refreshed"))
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    nums[nums.len() - 6..].try_into().unwrap()
}

#[test]
fn kill_9_during_extraction_then_resume_gives_the_bytes_of_a_clean_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 16;
    let m = corpus(d, n, 3.0);
    let clean = d.join("clean");
    ok(&mut extract(&m, &clean, &["--window-s", "0.25"]));
    let reference = entries(&clean);
    assert_eq!(reference.len(), n);

    let cache = d.join("killed");
    let mut child = extract(&m, &cache, &["--window-s", "0.25"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while entries_count(&cache) < 2 && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // A writer killed before its rename leaves a temporary file (planted too, for a pid that
    // cannot be alive), which the next run removes.
    let stale = cache.join("t/.spk0%2Fclip00.safetensors.tmp-2147483000");
    std::fs::write(&stale, b"half an entry").unwrap();
    let before = entries_count(&cache);
    let stderr = ok(&mut extract(&m, &cache, &["--window-s", "0.25"]));
    let [total, already, extracted, others, _, failed] = summary(&stderr);
    assert_eq!((total, others, failed), (n, 0, 0), "{stderr}");
    assert_eq!(already + extracted, n);
    assert!(already >= before.min(n), "{stderr}");
    assert!(
        stderr.contains("tmp-2147483000 (left by a killed run)"),
        "{stderr}"
    );
    let after = files(&cache);
    let leftovers: Vec<&String> = after.keys().filter(|k| k.starts_with('.')).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(
        entries(&cache) == reference,
        "resumed cache differs from a clean run"
    );
}

fn entries_count(cache: &Path) -> usize {
    std::fs::read_dir(cache.join("t"))
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.ends_with(".safetensors") && !n.starts_with('.')
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn two_processes_share_one_cache_and_extract_each_clip_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let n = 24;
    let m = corpus(d, n, 2.0);
    let single = d.join("single");
    ok(&mut extract(&m, &single, &["--window-s", "0.25"]));
    let shared = d.join("shared");
    let children: Vec<_> = (0..2)
        .map(|_| {
            extract(&m, &shared, &["--window-s", "0.25"])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let mut extracted = 0;
    for out in &outs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let [total, already, mine, others, _, failed] = summary(&stderr);
        assert_eq!((total, failed), (n, 0), "{stderr}");
        // Each process ends with the whole manifest accounted for.
        assert_eq!(already + mine + others, n, "{stderr}");
        extracted += mine;
    }
    assert_eq!(
        extracted, n,
        "every clip extracted exactly once between the two"
    );
    assert!(entries(&shared) == entries(&single), "shared cache differs");
    let leftovers: Vec<String> = files(&shared)
        .into_keys()
        .filter(|k| k.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn damaged_entries_are_reported_and_repaired_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = corpus(d, 5, 1.0);
    let cache = d.join("cache");
    ok(&mut extract(&m, &cache, &[]));
    let reference = entries(&cache);
    let t = cache.join("t");
    let path = |i: usize| t.join(format!("spk{}%2Fclip{i:02}.safetensors", i % 3));
    std::fs::write(path(0), b"").unwrap();
    let good = std::fs::read(path(1)).unwrap();
    std::fs::write(path(1), &good[..good.len() / 2]).unwrap();
    std::fs::write(path(2), vec![0x5Au8; good.len()]).unwrap();
    let stderr = ok(&mut extract(&m, &cache, &[]));
    for i in 0..3 {
        let name = path(i).file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            stderr
                .lines()
                .any(|l| l.contains("damaged cache entry") && l.contains(&name)),
            "{name} not reported:\n{stderr}"
        );
    }
    let [_, already, extracted, ..] = summary(&stderr);
    assert_eq!((already, extracted), (2, 3), "{stderr}");
    let log: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.join("failures.json")).unwrap()).unwrap();
    assert_eq!(log["repaired"].as_array().map(Vec::len), Some(3), "{log}");
    assert!(entries(&cache) == reference, "repaired entries differ");
    // The readers name a damaged file instead of panicking.
    std::fs::write(path(3), b"garbage").unwrap();
    let store = emobridge_store::EmbeddingCache::open_existing(&cache, "t").unwrap();
    let err = store.read_means("spk0/clip03").unwrap_err().to_string();
    assert!(err.contains("spk0%2Fclip03.safetensors"), "{err}");
}

#[test]
fn a_cache_of_another_extraction_is_refused_by_field_and_refreshed_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = corpus(d, 3, 1.0);
    let cache = d.join("cache");
    ok(&mut extract(&m, &cache, &[]));
    let (success, stderr) = run(&mut extract(
        &m,
        &cache,
        &["--layers", "0,2", "--frames", "f32"],
    ));
    assert!(!success);
    assert!(
        stderr.contains("layers (cache 0,1,2, this run 0,2)")
            && stderr.contains("frames (cache f16, this run f32)")
            && stderr.contains("--refresh"),
        "{stderr}"
    );
    // Without cache.json (an older cache) the entries themselves say it.
    std::fs::remove_file(cache.join("t/cache.json")).unwrap();
    let (success, stderr) = run(&mut extract(&m, &cache, &["--layers", "0,2"]));
    assert!(
        !success && stderr.contains(".safetensors") && stderr.contains("layers"),
        "{stderr}"
    );
    let stderr = ok(&mut extract(&m, &cache, &["--layers", "0,2", "--refresh"]));
    let [total, _, extracted, _, refreshed, _] = summary(&stderr);
    assert_eq!((total, extracted, refreshed), (3, 3, 3), "{stderr}");
    let store = emobridge_store::EmbeddingCache::open_existing(&cache, "t").unwrap();
    assert_eq!(store.shape("spk0/clip00").unwrap().states, 2);
    // And the refreshed cache is now accepted as it is.
    let stderr = ok(&mut extract(&m, &cache, &["--layers", "0,2"]));
    assert_eq!(summary(&stderr)[1], 3, "{stderr}");
}

#[test]
fn pooled_only_entries_hold_the_same_means_without_frames() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = corpus(d, 2, 1.0);
    let (full, pooled) = (d.join("full"), d.join("pooled"));
    ok(&mut extract(&m, &full, &[]));
    ok(&mut extract(&m, &pooled, &["--frames", "none"]));
    let a = emobridge_store::EmbeddingCache::open_existing(&full, "t").unwrap();
    let b = emobridge_store::EmbeddingCache::open_existing(&pooled, "t").unwrap();
    for id in ["spk0/clip00", "spk1/clip01"] {
        assert_eq!(a.read_means(id).unwrap(), b.read_means(id).unwrap());
        assert_eq!(a.shape(id).unwrap(), b.shape(id).unwrap());
        let size = |c: &emobridge_store::EmbeddingCache| {
            std::fs::metadata(c.path_for(id).unwrap()).unwrap().len()
        };
        assert!(size(&b) * 4 < size(&a));
        assert!(b.read_layer(id, 1).is_err());
    }
}
