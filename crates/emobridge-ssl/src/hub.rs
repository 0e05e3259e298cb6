//! Finding a model folder: a path as given, or a hub id `ORG/NAME[@REVISION]` — first in the
//! local HuggingFace hub cache, then (crate feature `hub`, on by default) downloaded from the hub
//! into that same cache with the layout `huggingface_hub` uses, so Python and emobridge share it.
//!
//! A snapshot already in the cache is used as it is, without asking the hub whether `main` moved:
//! extraction runs must be reproducible, and a cluster node is often offline. Pin a commit with
//! `@REVISION`, or delete the snapshot to fetch a newer one.
//!
//! Environment, as `huggingface_hub` reads it: `HF_HUB_CACHE` / `HF_HOME` / `XDG_CACHE_HOME` for
//! the cache, `HF_ENDPOINT` for the server, `HF_TOKEN` (or the `token` file next to the cache)
//! for gated models, `HF_HUB_OFFLINE=1` to forbid network access.

use std::path::{Path, PathBuf};

use crate::error::{Result, SslError};
use crate::weights::weight_files;

/// The server `huggingface_hub` talks to when `HF_ENDPOINT` is unset.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// The hub cache folder (`…/hub`): `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
pub fn hub_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = env_var("HF_HUB_CACHE") {
        return Some(PathBuf::from(dir));
    }
    if let Some(home) = env_var("HF_HOME") {
        return Some(PathBuf::from(home).join("hub"));
    }
    if let Some(xdg) = env_var("XDG_CACHE_HOME") {
        return Some(PathBuf::from(xdg).join("huggingface").join("hub"));
    }
    env_var("HOME").map(|h| {
        PathBuf::from(h)
            .join(".cache")
            .join("huggingface")
            .join("hub")
    })
}

fn env_var(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// Where and whether hub ids are looked up and fetched.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// The hub cache folder (the one holding `models--ORG--NAME`); `None` when no location is known.
    pub cache: Option<PathBuf>,
    /// Server base URL (default [`DEFAULT_ENDPOINT`]).
    pub endpoint: String,
    /// Access token for gated or private repositories.
    pub token: Option<String>,
    /// Never touch the network; only cached snapshots resolve.
    pub offline: bool,
    /// Show a progress bar per downloaded file.
    pub progress: bool,
}

impl Default for HubOptions {
    fn default() -> Self {
        HubOptions {
            cache: None,
            endpoint: DEFAULT_ENDPOINT.to_string(),
            token: None,
            offline: false,
            progress: false,
        }
    }
}

impl HubOptions {
    /// Options as `huggingface_hub` derives them from the environment, with progress bars on.
    pub fn from_env() -> Self {
        let cache = hub_cache_dir();
        let token = env_var("HF_TOKEN").or_else(|| {
            let file = cache.as_ref()?.parent()?.join("token");
            let text = std::fs::read_to_string(file).ok()?;
            Some(text.trim().to_string()).filter(|t| !t.is_empty())
        });
        let offline = env_var("HF_HUB_OFFLINE")
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
            .unwrap_or(false);
        HubOptions {
            cache,
            endpoint: env_var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            token,
            offline,
            progress: true,
        }
    }
}

/// A parsed `ORG/NAME[@REVISION]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HubId {
    pub repo: String,
    pub revision: String,
}

impl HubId {
    /// Parses a hub id; `None` for anything that is not `ORG/NAME` with an optional `@REVISION`.
    pub fn parse(spec: &str) -> Option<HubId> {
        let (repo, revision) = spec.split_once('@').unwrap_or((spec, "main"));
        let parts: Vec<&str> = repo.split('/').collect();
        let valid_part = |p: &&str| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        (parts.len() == 2 && parts.iter().all(valid_part) && !revision.is_empty()).then(|| HubId {
            repo: repo.to_string(),
            revision: revision.to_string(),
        })
    }

    /// `CACHE/models--ORG--NAME`.
    pub fn cache_folder(&self, cache: &Path) -> PathBuf {
        cache.join(format!("models--{}", self.repo.replace('/', "--")))
    }
}

