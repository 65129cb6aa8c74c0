//! Dump lines in every input form: `hashes` (parse_line, the chunk parser and its fast path,
//! SHA-1 and NTLM), `passwords`, `combo` and `ulp` (parse_combo, parse_ulp, key hashing for
//! password, login and pair keys), and build's block parser over all of them; and range
//! bodies (`SUFFIX:COUNT` rows), as a build reads the files of a downloader tree
//! (`tree::parse_body`) and as `check --remote` reads a server's answers.
//!
//! Input: one byte choosing the form, hash kind, key and partition (bit 0: NTLM; bits 1-2:
//! hashes, passwords, combo, ulp; bits 3-4: password, login, pair key; bit 5: a partition;
//! bit 6: a range body instead, of a prefix the byte picks), then the block's bytes.

use leakdex::credential::{parse_combo, parse_ulp, scheme_len, Credential};
use leakdex::dump::{first_hash_field, parse_chunk, parse_line, split_chunks, Entry};
use leakdex::hash::{compare_hashes, encode_hex_into, sha1_password, HashBytes};
use leakdex::key::{hash_credential, hash_item, normalise_login};
use leakdex::{HashKind, InputFormat, KeyType, PrefixRange};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The `dump_lines` target: one input.
pub fn dump_lines(data: &[u8]) {
    let Some((&selector, block)) = data.split_first() else {
        return;
    };
    let kind = if selector & 1 == 0 {
        HashKind::Sha1
    } else {
        HashKind::Ntlm
    };
    let format = [
        InputFormat::Hashes,
        InputFormat::Passwords,
        InputFormat::Combo,
        InputFormat::Ulp,
    ][(selector >> 1 & 3) as usize];
    let key = [
        KeyType::Password,
        KeyType::Login,
        KeyType::Pair,
        KeyType::Password,
    ][(selector >> 3 & 3) as usize];
    if selector & 0x40 != 0 {
        // A prefix of every nibble value, which the byte picks.
        let prefix = (selector as u32).wrapping_mul(0x9E3B7) & 0xF_FFFF;
        range_body(block, kind, prefix);
        return;
    }
    let prefixes = if selector & 0x20 == 0 {
        PrefixRange::WHOLE
    } else {
        PrefixRange::new(0x40000, 0xBFFFF).unwrap()
    };

    match format {
        InputFormat::Hashes => hashes(block, kind),
        _ => {
            for line in block.split(|&b| b == b'\n') {
                credential_line(line);
            }
        }
    }
    if let Some(hint) = leakdex::build::plaintext_hint(block, format) {
        assert!(!hint.is_empty());
    }

    // Build's block parser, against a model made of the pieces above.
    let parsed = leakdex::fuzzing::parse_block(block, kind, key, format, prefixes);
    match format {
        InputFormat::Hashes => {
            let mut direct = Vec::new();
            let stats = parse_chunk(block, kind, &mut direct);
            match (&parsed.result, stats) {
                (Ok(a), Ok(b)) => assert_eq!((a.lines, a.sorted), (b.lines, b.sorted)),
                (Err(a), Err(b)) => assert_eq!(a.line_in_chunk, b.line_in_chunk),
                _ => panic!("build and parse_chunk disagree"),
            }
            if parsed.result.is_ok() {
                direct.retain(|e| prefixes.contains(leakdex::hash::prefix_of(&e.hash)));
                assert_eq!(parsed.entries, direct);
            }
        }
        _ => {
            let (entries, skipped) = plaintext_model(block, kind, key, format);
            let entries: Vec<Entry> = entries
                .into_iter()
                .filter(|e| prefixes.contains(leakdex::hash::prefix_of(&e.hash)))
                .collect();
            assert_eq!(
                parsed.entries, entries,
                "block entries differ from the model"
            );
            assert_eq!(parsed.skipped, skipped);
            assert!(parsed.skipped_examples.len() as u64 <= skipped);
        }
    }
}

