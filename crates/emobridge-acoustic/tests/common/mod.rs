//! Helpers shared by the long-input tests: a deterministic noise source for synthetic audio and
//! running a closure on a rayon pool of a given size.
#![allow(dead_code)] // each test file uses its own subset

/// Xorshift64 noise, uniform in [-0.5, 0.5): the same sequence on every run and machine.
pub struct Noise(u64);

impl Noise {
    pub fn new() -> Noise {
        Noise(0x2545_f491_4f6c_dd1d)
    }

    pub fn next_centred(&mut self) -> f64 {
        let s = &mut self.0;
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}

/// `f` run on a rayon pool of `threads` threads.
pub fn on_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}
