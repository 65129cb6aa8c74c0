//! Where a build's entries go: straight into the [`IndexWriter`] while they come in hash
//! order, or into a [`Spill`] once they do not, which partitions them (in memory, then in
//! temporary files) and sorts each partition at the end.

use super::check_free_space;
use super::input::sort_by_hash;
use crate::dump::Entry;
use crate::error::{Error, Result};
use crate::hash::HashBytes;
use crate::progress::BuildProgress;
use crate::writer::IndexWriter;
use rayon::prelude::*;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where entries go: nowhere yet (before the first input with hashes), an index writer while
/// they come in order, or a spill.
pub(super) struct Sink {
    target: Target,
    /// For a spill: the build's memory budget, the folder of its temporary files, and about
    /// how many entries may come.
    memory: u64,
    tmp_root: PathBuf,
    expected: u64,
    /// Whether every entry so far came in hash order.
    sorted: bool,
}

enum Target {
    Unopened,
    Sorted(Box<IndexWriter>),
    Unsorted(Spill),
}

impl Sink {
    pub(super) fn new(memory: u64, tmp_root: PathBuf, expected: u64) -> Sink {
        Sink {
            target: Target::Unopened,
            memory,
            tmp_root,
            expected,
            sorted: true,
        }
    }

    /// Whether entries have somewhere to go yet.
    pub(super) fn is_open(&self) -> bool {
        !matches!(self.target, Target::Unopened)
    }

    /// Entries go to `writer` while they come in order.
    pub(super) fn open_sorted(&mut self, writer: IndexWriter) {
        self.target = Target::Sorted(Box::new(writer));
    }

    /// Entries go to a spill from the start (plaintext, whose hashes come in no order).
    pub(super) fn open_unsorted(&mut self) {
        self.sorted = false;
        self.target = Target::Unsorted(self.new_spill());
    }

    /// Whether every entry so far came in hash order.
    pub(super) fn sorted_input(&self) -> bool {
        self.sorted
    }

    fn new_spill(&self) -> Spill {
        Spill::new(self.memory, self.tmp_root.clone(), self.expected)
    }

    /// Takes a block's entries (`block_sorted`: in order, by the parser's account); a sorted
    /// sink that meets disorder becomes a spill, into which what was written so far is read
    /// back.
    pub(super) fn feed(&mut self, entries: &[Entry], block_sorted: bool) -> Result<()> {
        let mut start = 0;
        if let Target::Sorted(writer) = &mut self.target {
            if block_sorted {
                start = writer.push_sorted(entries)?;
            }
            if start < entries.len() || !block_sorted {
                self.sorted = false;
                let mut spill = self.new_spill();
                let Target::Sorted(writer) = std::mem::replace(&mut self.target, Target::Unopened)
                else {
                    unreachable!("matched above")
                };
                writer.into_entries(&mut |e| spill.push(e))?;
                self.target = Target::Unsorted(spill);
            }
        }
        match &mut self.target {
            Target::Unsorted(spill) => {
                for e in &entries[start..] {
                    spill.push(*e)?;
                }
            }
            Target::Sorted(_) => {}
            Target::Unopened => unreachable!("entries reach a sink only once it is open"),
        }
        Ok(())
    }

    /// The writer that holds every entry: the sorted one, or one that `create` makes and the
    /// spill's partitions are sorted into. Also returns the bytes spilled to temporary files
    /// and the time the sort took.
    pub(super) fn into_writer(
        self,
        create: &dyn Fn() -> Result<IndexWriter>,
        cancel: &dyn Fn() -> Result<()>,
        progress: &dyn BuildProgress,
    ) -> Result<(IndexWriter, u64, Duration)> {
        match self.target {
            Target::Sorted(writer) => Ok((*writer, 0, Duration::ZERO)),
            Target::Unsorted(spill) => {
                let sorting = Instant::now();
                let mut writer = create()?;
                let temp_bytes = spill.finish(&mut writer, cancel, progress)?;
                Ok((writer, temp_bytes, sorting.elapsed()))
            }
            Target::Unopened => Ok((create()?, 0, Duration::ZERO)),
        }
    }
}

/// Partitions by the top 12 bits of the hash.
const PARTITIONS: usize = 4096;
/// Bytes of an entry in a partition file: the hash and the count.
const SPILL_ENTRY: usize = 28;

/// Unsorted entries, held in memory by partition up to a limit, then appended to files.
pub struct Spill {
    parts: Vec<Vec<Entry>>,
    buffered: usize,
    limit: usize,
    tmp_root: PathBuf,
    dir: Option<tempfile::TempDir>,
    /// The folder opened and locked while the build lives (see [`crate::sys::lock_own`]).
    dir_lock: Option<std::fs::File>,
    written: Vec<u64>,
    spilled_bytes: u64,
    expected_entries: u64,
}

impl Spill {
    pub(super) fn new(memory: u64, tmp_root: PathBuf, expected_entries: u64) -> Spill {
        // Partition vectors may hold up to twice what they use (they grow by doubling), and
        // parsing, writing and the filter need room too: buffer a quarter of the budget.
        let limit = (memory / 4 / std::mem::size_of::<Entry>() as u64).max(1024) as usize;
        Spill {
            parts: (0..PARTITIONS).map(|_| Vec::new()).collect(),
            buffered: 0,
            limit,
            tmp_root,
            dir: None,
            dir_lock: None,
            written: vec![0; PARTITIONS],
            spilled_bytes: 0,
            expected_entries,
        }
    }

