//! Downloader trees: a folder of range bodies, one file per 5-hex prefix, read as the input of a
//! build (`leakdex build DIR -o INDEX`, or [`crate::build_index`] with a folder's path).
//!
//! # Layouts
//!
//! Three layouts are read (see `protocol.md`), and they are one reader: a tree is a folder
//! whose files, at any depth, are each the range body of the prefix in its name.
//!
//! - The official PwnedPasswordsDownloader's per-prefix files (`-s false`): `DIR/<PREFIX>.txt`.
//! - The `hibp-downloader` (PyPI) tree: `DATA/sha1/<aa>/<bb>/<prefix>.gz` (gzip of the body),
//!   `DATA/ntlm/...` for NTLM, with a `.meta` JSON file beside each (ignored).
//! - A `leakdex export` tree: `DIR/range/<PREFIX>` (no extension; `range-ntlm/` for NTLM). The
//!   `<PREFIX>.gz` that `export --gzip` writes beside each body is a compressed copy for nginx's
//!   `gzip_static` and is not read.
//!
//! A file name is a prefix of 5 hex digits in either case, alone or followed by `.txt` or
//! `.gz` (either case). Files whose name ends in `.meta` are left alone. Any other file is an
//! error that names it, and so are two files for one prefix (`5BAA6.txt` and `5baa6.txt`, or
//! `5BAA6.txt` and `5BAA6.gz`), except the export's `<PREFIX>` and `<PREFIX>.gz` pair. The
//! contents decide compression, not the extension: gzip and zstd are recognised by their first
//! bytes, as for dumps.
//!
//! # Data folders and hash kinds
//!
//! A folder that holds a `sha1` or `ntlm` folder (`hibp-downloader`'s data path), or a `range`
//! or `range-ntlm` folder (an export), is a *data folder*: the tree of the kind asked with
//! `--kind` is read, or the only one there; with trees of both kinds and no `--kind`, the build
//! stops and asks for one. Nothing else in a data folder is looked at.
//!
//! The hash kind comes from the tree's folder (`sha1`, `ntlm`, or the data folder's choice),
//! else from `--kind`, else from the length of the first suffix: 35 hex digits for SHA-1, 27
//! for NTLM. The folder and `--kind` must agree. Every line must then have a suffix of that
//! length. `range-login` and `range-pair` trees (an export of a login or pair index) are
//! refused: read as passwords, they would index logins as passwords.
//!
//! # Prefixes
//!
//! A tree must hold every prefix of the build: all 1,048,576 by default, or those of
//! `--prefixes FIRST-LAST` ([`crate::BuildOptions::prefixes`]), in which case the files of
//! other prefixes are not read (their names must still be prefix names). The folder is listed,
//! and missing prefixes reported, before any file is read: a download cut short fails at once,
//! with the range the tree holds and the `--prefixes` that would index it.
//!
//! # Bodies
//!
//! Each file holds `SUFFIX:COUNT` lines: the suffix in hex of either case, CRLF or LF, a UTF-8
//! byte-order mark where a line starts, blank lines, a trailing line end or not. A line in any
//! other form (no count, a suffix of the wrong length, a character that is not hex, a count
//! that is not a whole number) is an error naming the file and the line (of the decompressed
//! body). Rows with count 0 are the API's padding (random suffixes that clients drop): a tree
//! stored by a downloader that asked for padding holds them. They are left out and counted
//! ([`crate::BuildSummary::padding_rows`]). A body out of order is sorted and repeated suffixes
//! are summed; a file is one prefix, so the tree, read in prefix order, streams into the index
//! writer sorted, without temporary files.

use crate::dump::{parse_count, trim_line, ChunkError, Entry};
use crate::error::{Error, Result};
use crate::hash::{decode_hex, HashKind};
use crate::partition::PrefixRange;
use rayon::prelude::*;
use std::collections::HashSet;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a file name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ext {
    /// `<PREFIX>`, as `leakdex export` names its bodies.
    None,
    /// `<PREFIX>.txt`, as PwnedPasswordsDownloader does.
    Txt,
    /// `<PREFIX>.gz`, as hibp-downloader does.
    Gz,
}

