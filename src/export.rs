//! [`export`]: every range of one or more indexes as static files, for any web server, object
//! store or CDN, with an nginx configuration that serves them as the range API does and a
//! manifest to check a copy against.
//!
//! The tree:
//! - `range/<PREFIX>` (SHA-1 passwords), `range-ntlm/<PREFIX>`, `range-login/<PREFIX>`,
//!   `range-pair/<PREFIX>`: the range body of each of the 1,048,576 prefixes, upper-case hex
//!   names without an extension, byte for byte as [`Index::write_range`] writes it (an empty
//!   file for a prefix without hashes). With gzip, a `<PREFIX>.gz` beside each (no name or time
//!   in its header, so the same index gives the same bytes).
//! - `manifest.json`: what was exported (per index: its folder, kind, key, hashes, sum of
//!   counts and checksum) and the SHA-256 of every file, by path.
//! - `nginx.conf`: a `server` block that serves the tree (see [`nginx_conf`]).
//!
//! The tree is written in a temporary folder beside `DIR` and renamed to `DIR` when complete,
//! so a half-written tree never serves.

use crate::error::{Error, Result};
use crate::hash::HashKind;
use crate::index::Index;
use crate::key::KeyType;
use crate::partition::IndexSet;
use crate::progress::BuildProgress;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// A file written: its name in its folder, SHA-256 and length.
type Written = (String, [u8; 32], u64);

/// Prefixes written per parallel batch: bounds the memory of the manifest lines in flight.
const BATCH: u32 = 1 << 14;

/// How [`export`] writes.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Write a gzip sibling of every body, for `gzip_static`.
    pub gzip: bool,
    /// Seconds of `Cache-Control: public, max-age=` in the nginx configuration.
    pub max_age: u64,
    /// The ranges of prefixes to write, in any order; overlaps are written once. A part of the
    /// tree: for a mirror split over several servers, or a trial. By default (every prefix),
    /// each index writes the prefixes it holds: all of them, or those of its partitions.
    /// Ranges asked for must be held by every index given.
    pub prefixes: Vec<std::ops::RangeInclusive<u32>>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            gzip: false,
            max_age: 2_678_400,
            prefixes: vec![0..=0xF_FFFF],
        }
    }
}

/// What [`export`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    /// Files written (bodies and gzip siblings; not the manifest and configuration).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The folder of each index in the tree, in the order given.
    pub folders: Vec<String>,
}

/// The folder of the tree that holds an index's ranges, by what the API asks with `mode=`.
pub fn folder_for(index: &IndexSet) -> &'static str {
    folder_of(&index.parts()[0])
}

/// The folder of one index (see [`folder_for`]).
pub fn folder_of(index: &Index) -> &'static str {
    match (index.key(), index.kind()) {
        (KeyType::Password, HashKind::Sha1) => "range",
        (KeyType::Password, HashKind::Ntlm) => "range-ntlm",
        (KeyType::Login, _) => "range-login",
        (KeyType::Pair, _) => "range-pair",
    }
}

