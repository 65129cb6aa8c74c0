//! Reading hash dumps: `HASH:COUNT` or bare `HASH` lines, as published (see `protocol.md`).
//!
//! Accepted: LF or CRLF line ends, a UTF-8 byte-order mark where a line starts, blank lines
//! (ignored), spaces or tabs around a line, hex in either case. Everything else is an error
//! that names the line: a malformed dump must never turn into a silently smaller index.

use crate::hash::{decode_hex, HashBytes, HashKind};
use std::ops::Range;

/// One parsed dump line: a hash and its count (1 for a bare hash).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The hash (NTLM uses the first 16 bytes).
    pub hash: HashBytes,
    /// How often it was seen.
    pub count: u64,
}

/// The UTF-8 byte-order mark, tolerated where a line starts.
pub(crate) const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Strips the line end, byte-order marks and surrounding blanks; `None` for a blank line.
#[inline]
pub(crate) fn trim_line(mut line: &[u8]) -> Option<&[u8]> {
    while let Some(rest) = line.strip_prefix(BOM) {
        line = rest;
    }
    while let [b' ' | b'\t', rest @ ..] = line {
        line = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = line {
        line = rest;
    }
    (!line.is_empty()).then_some(line)
}

/// The hex part of the first line that is not blank, to guess the kind of a dump.
pub fn first_hash_field(data: &[u8]) -> Option<(u64, &[u8])> {
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        if let Some(line) = trim_line(line) {
            let hex = match memchr::memchr(b':', line) {
                Some(colon) => &line[..colon],
                None => line,
            };
            return Some((i as u64 + 1, hex));
        }
    }
    None
}

/// Parses one line. `Ok(None)` for a blank line; the error text does not include the line.
#[inline]
pub fn parse_line(line: &[u8], kind: HashKind) -> Result<Option<Entry>, String> {
    let Some(line) = trim_line(line) else {
        return Ok(None);
    };
    let (hex, count) = match memchr::memchr(b':', line) {
        Some(colon) => (&line[..colon], Some(&line[colon + 1..])),
        None => (line, None),
    };
    if hex.len() != kind.hex_len() {
        return Err(format!(
            "expected {} hex digits of a {} hash, found {} characters",
            kind.hex_len(),
            kind.display_name(),
            hex.len()
        ));
    }
    let Some(hash) = decode_hex(hex) else {
        return Err(format!(
            "expected {} hex digits of a {} hash, found a character that is not a hex digit",
            kind.hex_len(),
            kind.display_name()
        ));
    };
    let count = match count {
        None => 1,
        Some(text) => parse_count(text)?,
    };
    Ok(Some(Entry { hash, count }))
}

pub(crate) fn parse_count(text: &[u8]) -> Result<u64, String> {
    if text.is_empty() {
        return Err("expected a count after `:`".to_string());
    }
    let mut value: u64 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            let shown = String::from_utf8_lossy(&text[..text.len().min(24)]).into_owned();
            return Err(format!("count `{shown}` is not a whole decimal number"));
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add((b - b'0') as u64))
            .ok_or_else(|| "count does not fit in 64 bits".to_string())?;
    }
    Ok(value)
}

/// What parsing a chunk found besides its entries.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChunkStats {
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Whether the entries came in non-decreasing hash order.
    pub sorted: bool,
}

/// A malformed line inside a chunk: its 0-based index in the chunk and what is wrong.
#[derive(Debug)]
pub struct ChunkError {
    /// 0-based line index within the chunk.
    pub line_in_chunk: u64,
    /// What is wrong with the line.
    pub message: String,
}

/// Parses every line of `chunk`, appending entries to `out`.
pub fn parse_chunk(
    chunk: &[u8],
    kind: HashKind,
    out: &mut Vec<Entry>,
) -> Result<ChunkStats, ChunkError> {
    let mut stats = ChunkStats {
        lines: 0,
        sorted: true,
    };
    // The order of the last entry of this chunk (all zeros orders first).
    let mut last = (0, 0, 0);
    let mut pos = 0;
    while pos < chunk.len() {
        // The official form: the hash stays in registers, to be compared with the last one
        // and stored straight into its entry. (Built on the stack and copied, it was read
        // back in wider words than it was written in, which stalls the processor.)
        if let Some((words, count, len)) = official_line(&chunk[pos..], kind) {
            let order = crate::hash::hash_words_order(words);
            stats.sorted &= last <= order;
            last = order;
            out.push(Entry {
                hash: [0; 20],
                count,
            });
            let entry = out.last_mut().expect("pushed");
            crate::hash::store_hash_words(words, &mut entry.hash);
            stats.lines += 1;
            pos += len;
            continue;
        }
        let end = memchr::memchr(b'\n', &chunk[pos..]).map_or(chunk.len(), |i| pos + i);
        let parsed = parse_line(&chunk[pos..end], kind);
        let next = end + 1;
        match parsed {
            Ok(Some(entry)) => {
                let order = crate::hash::hash_order(&entry.hash);
                stats.sorted &= last <= order;
                last = order;
                out.push(entry);
            }
            Ok(None) => {}
            Err(message) => {
                return Err(ChunkError {
                    line_in_chunk: stats.lines,
                    message,
                })
            }
        }
        stats.lines += 1;
        pos = next;
    }
    Ok(stats)
}