/// The longest file name of a prefix: `5BAA6.txt`.
const NAME_MAX: usize = 9;

/// Files whose size is looked at to estimate the size of a tree.
const SIZE_SAMPLE: usize = 1024;

/// One file of a tree.
#[derive(Clone, Debug)]
struct PrefixFile {
    prefix: u32,
    /// Index into [`Tree::dirs`].
    dir: u32,
    name: [u8; NAME_MAX],
    name_len: u8,
    ext: Ext,
}

impl PrefixFile {
    /// The file's name: ASCII (a prefix and an extension), as listed.
    fn name(&self) -> &Path {
        Path::new(std::ffi::OsStr::from_bytes(
            &self.name[..self.name_len as usize],
        ))
    }
}

/// A downloader tree, listed: its files in prefix order, one per prefix of the build's range.
/// See the [module documentation](self) for the layouts.
#[derive(Debug)]
pub struct Tree {
    /// What the index's sources call it.
    name: String,
    /// The kind its folder names.
    kind: Option<HashKind>,
    dirs: Vec<PathBuf>,
    files: Vec<PrefixFile>,
    /// Bytes of the files, estimated from a sample of their sizes.
    estimated_bytes: u64,
    /// Of those, bytes of gzip files.
    estimated_gzip_bytes: u64,
    outside: u64,
}

/// A file read and parsed.
#[derive(Debug, Default)]
pub struct Body {
    /// Its entries (full hashes: the prefix and each suffix), sorted by hash.
    pub entries: Vec<Entry>,
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Bytes of the file as stored (compressed, for gzip).
    pub bytes: u64,
    /// The file's modification time, in seconds since 1970 (0 if unknown).
    pub modified: u64,
    /// Rows with count 0 (padding), left out of `entries`.
    pub padding: u64,
}

/// What parsing a body found besides its entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BodyStats {
    /// Lines read, blank ones included.
    pub lines: u64,
    /// Rows with count 0, left out.
    pub padding: u64,
}

