//! `ORG/NAME` downloads against a local stand-in for the hub that speaks the part of its HTTP
//! protocol the client uses: `GET /api/models/ORG/NAME/revision/REV` (file list and commit) and
//! `GET /ORG/NAME/resolve/REV/FILE` with `Range` (206, `ETag`, `X-Repo-Commit`, `Content-Range`).
//! No test here reaches the real hub.
#![cfg(feature = "hub")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use emobridge_ssl::hub::{resolve_model_dir, HubOptions};
use emobridge_ssl::{EmbedOptions, LoadOptions, PretrainedEncoder};

const COMMIT: &str = "5d0c1c8e2a7f4b39a1e6d2c4b8f07e3a9c5d1b2e";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// One repository's files, served on 127.0.0.1 until the test process ends.
struct FakeHub {
    endpoint: String,
    requests: Arc<AtomicUsize>,
}

/// How the stand-in misbehaves.
#[derive(Clone, Copy, Default)]
struct Faults {
    /// Requests without this bearer token get 401.
    token: Option<&'static str>,
    /// The first body request for this file sends half the bytes, then drops the connection.
    cut_first_transfer_of: Option<&'static str>,
}

impl FakeHub {
    /// Serves the files of `folder` (except `expected.safetensors`) as repository `repo`.
    fn serve(repo: &str, folder: &Path, faults: Faults) -> FakeHub {
        let mut files = HashMap::new();
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name != "expected.safetensors" {
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let repo = repo.to_string();
        std::thread::spawn(move || {
            let mut faults = faults;
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                answer(stream, &repo, &files, &mut faults);
            }
        });
        FakeHub { endpoint, requests }
    }