/// A dump of hashes: parse_line on every line, the chunk parser against it, and chunks cut
/// anywhere against the whole.
fn hashes(block: &[u8], kind: HashKind) {
    let mut expected = Vec::new();
    let mut first_error = None;
    let mut lines = 0u64;
    for (i, line) in block.split_inclusive(|&b| b == b'\n').enumerate() {
        lines += 1;
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        match parse_line(line, kind) {
            Ok(Some(entry)) => {
                check_hash_line(line, kind, &entry);
                if first_error.is_none() {
                    expected.push(entry);
                }
            }
            Ok(None) => assert!(trim(line).is_empty(), "a line with content read as blank"),
            Err(message) => {
                assert!(!message.is_empty());
                first_error.get_or_insert(i as u64);
            }
        }
    }
    let mut entries = Vec::new();
    match parse_chunk(block, kind, &mut entries) {
        Ok(stats) => {
            assert_eq!(first_error, None, "parse_chunk accepted a bad line");
            assert_eq!(stats.lines, lines);
            assert_eq!(entries, expected, "parse_chunk and parse_line disagree");
            let sorted = entries
                .windows(2)
                .all(|w| compare_hashes(&w[0].hash, &w[1].hash).is_le());
            assert_eq!(stats.sorted, sorted);
            for w in entries.windows(2) {
                assert_eq!(
                    compare_hashes(&w[0].hash, &w[1].hash),
                    w[0].hash.cmp(&w[1].hash)
                );
            }
        }
        Err(e) => {
            assert_eq!(Some(e.line_in_chunk), first_error, "wrong line blamed");
            assert_eq!(entries, expected, "entries before the bad line");
        }
    }
    // Chunks cut near any size cover the block and parse as the whole does.
    let target = block.first().map_or(1, |&b| b as usize + 1);
    let mut pieces = Vec::new();
    let mut end = 0;
    let mut ok = true;
    for range in split_chunks(block, target) {
        assert_eq!(range.start, end);
        end = range.end;
        assert!(range.end == block.len() || block[range.end - 1] == b'\n');
        ok &= parse_chunk(&block[range], kind, &mut pieces).is_ok();
    }
    assert_eq!(end, block.len());
    if ok && first_error.is_none() {
        assert_eq!(pieces, expected);
    }
    if let Some((line, hex)) = first_hash_field(block) {
        assert!(line >= 1 && line <= lines.max(1));
        let start = hex.as_ptr() as usize - block.as_ptr() as usize;
        assert!(start + hex.len() <= block.len());
    }
    let _ = leakdex::hash::parse_hash_item(block, kind)
        .map(|h| assert_eq!(h[kind.byte_len()..], [0u8; 20][kind.byte_len()..]));
}