impl Tree {
    /// Lists the tree at `dir` for a build of `prefixes`: resolves a data folder (by `kind`
    /// where it holds both kinds), checks every file name, and refuses a tree that misses a
    /// prefix of `prefixes` or holds two files for one. Reads no file, and looks at the size
    /// of a sample of them only: in a folder of a million files, looking a name up costs more
    /// than reading a small file, so each is looked up once, when it is read.
    pub fn open(dir: &Path, kind: Option<HashKind>, prefixes: PrefixRange) -> Result<Tree> {
        let (root, tree_kind, name) = resolve(dir, kind)?;
        let walker = Walker {
            dirs: Mutex::new(Vec::new()),
            seen: Mutex::new(HashSet::new()),
        };
        let mut found = walker.walk(&root)?;
        let dirs = walker.dirs.into_inner().unwrap_or_else(|e| e.into_inner());
        if found.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: a folder, read as a downloader tree, but it holds no range files: a tree \
                 holds one file per 5-hex prefix, named `<PREFIX>.txt` (PwnedPasswordsDownloader \
                 -s false), `sha1/<aa>/<bb>/<prefix>.gz` or `ntlm/...` (hibp-downloader), or \
                 `<PREFIX>` (leakdex export)",
                dir.display()
            )));
        }
        found.sort_unstable_by(|a, b| {
            (a.prefix, a.ext, a.dir, a.name()).cmp(&(b.prefix, b.ext, b.dir, b.name()))
        });
        let span = (found[0].prefix, found[found.len() - 1].prefix);
        let before = found.len();
        found.retain(|f| prefixes.contains(f.prefix));
        let outside = (before - found.len()) as u64;
        // One file per prefix; `<PREFIX>` and its `<PREFIX>.gz` (an export with --gzip) are
        // one body, of which the plain one is read.
        let mut files: Vec<PrefixFile> = Vec::with_capacity(found.len());
        for f in found {
            if let Some(last) = files.last() {
                if last.prefix == f.prefix {
                    let copy = last.ext == Ext::None
                        && f.ext == Ext::Gz
                        && last.dir == f.dir
                        && f.name[..5] == last.name[..5];
                    if copy {
                        continue;
                    }
                    let path = |p: &PrefixFile| dirs[p.dir as usize].join(p.name());
                    return Err(Error::Invalid(format!(
                        "{} and {}: two files for the prefix {:05X}; a tree holds one file per \
                         prefix (names are read in either case). Remove one",
                        path(last).display(),
                        path(&f).display(),
                        f.prefix
                    )));
                }
            }
            files.push(f);
        }
        if files.len() as u64 != prefixes.len() as u64 {
            return Err(missing(dir, &files, prefixes, span));
        }
        // The size of the whole, for progress and free-space checks, from a sample of files
        // spread over the tree (every file, up to the sample's size).
        let step = files.len().div_ceil(SIZE_SAMPLE).max(1);
        let sampled: Vec<(u64, bool)> = files
            .par_iter()
            .step_by(step)
            .map(|f| {
                let path = dirs[f.dir as usize].join(f.name());
                let size = std::fs::metadata(&path).map_or(0, |m| m.len());
                (size, f.ext == Ext::Gz)
            })
            .collect();
        let scale = |bytes: u64| -> u64 {
            (bytes as u128 * files.len() as u128 / sampled.len().max(1) as u128) as u64
        };
        let estimated_bytes = scale(sampled.iter().map(|s| s.0).sum());
        let estimated_gzip_bytes = scale(sampled.iter().filter(|s| s.1).map(|s| s.0).sum());
        Ok(Tree {
            name,
            kind: tree_kind,
            dirs,
            files,
            estimated_bytes,
            estimated_gzip_bytes,
            outside,
        })
    }

    /// The tree's name in an index's sources: the folder's name (`data/sha1` for the `sha1`
    /// tree of a data folder `data`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hash kind its folder names (`sha1`, `ntlm`, or a data folder's tree), if any.
    pub fn kind(&self) -> Option<HashKind> {
        self.kind
    }

    /// Number of files to read (one per prefix of the prefixes it is read for).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Files of the tree outside [`Tree::prefixes`], not read.
    pub fn outside(&self) -> u64 {
        self.outside
    }

    /// Bytes of the files to read, as stored (compressed ones compressed), estimated from the
    /// sizes of a sample of them (exact for a tree of up to 1,024 files to read).
    pub fn estimated_bytes(&self) -> u64 {
        self.estimated_bytes
    }

    /// Bytes of text the files hold, at most about, from [`Tree::estimated_bytes`]: for
    /// free-space estimates. (A gzip body of hex suffixes is about half its text.)
    pub fn estimated_text_bytes(&self) -> u64 {
        self.estimated_bytes + 2 * self.estimated_gzip_bytes
    }

    /// The prefix and path of file `i` (in prefix order).
    pub fn file(&self, i: usize) -> (u32, PathBuf) {
        let f = &self.files[i];
        (f.prefix, self.dirs[f.dir as usize].join(f.name()))
    }

    /// Reads file `i`: decompresses it where it is compressed, and parses its body as hashes of
    /// `kind`. A malformed line is an [`Error::Parse`] naming the file and the line.
    pub fn read(&self, i: usize, kind: HashKind) -> Result<Body> {
        let (prefix, path) = self.file(i);
        let (text, stored) = read_text(&path)?;
        let mut entries = Vec::with_capacity(text.len() / (kind.hex_len() - 2) + 1);
        let stats = parse_body(prefix, &text, kind, &mut entries).map_err(|e| Error::Parse {
            path: path.clone(),
            line: e.line_in_chunk + 1,
            message: e.message,
        })?;
        Ok(Body {
            entries,
            lines: stats.lines,
            bytes: stored.bytes,
            modified: stored.modified,
            padding: stats.padding,
        })
    }

    /// The kind named by the length of the first suffix in the tree (reading files in prefix
    /// order until one holds a line); `None` when every file is blank.
    pub fn detect_kind(&self) -> Result<Option<HashKind>> {
        for i in 0..self.files.len() {
            let (_, path) = self.file(i);
            let (text, _) = read_text(&path)?;
            for (n, line) in text.split(|&b| b == b'\n').enumerate() {
                let Some(line) = trim_line(line) else {
                    continue;
                };
                let suffix = match memchr::memchr(b':', line) {
                    Some(colon) => &line[..colon],
                    None => line,
                };
                return match suffix.len() {
                    35 => Ok(Some(HashKind::Sha1)),
                    27 => Ok(Some(HashKind::Ntlm)),
                    len => Err(Error::Parse {
                        path,
                        line: n as u64 + 1,
                        message: format!(
                            "expected `SUFFIX:COUNT` with a suffix of 35 hex digits (SHA-1) or \
                             27 (NTLM), found {len} characters before the `:`{}",
                            whole_hash_hint(len)
                        ),
                    }),
                };
            }
        }
        Ok(None)
    }
}