    #[inline]
    pub(super) fn push(&mut self, entry: Entry) -> Result<()> {
        let p = ((entry.hash[0] as usize) << 4) | (entry.hash[1] as usize >> 4);
        self.parts[p].push(entry);
        self.buffered += 1;
        if self.buffered >= self.limit {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.dir.is_none() {
            let (dir, lock) = locked_temp_dir(&self.tmp_root, "")?;
            self.dir_lock = Some(lock);
            let need = self.expected_entries.saturating_mul(SPILL_ENTRY as u64);
            check_free_space(dir.path(), need, "temporary partition files need")?;
            self.dir = Some(dir);
        }
        let dir = self
            .dir
            .as_ref()
            .expect("created above")
            .path()
            .to_path_buf();
        let written: Vec<std::result::Result<u64, std::io::Error>> = self
            .parts
            .par_iter_mut()
            .enumerate()
            .map(|(p, entries)| {
                if entries.is_empty() {
                    return Ok(0);
                }
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("{p:03x}")))?;
                let mut out = BufWriter::with_capacity(256 << 10, file);
                for e in entries.iter() {
                    out.write_all(&e.hash)?;
                    out.write_all(&e.count.to_le_bytes()[..])?;
                }
                out.flush()?;
                let n = entries.len() as u64;
                entries.clear();
                Ok(n)
            })
            .collect();
        for (p, w) in written.into_iter().enumerate() {
            let n = w.map_err(|e| Error::io(&dir, "cannot write a temporary partition in", e))?;
            self.written[p] += n;
            self.spilled_bytes += n * SPILL_ENTRY as u64;
        }
        self.buffered = 0;
        Ok(())
    }

    /// Sorts each partition (read back from its file, if any) and writes it in order: a few
    /// partitions at a time, loaded and sorted in parallel, then written one after another.
    pub(super) fn finish(
        mut self,
        writer: &mut IndexWriter,
        cancel: &dyn Fn() -> Result<()>,
        progress: &dyn BuildProgress,
    ) -> Result<u64> {
        let total = self.written.iter().sum::<u64>() + self.buffered as u64;
        progress.phase("sorting", total * SPILL_ENTRY as u64);
        let dir = self.dir.as_ref().map(|d| d.path().to_path_buf());
        let batch = rayon::current_num_threads() * 4;
        let ids: Vec<usize> = (0..PARTITIONS).collect();
        for group in ids.chunks(batch) {
            cancel()?;
            let mut taken: Vec<(usize, Vec<Entry>)> = group
                .iter()
                .map(|&p| (p, std::mem::take(&mut self.parts[p])))
                .collect();
            let written = &self.written;
            let loaded: Vec<Result<Vec<Entry>>> = taken
                .par_iter_mut()
                .map(|(p, entries)| {
                    let mut entries = std::mem::take(entries);
                    if written[*p] > 0 {
                        let dir = dir.as_ref().expect("written partitions have a folder");
                        let path = dir.join(format!("{p:03x}"));
                        let bytes = std::fs::read(&path)
                            .map_err(|e| Error::io(&path, "cannot read back", e))?;
                        entries.reserve(bytes.len() / SPILL_ENTRY);
                        for c in bytes.chunks_exact(SPILL_ENTRY) {
                            let mut hash: HashBytes = [0; 20];
                            hash.copy_from_slice(&c[..20]);
                            let count = u64::from_le_bytes(c[20..28].try_into().expect("8 bytes"));
                            entries.push(Entry { hash, count });
                        }
                        let _ = std::fs::remove_file(&path);
                    }
                    sort_by_hash(&mut entries);
                    Ok(entries)
                })
                .collect();
            for entries in loaded {
                let entries = entries?;
                progress.advance((entries.len() * SPILL_ENTRY) as u64, 0);
                if writer.push_sorted(&entries)? < entries.len() {
                    return Err(Error::Internal(
                        "a sorted partition came out of order".into(),
                    ));
                }
            }
        }
        Ok(self.spilled_bytes)
    }
}

/// A temporary folder in `root`, named `TEMP_DIR_PREFIX` + `name` + random, and a handle that
/// keeps it locked: a later build's sweep removes it if this process dies, and leaves it alone
/// while the handle is open.
pub(crate) fn locked_temp_dir(
    root: &Path,
    name: &str,
) -> Result<(tempfile::TempDir, std::fs::File)> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}{name}", crate::sys::TEMP_DIR_PREFIX))
        .tempdir_in(root)
        .map_err(|e| Error::io(root, "cannot create a temporary folder in", e))?;
    let lock =
        std::fs::File::open(dir.path()).map_err(|e| Error::io(dir.path(), "cannot open", e))?;
    crate::sys::lock_own(&lock).map_err(|e| Error::io(dir.path(), "cannot lock", e))?;
    Ok((dir, lock))
}
