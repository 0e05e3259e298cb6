//! Shared by the fuzz tests of several crates (`#[path]`-included): byte-level mutations of a
//! valid input, the case budget, and the time and memory bounds every case must respect.
//!
//! Budget: `PROPTEST_CASES` cases per target (default [`DEFAULT_CASES`], a few seconds in CI);
//! e.g. `PROPTEST_CASES=20000 cargo test --release --test fuzz` for a long run. Failing inputs
//! are not persisted to files; proptest prints the minimal one.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use proptest::prelude::*;

/// Cases per target unless `PROPTEST_CASES` says otherwise.
pub const DEFAULT_CASES: u32 = 48;

/// Longest a single case may take (a hang shows as a failure, not a stuck CI job, as long as the
/// case returns at all; generous because CI shares 2 cores).
pub const TIME_BOUND: Duration = Duration::from_secs(20);

/// Highest resident memory the test process may reach (Linux; `VmHWM`).
pub const MEMORY_BOUND_BYTES: u64 = 2 << 30;

pub fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

/// One edit of a byte string; positions wrap around the input's length.
#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    SetByte {
        at: usize,
        byte: u8,
    },
    /// Overwrite 4 bytes with a little-endian value (size and count fields live there).
    SetU32 {
        at: usize,
        value: u32,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
    /// Repeat a slice (duplicated chunks, pages, frames).
    Duplicate {
        at: usize,
        len: usize,
    },
}

fn position() -> impl Strategy<Value = usize> {
    // Headers are where parsers decide sizes: weight the first 64 bytes.
    prop_oneof![3 => 0usize..64, 2 => any::<usize>()]
}

fn extreme_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(u32::MAX),
        Just(u32::MAX / 2),
        Just(0x8000_0000),
        any::<u32>(),
    ]
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (position(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (position(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte { at, byte }),
        (position(), extreme_u32()).prop_map(|(at, value)| Mutation::SetU32 { at, value }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (position(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (position(), 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (position(), 1usize..512).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

pub fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..6)
}

pub fn apply(seed: &[u8], edits: &[Mutation]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for m in edits {
        if b.is_empty() {
            break;
        }
        let n = b.len();
        match m {
            Mutation::FlipBit { at, bit } => b[at % n] ^= 1 << bit,
            Mutation::SetByte { at, byte } => b[at % n] = *byte,
            Mutation::SetU32 { at, value } => {
                let at = at % n;
                for (k, v) in value.to_le_bytes().into_iter().enumerate() {
                    if at + k < n {
                        b[at + k] = v;
                    }
                }
            }
            Mutation::Truncate { at } => b.truncate(at % (n + 1)),
            Mutation::Insert { at, bytes } => {
                let at = at % (n + 1);
                b.splice(at..at, bytes.iter().copied());
            }
            Mutation::Delete { at, len } => {
                let at = at % n;
                b.drain(at..(at + len).min(n));
            }
            Mutation::Duplicate { at, len } => {
                let at = at % n;
                let chunk = b[at..(at + len).min(n)].to_vec();
                b.splice(at..at, chunk);
            }
        }
    }
    b
}

/// Runs one case on its own thread and checks the bounds: a result within [`TIME_BOUND`] and
/// resident memory below [`MEMORY_BOUND_BYTES`]. A case still running at the bound stops the
/// whole test process with the input printed (a hang cannot be shrunk). A panic inside `f`
/// fails the property, and proptest prints the smallest input that panics.
pub fn bounded<T: Send + 'static>(
    what: &str,
    input: &dyn std::fmt::Debug,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let started = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let out = f();
        let _ = tx.send(());
        out
    });
    // `Disconnected` (the worker panicked before sending) is not a hang: the join reports it.
    if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(TIME_BOUND) {
        // Straight to the process's stderr: the test harness's capture would be lost on abort.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "{what}: no result after {TIME_BOUND:?} (a hang); input: {input:?}"
        );
        std::process::abort();
    }
    let out = match worker.join() {
        Ok(out) => out,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let took = started.elapsed();
    assert!(
        took < TIME_BOUND,
        "{what}: took {took:?} (bound {TIME_BOUND:?}); input: {input:?}"
    );
    if let Some(peak) = peak_rss_bytes() {
        assert!(
            peak < MEMORY_BOUND_BYTES,
            "{what}: peak resident memory {} MiB (bound {} MiB); input: {input:?}",
            peak >> 20,
            MEMORY_BOUND_BYTES >> 20
        );
    }
    out
}

/// `VmHWM` of this process, where /proc has it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