/// For a suffix field of a whole hash's length: what the file probably is.
fn whole_hash_hint(len: usize) -> &'static str {
    if len == 40 || len == 32 {
        " (a whole hash: a range body holds suffixes, its file name the prefix; give a dump of \
         whole hashes as a file, not in a folder)"
    } else {
        ""
    }
}

/// The other hash kind.
fn other_kind(kind: HashKind) -> HashKind {
    match kind {
        HashKind::Sha1 => HashKind::Ntlm,
        HashKind::Ntlm => HashKind::Sha1,
    }
}

/// The kind's name with its article: "a SHA-1", "an NTLM".
fn a_kind(kind: HashKind) -> &'static str {
    match kind {
        HashKind::Sha1 => "a SHA-1",
        HashKind::Ntlm => "an NTLM",
    }
}

/// The folder to read, the kind its name gives, and the tree's name for the sources.
fn resolve(dir: &Path, kind: Option<HashKind>) -> Result<(PathBuf, Option<HashKind>, String)> {
    // `.` and `..` have no name of their own: take the real one.
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .or_else(|| {
            std::fs::canonicalize(dir)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        })
        .unwrap_or_else(|| dir.display().to_string());
    let lower = name.to_ascii_lowercase();
    if lower == "range-login" || lower == "range-pair" {
        return Err(Error::Invalid(format!(
            "{}: a leakdex export of a {} index: its hashes are not passwords, and a tree is read \
             as passwords. Build the index from the credential lines (--input ulp --key {})",
            dir.display(),
            &lower[6..],
            &lower[6..]
        )));
    }
    // A data folder holds trees by kind: hibp-downloader's `sha1` and `ntlm`, an export's
    // `range` and `range-ntlm`.
    let present = |names: &[&str]| -> Vec<&'static str> {
        names
            .iter()
            .filter(|n| dir.join(n).is_dir())
            .map(|n| match *n {
                "sha1" => "sha1",
                "ntlm" => "ntlm",
                "range" => "range",
                _ => "range-ntlm",
            })
            .collect()
    };
    let sha1 = present(&["sha1", "range"]);
    let ntlm = present(&["ntlm", "range-ntlm"]);
    if !sha1.is_empty() || !ntlm.is_empty() {
        let (chosen, k) = match kind {
            Some(HashKind::Sha1) => (sha1, HashKind::Sha1),
            Some(HashKind::Ntlm) => (ntlm, HashKind::Ntlm),
            None if !sha1.is_empty() && !ntlm.is_empty() => {
                return Err(Error::Invalid(format!(
                    "{}: holds a tree of each hash kind ({}/ and {}/); choose one with --kind \
                     sha1 or --kind ntlm",
                    dir.display(),
                    sha1[0],
                    ntlm[0]
                )))
            }
            None if sha1.is_empty() => (ntlm, HashKind::Ntlm),
            None => (sha1, HashKind::Sha1),
        };
        let other = |k: HashKind| match k {
            HashKind::Sha1 => "sha1/ or range/",
            HashKind::Ntlm => "ntlm/ or range-ntlm/",
        };
        match chosen.as_slice() {
            [] => Err(Error::Invalid(format!(
                "{}: holds no {} tree ({}), only {} ones; leave out --kind {} or give another \
                 folder",
                dir.display(),
                k.display_name(),
                other(k),
                other_kind(k).display_name(),
                k.name()
            ))),
            [one] => Ok((dir.join(one), Some(k), format!("{name}/{one}"))),
            [a, b, ..] => Err(Error::Invalid(format!(
                "{}: holds two {} trees, {a}/ and {b}/; give the path of the one to read",
                dir.display(),
                k.display_name()
            ))),
        }
    } else {
        let named = match lower.as_str() {
            "sha1" => Some(HashKind::Sha1),
            "ntlm" => Some(HashKind::Ntlm),
            _ => None,
        };
        if let (Some(n), Some(k)) = (named, kind) {
            if n != k {
                return Err(Error::Invalid(format!(
                    "{}: a tree of {} hashes (its folder is named {name}), but --kind {} was given",
                    dir.display(),
                    n.display_name(),
                    k.name()
                )));
            }
        }
        Ok((dir.to_path_buf(), named, name))
    }
}

