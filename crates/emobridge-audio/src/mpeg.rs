//! A walk over the MPEG audio frames of an MP3 file, headers only, to tell a complete stream from
//! a cut one (symphonia ends an MP3 stream silently at the first incomplete frame).
//!
//! Frame sizes follow ISO/IEC 11172-3 and 13818-3: Layer I `(12·bitrate/rate + pad)·4`;
//! Layer II and MPEG-1 Layer III `144·bitrate/rate + pad`; MPEG-2/2.5 Layer III
//! `72·bitrate/rate + pad` bytes, header included.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// What the frame walk found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Mp3Facts {
    /// The first frame carries a Xing/Info/VBRI tag, so the stated frame count is exact
    /// (otherwise symphonia estimates the length from the bitrate).
    pub length_tag: bool,
    /// Why the stream is cut short, when its last frame runs past the end of the file.
    pub cut: Option<String>,
}

/// Bitrates in kbit/s by [version class][layer - 1][index].
const BITRATES: [[[u32; 16]; 3]; 2] = [
    [
        [
            0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448, 0,
        ],
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 0,
        ],
        [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0,
        ],
    ],
    [
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256, 0,
        ],
        [
            0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0,
        ],
        [
            0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0,
        ],
    ],
];

/// Frame length in bytes of a 4-byte header, or `None` when it is not a usable frame header
/// (no sync, reserved fields, free-format bitrate).
fn frame_len(h: [u8; 4]) -> Option<usize> {
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 0b11; // 0: MPEG-2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1
    let layer = match (h[1] >> 1) & 0b11 {
        0b11 => 1,
        0b10 => 2,
        0b01 => 3,
        _ => return None,
    };
    let bitrate_index = (h[2] >> 4) as usize;
    let rate_index = ((h[2] >> 2) & 0b11) as usize;
    if version == 1 || rate_index == 3 {
        return None;
    }
    let base_rate = [44_100u32, 48_000, 32_000][rate_index];
    let rate = match version {
        3 => base_rate,
        2 => base_rate / 2,
        _ => base_rate / 4,
    };
    let class = usize::from(version != 3);
    let kbps = BITRATES[class][layer - 1][bitrate_index];
    if kbps == 0 {
        return None;
    }
    let bitrate = kbps * 1000;
    let pad = u32::from((h[2] >> 1) & 1);
    let len = match (layer, version) {
        (1, _) => (12 * bitrate / rate + pad) * 4,
        (3, v) if v != 3 => 72 * bitrate / rate + pad,
        _ => 144 * bitrate / rate + pad,
    };
    Some(len as usize)
}

/// Walks the frames of `path` (see the module docs). I/O errors end the walk without a verdict:
/// the decoder reports those itself.
pub(crate) fn walk(path: &Path) -> Mp3Facts {
    let mut facts = Mp3Facts::default();
    let Ok(file) = File::open(path) else {
        return facts;
    };
    let Ok(len) = file.metadata().map(|m| m.len()) else {
        return facts;
    };
    let mut r = BufReader::new(file);
    let mut pos = 0u64;
    // An ID3v2 tag first: "ID3", version, flags, 4-byte syncsafe size (+10 with a footer).
    let mut head = [0u8; 10];
    if r.read_exact(&mut head).is_ok() && &head[..3] == b"ID3" {
        let size = head[6..10]
            .iter()
            .fold(0u64, |acc, &b| (acc << 7) | u64::from(b & 0x7F));
        pos = 10 + size + if head[5] & 0x10 != 0 { 10 } else { 0 };
    }
    let mut first = true;
    let mut frames = 0u64;
    while pos + 4 <= len {
        if r.seek(SeekFrom::Start(pos)).is_err() {
            return facts;
        }
        let mut h = [0u8; 4];
        if r.read_exact(&mut h).is_err() {
            return facts;
        }
        let Some(n) = frame_len(h) else {
            // A trailing tag (ID3v1 `TAG`, APE, Lyrics3) or data the walk does not understand:
            // no verdict beyond this point.
            break;
        };
        if first {
            first = false;
            let mut body = vec![0u8; n.saturating_sub(4).min(200)];
            if r.read_exact(&mut body).is_ok() {
                facts.length_tag = body
                    .windows(4)
                    .any(|w| w == b"Xing" || w == b"Info" || w == b"VBRI");
            }
        }
        if pos + n as u64 > len {
            facts.cut = Some(format!(
                "truncated: MPEG frame {} at byte {pos} needs {n} bytes, the file ends after {}",
                frames + 1,
                len - pos
            ));
            break;
        }
        frames += 1;
        pos += n as u64;
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_of_common_headers() {
        // MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding: 417 bytes; with padding 418.
        assert_eq!(frame_len([0xFF, 0xFB, 0x90, 0x00]), Some(417));
        assert_eq!(frame_len([0xFF, 0xFB, 0x92, 0x00]), Some(418));
        // MPEG-2 Layer III, 64 kbit/s, 22.05 kHz: 72·64000/22050 = 208.
        assert_eq!(frame_len([0xFF, 0xF3, 0x80, 0x00]), Some(208));
        // free format, bad sync, reserved rate
        assert_eq!(frame_len([0xFF, 0xFB, 0x00, 0x00]), None);
        assert_eq!(frame_len([0xFE, 0xFB, 0x90, 0x00]), None);
        assert_eq!(frame_len([0xFF, 0xFB, 0x9C, 0x00]), None);
    }
}
