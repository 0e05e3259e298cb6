//! Set-up shared by the CLI integration tests: the binary, the tiny fixture encoder, and a
//! command run that fails the test with its stderr.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `emobridge` binary with logging at warn.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_emobridge"));
    c.env("EMOBRIDGE_LOG", "warn");
    c
}

/// The tiny random-init MERT-like fixture encoder (24 kHz) of the SSL crate's tests.
pub fn tiny_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../emobridge-ssl/tests/fixtures/mert_like_24k")
}

/// What a successful command printed.
pub struct Printed {
    pub stdout: String,
    pub stderr: String,
}

/// Runs the command, failing the test with its stderr when it fails.
pub fn ok(cmd: &mut Command) -> Printed {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed:\n{stderr}");
    Printed {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}