/// Groups indexes by the folder of the tree they go to: one index each, or the partitions of
/// one (an error when they overlap or differ in store form).
pub fn group(indexes: Vec<Index>) -> Result<Vec<IndexSet>> {
    let mut groups: Vec<(&'static str, Vec<Index>)> = Vec::new();
    for index in indexes {
        let folder = folder_of(&index);
        match groups.iter_mut().find(|(f, _)| *f == folder) {
            Some((_, group)) => group.push(index),
            None => groups.push((folder, vec![index])),
        }
    }
    groups
        .into_iter()
        .map(|(_, group)| {
            if group.len() > 1 {
                if let Some(whole) = group.iter().find(|i| i.partition().is_whole()) {
                    return Err(Error::Invalid(format!(
                        "{}: a second index for {}/ beside {} (one index per kind and key: \
                         SHA-1 and NTLM passwords, logins, pairs, or the partitions of one)",
                        group
                            .iter()
                            .find(|i| i.path() != whole.path())
                            .unwrap_or(whole)
                            .path()
                            .display(),
                        folder_of(whole),
                        whole.path().display()
                    )));
                }
            }
            IndexSet::new(group)
        })
        .collect()
}

/// Writes the static range tree of `indexes` (full stores, one index or the partitions of one
/// per folder) at `dir`, which must not exist or be an empty folder. `cancel`, when set,
/// stops it with [`Error::Interrupted`], leaving nothing behind.
pub fn export(
    indexes: &[IndexSet],
    dir: &Path,
    options: &ExportOptions,
    progress: &dyn BuildProgress,
    cancel: Option<&AtomicBool>,
) -> Result<ExportSummary> {
    // The ranges sorted and joined where they overlap or touch.
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    let mut asked: Vec<(u32, u32)> = options
        .prefixes
        .iter()
        .map(|r| (*r.start(), *r.end()))
        .collect();
    asked.sort_unstable();
    for (first, last) in asked {
        if first > last || last > 0xF_FFFF {
            return Err(Error::Invalid(format!(
                "prefixes {first:05X}-{last:05X}: not a range of 5-hex prefixes"
            )));
        }
        match ranges.last_mut() {
            Some((_, end)) if first <= end.saturating_add(1) => *end = (*end).max(last),
            _ => ranges.push((first, last)),
        }
    }
    if ranges.is_empty() {
        return Err(Error::Invalid("no prefixes to export".into()));
    }
    if indexes.is_empty() {
        return Err(Error::Invalid("nothing to export: give an index".into()));
    }
    let every_prefix = ranges == [(0, 0xF_FFFF)];
    let mut folders: Vec<&'static str> = Vec::new();
    // The ranges each index writes.
    let mut ranges_of: Vec<Vec<(u32, u32)>> = Vec::new();
    for index in indexes {
        index.require_full_store("export")?;
        let folder = folder_for(index);
        if folders.contains(&folder) {
            return Err(Error::Invalid(format!(
                "{}: a second index for {folder}/ (one index per kind and key: SHA-1 and NTLM \
                 passwords, logins, pairs, or the partitions of one)",
                index.name()
            )));
        }
        folders.push(folder);
        let held: Vec<(u32, u32)> = index
            .coverage()
            .iter()
            .map(|r| (r.first(), r.last()))
            .collect();
        if every_prefix {
            ranges_of.push(held);
            continue;
        }
        if let Some(&(first, last)) = ranges
            .iter()
            .find(|&&(first, last)| !held.iter().any(|&(a, b)| a <= first && last <= b))
        {
            return Err(Error::Invalid(format!(
                "{}: the prefixes {first:05X}-{last:05X} asked for are not all held: the index \
                 holds {}",
                index.name(),
                shown(&held)
            )));
        }
        ranges_of.push(ranges.clone());
    }
    let count_of =
        |ranges: &[(u32, u32)]| -> u64 { ranges.iter().map(|&(a, b)| u64::from(b - a + 1)).sum() };
    let shown_ranges = shown(&ranges);
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            return Err(Error::Invalid(format!(
                "{}: exists and is not empty; export writes a new tree (export beside it and \
                 swap the two, or remove it first)",
                dir.display()
            )));
        }
    } else if dir.exists() {
        return Err(Error::Invalid(format!(
            "{}: exists and is not a folder",
            dir.display()
        )));
    }
    let name = dir
        .file_name()
        .ok_or_else(|| Error::Invalid(format!("{}: not a folder path", dir.display())))?
        .to_string_lossy()
        .into_owned();
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = parent
        .canonicalize()
        .map_err(|e| Error::io(&parent, "cannot open", e))?;
    let final_dir = parent.join(&name);
    let (temp, lock) = crate::build::locked_temp_dir(&parent, &format!("export-{name}-"))?;
    let root = temp.path().to_path_buf();

    let manifest_path = root.join("manifest.json");
    let manifest_file = std::fs::File::create(&manifest_path)
        .map_err(|e| Error::io(&manifest_path, "cannot create", e))?;
    let mut manifest = std::io::BufWriter::with_capacity(1 << 20, manifest_file);
    let mio = |e| Error::io(&manifest_path, "cannot write", e);
    write!(
        manifest,
        "{{\n  \"format\": \"leakdex-export 1\",\n  \"prefixes\": \"{shown_ranges}\",\n  \"indexes\": ["
    )
    .map_err(mio)?;
    let mut file_count = 0u64;
    for (i, ((index, folder), ranges)) in indexes.iter().zip(&folders).zip(&ranges_of).enumerate() {
        let checksums: Vec<String> = index.parts().iter().map(Index::checksum).collect();
        let files = count_of(ranges) << u32::from(options.gzip);
        file_count += files;
        write!(
            manifest,
            "{}\n    {{\"folder\": \"{folder}\", \"kind\": \"{}\", \"key\": \"{}\", \
             \"hashes\": {}, \"count_sum\": \"{}\", \"index_checksum\": \"{}\", \
             \"prefixes\": \"{}\", \"files\": {files}}}",
            if i == 0 { "" } else { "," },
            index.kind().name(),
            index.key().name(),
            index.hash_count(),
            index.count_sum(),
            checksums.join(","),
            shown(ranges),
        )
        .map_err(mio)?;
    }
    write!(
        manifest,
        "\n  ],\n  \"file_count\": {file_count},\n  \"files\": {{"
    )
    .map_err(mio)?;

    progress.phase("exporting", file_count);
    let mut files = 0u64;
    let mut bytes = 0u64;
    let mut first_file = true;
    for ((index, folder), ranges) in indexes.iter().zip(&folders).zip(&ranges_of) {
        let sub = root.join(folder);
        std::fs::create_dir(&sub).map_err(|e| Error::io(&sub, "cannot create", e))?;
        let batches = ranges.iter().flat_map(|&(first, last)| {
            (first..=last)
                .step_by(BATCH as usize)
                .map(move |start| (start, start.saturating_add(BATCH - 1).min(last)))
        });
        for (start, end) in batches {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(Error::Interrupted);
            }
            let written: Vec<Result<Vec<Written>>> = (start..=end)
                .into_par_iter()
                .map_init(
                    || (Vec::new(), Vec::new()),
                    |(body, packed), prefix| {
                        write_prefix(index, &sub, prefix, options.gzip, body, packed)
                    },
                )
                .collect();
            for result in written {
                for (file, digest, len) in result? {
                    write!(
                        manifest,
                        "{}\n    \"{folder}/{file}\": \"{}\"",
                        if first_file { "" } else { "," },
                        hex_lower(&digest)
                    )
                    .map_err(mio)?;
                    first_file = false;
                    files += 1;
                    bytes += len;
                }
            }
            progress.advance(u64::from(end - start + 1) << u32::from(options.gzip), 0);
        }
    }
    write!(manifest, "\n  }}\n}}\n").map_err(mio)?;
    manifest.flush().map_err(mio)?;
    drop(manifest);

    let conf_path = root.join("nginx.conf");
    std::fs::write(&conf_path, nginx_conf(&final_dir, options.max_age))
        .map_err(|e| Error::io(&conf_path, "cannot write", e))?;

    // Readable by all, as the web server's user must read it (a temporary folder is 0700).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(&root, "cannot set the permissions of", e))?;
    }
    // Everything on disk before the tree takes its name, then the rename and its folder.
    crate::sys::sync_file_system(&lock).map_err(|e| Error::io(&root, "cannot sync", e))?;
    let root = temp.keep();
    std::fs::rename(&root, &final_dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&root);
        Error::io(&final_dir, "cannot rename the finished tree to", e)
    })?;
    if let Ok(d) = std::fs::File::open(&parent) {
        let _ = d.sync_all();
    }
    drop(lock);
    Ok(ExportSummary {
        files,
        bytes,
        folders: folders.iter().map(|f| f.to_string()).collect(),
    })
}

