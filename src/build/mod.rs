//! Building an index from dumps: read (memory-mapped files; gzip and zstd files, standard
//! input and pipes as streams; downloader trees, folders of range files, through
//! `src/tree.rs`), parse in parallel, and write through an [`IndexWriter`] in bounded memory.
//!
//! Input is read in blocks of about `chunk_size` bytes ending at a line end. A stream is read
//! (and decompressed) on a thread of its own, a few blocks ahead, into blocks that the parser
//! hands back once done. A thread parses the next batch of blocks on the pool while the
//! current one is written. Sorted input (the
//! official dumps are sorted) streams straight into the writer. When an entry turns up out of
//! order, what was written so far is read back into a [`Spill`], which holds entries in memory
//! up to a quarter of the memory budget, partitioned by the top 12 bits of the hash, and appends them
//! to temporary partition files when that fills; at the end each partition is sorted on all
//! cores and written in order. Temporary files live in a folder that is removed on success, on
//! error and on interruption.

mod input;
mod spill;

use crate::dump::{split_chunks, Entry};
use crate::error::{Error, Result};
use crate::format::{FilterKind, SourceInfo, StoreForm};
use crate::hash::HashKind;
use crate::index::Index;
use crate::key::KeyType;
use crate::partition::PrefixRange;
use crate::sys::MappedFile;
use crate::tree::Tree;
use crate::writer::{IndexSummary, IndexWriter};
use input::{
    detect_kind, display_name, open_input, parse_block, read_ahead, Input, Parsed, Source,
    StreamTimes,
};
use rayon::prelude::*;
use spill::Sink;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use crate::progress::{BuildProgress, NoProgress};
pub use crate::sys::{available_memory, total_memory};
pub use input::{open_text, plaintext_hint};
pub use spill::Spill;

pub(crate) use input::{compression, identity_of, parse_block_for_fuzzing, Compression};
pub(crate) use spill::locked_temp_dir;

/// What the input lines hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    /// `HASH:COUNT` or bare `HASH` lines.
    Hashes,
    /// One plaintext password per line; each is hashed and counts 1.
    Passwords,
    /// `user:password` lines; the password is what follows the first `:`. Lines that start
    /// with a URL are left out (see [`crate::credential::parse_combo`]).
    Combo,
    /// Stealer-log lines: `URL:LOGIN:PASSWORD` (or `|`, space, tab), `host:login:password` and
    /// `login:password` (see [`crate::credential::parse_ulp`]).
    Ulp,
}

impl std::str::FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "hashes" => Ok(InputFormat::Hashes),
            "passwords" => Ok(InputFormat::Passwords),
            "combo" => Ok(InputFormat::Combo),
            "ulp" => Ok(InputFormat::Ulp),
            _ => Err(format!(
                "unknown input `{s}` (expected hashes, passwords, combo or ulp)"
            )),
        }
    }
}

/// How to build.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Hash kind; `None` takes it from the length of the first hash (SHA-1 for plaintext).
    pub kind: Option<HashKind>,
    /// Which filter to build.
    pub filter: FilterKind,
    /// What to keep of each hash besides the filter: full hashes, their first 64 bits, or
    /// nothing. `None` needs a filter.
    pub store: StoreForm,
    /// What the input lines hold.
    pub input: InputFormat,
    /// What to index of each credential: its password, its login or the pair; `None`: the key
    /// of the indexes being merged in, or passwords. Logins and pairs need credential lines
    /// (`Combo` input) and SHA-1.
    pub key: Option<KeyType>,
    /// Bytes of input per parallel parsing task.
    pub chunk_size: usize,
    /// Memory the build may use; `None`: half of the machine's memory, at most 60% of what is
    /// available now.
    pub memory_limit: Option<u64>,
    /// Folder for temporary partition files; `None`: the output's folder.
    pub tmp_dir: Option<PathBuf>,
    /// Set to stop the build; it then returns [`Error::Interrupted`] and removes its files.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Build even when an input holds no hashes (it is empty, or every line of it was left
    /// out). Off by default: an empty input is most often a failed download, and an empty
    /// index would answer "not found" to everything.
    pub allow_empty: bool,
    /// Add an input's counts even when the index already holds a source with the same name,
    /// size, modification time and line count (the same dump merged twice, which would double
    /// its counts). Off by default.
    pub allow_duplicate_sources: bool,
    /// Index only the hashes whose 5-hex prefix is in this range (a partition; every prefix by
    /// default). Hashes outside it are counted in [`BuildSummary::outside_partition`].
    pub prefixes: crate::partition::PrefixRange,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            kind: None,
            filter: FilterKind::Fuse8,
            store: StoreForm::Full,
            input: InputFormat::Hashes,
            key: None,
            chunk_size: 4 << 20,
            memory_limit: None,
            tmp_dir: None,
            cancel: None,
            allow_empty: false,
            allow_duplicate_sources: false,
            prefixes: crate::partition::PrefixRange::WHOLE,
        }
    }
}