/// The line without byte-order marks and blanks at its start, blanks and line ends at its end
/// (the rule of `leakdex::dump`), written independently.
fn trim(mut line: &[u8]) -> &[u8] {
    while let Some(rest) = line.strip_prefix(BOM) {
        line = rest;
    }
    while let [b' ' | b'\t', rest @ ..] = line {
        line = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = line {
        line = rest;
    }
    line
}

/// A parsed hash line re-encodes to its hex (up to case) and its count.
fn check_hash_line(line: &[u8], kind: HashKind, entry: &Entry) {
    let line = trim(line);
    let (hex, count) = match line.iter().position(|&b| b == b':') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    let mut encoded = Vec::new();
    encode_hex_into(&entry.hash[..kind.byte_len()], &mut encoded);
    assert!(encoded.eq_ignore_ascii_case(hex), "hash does not re-encode");
    assert!(entry.hash[kind.byte_len()..].iter().all(|&b| b == 0));
    match count {
        None => assert_eq!(entry.count, 1),
        Some(digits) => {
            let text = std::str::from_utf8(digits).expect("digits are ASCII");
            assert!(!text.starts_with('+'));
            assert_eq!(text.parse::<u64>(), Ok(entry.count));
        }
    }
}

/// Whether `part` lies inside `line`; returns its start.
fn start_in(line: &[u8], part: &[u8]) -> usize {
    let start = (part.as_ptr() as usize).wrapping_sub(line.as_ptr() as usize);
    assert!(
        start <= line.len() && start + part.len() <= line.len(),
        "not a slice of the line"
    );
    start
}

/// One credential line through parse_ulp and parse_combo, and every key's hash of it.
fn credential_line(line: &[u8]) {
    let separator = |b: u8| matches!(b, b':' | b'|' | b' ' | b'\t');
    if let Ok(c) = parse_ulp(line) {
        assert!(!c.login.is_empty() && !c.password.is_empty(), "empty field");
        assert!(
            !c.login.iter().all(|&b| separator(b)),
            "a login of separators"
        );
        let login_at = start_in(line, c.login);
        let password_at = start_in(line, c.password);
        assert_eq!(
            password_at + c.password.len(),
            line.len(),
            "password runs to the end"
        );
        match c.url {
            Some(url) => {
                assert_eq!(start_in(line, url), 0);
                let sep = line[url.len()];
                assert!(separator(sep));
                assert_eq!(login_at, url.len() + 1);
                assert_eq!(
                    line[login_at + c.login.len()],
                    sep,
                    "not the same separator"
                );
                assert_eq!(password_at, login_at + c.login.len() + 1);
                assert!(!c.login.contains(&sep), "the login holds its separator");
            }
            None => {
                assert!(scheme_len(line).is_none());
                assert_eq!(login_at, 0);
                assert_eq!(line[c.login.len()], b':');
                assert!(!c.login.contains(&b':'));
                assert_eq!(password_at, c.login.len() + 1);
            }
        }
        hash_keys(&c);
    }
    match parse_combo(line) {
        Ok(c) => {
            assert!(scheme_len(line).is_none());
            assert_eq!(c.url, None);
            assert_eq!(start_in(line, c.login), 0);
            assert_eq!(line[c.login.len()], b':');
            assert!(!c.login.contains(&b':'));
            assert_eq!(start_in(line, c.password), c.login.len() + 1);
            assert_eq!(c.login.len() + 1 + c.password.len(), line.len());
            hash_keys(&c);
        }
        Err(_) => assert!(scheme_len(line).is_some() || !line.contains(&b':')),
    }
}

/// Every key's hash of a credential, against hashes made here from their definitions.
fn hash_keys(c: &Credential<'_>) {
    let mut scratch = Vec::new();
    for kind in [HashKind::Sha1, HashKind::Ntlm] {
        for key in [KeyType::Password, KeyType::Login, KeyType::Pair] {
            let got = hash_credential(key, kind, c.login, c.password, &mut scratch);
            let login_empty = c.login.trim_ascii().is_empty();
            let expected: Option<HashBytes> = match key {
                KeyType::Password => kind.hash_password(c.password),
                _ if login_empty => None,
                KeyType::Login => Some(sha1_password(&normalise_login(c.login))),
                KeyType::Pair if c.password.is_empty() => None,
                KeyType::Pair => {
                    let mut text = normalise_login(c.login);
                    text.push(b':');
                    text.extend_from_slice(c.password);
                    Some(sha1_password(&text))
                }
            };
            assert_eq!(got.ok(), expected, "{key} {kind}");
        }
        // `check` reads `LOGIN:PASSWORD` items split at the first `:`, as combo does.
        let mut item = c.login.to_vec();
        item.push(b':');
        item.extend_from_slice(c.password);
        if !c.login.contains(&b':') {
            assert_eq!(
                hash_item(KeyType::Pair, kind, &item, &mut scratch).ok(),
                hash_credential(KeyType::Pair, kind, c.login, c.password, &mut scratch).ok()
            );
        }
        assert_eq!(
            hash_item(KeyType::Login, kind, c.login, &mut scratch).ok(),
            hash_credential(KeyType::Login, kind, c.login, b"", &mut scratch).ok()
        );
    }
    let normal = normalise_login(c.login);
    assert!(
        normal.len() <= 3 * c.login.len(),
        "normalising grew the login beyond reason"
    );
}

/// What build should make of a plaintext block: each line's hash (line ends, a `\r` and,
/// except for passwords, byte-order marks stripped; blank lines skipped), sorted by hash with
/// repeats summed; and how many lines were left out.
fn plaintext_model(
    block: &[u8],
    kind: HashKind,
    key: KeyType,
    format: InputFormat,
) -> (Vec<Entry>, u64) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut skipped = 0;
    let mut scratch = Vec::new();
    let mut rest = block;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = next;
        let mut line = line.strip_suffix(b"\r").unwrap_or(line);
        if format != InputFormat::Passwords {
            while let Some(r) = line.strip_prefix(BOM) {
                line = r;
            }
        }
        if line.is_empty() {
            continue;
        }
        let credential = match format {
            InputFormat::Ulp => parse_ulp(line),
            InputFormat::Combo => parse_combo(line),
            _ => Ok(Credential {
                url: None,
                login: b"",
                password: line,
            }),
        };
        match credential.and_then(|c| hash_credential(key, kind, c.login, c.password, &mut scratch))
        {
            Ok(hash) => entries.push(Entry { hash, count: 1 }),
            Err(_) => skipped += 1,
        }
    }
    entries.sort_by_key(|e| e.hash);
    let mut summed: Vec<Entry> = Vec::new();
    for e in entries {
        match summed.last_mut() {
            Some(last) if last.hash == e.hash => last.count += e.count,
            _ => summed.push(e),
        }
    }
    (summed, skipped)
}