/// Writes the body of `prefix` (and its gzip sibling); returns each file's name, SHA-256 and
/// length.
fn write_prefix(
    index: &IndexSet,
    sub: &Path,
    prefix: u32,
    gzip: bool,
    body: &mut Vec<u8>,
    packed: &mut Vec<u8>,
) -> Result<Vec<Written>> {
    body.clear();
    index.write_range(prefix, body)?;
    let name = format!("{prefix:05X}");
    let mut out = Vec::with_capacity(2);
    let path = sub.join(&name);
    std::fs::write(&path, &body).map_err(|e| Error::io(&path, "cannot write", e))?;
    out.push((
        name.clone(),
        Sha256::digest(&body[..]).into(),
        body.len() as u64,
    ));
    if gzip {
        packed.clear();
        let mut encoder =
            flate2::GzBuilder::new().write(std::mem::take(packed), flate2::Compression::new(9));
        encoder
            .write_all(body)
            .map_err(|e| Error::io(&path, "cannot compress", e))?;
        *packed = encoder
            .finish()
            .map_err(|e| Error::io(&path, "cannot compress", e))?;
        let gz_name = format!("{name}.gz");
        let gz_path = sub.join(&gz_name);
        std::fs::write(&gz_path, &packed).map_err(|e| Error::io(&gz_path, "cannot write", e))?;
        out.push((
            gz_name,
            Sha256::digest(&packed[..]).into(),
            packed.len() as u64,
        ));
    }
    Ok(out)
}