/// What a build did.
#[derive(Clone, Debug)]
pub struct BuildSummary {
    /// The index written.
    pub index: IndexSummary,
    /// Plaintext lines that could not be hashed for the index's kind.
    pub skipped_lines: u64,
    /// The first few of them, as `file:line: why`.
    pub skipped_examples: Vec<String>,
    /// Bytes written to temporary partition files (0 when the input was sorted or fit).
    pub temp_bytes: u64,
    /// Whether the input had to be sorted.
    pub sorted_input: bool,
    /// Warnings given while building (each also went to [`BuildProgress::warning`]).
    pub warnings: Vec<String>,
    /// Where the time went, stage by stage, to name a build's bottleneck.
    pub timings: BuildTimings,
    /// Hashes of the inputs left out because their prefix is outside
    /// [`BuildOptions::prefixes`] (always 0 for a whole build).
    pub outside_partition: u64,
    /// Rows with count 0 in the range bodies of downloader trees: the API's padding (random
    /// suffixes, which clients drop), left out of the index.
    pub padding_rows: u64,
    /// Files of downloader trees whose prefix is outside [`BuildOptions::prefixes`]: not read.
    pub outside_files: u64,
}

/// Where a build's time went.
#[derive(Clone, Debug, Default)]
pub struct BuildTimings {
    /// Reading and parsing every input (for unsorted input, partitioning too).
    pub read_and_parse: std::time::Duration,
    /// Sorting the partitions of unsorted input (zero for sorted input).
    pub sort: std::time::Duration,
    /// Building the filter and finishing the file (directories, sync, rename).
    pub filter_and_write: std::time::Duration,
    /// Of `read_and_parse`, the time the reading thread of streams (standard input, pipes,
    /// gzip and zstd) spent getting bytes: waiting on the producer, or decompressing.
    pub stream_reading: std::time::Duration,
    /// The time that thread waited for the parser to take its blocks: the parser was slower
    /// than the stream.
    pub stream_waiting: std::time::Duration,
}

/// Skipped lines listed by example.
const SKIP_EXAMPLES: usize = 5;

// --- The build ---------------------------------------------------------------------------

/// Builds the index at `output` from `inputs` (paths; `-` is standard input; gzip and zstd are
/// recognised by their first bytes; a folder is a downloader tree, see `src/tree.rs`).
pub fn build_index(
    inputs: &[PathBuf],
    output: &Path,
    options: &BuildOptions,
    progress: &dyn BuildProgress,
) -> Result<BuildSummary> {
    check_request(output, options)?;
    let mut opened = open_inputs(inputs, output, options)?;
    let mut build = Build::new(&opened, output, options, progress)?;
    build.read_inputs(&mut opened)?;
    build.finish()
}

/// Refuses what no input could make work: a filter-only index without a filter, an output
/// that is a folder.
fn check_request(output: &Path, options: &BuildOptions) -> Result<()> {
    if options.store == StoreForm::None && options.filter == FilterKind::None {
        return Err(Error::Invalid(
            "--store none keeps only the filter, so it cannot go with --filter none".into(),
        ));
    }
    if output.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: is a folder; give the path of the index file to write",
            output.display()
        )));
    }
    Ok(())
}

/// Opens every input, and refuses one file given twice (unless allowed) and an output that is
/// one of the inputs.
fn open_inputs(inputs: &[PathBuf], output: &Path, options: &BuildOptions) -> Result<Vec<Input>> {
    let opened = inputs
        .iter()
        .map(|p| open_input(p, options))
        .collect::<Result<Vec<_>>>()?;
    // One file given twice, under any names (links), would count twice.
    if !options.allow_duplicate_sources {
        for (i, a) in opened.iter().enumerate() {
            if let Some(b) = opened[..i]
                .iter()
                .find(|b| a.identity.is_some() && b.identity == a.identity)
            {
                return Err(Error::Invalid(format!(
                    "{}: the same file as {}: its counts would be added twice. Pass \
                     --allow-duplicate-sources to add them anyway",
                    a.path.display(),
                    b.path.display()
                )));
            }
        }
    }
    // Writing the index over one of its inputs would lose that input: the same file by device
    // and inode, whatever name it goes by.
    if let Some(out_id) = std::fs::metadata(output).ok().and_then(|m| identity_of(&m)) {
        if let Some(input) = opened.iter().find(|i| i.identity == Some(out_id)) {
            return Err(Error::Invalid(format!(
                "{}: is also an input ({}); the index would replace it. Choose another output path",
                output.display(),
                input.path.display()
            )));
        }
    }
    Ok(opened)
}

/// A writer of the index at `output`, of hash kind `kind`, as the build was asked.
fn new_writer(
    output: &Path,
    options: &BuildOptions,
    key: KeyType,
    memory: u64,
    prefixes: PrefixRange,
    kind: HashKind,
) -> Result<IndexWriter> {
    let mut writer = IndexWriter::create(output, kind, options.filter)?;
    writer.set_key(key)?;
    writer.set_store(options.store, memory / 4)?;
    writer.set_partition(prefixes);
    Ok(writer)
}