/// The fast path for a line in the official form, `HEX:DIGITS` and LF or CRLF: the hash (as
/// [`crate::hash::decode_hash_words`] gives it), the count and the bytes taken, line end
/// included. `None` for anything else (another form, a malformed
/// line, a count of 19 digits or more, a last line without its end), which [`parse_line`]
/// then reads: every line this accepts, it reads the same way.
#[inline(always)]
fn official_line(rest: &[u8], kind: HashKind) -> Option<([u64; 3], u64, usize)> {
    let hex_len = kind.hex_len();
    if rest.get(hex_len) != Some(&b':') {
        return None;
    }
    let words = crate::hash::decode_hash_words(rest, kind)?;
    let (count, end) = count_and_line_end(&rest[hex_len + 1..], false)?;
    Some((words, count, hex_len + 1 + end))
}

/// The fast path's count: 1 to 18 digits, then LF or CRLF (or, with `last_may_end`, the end
/// of `digits`). The count and the bytes taken, line end included; `None` for anything else
/// (19 digits or more take the checked path of the callers).
#[inline]
pub(crate) fn count_and_line_end(digits: &[u8], last_may_end: bool) -> Option<(u64, usize)> {
    let mut count = 0u64;
    let mut i = 0;
    // 18 digits cannot overflow a u64.
    while i < 18 {
        match digits.get(i) {
            Some(&d) if d.is_ascii_digit() => count = count * 10 + (d - b'0') as u64,
            _ => break,
        }
        i += 1;
    }
    let end = match (i, &digits[i..]) {
        (0, _) => return None,
        (_, []) if last_may_end => i,
        (_, [b'\n', ..]) => i + 1,
        (_, [b'\r', b'\n', ..]) => i + 2,
        _ => return None,
    };
    Some((count, end))
}