/// Resolves `spec` to a folder holding `config.json` and weights: an existing directory as is,
/// or a hub id found in (or, when allowed, downloaded into) the hub cache.
pub fn resolve_model_dir(spec: &str, hub: &HubOptions) -> Result<PathBuf> {
    let as_path = Path::new(spec);
    if as_path.is_dir() {
        return Ok(as_path.to_path_buf());
    }
    let Some(id) = HubId::parse(spec) else {
        return Err(SslError::ModelNotFound(format!(
            "{spec}: no such model folder (give a folder with config.json and model.safetensors, \
             or a hub id ORG/NAME[@REVISION])"
        )));
    };
    let Some(cache) = hub.cache.as_deref() else {
        return Err(SslError::ModelNotFound(format!(
            "{spec}: not a folder, and no HuggingFace cache location is known (set HF_HOME)"
        )));
    };
    if let Some(dir) = cached_snapshot(&id, cache) {
        return Ok(dir);
    }
    if hub.offline {
        return Err(not_available(
            &id,
            cache,
            "is not in the local HuggingFace cache and HF_HUB_OFFLINE forbids downloading it",
        ));
    }
    download(&id, cache, hub)
}

/// A complete cached snapshot: `config.json` plus every weight file it needs.
fn cached_snapshot(id: &HubId, cache: &Path) -> Option<PathBuf> {
    let dir = snapshot(&id.cache_folder(cache), &id.revision)?;
    let weights = weight_files(&dir).ok()?;
    (dir.join("config.json").is_file() && weights.iter().all(|w| w.is_file())).then_some(dir)
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

/// The error for a hub id we cannot provide, naming exactly the folder that would satisfy it.
fn not_available(id: &HubId, cache: &Path, why: &str) -> SslError {
    let repo = id.cache_folder(cache);
    SslError::ModelNotFound(format!(
        "{} {why}. Provide the model folder (config.json, preprocessor_config.json, \
         model.safetensors or pytorch_model.bin) with --model DIR, or place it at \
         {}/snapshots/<commit>/ with the commit written in {}/refs/{} (e.g. run \
         `huggingface-cli download {}` on a machine with access to the hub and copy {})",
        id.repo,
        repo.display(),
        repo.display(),
        id.revision,
        id.repo,
        repo.display()
    ))
}

#[cfg(not(feature = "hub"))]
fn download(id: &HubId, cache: &Path, _hub: &HubOptions) -> Result<PathBuf> {
    Err(not_available(
        id,
        cache,
        "is not in the local HuggingFace cache and this build cannot download \
         (emobridge-ssl built without its `hub` feature)",
    ))
}

/// Fetches `config.json`, `preprocessor_config.json` (when the repository has one) and the
/// weights in the first format the loader prefers that the repository offers. Files already in
/// the snapshot are not fetched again; an interrupted file resumes from its `.part`.
#[cfg(feature = "hub")]
fn download(id: &HubId, cache: &Path, hub: &HubOptions) -> Result<PathBuf> {
    use hf_hub::api::sync::ApiBuilder;
    use hf_hub::{Repo, RepoType};

    let api = ApiBuilder::from_cache(hf_hub::Cache::new(cache.to_path_buf()))
        .with_endpoint(hub.endpoint.trim_end_matches('/').to_string())
        .with_token(hub.token.clone())
        .with_progress(hub.progress)
        .with_retries(3)
        .build()
        .map_err(|e| hub_error(id, cache, hub, e))?;
    let repo = api.repo(Repo::with_revision(
        id.repo.clone(),
        RepoType::Model,
        id.revision.clone(),
    ));
    let info = repo.info().map_err(|e| hub_error(id, cache, hub, e))?;
    let listed: Vec<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    let has = |name: &str| listed.contains(&name);
    if !has("config.json") {
        return Err(not_available(
            id,
            cache,
            &format!(
                "has no config.json on {} (files: {})",
                hub.endpoint,
                listed.join(", ")
            ),
        ));
    }
    tracing::info!(
        "downloading {}@{} from {}",
        id.repo,
        id.revision,
        hub.endpoint
    );
    let fetch = |name: &str| repo.get(name).map_err(|e| hub_error(id, cache, hub, e));
    let config = fetch("config.json")?;
    let dir = config
        .parent()
        .expect("a cached file lies in a snapshot folder")
        .to_path_buf();
    if has("preprocessor_config.json") {
        fetch("preprocessor_config.json")?;
    }
    let weight_names: Vec<String> = if has("model.safetensors") {
        vec!["model.safetensors".into()]
    } else if has("model.safetensors.index.json") {
        fetch("model.safetensors.index.json")?;
        weight_files(&dir)?
            .iter()
            .map(|p| {
                p.strip_prefix(&dir)
                    .unwrap_or(p)
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    } else if has("pytorch_model.bin") {
        vec!["pytorch_model.bin".into()]
    } else {
        return Err(not_available(
            id,
            cache,
            &format!(
                "offers no weights this loader reads on {} (wanted model.safetensors, \
                 model.safetensors.index.json or pytorch_model.bin; files: {})",
                hub.endpoint,
                listed.join(", ")
            ),
        ));
    };
    for name in &weight_names {
        fetch(name)?;
    }
    Ok(dir)
}

/// Turns a client error into one line: what failed, why, and the offline way out.
#[cfg(feature = "hub")]
fn hub_error(
    id: &HubId,
    cache: &Path,
    hub: &HubOptions,
    err: hf_hub::api::sync::ApiError,
) -> SslError {
    use hf_hub::api::sync::ApiError;
    let why = match &err {
        ApiError::RequestError(inner) => match inner.as_ref() {
            ureq_error if is_status(ureq_error, 401) || is_status(ureq_error, 403) => format!(
                "is gated or private on {} (set HF_TOKEN to a token with access)",
                hub.endpoint
            ),
            ureq_error if is_status(ureq_error, 404) => format!(
                "was not found on {} (no such repository or revision `{}`)",
                hub.endpoint, id.revision
            ),
            other => format!(
                "could not be downloaded: cannot reach {} ({other})",
                hub.endpoint
            ),
        },
        other => format!("could not be downloaded from {} ({other})", hub.endpoint),
    };
    not_available(id, cache, &why)
}

#[cfg(feature = "hub")]
fn is_status(err: &ureq::Error, code: u16) -> bool {
    matches!(err, ureq::Error::Status(c, _) if *c == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline_in(cache: &Path) -> HubOptions {
        HubOptions {
            cache: Some(cache.to_path_buf()),
            offline: true,
            ..HubOptions::default()
        }
    }

    #[test]
    fn finds_a_snapshot_through_refs_main() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("models--org--tiny");
        let snap = repo.join("snapshots").join("abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
        std::fs::write(snap.join("config.json"), "{}").unwrap();
        std::fs::write(snap.join("model.safetensors"), "").unwrap();
        let hub = offline_in(tmp.path());
        assert_eq!(resolve_model_dir("org/tiny", &hub).unwrap(), snap);
        assert_eq!(resolve_model_dir("org/tiny@abc123", &hub).unwrap(), snap);
    }

    #[test]
    fn a_snapshot_without_its_weights_is_not_complete() {
        let tmp = tempfile::tempdir().unwrap();
        let snap = tmp.path().join("models--org--tiny/snapshots/abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join("config.json"), "{}").unwrap();
        let err = resolve_model_dir("org/tiny@abc123", &offline_in(tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    }

    #[test]
    fn missing_id_names_the_folder_to_provide() {
        let tmp = tempfile::tempdir().unwrap();
        let err = resolve_model_dir("facebook/wav2vec2-base", &offline_in(tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("models--facebook--wav2vec2-base"), "{err}");
        assert!(err.contains("--model DIR"), "{err}");
    }

    #[test]
    fn hub_ids_parse_and_paths_do_not() {
        assert_eq!(
            HubId::parse("m-a-p/MERT-v1-95M@v1.0"),
            Some(HubId {
                repo: "m-a-p/MERT-v1-95M".into(),
                revision: "v1.0".into()
            })
        );
        assert_eq!(
            HubId::parse("facebook/hubert-base-ls960").unwrap().revision,
            "main"
        );
        for not_id in [
            "./models/x",
            "/abs/x",
            "a/b/c",
            "plain",
            "org/",
            "org/name@",
            "../x",
        ] {
            assert_eq!(HubId::parse(not_id), None, "{not_id}");
        }
    }
}