/// `Err(Interrupted)` once the build has been asked to stop.
fn check_cancel(options: &BuildOptions) -> Result<()> {
    match &options.cancel {
        Some(flag) if flag.load(Ordering::Relaxed) => Err(Error::Interrupted),
        _ => Ok(()),
    }
}

/// A build under way: what it was asked, what it has settled (partition, key, kind), where
/// entries go, and what it has counted so far.
struct Build<'a> {
    output: &'a Path,
    options: &'a BuildOptions,
    progress: &'a dyn BuildProgress,
    /// Bytes of the inputs whose size is known, for progress.
    known_bytes: u64,
    /// The memory budget.
    memory: u64,
    prefixes: PrefixRange,
    key: KeyType,
    /// The hash kind, once known.
    kind: Option<HashKind>,
    sink: Sink,
    warnings: Vec<String>,
    skipped: u64,
    skipped_examples: Vec<String>,
    outside_partition: u64,
    padding_rows: u64,
    outside_files: u64,
    /// Every source so far, with the input it came in.
    sources: Vec<Counted>,
    stream_times: StreamTimes,
    timings: BuildTimings,
}

impl<'a> Build<'a> {
    /// Checks the space the index needs, settles the memory budget, sweeps the temporary files
    /// of killed builds, and settles the partition, key and kind that `opened` allow.
    fn new(
        opened: &[Input],
        output: &'a Path,
        options: &'a BuildOptions,
        progress: &'a dyn BuildProgress,
    ) -> Result<Build<'a>> {
        let known_bytes: u64 = opened
            .iter()
            .map(|i| match &i.source {
                Source::Mapped(m) => m.bytes().len() as u64,
                Source::Reader(_) => 0,
                Source::Index(index) => index.hash_count() * 40,
                Source::Tree(tree) => tree.estimated_bytes(),
            })
            .sum();
        let out_dir = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // A line is at least a hash and a line end: an upper bound on hashes, for space
        // checks. (A range body's line is a suffix, a count and a line end, and gzip halves
        // it.)
        let expected = opened
            .iter()
            .map(|i| match &i.source {
                Source::Tree(tree) => tree.estimated_text_bytes() / 30,
                Source::Mapped(m) => m.bytes().len() as u64 / 34,
                Source::Reader(_) => 0,
                Source::Index(index) => index.hash_count() * 40 / 34,
            })
            .sum::<u64>();
        let per_hash = match options.store {
            StoreForm::Full => 20,
            StoreForm::Compact => 8,
            StoreForm::None => 3,
        };
        check_free_space(
            &out_dir,
            expected * per_hash + (32 << 20),
            "the index needs",
        )?;
        let memory = options
            .memory_limit
            .or_else(|| {
                let half = crate::sys::total_memory()? / 2;
                Some(crate::sys::available_memory().map_or(half, |a| half.min(a / 10 * 6)))
            })
            .unwrap_or(4 << 30);
        let tmp_root = options.tmp_dir.clone().unwrap_or_else(|| out_dir.clone());
        let mut build = Build {
            output,
            options,
            progress,
            known_bytes,
            memory,
            prefixes: options.prefixes,
            key: KeyType::default(),
            kind: options.kind,
            sink: Sink::new(memory, tmp_root.clone(), expected),
            warnings: Vec::new(),
            skipped: 0,
            skipped_examples: Vec::new(),
            outside_partition: 0,
            padding_rows: 0,
            outside_files: 0,
            sources: Vec::new(),
            stream_times: StreamTimes::default(),
            timings: BuildTimings::default(),
        };
        build.sweep_temporaries(&out_dir, &tmp_root);
        build.prefixes = partition_of_build(opened, options.prefixes)?;
        build.settle_key_and_kind(opened)?;
        Ok(build)
    }

    /// Tells the user now, and keeps the message for the summary.
    fn warn(&mut self, message: String) {
        self.progress.warning(&message);
        self.warnings.push(message);
    }

    /// Removes the temporary files that killed builds left behind (SIGKILL, a power cut) in
    /// the output's folder and the temporary folder, and says so.
    fn sweep_temporaries(&mut self, out_dir: &Path, tmp_root: &Path) {
        let mut swept = crate::sys::sweep_temporaries(out_dir);
        if tmp_root != out_dir {
            let more = crate::sys::sweep_temporaries(tmp_root);
            swept.removed.extend(more.removed);
            swept.left.extend(more.left);
        }
        if !swept.removed.is_empty() {
            let bytes: u64 = swept.removed.iter().map(|(_, b)| b).sum();
            let names: Vec<String> = swept
                .removed
                .iter()
                .map(|(p, _)| p.display().to_string())
                .collect();
            self.warn(format!(
                "removed {} left by an earlier build that was killed ({} bytes): {}",
                plural(
                    swept.removed.len() as u64,
                    "temporary file",
                    "temporary files"
                ),
                bytes,
                names.join(", ")
            ));
        }
        for (path, why) in &swept.left {
            self.warn(format!(
                "{}: a temporary file of leakdex that no running build holds; {why}",
                path.display()
            ));
        }
    }

    /// The key: as asked, or that of the indexes merged in (all alike), or passwords. Then
    /// the kind: logins and pairs are SHA-1, and so is plaintext unless asked otherwise.
    fn settle_key_and_kind(&mut self, opened: &[Input]) -> Result<()> {
        let options = self.options;
        let mut key = options.key;
        for input in opened {
            if let Source::Index(index) = &input.source {
                match key {
                    None => key = Some(index.key()),
                    Some(k) if k != index.key() => {
                        return Err(Error::Invalid(format!(
                            "{}: a {} index cannot be merged into a {k} index",
                            input.path.display(),
                            index.key()
                        )))
                    }
                    Some(_) => {}
                }
            }
        }
        let key = key.unwrap_or_default();
        if key != KeyType::Password {
            if self.kind.is_some_and(|k| !key.allows(k)) {
                return Err(Error::Invalid(format!(
                    "--key {key} indexes SHA-1 hashes only; leave out --kind ntlm"
                )));
            }
            let reads_text = opened.iter().any(|i| !matches!(i.source, Source::Index(_)));
            if reads_text && !matches!(options.input, InputFormat::Combo | InputFormat::Ulp) {
                return Err(Error::Invalid(format!(
                    "--key {key} takes logins from credential lines: use --input ulp (stealer \
                     logs) or --input combo (LOGIN:PASSWORD)"
                )));
            }
            self.kind = Some(HashKind::Sha1);
        }
        if self.kind.is_none() && options.input != InputFormat::Hashes {
            self.kind = Some(HashKind::Sha1);
        }
        self.key = key;
        Ok(())
    }

    /// Opens the sink, if not yet open, with a writer of kind `kind`.
    fn open_sorted_sink(&mut self, kind: HashKind) -> Result<()> {
        if !self.sink.is_open() {
            let writer = new_writer(
                self.output,
                self.options,
                self.key,
                self.memory,
                self.prefixes,
                kind,
            )?;
            self.sink.open_sorted(writer);
        }
        Ok(())
    }

    /// Reads every input into the sink, in order.
    fn read_inputs(&mut self, opened: &mut [Input]) -> Result<()> {
        self.progress.phase("reading", self.known_bytes);
        let started = std::time::Instant::now();
        for input in opened.iter_mut() {
            match &input.source {
                Source::Tree(tree) => self.read_tree(&input.path, tree)?,
                Source::Index(index) => self.read_index(&input.path, index)?,
                Source::Mapped(_) | Source::Reader(_) => self.read_text(input)?,
            }
        }
        check_cancel(self.options)?;
        self.timings.read_and_parse = started.elapsed();
        self.timings.stream_reading =
            std::time::Duration::from_nanos(self.stream_times.reading.load(Ordering::Relaxed));
        self.timings.stream_waiting =
            std::time::Duration::from_nanos(self.stream_times.waiting.load(Ordering::Relaxed));
        Ok(())
    }

    /// Checks new sources ([`check_new_sources`]) and adds them to the list.
    fn count_sources(
        &mut self,
        new: &[SourceInfo],
        prefixes: PrefixRange,
        from: &Path,
    ) -> Result<()> {
        check_new_sources(&self.sources, new, prefixes, from, self.options)?;
        add_sources(&mut self.sources, new, prefixes, from);
        Ok(())
    }

    /// Reads a downloader tree.
    fn read_tree(&mut self, path: &Path, tree: &Tree) -> Result<()> {
        // The kind: the tree's folder, the build's, or the first suffix's length.
        let tree_kind = match (tree.kind(), self.kind) {
            (Some(t), Some(k)) if t != k => {
                return Err(Error::Invalid(format!(
                    "{}: a tree of {} hashes cannot be merged into a build of {} hashes",
                    path.display(),
                    t.display_name(),
                    k.display_name()
                )))
            }
            (Some(t), _) => Some(t),
            (None, Some(k)) => Some(k),
            (None, None) => tree.detect_kind()?,
        };
        // No kind: every file is blank.
        let read = match tree_kind {
            Some(k) => {
                self.kind = Some(k);
                self.open_sorted_sink(k)?;
                self.read_tree_files(tree, k)?
            }
            None => TreeRead::default(),
        };
        self.padding_rows += read.padding;
        self.outside_files += tree.outside();
        if read.entries == 0 && !self.options.allow_empty {
            return Err(empty_tree(path, tree, read.padding));
        }
        let source = SourceInfo {
            name: tree.name().to_string(),
            size: read.bytes,
            lines: read.lines,
            modified: read.modified,
        };
        self.count_sources(std::slice::from_ref(&source), self.prefixes, path)
    }

    /// Reads a downloader tree's files into the sink, in prefix order: batches of files are
    /// read, decompressed and parsed on the pool, in order, while the previous batch is
    /// written.
    fn read_tree_files(&mut self, tree: &Tree, kind: HashKind) -> Result<TreeRead> {
        let options = self.options;
        let cancelled = || {
            options
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
        };
        let batch_bytes = (rayon::current_num_threads() * 2 * options.chunk_size) as u64;
        let per_file = (tree.estimated_bytes() / tree.len().max(1) as u64).max(1);
        let batch_files = ((batch_bytes / per_file) as usize)
            .clamp(*TREE_BATCH_FILES.start(), *TREE_BATCH_FILES.end());
        let mut read = TreeRead::default();
        std::thread::scope(|scope| -> Result<()> {
            let (send, receive) =
                std::sync::mpsc::sync_channel::<Vec<Result<crate::tree::Body>>>(1);
            scope.spawn(move || {
                let mut start = 0;
                while start < tree.len() {
                    let end = (start + batch_files).min(tree.len());
                    if cancelled() {
                        return;
                    }
                    let bodies: Vec<Result<crate::tree::Body>> = (start..end)
                        .into_par_iter()
                        .map(|i| tree.read(i, kind))
                        .collect();
                    let failed = bodies.iter().any(Result::is_err);
                    if send.send(bodies).is_err() || failed {
                        return;
                    }
                    start = end;
                }
            });
            for batch in receive {
                if cancelled() {
                    return Err(Error::Interrupted);
                }
                for body in batch {
                    let body = body?;
                    self.sink.feed(&body.entries, true)?;
                    read.bytes += body.bytes;
                    read.lines += body.lines;
                    read.entries += body.entries.len() as u64;
                    read.padding += body.padding;
                    read.modified = read.modified.max(body.modified);
                    self.progress.advance(body.bytes, body.lines);
                }
            }
            Ok(())
        })?;
        if cancelled() {
            return Err(Error::Interrupted);
        }
        Ok(read)
    }

    /// Merges in an existing index: its entries and its sources.
    fn read_index(&mut self, path: &Path, index: &Index) -> Result<()> {
        let options = self.options;
        if index.hash_count() == 0 && !options.allow_empty {
            return Err(empty_input(path, 0, None));
        }
        // Before the sources: a form that cannot be merged is the clearer error.
        if !options.store.can_be_made_from(index.store_form()) {
            return Err(Error::Invalid(format!(
                "{}: an index with a {} store cannot be merged into one with a {} store: {}",
                path.display(),
                index.store_form(),
                options.store,
                if index.store_form() == StoreForm::None {
                    "a filter-only index holds no hashes to merge"
                } else {
                    "a compact store holds only the first 64 bits of each hash; use \
                     --store compact or --store none"
                }
            )));
        }
        check_new_sources(
            &self.sources,
            index.sources(),
            index.partition(),
            path,
            options,
        )?;
        let k = *self.kind.get_or_insert(index.kind());
        if k != index.kind() {
            return Err(Error::Invalid(format!(
                "{}: a {} index cannot be merged into a {} build",
                path.display(),
                index.kind().display_name(),
                k.display_name()
            )));
        }
        self.open_sorted_sink(k)?;
        let prefixes = self.prefixes;
        let sink = &mut self.sink;
        let outside = &mut self.outside_partition;
        index.for_each_block(1 << 16, &mut |block| {
            let read = block.len();
            block.retain(|e| prefixes.contains(crate::hash::prefix_of(&e.hash)));
            *outside += (read - block.len()) as u64;
            check_cancel(options)?;
            sink.feed(block, true)
        })?;
        add_sources(&mut self.sources, index.sources(), index.partition(), path);
        self.progress.advance(index.hash_count() * 40, 0);
        Ok(())
    }

    /// Reads a text input (a mapped file or a stream) of hashes or plaintext: its first
    /// blocks say its kind (and whether it looks like another `--input`), then every block is
    /// parsed on the pool and fed to the sink.
    fn read_text(&mut self, input: &mut Input) -> Result<()> {
        let options = self.options;
        let path = input.path.clone();
        let modified = input.modified;
        let mut mapped: Option<&MappedFile> = None;
        // Blocks of a stream go back to its reader once parsed, to be filled again.
        let (give_back, spares) = std::sync::mpsc::channel::<Vec<u8>>();
        let mut blocks: Box<dyn Iterator<Item = Result<Cow<'_, [u8]>>> + Send> =
            match &mut input.source {
                Source::Mapped(map) => {
                    let map: &MappedFile = map;
                    mapped = Some(map);
                    let data = map.bytes();
                    // Cut lazily, just ahead of the parser: cutting the whole file up front
                    // would touch (and map) a page every chunk before any is parsed.
                    Box::new(
                        split_chunks(data, options.chunk_size)
                            .map(move |r| Ok(Cow::Borrowed(&data[r]))),
                    )
                }
                // Indexes and trees are read elsewhere.
                Source::Index(_) | Source::Tree(_) => Box::new(std::iter::empty()),
                Source::Reader(reader) => {
                    let reader = std::mem::replace(reader, Box::new(std::io::empty()));
                    Box::new(
                        read_ahead(
                            reader,
                            options.chunk_size,
                            spares,
                            self.stream_times.clone(),
                            options.cancel.clone(),
                            &path,
                        )?
                        .map(|b| b.map(Cow::Owned)),
                    )
                }
            };
        let first_blocks = self.first_blocks(&path, &mut blocks)?;
        let Some(k) = self.kind else {
            // Nothing but blank lines so far.
            let (mut size, mut lines) = (0u64, 0u64);
            for b in &first_blocks {
                size += b.len() as u64;
                lines += memchr::memchr_iter(b'\n', b).count() as u64;
            }
            if !options.allow_empty {
                return Err(empty_input(&path, 0, None));
            }
            let source = SourceInfo {
                name: display_name(&path),
                size,
                lines,
                modified,
            };
            return self.count_sources(std::slice::from_ref(&source), self.prefixes, &path);
        };
        if !self.sink.is_open() {
            if options.input == InputFormat::Hashes {
                self.open_sorted_sink(k)?;
            } else {
                self.sink.open_unsorted();
            }
        }
        let all_blocks = first_blocks.into_iter().map(Ok).chain(blocks);
        let read = self.parse_blocks(&path, k, all_blocks, give_back, mapped)?;
        if read.entries == 0 && !options.allow_empty {
            return Err(empty_input(&path, read.skipped, read.first_skip));
        }
        let source = SourceInfo {
            name: display_name(&path),
            size: read.size,
            lines: read.lines,
            modified,
        };
        self.count_sources(std::slice::from_ref(&source), self.prefixes, &path)
    }

    /// The first blocks of a text input, read before parsing: for plaintext, the first one,
    /// looked at for signs of the wrong `--input`; then, while the kind is unknown, blocks up
    /// to the first that holds a hash, which sets it.
    fn first_blocks<'b>(
        &mut self,
        path: &Path,
        blocks: &mut dyn Iterator<Item = Result<Cow<'b, [u8]>>>,
    ) -> Result<Vec<Cow<'b, [u8]>>> {
        let mut first_blocks = Vec::new();
        if self.options.input != InputFormat::Hashes {
            // Plaintext that looks like hashes or stealer-log lines is most likely the wrong
            // --input: say so before hours of building.
            if let Some(block) = blocks.next() {
                let block = block?;
                if let Some(hint) = plaintext_hint(&block, self.options.input) {
                    self.warn(format!("{}: {hint}", path.display()));
                }
                first_blocks.push(block);
            }
        }
        // The kind comes from the first block that holds a hash.
        let mut lines_before = 0u64;
        while self.kind.is_none() {
            match blocks.next() {
                Some(block) => {
                    let block = block?;
                    self.kind = detect_kind(path, &block, lines_before)?;
                    lines_before += memchr::memchr_iter(b'\n', &block).count() as u64;
                    first_blocks.push(block);
                }
                None => break,
            }
        }
        Ok(first_blocks)
    }

    /// Parses `blocks` of hashes of kind `kind` on the pool, a batch at a time on a thread of
    /// its own, while this one feeds the previous batch to the sink. Blocks read from a
    /// stream go back through `give_back`; a mapped file's pages are released once parsed.
    fn parse_blocks<'b>(
        &mut self,
        path: &Path,
        kind: HashKind,
        blocks: impl Iterator<Item = Result<Cow<'b, [u8]>>> + Send,
        give_back: std::sync::mpsc::Sender<Vec<u8>>,
        mapped: Option<&MappedFile>,
    ) -> Result<TextRead> {
        let options = self.options;
        let batch_len = rayon::current_num_threads() * 2;
        let (key, format, prefixes) = (self.key, options.input, self.prefixes);
        let (batches, parsed) = std::sync::mpsc::sync_channel::<Result<Vec<Parsed>>>(1);
        let (recycle, recycled) = std::sync::mpsc::channel::<Vec<Entry>>();
        let mut read = TextRead::default();
        let mut released = 0usize;
        std::thread::scope(|scope| -> Result<TextRead> {
            scope.spawn(move || {
                let mut all_blocks = blocks;
                loop {
                    let mut batch = Vec::with_capacity(batch_len);
                    for b in all_blocks.by_ref().take(batch_len) {
                        match b {
                            Ok(b) => batch.push(b),
                            Err(e) => {
                                let _ = batches.send(Err(e));
                                return;
                            }
                        }
                    }
                    if batch.is_empty() {
                        return;
                    }
                    let buffers: Vec<Vec<Entry>> = batch
                        .iter()
                        .map(|_| recycled.try_recv().unwrap_or_default())
                        .collect();
                    let parsed: Vec<Parsed> = batch
                        .par_iter()
                        .zip(buffers)
                        .map(|(block, buf)| parse_block(block, kind, key, format, prefixes, buf))
                        .collect();
                    for block in batch {
                        if let Cow::Owned(block) = block {
                            let _ = give_back.send(block);
                        }
                    }
                    if batches.send(Ok(parsed)).is_err() {
                        return;
                    }
                }
            });
            for batch in parsed {
                check_cancel(options)?;
                for p in batch? {
                    self.take_parsed(path, &mut read, &p)?;
                    let _ = recycle.send(p.entries);
                }
                if let Some(map) = mapped {
                    map.release(released..read.size as usize);
                    released = read.size as usize;
                }
            }
            Ok(read)
        })
    }

    /// Counts a parsed block of a text input and feeds its entries to the sink.
    fn take_parsed(&mut self, path: &Path, read: &mut TextRead, p: &Parsed) -> Result<()> {
        let lines = read.lines;
        let stats = p.result.as_ref().map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line: lines + e.line_in_chunk + 1,
            message: e.message.clone(),
        })?;
        self.skipped += p.skipped;
        self.outside_partition += p.outside;
        read.skipped += p.skipped;
        read.entries += p.entries.len() as u64 + p.outside;
        if let (None, Some((line, why))) = (&read.first_skip, p.skipped_examples.first()) {
            read.first_skip = Some(format!("line {}: {why}", lines + line + 1));
        }
        for (line, why) in &p.skipped_examples {
            if self.skipped_examples.len() < SKIP_EXAMPLES {
                self.skipped_examples.push(format!(
                    "{}:{}: {why}",
                    path.display(),
                    lines + line + 1
                ));
            }
        }
        self.sink.feed(&p.entries, stats.sorted)?;
        read.lines += stats.lines;
        read.size += p.bytes as u64;
        self.progress.advance(p.bytes as u64, stats.lines);
        Ok(())
    }

    /// Sorts what needs it, lists the sources, and writes the index.
    fn finish(self) -> Result<BuildSummary> {
        let (options, progress) = (self.options, self.progress);
        let kind = self.kind.unwrap_or(HashKind::Sha1);
        let (output, key, memory, prefixes) = (self.output, self.key, self.memory, self.prefixes);
        let create = || new_writer(output, options, key, memory, prefixes, kind);
        let cancel = || check_cancel(options);
        let sorted_input = self.sink.sorted_input();
        let (mut writer, temp_bytes, sort) = self.sink.into_writer(&create, &cancel, progress)?;
        let mut timings = self.timings;
        timings.sort = sort;
        // Partitions of one dump list the same source; their merge lists it once.
        let mut listed: Vec<&SourceInfo> = Vec::new();
        for Counted { source: s, .. } in &self.sources {
            if listed.contains(&s) {
                continue;
            }
            listed.push(s);
            writer.add_source(s.clone());
        }
        check_cancel(options)?;
        let finishing = std::time::Instant::now();
        let index = writer.finish(progress)?;
        timings.filter_and_write = finishing.elapsed();
        Ok(BuildSummary {
            index,
            skipped_lines: self.skipped,
            skipped_examples: self.skipped_examples,
            temp_bytes,
            sorted_input,
            warnings: self.warnings,
            timings,
            outside_partition: self.outside_partition,
            padding_rows: self.padding_rows,
            outside_files: self.outside_files,
        })
    }
}