/// Ranges as `A-B,C`: a range of one prefix as that prefix.
fn shown(ranges: &[(u32, u32)]) -> String {
    let shown: Vec<String> = ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                format!("{a:05X}")
            } else {
                format!("{a:05X}-{b:05X}")
            }
        })
        .collect();
    shown.join(",")
}

fn hex_lower(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// An nginx `server` block that serves the tree at `root` as the range API does:
/// - `GET /range/<prefix>`, prefix in either case (each digit mapped to upper case), from
///   `range/`, or with `?mode=ntlm` (`login`, `pair`) from that folder; a mode whose folder was
///   not exported answers 404;
/// - `text/plain`, `Access-Control-Allow-Origin: *`, `Cache-Control: public, max-age=…`,
///   ETag and `Last-Modified` with 304 on `If-None-Match`/`If-Modified-Since`, and the gzip
///   sibling by `Accept-Encoding` (`gzip_static`);
/// - the API's 400 texts for prefixes of the wrong length or not hexadecimal, `Invalid API
///   query` (404) elsewhere, preflight `OPTIONS` answered, other methods 405.
///
/// What it cannot do: padding (`Add-Padding` is ignored: a padded body is random, and a
/// static file is not), and with several `mode=` arguments nginx reads only the first.
pub fn nginx_conf(root: &Path, max_age: u64) -> String {
    let root = root.display();
    let mut maps = String::new();
    for i in 1..=5 {
        maps.push_str(&format!(
            "map $leakdex_d{i} $leakdex_u{i} {{\n    default $leakdex_d{i};\n    a A; b B; c C; d D; e E; f F;\n}}\n"
        ));
    }
    format!(
        r#"# Made by `leakdex export`: serves the range tree in {root} as the Pwned Passwords
# range API does (see the README, "Mirror at scale"). Put this file in nginx's conf.d/ or
# include it inside `http {{ }}`, and set `listen` to the address to serve on. Padding
# (Add-Padding) cannot be served from static files and is ignored.

map $arg_mode $leakdex_folder {{
    default range;
    ~*^ntlm$ range-ntlm;
    ~*^login$ range-login;
    ~*^pair$ range-pair;
}}

{maps}
server {{
    listen 8080;
    root {root};
    charset off;
    default_type text/plain;
    etag on;
    gzip off;
    gzip_static on;
    gzip_vary on;
    add_header Access-Control-Allow-Origin "*" always;

    location ~* "^/range/([0-9a-f])([0-9a-f])([0-9a-f])([0-9a-f])([0-9a-f])$" {{
        # The digits first: a later regex (the method's) would replace $1 to $5.
        set $leakdex_d1 $1;
        set $leakdex_d2 $2;
        set $leakdex_d3 $3;
        set $leakdex_d4 $4;
        set $leakdex_d5 $5;
        if ($request_method = OPTIONS) {{
            add_header Access-Control-Allow-Origin "*";
            add_header Access-Control-Allow-Methods "GET";
            add_header Access-Control-Allow-Headers "Add-Padding";
            add_header Access-Control-Max-Age "86400";
            return 204;
        }}
        if ($request_method !~ ^(?:GET|HEAD)$) {{
            return 405 "The method $request_method is not allowed here; use GET, HEAD or OPTIONS.";
        }}
        add_header Access-Control-Allow-Origin "*" always;
        add_header Cache-Control "public, max-age={max_age}";
        try_files /$leakdex_folder/$leakdex_u1$leakdex_u2$leakdex_u3$leakdex_u4$leakdex_u5 =404;
    }}
    location ~ "^/range/[^/]{{5}}$" {{
        return 400 "The hash prefix was not valid hexadecimal";
    }}
    location ~ "^/range/" {{
        return 400 "The hash prefix was not in a valid format";
    }}
    # Everything else, the tree's own manifest and configuration among it.
    location / {{
        return 404 "Invalid API query";
    }}
    # A mode whose folder was not exported.
    error_page 404 @leakdex_missing;
    location @leakdex_missing {{
        return 404 "This mirror holds no range for this prefix and mode.";
    }}
}}
"#
    )
}