/// Lists a tree's files, on all cores, folder by folder.
struct Walker {
    dirs: Mutex<Vec<PathBuf>>,
    /// Folders listed, by device and inode: a link back up is not followed twice.
    seen: Mutex<HashSet<(u64, u64)>>,
}

impl Walker {
    fn walk(&self, dir: &Path) -> Result<Vec<PrefixFile>> {
        let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, "cannot open", e))?;
        if let Some(id) = crate::build::identity_of(&meta) {
            if !self
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id)
            {
                return Ok(Vec::new());
            }
        }
        let id = {
            let mut dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
            dirs.push(dir.to_path_buf());
            (dirs.len() - 1) as u32
        };
        let mut files = Vec::new();
        let mut subdirs = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot list", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, "cannot list", e))?;
            let path = entry.path();
            let mut file_type = entry
                .file_type()
                .map_err(|e| Error::io(&path, "cannot read", e))?;
            if file_type.is_symlink() {
                file_type = std::fs::metadata(&path)
                    .map_err(|e| Error::io(&path, "cannot follow the link", e))?
                    .file_type();
            }
            if file_type.is_dir() {
                subdirs.push(path);
                continue;
            }
            let name = entry.file_name();
            match classify(name.as_encoded_bytes()) {
                Name::Prefix(prefix, ext) => {
                    let bytes = name.as_encoded_bytes();
                    let mut stored = [0u8; NAME_MAX];
                    stored[..bytes.len()].copy_from_slice(bytes);
                    files.push(PrefixFile {
                        prefix,
                        dir: id,
                        name: stored,
                        name_len: bytes.len() as u8,
                        ext,
                    });
                }
                Name::Meta => {}
                Name::Brotli => {
                    return Err(Error::Invalid(format!(
                        "{}: a brotli-compressed body, which is not read; download with gzip \
                         (hibp-downloader's default) or uncompressed",
                        path.display()
                    )))
                }
                Name::Other => {
                    return Err(Error::Invalid(format!(
                        "{}: not a range file of a downloader tree: its name is not a 5-hex \
                         prefix (`5BAA6`, `5BAA6.txt`, `5baa6.gz`). Move it out of the tree \
                         (files ending in .meta are left alone)",
                        path.display()
                    )))
                }
            }
        }
        let nested: Vec<Result<Vec<PrefixFile>>> =
            subdirs.par_iter().map(|d| self.walk(d)).collect();
        for n in nested {
            files.extend(n?);
        }
        Ok(files)
    }
}

enum Name {
    Prefix(u32, Ext),
    Meta,
    Brotli,
    Other,
}

fn classify(name: &[u8]) -> Name {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(b".meta") {
        return Name::Meta;
    }
    let Ok(prefix) = crate::hash::parse_prefix(name.get(..5).unwrap_or(name)) else {
        return Name::Other;
    };
    match &lower[5..] {
        b"" => Name::Prefix(prefix, Ext::None),
        b".txt" => Name::Prefix(prefix, Ext::Txt),
        b".gz" => Name::Prefix(prefix, Ext::Gz),
        b".br" => Name::Brotli,
        _ => Name::Other,
    }
}

