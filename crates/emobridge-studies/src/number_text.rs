//! Decimal text of `f32` / `f64` values, byte for byte as Rust's `Display` (`{}`) writes them:
//! the shortest digits that read back to the same value, laid out without an exponent
//! (`0.0000001`, `100000000000000000000`, `-0`, `NaN`, `inf`).
//!
//! The descriptor tables print every value this way; `Display` goes through the general
//! formatting machinery (`Formatter`, padding, `write_str` per part) and costs several hundred
//! instructions per value, more than the analysis of a ComParE row. Here the digits come from
//! `ryu` (Ulf Adams, "Ryū: fast float-to-string conversion", PLDI 2018), which finds the same
//! shortest, closest digits as `Display`'s Grisu/Dragon route, and only the layout is done here.

/// Appends the `Display` text of `v` to `out`.
pub fn push_f32(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() {
        let mut buf = ryu::Buffer::new();
        let bits = v.to_bits();
        let (frac, exp) = (u64::from(bits & 0x7f_ffff), ((bits >> 23) & 0xff) as i32);
        let (m, e) = if exp == 0 {
            (frac, -149)
        } else {
            (frac | 1 << 23, exp - 150)
        };
        lay_out(out, buf.format_finite(v).as_bytes(), m, e);
    } else {
        push_non_finite(out, v.is_nan(), v.is_sign_negative());
    }
}

/// Appends the `Display` text of `v` to `out`.
pub fn push_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        let mut buf = ryu::Buffer::new();
        let bits = v.to_bits();
        let (frac, exp) = (bits & ((1 << 52) - 1), ((bits >> 52) & 0x7ff) as i32);
        let (m, e) = if exp == 0 {
            (frac, -1074)
        } else {
            (frac | 1 << 52, exp - 1075)
        };
        lay_out(out, buf.format_finite(v).as_bytes(), m, e);
    } else {
        push_non_finite(out, v.is_nan(), v.is_sign_negative());
    }
}

fn push_non_finite(out: &mut Vec<u8>, nan: bool, negative: bool) {
    if nan {
        out.extend_from_slice(b"NaN");
    } else if negative {
        out.extend_from_slice(b"-inf");
    } else {
        out.extend_from_slice(b"inf");
    }
}

/// Re-lays `ryu`'s text of a finite value `m · 2^e` (`[-]digits[.digits][e[-]exp]`) the way
/// `Display` does: no exponent, no trailing fractional zeros, no `.` for whole numbers.
///
/// Both pick the shortest digits that read back to the value and, among those, the closest; they
/// differ only when the value lies exactly halfway between two such candidates (e.g. 314641.125
/// as an `f32`): `ryu` then rounds the last digit to even, `Display` up. That case is detected
/// exactly (integer arithmetic) and rounded up.
fn lay_out(out: &mut Vec<u8>, text: &[u8], m: u64, e: i32) {
    // Fast path: ryu wrote positional notation (no exponent), which is `Display`'s but for the
    // `.0` of whole numbers. Its fraction has no trailing zeros, so a value with f fractional
    // digits is a halfway point only if its exact binary value ends at 10^(−f−1): not when
    // m · 2^e (m odd, e < 0) ends elsewhere.
    if !has_exponent(text) {
        let t = text.strip_suffix(b".0").unwrap_or(text);
        if let Some(p) = t.iter().position(|&c| c == b'.') {
            let fraction_digits = (t.len() - p - 1) as i32;
            let tz = m.trailing_zeros() as i32;
            if e + tz < 0 && e + tz != -fraction_digits - 1 {
                out.extend_from_slice(t);
                return;
            }
        }
    }
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let (mantissa, exponent) = match text.iter().position(|&c| c == b'e') {
        Some(i) => (&text[..i], parse_exponent(&text[i + 1..])),
        None => (text, 0),
    };
    // value ≈ digits · 10^exp10 (ryu writes at most 17 significant digits)
    let mut digits = 0u64;
    let mut exp10 = exponent;
    let mut in_fraction = false;
    for &c in mantissa {
        if c == b'.' {
            in_fraction = true;
        } else {
            digits = digits * 10 + u64::from(c - b'0');
            if in_fraction {
                exp10 -= 1;
            }
        }
    }
    if negative {
        out.push(b'-');
    }
    if digits == 0 {
        out.push(b'0');
        return;
    }
    while digits % 10 == 0 {
        digits /= 10;
        exp10 += 1;
    }
    if is_halfway(m, e, digits, exp10) {
        digits += 1;
        while digits % 10 == 0 {
            digits /= 10;
            exp10 += 1;
        }
    }
    let mut text = [0u8; 20];
    let mut len = 0usize;
    let mut rest = digits;
    while rest > 0 {
        text[len] = b'0' + (rest % 10) as u8;
        rest /= 10;
        len += 1;
    }
    text[..len].reverse();
    let d = &text[..len];
    let point = len as i32 + exp10;
    if point <= 0 {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (-point) as usize, b'0');
        out.extend_from_slice(d);
    } else if point >= len as i32 {
        out.extend_from_slice(d);
        out.resize(out.len() + (point - len as i32) as usize, b'0');
    } else {
        let (whole, fraction) = d.split_at(point as usize);
        out.extend_from_slice(whole);
        out.push(b'.');
        out.extend_from_slice(fraction);
    }
}

/// Whether `ryu`'s text has an exponent. It writes one only at the end, as `e` and one to three
/// digits, with a `-` for negative powers (`1e10`, `1.5e-7`, `5e-324`), after at least one
/// mantissa digit: so the `e` is the second to fifth byte from the end, and only those are read
/// (a scan of the whole text cost a fifth of the layout).
fn has_exponent(text: &[u8]) -> bool {
    let n = text.len();
    (2..=5).any(|back| n >= back && text[n - back] == b'e')
}