/// What reading a text input found.
#[derive(Default)]
struct TextRead {
    /// Bytes read (decompressed).
    size: u64,
    lines: u64,
    /// Entries, those outside the partition included.
    entries: u64,
    /// Plaintext lines left out.
    skipped: u64,
    /// The first of them, as `line N: why`.
    first_skip: Option<String>,
}

// --- Free space ----------------------------------------------------------------------

/// Refuses to start when `need` bytes (for `what`) will not fit on the file system holding
/// `path`.
fn check_free_space(path: &Path, need: u64, what: &str) -> Result<()> {
    if let Some(free) = crate::sys::free_space(path) {
        if need > free {
            return Err(Error::Invalid(format!(
                "{}: not enough space: {what} about {}, and only {} are free there{}",
                path.display(),
                size_text(need),
                size_text(free),
                if what.starts_with("temporary") {
                    "; point --tmp at a bigger disk"
                } else {
                    ""
                }
            )));
        }
    }
    Ok(())
}

/// Bytes for people: `5.2 GiB`, `310.4 MiB`, `12.0 KiB`, `512 bytes`.
pub fn size_text(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} bytes")
    }
}

/// The partition a build writes, from the one asked (`asked`, every prefix by default) and
/// the partitions of the indexes merged in. Text inputs hold every prefix. An index merged
/// with text must hold the whole partition being built, or its hashes would be missing from
/// part of it. Indexes merged alone must together cover the partition without a gap; asked
/// for every prefix, they make the partition they cover (four partitions merge into a whole
/// index).
fn partition_of_build(inputs: &[Input], asked: PrefixRange) -> Result<PrefixRange> {
    let mut parts: Vec<(PrefixRange, &Path)> = inputs
        .iter()
        .filter_map(|i| match &i.source {
            Source::Index(index) => Some((index.partition(), i.path.as_path())),
            _ => None,
        })
        .collect();
    if parts.len() < inputs.len() {
        // Some text: every index must hold the partition asked.
        if let Some((p, path)) = parts
            .iter()
            .find(|(p, _)| p.first() > asked.first() || p.last() < asked.last())
        {
            return Err(Error::Invalid(format!(
                "{}: a partition index (prefixes {p}) cannot be merged with dumps into an index \
                 of prefixes {asked}: its hashes of the other prefixes are not in it; build with \
                 --prefixes {p}",
                path.display()
            )));
        }
        return Ok(asked);
    }
    parts.sort();
    let Some(&(first, _)) = parts.first() else {
        return Ok(asked);
    };
    let mut covered = first;
    for &(p, path) in &parts[1..] {
        if p.first() > covered.last() + 1 {
            return Err(Error::Invalid(format!(
                "{}: the partitions merged leave a gap: they hold {covered} and {p}, but not \
                 the prefixes between",
                path.display()
            )));
        }
        covered =
            PrefixRange::new(covered.first(), covered.last().max(p.last())).unwrap_or(covered);
    }
    if asked.is_whole() {
        return Ok(covered);
    }
    if asked.first() < covered.first() || asked.last() > covered.last() {
        return Err(Error::Invalid(format!(
            "the indexes merged hold the prefixes {covered} only, not all of {asked}"
        )));
    }
    Ok(asked)
}

