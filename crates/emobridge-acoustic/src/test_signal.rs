//! Deterministic test signals shared by the kernel tests (no RNG crate, same values on every
//! platform).

/// `n` values of a xorshift64 sequence (state `0x9e3779b97f4a7c15 ^ seed`), each mapped to
/// `[0, 1)` from its top 53 bits and shifted down by `offset`.
pub(crate) fn xorshift(n: usize, seed: u64, offset: f64) -> Vec<f64> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - offset
        })
        .collect()
}