/// The error for a tree that lacks prefixes of the build: what it holds, what is missing, and
/// the `--prefixes` that would index it.
fn missing(dir: &Path, files: &[PrefixFile], prefixes: PrefixRange, span: (u32, u32)) -> Error {
    let held: Vec<u32> = files.iter().map(|f| f.prefix).collect();
    let mut absent = Vec::new();
    let mut next = prefixes.first();
    let mut absent_count = 0u64;
    let end = prefixes.last() + 1;
    for &p in held.iter().chain(std::iter::once(&end)) {
        while next < p {
            if absent.len() < 5 {
                absent.push(next);
            }
            absent_count += 1;
            next += 1;
        }
        next = p + 1;
    }
    let list = |n: usize| -> String {
        let shown: Vec<String> = absent.iter().take(n).map(|p| format!("{p:05X}")).collect();
        let more = absent_count - shown.len() as u64;
        if more > 0 {
            format!("{} and {} more", shown.join(", "), grouped(more))
        } else {
            shown.join(", ")
        }
    };
    if !prefixes.is_whole() {
        let holds = if held.is_empty() {
            format!(
                "; its files run from {:05X} to {:05X}, outside that range",
                span.0, span.1
            )
        } else {
            String::new()
        };
        return Error::Invalid(format!(
            "{}: the tree lacks {} of the {} prefixes of --prefixes {prefixes}: missing {}{holds} \
             (a download cut short?)",
            dir.display(),
            grouped(absent_count),
            grouped(prefixes.len() as u64),
            list(5)
        ));
    }
    let (first, last) = (held[0], held[held.len() - 1]);
    let whole_run = (last - first + 1) as usize == held.len();
    // The first run of prefixes the tree holds whole: what --prefixes could index.
    let run_end = held
        .windows(2)
        .position(|w| w[1] != w[0] + 1)
        .map_or(last, |i| held[i]);
    Error::Invalid(format!(
        "{}: the tree holds {} of {} prefixes ({first:05X}-{last:05X}{}); missing {}; to index \
         only part, add --prefixes {first:05X}-{run_end:05X}{}",
        dir.display(),
        grouped(held.len() as u64),
        grouped(prefixes.len() as u64),
        if whole_run { "" } else { ", with gaps" },
        list(1),
        if whole_run {
            ""
        } else {
            " (the first range it holds whole)"
        }
    ))
}

/// `n` with thousands separators.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A file as stored: its size and time.
struct Stored {
    bytes: u64,
    modified: u64,
}

/// A file's text, decompressed where its first bytes say gzip or zstd, and its size and time.
fn read_text(path: &Path) -> Result<(Vec<u8>, Stored)> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(path, "cannot read metadata of", e))?;
    if !meta.is_file() {
        return Err(Error::Invalid(format!(
            "{}: not a regular file; a tree holds one file per prefix",
            path.display()
        )));
    }
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    // Room for the file and a byte more: a read that stops short of it, having read the
    // file's size, is at the end (a regular file reads short only there), which saves the
    // read that would return 0. A file that grew is read on to its end.
    let size = meta.len() as usize;
    let mut data = vec![0u8; size + 1];
    let mut filled = 0;
    loop {
        if filled == data.len() {
            data.resize(data.len() * 2, 0);
        }
        let asked = data.len() - filled;
        match file.read(&mut data[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if n < asked && filled == size {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, "cannot read", e)),
        }
    }
    data.truncate(filled);
    let stored = Stored {
        bytes: filled as u64,
        modified,
    };
    let Some(format) = crate::build::compression(&data) else {
        return Ok((data, stored));
    };
    let mut text = Vec::with_capacity(data.len() * 3);
    let result = match format {
        crate::build::Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(&data[..]).read_to_end(&mut text)
        }
        crate::build::Compression::Zstd => zstd::stream::read::Decoder::with_buffer(&data[..])
            .and_then(|mut d| d.read_to_end(&mut text)),
    };
    result.map_err(|e| Error::io(path, "cannot decompress", e))?;
    Ok((text, stored))
}