/// Splits `data` into pieces of about `target` bytes that end just after a newline. The
/// pieces are cut lazily, as they are asked for, so that a memory-mapped file is only touched
/// just ahead of whoever reads it.
pub fn split_chunks(data: &[u8], target: usize) -> impl Iterator<Item = Range<usize>> + '_ {
    let target = target.max(1);
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= data.len() {
            return None;
        }
        let mut end = (start + target).min(data.len());
        if end < data.len() {
            end = memchr::memchr(b'\n', &data[end..]).map_or(data.len(), |i| end + i + 1);
        }
        let chunk = start..end;
        start = end;
        Some(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8";

    #[test]
    fn line_forms() {
        let k = HashKind::Sha1;
        let e = parse_line(format!("{H}:42\r").as_bytes(), k)
            .unwrap()
            .unwrap();
        assert_eq!(e.count, 42);
        let lower = H.to_lowercase();
        let e2 = parse_line(format!("\u{feff}{lower}").as_bytes(), k)
            .unwrap()
            .unwrap();
        assert_eq!((e2.hash, e2.count), (e.hash, 1));
        assert_eq!(parse_line(b"\r", k).unwrap(), None);
        assert_eq!(parse_line(b"  \t", k).unwrap(), None);
        let big = parse_line(format!("{H}:18446744073709551615").as_bytes(), k)
            .unwrap()
            .unwrap();
        assert_eq!(big.count, u64::MAX);
    }

    #[test]
    fn line_errors() {
        let k = HashKind::Sha1;
        let e = parse_line(b"8846F7EAEE8FB117AD06BDD830B7586C:3", k).unwrap_err();
        assert_eq!(
            e,
            "expected 40 hex digits of a SHA-1 hash, found 32 characters"
        );
        assert!(parse_line(format!("{}G:1", &H[..39]).as_bytes(), k)
            .unwrap_err()
            .contains("not a hex digit"));
        assert!(parse_line(format!("{H}:").as_bytes(), k).is_err());
        assert!(parse_line(format!("{H}:-1").as_bytes(), k).is_err());
        assert!(
            parse_line(format!("{H}:18446744073709551616").as_bytes(), k)
                .unwrap_err()
                .contains("64 bits")
        );
    }

    /// Whatever the fast path accepts, `parse_line` reads the same way; and chunks mixing
    /// every accepted form parse as line-by-line `parse_line` does.
    #[test]
    fn the_fast_path_agrees_with_parse_line() {
        let k = HashKind::Sha1;
        let lower = H.to_lowercase();
        let lines = [
            format!("{H}:42\n"),
            format!("{H}:42\r\n"),
            format!("{lower}:7\n"),
            format!("{H}:0\n"),
            format!("{H}:999999999999999999\n"),
            format!("{H}:9999999999999999999\n"),
            format!("{H}:18446744073709551615\r\n"),
            format!("{H}:\n"),
            format!("{H}:12 \n"),
            format!("{H}:12\r\r\n"),
            format!("{H}:12"),
            format!("{H}\n"),
            format!("\u{feff}{H}:3\n"),
            format!(" {H}:3\n"),
            format!("{}G:1\n", &H[..39]),
            "\r\n".to_string(),
            "8846F7EAEE8FB117AD06BDD830B7586C:3\n".to_string(),
        ];
        for line in &lines {
            let bytes = line.as_bytes();
            let slow = parse_line(bytes.strip_suffix(b"\n").unwrap_or(bytes), k);
            if let Some((words, count, taken)) = official_line(bytes, k) {
                let mut hash = [0xAA; 20];
                crate::hash::store_hash_words(words, &mut hash);
                let entry = Entry { hash, count };
                assert_eq!(taken, bytes.len(), "{line:?}");
                assert_eq!(slow, Ok(Some(entry)), "{line:?}");
            }
        }
        // A chunk of all of them that parse, in every order of two.
        let good: Vec<String> = lines
            .iter()
            .filter(|l| parse_line(l.trim_end_matches('\n').as_bytes(), k).is_ok())
            .map(|l| {
                if l.ends_with('\n') {
                    l.clone()
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        for a in &good {
            for b in &good {
                let text = format!("{a}{b}");
                let mut fast = Vec::new();
                let stats = parse_chunk(text.as_bytes(), k, &mut fast).unwrap();
                let slow: Vec<Entry> = text
                    .split_inclusive('\n')
                    .filter_map(|l| parse_line(l.trim_end_matches('\n').as_bytes(), k).unwrap())
                    .collect();
                assert_eq!(fast, slow, "{text:?}");
                assert_eq!(stats.lines, text.matches('\n').count() as u64, "{text:?}");
                let sorted = slow.windows(2).all(|w| w[0].hash <= w[1].hash);
                assert_eq!(stats.sorted, sorted, "{text:?}");
            }
        }
    }

    /// Random chunks of both kinds, mixing the fast path's lines with lines only the slow
    /// path reads, sorted and not: the entries and the sorted flag agree with a model.
    #[test]
    fn chunks_of_mixed_forms_agree_with_a_model() {
        let mut rng = crate::rng::SplitMix64::new(5);
        for kind in [HashKind::Sha1, HashKind::Ntlm] {
            for round in 0..400 {
                let n = 1 + (rng.next_bits() % 12) as usize;
                let mut want: Vec<Entry> = (0..n)
                    .map(|_| {
                        let mut hash = [0u8; 20];
                        for b in &mut hash[..kind.hex_len() / 2] {
                            // Few byte values, so that hashes share words and repeat.
                            *b = [0x00, 0x7F, 0x80, 0xFF][(rng.next_bits() % 4) as usize];
                        }
                        let count = rng.next_bits() % 1000;
                        Entry { hash, count }
                    })
                    .collect();
                if round % 2 == 0 {
                    want.sort_by_key(|e| e.hash);
                }
                let mut text = String::new();
                for e in &want {
                    let hex = crate::hash::hash_to_hex(&e.hash, kind);
                    text += &match rng.next_bits() % 4 {
                        0 => format!("{hex}:{}\r\n", e.count),
                        1 => format!("{}:{}\n", hex.to_lowercase(), e.count),
                        2 => format!(" {hex}:{} \n", e.count),
                        _ => format!("\n{hex}:{}\n", e.count),
                    };
                }
                let mut got = Vec::new();
                let stats = parse_chunk(text.as_bytes(), kind, &mut got).unwrap();
                assert_eq!(got, want, "{text:?}");
                let sorted = want.windows(2).all(|w| w[0].hash <= w[1].hash);
                assert_eq!(stats.sorted, sorted, "{text:?}");
            }
        }
    }

    #[test]
    fn chunks_end_at_newlines_and_cover_everything() {
        let data = b"aaa\nbb\nc\n\ndddd";
        for target in 1..20 {
            let chunks: Vec<_> = split_chunks(data, target).collect();
            assert_eq!(chunks.first().map(|c| c.start), Some(0));
            assert_eq!(chunks.last().map(|c| c.end), Some(data.len()));
            for w in chunks.windows(2) {
                assert_eq!(w[0].end, w[1].start);
                assert_eq!(data[w[0].end - 1], b'\n');
            }
        }
        assert!(split_chunks(b"", 4).next().is_none());
    }
}