/// What a range body's line is to the model: blank, a row, or malformed.
enum Row {
    Blank,
    Entry(Entry),
    Bad,
}

/// One line of a range body of `prefix`, written from the format's definition: after the
/// line end, byte-order marks and blanks at either end, nothing (blank), or the suffix in hex
/// of either case, `:`, and a decimal count that fits 64 bits.
fn body_row(line: &[u8], kind: HashKind, prefix: u32) -> Row {
    let line = trim(line);
    if line.is_empty() {
        return Row::Blank;
    }
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Row::Bad;
    };
    let (suffix, digits) = (&line[..colon], &line[colon + 1..]);
    if suffix.len() != kind.suffix_hex_len() || !suffix.iter().all(u8::is_ascii_hexdigit) {
        return Row::Bad;
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Row::Bad;
    }
    let Ok(count) = std::str::from_utf8(digits).unwrap().parse::<u64>() else {
        return Row::Bad;
    };
    let mut hex = format!("{prefix:05X}").into_bytes();
    hex.extend_from_slice(suffix);
    let hash = leakdex::hash::decode_hex(&hex).expect("hex digits");
    Row::Entry(Entry { hash, count })
}

/// A range body: `tree::parse_body` against the model above (entries, blank and padding
/// lines, the line blamed), then the reading of `check --remote` against both: it takes a
/// stricter form (no blanks or byte-order marks inside a line, at most 20 digits), reads what
/// it takes as a build reads it, and never repeats a row of the body in its errors.
fn range_body(body: &[u8], kind: HashKind, prefix: u32) {
    let mut model = Vec::new();
    let mut padding = 0u64;
    let mut lines = 0u64;
    let mut bad = None;
    // The form `check --remote` takes (a byte-order mark at the start of the body only).
    let mut strict = true;
    let unmarked = body.strip_prefix(BOM).unwrap_or(body);
    for (i, line) in body.split_inclusive(|&b| b == b'\n').enumerate() {
        lines += 1;
        match body_row(line, kind, prefix) {
            Row::Blank => {}
            Row::Entry(e) if e.count == 0 => padding += 1,
            Row::Entry(e) => model.push(e),
            Row::Bad => {
                bad = Some(i as u64);
                break;
            }
        }
    }
    for line in unmarked.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let len = kind.suffix_hex_len();
        strict &= line.is_empty()
            || (line.len() > len + 1
                && line.len() <= len + 21
                && line[len] == b':'
                && line[..len].iter().all(u8::is_ascii_hexdigit)
                && line[len + 1..].iter().all(u8::is_ascii_digit));
    }

    // A build's reading. Entries already in `out` stay as they are.
    let marker = Entry {
        hash: [0xAB; 20],
        count: 7,
    };
    let mut out = vec![marker];
    let result = leakdex::fuzzing::parse_body(prefix, body, kind, &mut out);
    assert_eq!(out[0], marker, "an entry before the body's changed");
    match (&result, bad) {
        (Ok(stats), None) => {
            assert_eq!(stats.lines, lines, "lines");
            assert_eq!(stats.padding, padding, "padding rows");
            let got = &out[1..];
            assert!(
                got.windows(2)
                    .all(|w| compare_hashes(&w[0].hash, &w[1].hash).is_le()),
                "entries out of order"
            );
            for e in got {
                assert_eq!(leakdex::hash::prefix_of(&e.hash), prefix);
                assert!(e.hash[kind.byte_len()..].iter().all(|&b| b == 0));
            }
            let mut got = got.to_vec();
            got.sort_by_key(|e| (e.hash, e.count));
            model.sort_by_key(|e| (e.hash, e.count));
            assert_eq!(got, model, "the body's entries");
        }
        (Err(e), Some(line)) => {
            assert_eq!(e.line_in_chunk, line, "the line blamed");
            assert!(!e.message.is_empty());
        }
        (Ok(_), Some(line)) => panic!("a malformed line {line} taken"),
        (Err(e), None) => panic!(
            "a valid body refused at line {}: {}",
            e.line_in_chunk, e.message
        ),
    }

    // `check --remote`'s reading, asked for the suffixes of the body's rows and a few more.
    let hex_len = kind.suffix_hex_len();
    let mut suffixes: Vec<Vec<u8>> = model
        .iter()
        .map(|e| {
            let mut hex = Vec::new();
            encode_hex_into(&e.hash[..kind.byte_len()], &mut hex);
            hex[5..].to_vec()
        })
        .collect();
    suffixes.push(vec![b'0'; hex_len]);
    suffixes.push(vec![b'F'; hex_len]);
    match leakdex::fuzzing::remote_body_counts(kind, body, &suffixes) {
        Ok(counts) => {
            assert!(
                result.is_ok(),
                "check --remote takes a body a build refuses"
            );
            // Each suffix's count: the last row of it, as check --remote takes a repeat (a
            // build sums them; the API never repeats a suffix).
            for (suffix, count) in suffixes.iter().zip(&counts) {
                let mut last = None;
                for e in &model {
                    let mut hex = Vec::new();
                    encode_hex_into(&e.hash[..kind.byte_len()], &mut hex);
                    if hex[5..] == suffix[..] {
                        last = Some(e.count);
                    }
                }
                let repeated = model
                    .iter()
                    .filter(|e| {
                        let mut hex = Vec::new();
                        encode_hex_into(&e.hash[..kind.byte_len()], &mut hex);
                        hex[5..] == suffix[..]
                    })
                    .count()
                    > 1;
                if !repeated {
                    assert_eq!(*count, last, "check --remote's count of a suffix");
                } else {
                    assert!(count.is_some());
                }
            }
        }
        Err(message) => {
            assert!(
                !strict || result.is_err(),
                "check --remote refuses a body in its form: {message}"
            );
            // The message never repeats the body's rows: no run of 6 hex digits of the body.
            for w in body.windows(6) {
                if w.iter().all(u8::is_ascii_hexdigit) {
                    assert!(
                        !message
                            .as_bytes()
                            .windows(6)
                            .any(|m| m.eq_ignore_ascii_case(w)),
                        "an error repeats the body: {message}"
                    );
                }
            }
        }
    }
}