/// Parses a range body of `prefix`: `SUFFIX:COUNT` lines (see the
/// module documentation), appending full hashes to `out`, sorted by hash. Rows with
/// count 0 (padding) are left out and counted.
pub fn parse_body(
    prefix: u32,
    body: &[u8],
    kind: HashKind,
    out: &mut Vec<Entry>,
) -> std::result::Result<BodyStats, ChunkError> {
    let suffix_len = kind.suffix_hex_len();
    // The hex of a hash: the prefix, then each line's suffix in turn.
    let mut hex = [0u8; 40];
    for (i, digit) in hex[..5].iter_mut().enumerate() {
        *digit = b"0123456789ABCDEF"[(prefix >> (16 - 4 * i)) as usize & 0xF];
    }
    let mut stats = BodyStats::default();
    let start = out.len();
    let mut sorted = true;
    let mut pos = 0;
    while pos < body.len() {
        let rest = &body[pos..];
        let (parsed, taken) = match suffix_line(rest, suffix_len, &mut hex, kind) {
            Some((entry, taken)) => (Ok(Some(entry)), taken),
            None => {
                let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
                (slow_line(&rest[..end], suffix_len, &mut hex, kind), end)
            }
        };
        match parsed {
            Ok(Some(entry)) if entry.count == 0 => stats.padding += 1,
            Ok(Some(entry)) => {
                if sorted && out.len() > start {
                    if let Some(last) = out.last() {
                        sorted = crate::hash::compare_hashes(&last.hash, &entry.hash).is_le();
                    }
                }
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
        pos += taken;
    }
    if !sorted {
        out[start..].sort_unstable_by(|a, b| crate::hash::compare_hashes(&a.hash, &b.hash));
    }
    Ok(stats)
}

/// The fast path: `SUFFIX:DIGITS` and LF, CRLF or the end of the body. The entry and the bytes
/// taken; `None` for anything else, which [`slow_line`] reads (the same way, where it is
/// valid).
#[inline]
fn suffix_line(
    rest: &[u8],
    suffix_len: usize,
    hex: &mut [u8; 40],
    kind: HashKind,
) -> Option<(Entry, usize)> {
    if rest.get(suffix_len) != Some(&b':') {
        return None;
    }
    hex[5..5 + suffix_len].copy_from_slice(&rest[..suffix_len]);
    let hash = decode_hex(&hex[..kind.hex_len()])?;
    let (count, end) = crate::dump::count_and_line_end(&rest[suffix_len + 1..], true)?;
    Some((Entry { hash, count }, suffix_len + 1 + end))
}

/// Any line: `Ok(None)` for a blank one, the entry, or what is wrong.
fn slow_line(
    line: &[u8],
    suffix_len: usize,
    hex: &mut [u8; 40],
    kind: HashKind,
) -> std::result::Result<Option<Entry>, String> {
    let Some(line) = trim_line(line) else {
        return Ok(None);
    };
    let Some(colon) = memchr::memchr(b':', line) else {
        return Err(format!(
            "expected `SUFFIX:COUNT`, found no `:` (every row of a range body has a count){}",
            whole_hash_hint(line.len())
        ));
    };
    let suffix = &line[..colon];
    if suffix.len() != suffix_len {
        let other = other_kind(kind);
        let why = if suffix.len() == other.suffix_hex_len() {
            format!(" (the length of {} suffix)", a_kind(other))
        } else {
            whole_hash_hint(suffix.len()).to_string()
        };
        return Err(format!(
            "expected {suffix_len} hex digits of {} suffix before the `:`, found {} \
             characters{why}",
            a_kind(kind),
            suffix.len()
        ));
    }
    hex[5..5 + suffix_len].copy_from_slice(suffix);
    let Some(hash) = decode_hex(&hex[..kind.hex_len()]) else {
        return Err(format!(
            "expected {suffix_len} hex digits of {} suffix, found a character that is not a hex \
             digit",
            a_kind(kind)
        ));
    };
    let count = parse_count(&line[colon + 1..])?;
    Ok(Some(Entry { hash, count }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUFFIX: &str = "1E4C9B93F3F0682250B6CF8331B7EE68FD8";

    fn parse(body: &str, kind: HashKind) -> std::result::Result<(Vec<Entry>, BodyStats), String> {
        let mut out = Vec::new();
        parse_body(0x5BAA6, body.as_bytes(), kind, &mut out)
            .map(|s| (out, s))
            .map_err(|e| format!("{}: {}", e.line_in_chunk + 1, e.message))
    }

    #[test]
    fn bodies_in_every_accepted_form_read_alike() {
        let want = crate::hash::sha1_password(b"password");
        let lower = SUFFIX.to_lowercase();
        for body in [
            format!("{SUFFIX}:3"),
            format!("{SUFFIX}:3\r\n"),
            format!("{SUFFIX}:3\n"),
            format!("\u{feff}{SUFFIX}:3\r\n"),
            format!("{lower}:3"),
            format!("\r\n{SUFFIX}:3\r\n\r\n"),
            format!(" {SUFFIX}:3 \r\n"),
            format!("{SUFFIX}:1\r\n{SUFFIX}:2"),
        ] {
            let (entries, _) = parse(&body, HashKind::Sha1).unwrap();
            let total: u64 = entries.iter().map(|e| e.count).sum();
            assert!(entries.iter().all(|e| e.hash == want), "{body:?}");
            assert_eq!(total, 3, "{body:?}");
        }
        let (_, stats) = parse(&format!("{SUFFIX}:1\r\n{SUFFIX}:2\r\n"), HashKind::Sha1).unwrap();
        assert_eq!(stats.lines, 2);
        let (_, stats) = parse(&format!("{SUFFIX}:1\r\n{SUFFIX}:2"), HashKind::Sha1).unwrap();
        assert_eq!(stats.lines, 2);
        assert_eq!(parse("", HashKind::Sha1).unwrap().1, BodyStats::default());
    }

    #[test]
    fn padding_is_left_out_and_order_restored() {
        let a = "00000000000000000000000000000000001";
        let b = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF";
        let (entries, stats) =
            parse(&format!("{b}:5\r\n{a}:0\r\n{a}:7\r\n"), HashKind::Sha1).unwrap();
        assert_eq!(
            stats,
            BodyStats {
                lines: 3,
                padding: 1
            }
        );
        assert_eq!(entries.len(), 2);
        assert!(entries[0].hash < entries[1].hash);
        assert_eq!(entries[0].count, 7);
    }

    #[test]
    fn malformed_lines_are_named() {
        let ntlm_suffix = "6F7EAEE8FB117AD06BDD830B7586C";
        let cases = [
            (
                format!("{SUFFIX}:1\r\n{SUFFIX}\r\n"),
                "2: expected `SUFFIX:COUNT`, found no `:`",
            ),
            (
                format!("{}:1", &SUFFIX[..34]),
                "1: expected 35 hex digits of a SHA-1 suffix",
            ),
            (
                format!("{}:1", &ntlm_suffix[..27]),
                "(the length of an NTLM suffix)",
            ),
            (format!("5BAA6{SUFFIX}:1"), "(a whole hash"),
            (format!("{}G:1", &SUFFIX[..34]), "not a hex digit"),
            (format!("{SUFFIX}:x1"), "is not a whole decimal number"),
            (format!("{SUFFIX}:"), "expected a count after `:`"),
        ];
        for (body, want) in cases {
            let err = parse(&body, HashKind::Sha1).unwrap_err();
            assert!(err.contains(want), "{body:?}: {err}");
        }
        let err = parse(&format!("{SUFFIX}:1"), HashKind::Ntlm).unwrap_err();
        assert!(err.contains("(the length of a SHA-1 suffix)"), "{err}");
    }

    #[test]
    fn names() {
        assert!(matches!(
            classify(b"5BAA6.txt"),
            Name::Prefix(0x5BAA6, Ext::Txt)
        ));
        assert!(matches!(
            classify(b"5baa6.GZ"),
            Name::Prefix(0x5BAA6, Ext::Gz)
        ));
        assert!(matches!(
            classify(b"5bAa6"),
            Name::Prefix(0x5BAA6, Ext::None)
        ));
        assert!(matches!(classify(b"5baa6.meta"), Name::Meta));
        assert!(matches!(classify(b"5baa6.br"), Name::Brotli));
        for other in [
            &b"5BAA.txt"[..],
            b"5BAA6.txt.gz",
            b"5BAAG.txt",
            b"README",
            b"",
            b"5BAA67",
        ] {
            assert!(matches!(classify(other), Name::Other), "{other:?}");
        }
        assert_eq!(grouped(1_048_559), "1,048,559");
    }
}