/// `n` with the singular or plural noun.
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What reading a downloader tree found.
#[derive(Default)]
struct TreeRead {
    /// Bytes of its files as stored.
    bytes: u64,
    lines: u64,
    /// Entries (padding rows not included).
    entries: u64,
    /// Rows with count 0, left out.
    padding: u64,
    /// The newest file's modification time.
    modified: u64,
}

/// Files of a tree read in one parallel batch: about [`BuildOptions::chunk_size`] bytes per
/// thread twice over (as for dumps), within these bounds.
const TREE_BATCH_FILES: std::ops::RangeInclusive<usize> = 64..=4096;

/// The error for a tree that gave no hashes.
fn empty_tree(path: &Path, tree: &Tree, padding: u64) -> Error {
    Error::Invalid(format!(
        "{}: no hashes: its {} {}. A download cut short? An index without them would answer \
         \"not found\" to everything; pass --allow-empty to build it anyway",
        path.display(),
        plural(tree.len() as u64, "file", "files"),
        if padding > 0 {
            format!(
                "hold only padding rows (count 0: {})",
                plural(padding, "row", "rows")
            )
        } else if tree.len() == 1 {
            "is empty".to_string()
        } else {
            "are empty".to_string()
        }
    ))
}

/// The error for an input that gave no hashes.
fn empty_input(path: &Path, skipped: u64, first_skip: Option<String>) -> Error {
    let what = if skipped > 0 {
        format!(
            "every line of it that is not blank was left out ({}{})",
            plural(skipped, "line", "lines"),
            first_skip.map_or(String::new(), |s| format!(", for example {s}"))
        )
    } else {
        "it is empty or holds only blank lines".to_string()
    };
    Error::Invalid(format!(
        "{}: no hashes: {what}. A download cut short? An index without them would answer \
         \"not found\" to everything; pass --allow-empty to build it anyway",
        path.display()
    ))
}

