//! Embeds the commit this crate was built from, for `run.json`'s `git_commit`.
//!
//! In order: the build-time variable `EMOBRIDGE_GIT_COMMIT` (for builds from a source archive
//! whose commit is known), the `git.sha1` that `cargo package` records in
//! `.cargo_vcs_info.json`, and `git rev-parse HEAD` when this crate's own `Cargo.toml` is tracked
//! by the repository around it. Otherwise nothing: `run.json` then says `null`. The result is
//! exported as `EMOBRIDGE_BUILD_COMMIT` (empty when unknown); cargo re-runs this script when
//! `HEAD` or the branch it names moves.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=EMOBRIDGE_GIT_COMMIT");
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let commit = std::env::var("EMOBRIDGE_GIT_COMMIT")
        .ok()
        .filter(|c| is_hex_commit(c.trim()))
        .map(|c| c.trim().to_string())
        .or_else(|| packaged_commit(&dir))
        .or_else(|| checkout_commit(&dir))
        .unwrap_or_default();
    println!("cargo:rustc-env=EMOBRIDGE_BUILD_COMMIT={commit}");
}

fn is_hex_commit(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `cargo package` writes `{"git": {"sha1": "…"}, …}` beside the packaged `Cargo.toml`.
fn packaged_commit(dir: &Path) -> Option<String> {
    let path = dir.join(".cargo_vcs_info.json");
    let text = std::fs::read_to_string(&path).ok()?;
    watch(&path);
    let at = text.find("\"sha1\"")?;
    let rest = &text[at + 6..];
    let start = rest.find('"')? + 1;
    let end = start + rest[start..].find('"')?;
    let sha = &rest[start..end];
    is_hex_commit(sha).then(|| sha.to_string())
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn checkout_commit(dir: &Path) -> Option<String> {
    // Only a repository that tracks this very crate counts (not one that merely surrounds an
    // unpacked copy of it).
    git(dir, &["ls-files", "--error-unmatch", "Cargo.toml"])?;
    let git_dir = absolute(dir, &git(dir, &["rev-parse", "--git-dir"])?);
    let common_dir = absolute(dir, &git(dir, &["rev-parse", "--git-common-dir"])?);
    watch(&git_dir.join("HEAD"));
    if let Some(reference) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch(&common_dir.join(reference));
        watch(&common_dir.join("packed-refs"));
    }
    let sha = git(dir, &["rev-parse", "HEAD"])?;
    is_hex_commit(&sha).then_some(sha)
}

/// Re-run when `path` changes (only existing files: a missing one would re-run every build).
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn absolute(base: &Path, path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}
