//! Finding a model folder: a path as given, or `ORG/NAME` inside the local HuggingFace hub cache.
//!
//! No network access happens here; when a hub id is not cached the error says exactly which
//! folder to provide.

use std::path::{Path, PathBuf};

use crate::error::{Result, SslError};

/// The hub cache folder (`…/hub`): `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
pub fn hub_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env("HF_HUB_CACHE") {
        return Some(dir);
    }
    if let Some(home) = env("HF_HOME") {
        return Some(home.join("hub"));
    }
    if let Some(xdg) = env("XDG_CACHE_HOME") {
        return Some(xdg.join("huggingface").join("hub"));
    }
    env("HOME").map(|h| h.join(".cache").join("huggingface").join("hub"))
}

/// Resolves `spec` to a folder holding `config.json`: an existing directory as is, or a hub id
/// `ORG/NAME[@REVISION]` looked up in `cache` (see [`hub_cache_dir`]).
pub fn resolve_model_dir(spec: &str, cache: Option<&Path>) -> Result<PathBuf> {
    let as_path = Path::new(spec);
    if as_path.is_dir() {
        return Ok(as_path.to_path_buf());
    }
    let (id, revision) = spec.split_once('@').unwrap_or((spec, "main"));
    let looks_like_id = id.split('/').count() == 2
        && !id.starts_with('.')
        && !id.starts_with('/')
        && id.split('/').all(|p| !p.is_empty());
    if !looks_like_id {
        return Err(SslError::ModelNotFound(format!("{spec}: no such model folder (give a folder with config.json and model.safetensors, or a hub id ORG/NAME)")));
    }
    let Some(cache) = cache else {
        return Err(SslError::ModelNotFound(format!(
            "{spec}: not a folder, and no HuggingFace cache location is known (set HF_HOME)"
        )));
    };
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    match snapshot(&repo, revision) {
        Some(dir) if dir.join("config.json").is_file() => Ok(dir),
        _ => Err(SslError::ModelNotFound(format!(
            "{id} is not in the local HuggingFace cache and this build does not download. Provide the model folder \
             (config.json, preprocessor_config.json, model.safetensors or pytorch_model.bin) with --model DIR, \
             or place it at {}/snapshots/<commit>/ with the commit written in {}/refs/{revision} \
             (e.g. run `huggingface-cli download {id}` on a machine with access to the hub and copy {})",
            repo.display(),
            repo.display(),
            repo.display()
        ))),
    }
}

/// `repo/snapshots/<commit>` for a ref name (or a commit hash given directly).
fn snapshot(repo: &Path, revision: &str) -> Option<PathBuf> {
    let snapshots = repo.join("snapshots");
    let direct = snapshots.join(revision);
    if direct.is_dir() {
        return Some(direct);
    }
    let commit = std::fs::read_to_string(repo.join("refs").join(revision)).ok()?;
    let dir = snapshots.join(commit.trim());
    dir.is_dir().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_snapshot_through_refs_main() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("models--org--tiny");
        let snap = repo.join("snapshots").join("abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
        std::fs::write(snap.join("config.json"), "{}").unwrap();
        assert_eq!(
            resolve_model_dir("org/tiny", Some(tmp.path())).unwrap(),
            snap
        );
        assert_eq!(
            resolve_model_dir("org/tiny@abc123", Some(tmp.path())).unwrap(),
            snap
        );
    }

    #[test]
    fn missing_id_names_the_folder_to_provide() {
        let tmp = tempfile::tempdir().unwrap();
        let err = resolve_model_dir("facebook/wav2vec2-base", Some(tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("models--facebook--wav2vec2-base"), "{err}");
        assert!(err.contains("--model DIR"), "{err}");
    }
}