/// Refuses sources already in the index being built: the same dump (by name, size, line
/// count and modification time) added twice would double its counts.
/// A source of the index being built: where it came in, and the prefixes of it counted.
struct Counted {
    source: SourceInfo,
    from: PathBuf,
    prefixes: PrefixRange,
}

/// Adds sources to the list (the index lists each once: see [`build_index`]'s end).
fn add_sources(list: &mut Vec<Counted>, new: &[SourceInfo], prefixes: PrefixRange, from: &Path) {
    list.extend(new.iter().map(|source| Counted {
        source: source.clone(),
        from: from.to_path_buf(),
        prefixes,
    }));
}

/// Refuses a source already counted for some of the same prefixes: its counts would be added
/// twice. (Partitions of one dump hold the same source for other prefixes, and merge.)
fn check_new_sources(
    existing: &[Counted],
    new: &[SourceInfo],
    prefixes: PrefixRange,
    path: &Path,
    options: &BuildOptions,
) -> Result<()> {
    if options.allow_duplicate_sources {
        return Ok(());
    }
    for source in new {
        // Standard input has no name or time: two streams of one size and line count are
        // not known to be one.
        if source.name == "-" && source.modified == 0 {
            continue;
        }
        if let Some(Counted { from, .. }) = existing
            .iter()
            .find(|c| c.source == *source && c.prefixes.overlaps(prefixes))
        {
            return Err(Error::Invalid(format!(
                "{}: the source `{}` ({} bytes, {}) is already counted, from {}, with the same \
                 size, line count and modification time: its counts would be added twice. Pass \
                 --allow-duplicate-sources to add them anyway",
                path.display(),
                source.name,
                source.size,
                plural(source.lines, "line", "lines"),
                from.display()
            )));
        }
    }
    Ok(())
}