    fn options(&self, cache: &Path) -> HubOptions {
        HubOptions {
            cache: Some(cache.to_path_buf()),
            endpoint: self.endpoint.clone(),
            ..HubOptions::default()
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn answer(stream: TcpStream, repo: &str, files: &HashMap<String, Vec<u8>>, faults: &mut Faults) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let mut out = stream;
    let expected_auth = faults.token.map(|t| format!("Bearer {t}"));
    if expected_auth.is_some() && headers.get("authorization") != expected_auth.as_ref() {
        return respond(&mut out, "401 Unauthorized", &[], b"");
    }
    let api_prefix = format!("/api/models/{repo}/revision/");
    let file_prefix = format!("/{repo}/resolve/");
    if path.starts_with(&api_prefix) {
        let siblings: Vec<String> = files
            .keys()
            .map(|f| format!("{{\"rfilename\":\"{f}\"}}"))
            .collect();
        let body = format!(
            "{{\"id\":\"{repo}\",\"sha\":\"{COMMIT}\",\"siblings\":[{}]}}",
            siblings.join(",")
        );
        return respond(
            &mut out,
            "200 OK",
            &[("Content-Type", "application/json".into())],
            body.as_bytes(),
        );
    }
    let Some(rest) = path.strip_prefix(&file_prefix) else {
        return respond(&mut out, "404 Not Found", &[], b"");
    };
    let Some((_revision, name)) = rest.split_once('/') else {
        return respond(&mut out, "404 Not Found", &[], b"");
    };
    let Some(content) = files.get(name) else {
        return respond(&mut out, "404 Not Found", &[], b"");
    };
    let (start, end) = match headers.get("range").and_then(|r| r.strip_prefix("bytes=")) {
        Some(range) => {
            let (a, b) = range.split_once('-').unwrap();
            let a: usize = a.parse().unwrap();
            let b = if b.is_empty() {
                content.len() - 1
            } else {
                b.parse().unwrap()
            };
            (a, b.min(content.len() - 1))
        }
        None => (0, content.len() - 1),
    };
    let etag = format!("{:016x}{:08x}", fnv1a(content), content.len());
    let is_body_request = end > start;
    if is_body_request && faults.cut_first_transfer_of == Some(name) {
        faults.cut_first_transfer_of = None;
        let head = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{}\r\nConnection: close\r\n\r\n",
            end + 1 - start,
            content.len()
        );
        let _ = out.write_all(head.as_bytes());
        let _ = out.write_all(&content[start..start + (end + 1 - start) / 2]);
        return;
    }
    respond(
        &mut out,
        "206 Partial Content",
        &[
            ("ETag", format!("\"{etag}\"")),
            ("X-Repo-Commit", COMMIT.to_string()),
            (
                "Content-Range",
                format!("bytes {start}-{end}/{}", content.len()),
            ),
        ],
        &content[start..=end],
    );
}

fn respond(out: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(body);
    let _ = out.flush();
    // Drain what the client may still send so closing does not reset the connection.
    let _ = out.set_read_timeout(Some(std::time::Duration::from_millis(50)));
    let _ = out.read(&mut [0u8; 1024]);
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

fn test_tone(rate: u32) -> Vec<f32> {
    (0..rate as usize)
        .map(|i| (i as f32 * 220.0 * std::f32::consts::TAU / rate as f32).sin() * 0.3)
        .collect()
}

/// The hidden states of a folder and of the downloaded snapshot must be bit-identical.
fn assert_same_model(downloaded: &Path, original: &Path) {
    let a = PretrainedEncoder::from_dir(downloaded, LoadOptions::default()).unwrap();
    let b = PretrainedEncoder::from_dir(original, LoadOptions::default()).unwrap();
    let rate = a.preprocess().sampling_rate;
    let tone = test_tone(rate);
    let ea = a.embed(&tone, rate, &EmbedOptions::default()).unwrap();
    let eb = b.embed(&tone, rate, &EmbedOptions::default()).unwrap();
    assert_eq!(ea.to_vec().unwrap(), eb.to_vec().unwrap());
}

#[test]
fn downloads_a_safetensors_model_into_the_hub_cache_layout_once() {
    let hub = FakeHub::serve(
        "org/mert-tiny",
        &fixture("mert_like_24k"),
        Faults::default(),
    );
    let cache = tempfile::tempdir().unwrap();
    let dir = resolve_model_dir("org/mert-tiny", &hub.options(cache.path())).unwrap();

    let repo = cache.path().join("models--org--mert-tiny");
    assert_eq!(dir, repo.join("snapshots").join(COMMIT));
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        COMMIT
    );
    for name in [
        "config.json",
        "preprocessor_config.json",
        "model.safetensors",
    ] {
        assert_eq!(
            std::fs::read(dir.join(name)).unwrap(),
            std::fs::read(fixture("mert_like_24k").join(name)).unwrap(),
            "{name}"
        );
    }
    assert!(!dir.join("expected.safetensors").exists());
    assert_same_model(&dir, &fixture("mert_like_24k"));

    // Second time: straight from the cache, no request, and also when offline.
    let before = hub.requests();
    assert_eq!(
        resolve_model_dir("org/mert-tiny", &hub.options(cache.path())).unwrap(),
        dir
    );
    let offline = HubOptions {
        offline: true,
        ..hub.options(cache.path())
    };
    assert_eq!(resolve_model_dir("org/mert-tiny", &offline).unwrap(), dir);
    assert_eq!(hub.requests(), before);
}

#[test]
fn downloads_every_shard_of_a_sharded_checkpoint() {
    let hub = FakeHub::serve(
        "org/d2v-tiny",
        &fixture("data2vec_audio"),
        Faults::default(),
    );
    let cache = tempfile::tempdir().unwrap();
    let dir = resolve_model_dir("org/d2v-tiny@main", &hub.options(cache.path())).unwrap();
    for shard in [
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        assert!(dir.join(shard).is_file(), "{shard}");
    }
    assert_same_model(&dir, &fixture("data2vec_audio"));
}

#[test]
fn downloads_a_pickle_checkpoint_without_preprocessor_config() {
    let hub = FakeHub::serve(
        "org/w2v-bin",
        &fixture("wav2vec2_group_postln_bin"),
        Faults::default(),
    );
    let cache = tempfile::tempdir().unwrap();
    let dir = resolve_model_dir("org/w2v-bin", &hub.options(cache.path())).unwrap();
    assert!(dir.join("pytorch_model.bin").is_file());
    assert!(!dir.join("preprocessor_config.json").exists());
    PretrainedEncoder::from_dir(&dir, LoadOptions::default()).unwrap();
}

#[test]
fn gated_repositories_need_the_token() {
    let hub = FakeHub::serve(
        "org/gated",
        &fixture("wavlm_group_postln"),
        Faults {
            token: Some("hf_secret"),
            ..Faults::default()
        },
    );
    let cache = tempfile::tempdir().unwrap();
    let err = resolve_model_dir("org/gated", &hub.options(cache.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("HF_TOKEN"), "{err}");

    let with_token = HubOptions {
        token: Some("hf_secret".into()),
        ..hub.options(cache.path())
    };
    let dir = resolve_model_dir("org/gated", &with_token).unwrap();
    assert_same_model(&dir, &fixture("wavlm_group_postln"));
}

#[test]
fn unknown_repositories_and_unreachable_hubs_name_the_folder_to_provide() {
    let hub = FakeHub::serve(
        "org/present",
        &fixture("hubert_group_postln"),
        Faults::default(),
    );
    let cache = tempfile::tempdir().unwrap();
    let err = resolve_model_dir("org/absent", &hub.options(cache.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("was not found on"), "{err}");
    assert!(err.contains("models--org--absent"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");

    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let unreachable = HubOptions {
        cache: Some(cache.path().to_path_buf()),
        endpoint,
        ..HubOptions::default()
    };
    let err = resolve_model_dir("org/present", &unreachable)
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot reach"), "{err}");
    assert!(err.contains("--model DIR"), "{err}");
}

#[test]
fn offline_mode_never_touches_the_network() {
    let hub = FakeHub::serve(
        "org/any",
        &fixture("hubert_group_postln"),
        Faults::default(),
    );
    let cache = tempfile::tempdir().unwrap();
    let offline = HubOptions {
        offline: true,
        ..hub.options(cache.path())
    };
    let err = resolve_model_dir("org/any", &offline)
        .unwrap_err()
        .to_string();
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    assert_eq!(hub.requests(), 0);
}

#[test]
fn an_interrupted_transfer_resumes_where_it_stopped() {
    let hub = FakeHub::serve(
        "org/flaky",
        &fixture("wav2vec2_layer_preln"),
        Faults {
            cut_first_transfer_of: Some("model.safetensors"),
            ..Faults::default()
        },
    );
    let cache = tempfile::tempdir().unwrap();
    let dir = resolve_model_dir("org/flaky", &hub.options(cache.path())).unwrap();
    // File list, then a size probe and a body per file, plus the resumed body.
    assert_eq!(hub.requests(), 1 + 3 * 2 + 1);
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        std::fs::read(fixture("wav2vec2_layer_preln").join("model.safetensors")).unwrap()
    );
    assert_same_model(&dir, &fixture("wav2vec2_layer_preln"));
}
