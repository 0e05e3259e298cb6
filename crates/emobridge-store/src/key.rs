//! Clip id ↔ cache file name: a documented, reversible mapping.
//!
//! Importers write ids such as `happy/actor01/take1` (folder-per-label) or
//! `Ses01F_impro01_F000`; every one of them must be usable as a cache key. The entry of clip
//! `ID` is `CACHE/<tag>/<key(ID)>.safetensors`, where `key` percent-encodes (RFC 3986 style,
//! upper-case hex, byte by byte of the UTF-8 text):
//!
//! * every byte outside `A–Z a–z 0–9 - _ . + = , @ ~ ( ) [ ] ! # & '` — so `/`, `\`, `:`, `*`,
//!   `?`, `"`, `<`, `>`, `|`, space, `%` itself and every non-ASCII byte (no Unicode
//!   normalisation by the file system can then change a name);
//! * a leading `.` (no hidden files) and a trailing `.` (Windows drops it).
//!
//! Ids made of the safe characters only (RAVDESS, CREMA-D, MSP-Podcast, `emomusic_12`, …) are
//! stored under their own name, so caches written before this mapping stay valid.
//! [`id_from_key`] inverts it exactly.
//!
//! Rejected (a one-line [`crate::StoreError::BadId`] naming the rule): the empty id, an id with a
//! `.` or `..` path segment (`..`, `a/../b`, `./x`: a path trick rather than a name), an id with a
//! control character, and an id whose key is longer than [`MAX_KEY_BYTES`] bytes (file names are
//! limited to 255 bytes on common file systems). Ids that differ only in letter case collide on
//! case-insensitive file systems (macOS, Windows defaults); the importers never produce such pairs.

/// Longest key accepted (the file name adds `.safetensors`, 12 bytes, within 255).
pub const MAX_KEY_BYTES: usize = 240;

fn is_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.+=,@~()[]!#&'".contains(&b)
}

/// The file-name key of a clip id (see the module docs), or why the id cannot be one.
pub fn key_for_id(id: &str) -> Result<String, String> {
    if id.is_empty() {
        return Err("empty".into());
    }
    if let Some(c) = id.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character {c:?}"));
    }
    if id
        .split(['/', '\\'])
        .any(|segment| segment == "." || segment == "..")
    {
        return Err("has a `.` or `..` path segment".into());
    }
    let bytes = id.as_bytes();
    let mut key = String::with_capacity(id.len());
    for (i, &b) in bytes.iter().enumerate() {
        let edge_dot = b == b'.' && (i == 0 || i + 1 == bytes.len());
        if is_safe(b) && !edge_dot {
            key.push(b as char);
        } else {
            key.push_str(&format!("%{b:02X}"));
        }
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "its file name would be {} bytes, more than {MAX_KEY_BYTES}",
            key.len()
        ));
    }
    Ok(key)
}

/// The clip id a key stands for, or `None` when `key` is not one [`key_for_id`] writes
/// (a stray file in the cache folder).
pub fn id_from_key(key: &str) -> Option<String> {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = key.get(i + 1..i + 3)?;
            if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let id = String::from_utf8(out).ok()?;
    // Only the canonical spelling counts: `%41` for `A` is not a key this mapping writes.
    (key_for_id(&id).ok()? == key).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_keep_their_name() {
        for id in [
            "clip-1",
            "03-01-05-01-02-01-12",
            "MSP-PODCAST_0001_0008",
            "emomusic_2",
            "a.b",
        ] {
            assert_eq!(key_for_id(id).unwrap(), id);
        }
    }

    #[test]
    fn unsafe_bytes_are_percent_encoded_and_decode_back() {
        let cases = [
            ("happy/actor01/take1", "happy%2Factor01%2Ftake1"),
            ("a\\b:c", "a%5Cb%3Ac"),
            ("50%", "50%25"),
            (".hidden", "%2Ehidden"),
            ("end.", "end%2E"),
            ("two words", "two%20words"),
            ("Ärger", "%C3%84rger"),
            ("what?*|<>\"", "what%3F%2A%7C%3C%3E%22"),
        ];
        for (id, key) in cases {
            assert_eq!(key_for_id(id).unwrap(), key, "{id}");
            assert_eq!(id_from_key(key).as_deref(), Some(id), "{key}");
        }
    }

    #[test]
    fn path_tricks_and_empty_ids_are_rejected() {
        for id in [
            "", ".", "..", "../x", "a/../b", "a/./b", "x/..", "a\\..\\b", "a\0b", "a\nb",
        ] {
            assert!(key_for_id(id).is_err(), "{id:?}");
        }
        assert!(key_for_id(&"x".repeat(MAX_KEY_BYTES)).is_ok());
        assert!(key_for_id(&"x".repeat(MAX_KEY_BYTES + 1)).is_err());
        // `/` costs three bytes in the key.
        assert!(key_for_id(&"/".repeat(MAX_KEY_BYTES / 3 + 1)).is_err());
    }

    #[test]
    fn only_canonical_keys_decode() {
        assert_eq!(id_from_key("%41"), None);
        assert_eq!(id_from_key("%2"), None);
        assert_eq!(id_from_key("%zz"), None);
        assert_eq!(id_from_key("%FF"), None); // not UTF-8
        assert_eq!(id_from_key("a b"), None); // a space is always encoded
        assert_eq!(id_from_key("%2E%2E"), None); // `..`
    }
}