/// Whether `m · 2^e` (m > 0) equals `(digits + ½) · 10^exp10` exactly.
///
/// The value is `n / 10^k` with `n = m · 5^k` (e < 0, k = −e) or `n = m · 2^e`; when that does
/// not fit 128 bits its significant digits end in an even digit or number more than 20, so it
/// cannot be a halfway point of at most 17 digits, and the answer is no.
fn is_halfway(m: u64, e: i32, digits: u64, exp10: i32) -> bool {
    let tz = m.trailing_zeros() as i32;
    let (m, e) = (u128::from(m >> tz), e + tz);
    // m odd: for e < 0 the exact value's last digit (a 5) sits at 10^e, a halfway point's
    // (also a 5) at 10^(exp10 − 1)
    if e < 0 && e != exp10 - 1 {
        return false;
    }
    let (n, k) = if e >= 0 {
        if e >= m.leading_zeros() as i32 {
            return false;
        }
        (m << e, 0)
    } else {
        let k = -e;
        match 5u128.checked_pow(k as u32).and_then(|p| p.checked_mul(m)) {
            Some(n) => (n, k),
            None => return false,
        }
    };
    // 2n · 10^−k == (2·digits + 1) · 10^exp10
    let odd = 2 * u128::from(digits) + 1;
    let Some(two_n) = n.checked_mul(2) else {
        return false;
    };
    let shift = exp10 + k;
    let (lhs, rhs) = if shift >= 0 {
        (
            Some(two_n),
            10u128
                .checked_pow(shift as u32)
                .and_then(|p| p.checked_mul(odd)),
        )
    } else {
        (
            10u128
                .checked_pow((-shift) as u32)
                .and_then(|p| p.checked_mul(two_n)),
            Some(odd),
        )
    };
    matches!((lhs, rhs), (Some(a), Some(b)) if a == b)
}

fn parse_exponent(text: &[u8]) -> i32 {
    let (sign, digits) = match text.split_first() {
        Some((b'-', rest)) => (-1, rest),
        _ => (1, text),
    };
    sign * digits
        .iter()
        .fold(0i32, |acc, &c| acc * 10 + i32::from(c - b'0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text32(v: f32) -> String {
        let mut out = Vec::new();
        push_f32(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    fn text64(v: f64) -> String {
        let mut out = Vec::new();
        push_f64(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    /// A fixed pseudo-random sequence of bit patterns (xorshift64*).
    fn patterns(count: usize) -> impl Iterator<Item = u64> {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        (0..count).map(move |_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            s.wrapping_mul(0x2545_f491_4f6c_dd1d)
        })
    }

    #[test]
    fn f32_text_equals_display() {
        let special = [
            0.0f32,
            -0.0,
            1.0,
            -1.0,
            0.1,
            100.0,
            1e-7,
            1.5e-45,
            f32::MIN_POSITIVE,
            f32::MAX,
            f32::MIN,
            f32::EPSILON,
            123456790.0,
            16777216.0,
            0.3,
            314641.125,
            0.5,
            2.5,
            1.25,
            0.125,
            2.5e-5,
            9.999999e-5,
            1e-4,
            1e21,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        for v in special {
            assert_eq!(text32(v), format!("{v}"), "{v:e}");
        }
        for bits in patterns(400_000) {
            let v = f32::from_bits(bits as u32);
            assert_eq!(text32(v), format!("{v}"), "bits {:#x}", bits as u32);
        }
        // every power of ten's neighbours, where the layout switches
        for e in -45..=38 {
            let v = 10f32.powi(e);
            for u in [
                v,
                f32::from_bits(v.to_bits() + 1),
                f32::from_bits(v.to_bits() - 1),
            ] {
                assert_eq!(text32(u), format!("{u}"));
            }
        }
    }

    #[test]
    fn exponent_found_only_where_ryu_writes_it() {
        for (text, e) in [
            (&b"1e10"[..], true),
            (b"1.5e-7", true),
            (b"5e-324", true),
            (b"-3.4028235e38", true),
            (b"1e0", true),
            (b"123.0", false),
            (b"0.001", false),
            (b"-0.5", false),
            (b"0", false),
        ] {
            assert_eq!(has_exponent(text), e, "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn f64_text_equals_display() {
        for v in [
            0.0f64,
            -0.0,
            0.01,
            1.23,
            59.99,
            3600.0,
            1e-7,
            1e300,
            f64::MAX,
            5e-324,
            1394865425023536.25,
            0.5,
            2.5,
        ] {
            assert_eq!(text64(v), format!("{v}"), "{v:e}");
        }
        for bits in patterns(200_000) {
            let v = f64::from_bits(bits);
            assert_eq!(text64(v), format!("{v}"), "bits {bits:#x}");
        }
        // frame times as the tables print them (µs resolution)
        for i in 0..100_000u64 {
            let t = ((i * 441) as f64 / 44_100.0 * 1e6).round() / 1e6;
            assert_eq!(text64(t), format!("{t}"));
        }
    }

    /// Every 97th `f32` bit pattern (44 million values; run with `--ignored`).
    #[test]
    #[ignore = "slow: 44 million values"]
    fn f32_text_equals_display_sweep() {
        let mut text = Vec::new();
        let mut display = String::new();
        for bits in (0..=u32::MAX).step_by(97) {
            use std::fmt::Write;
            let v = f32::from_bits(bits);
            text.clear();
            push_f32(&mut text, v);
            display.clear();
            write!(display, "{v}").unwrap();
            assert_eq!(text, display.as_bytes(), "bits {bits:#x}");
        }
    }
}
