//! The one module with `unsafe` code: mapping files, aligned buffers, process settings.
//!
//! Everything else in the crate works on `&[u8]`.

use crate::error::{Error, Result};
use std::fs::File;
use std::path::Path;

/// A read-only view of a whole file: memory-mapped, or empty for an empty file (which
/// cannot be mapped on every platform).
pub struct MappedFile {
    map: Option<memmap2::Mmap>,
}

impl MappedFile {
    /// Maps `path` read-only.
    ///
    /// If another process truncates the file while it is mapped, reading the lost pages
    /// raises SIGBUS. leakdex publishes indexes by atomic rename, which leaves a mapped old
    /// file intact; a dump or index that is truncated in place while in use is outside what
    /// the tool protects against.
    pub fn open(path: &Path) -> Result<MappedFile> {
        let file = File::open(path).map_err(|e| Error::io(path, "cannot open", e))?;
        Self::from_file(&file, path)
    }

    /// Maps an open file read-only; `path` is used in errors.
    pub fn from_file(file: &File, path: &Path) -> Result<MappedFile> {
        let meta = file
            .metadata()
            .map_err(|e| Error::io(path, "cannot read metadata of", e))?;
        if !meta.is_file() {
            return Err(Error::io(
                path,
                "cannot memory-map",
                std::io::Error::other("not a regular file (a pipe or folder cannot be mapped)"),
            ));
        }
        if meta.len() == 0 {
            return Ok(MappedFile { map: None });
        }
        // SAFETY: the map is read-only and lives as long as `MappedFile`; the bytes are only
        // ever read as plain `u8`, so any content is valid. Concurrent truncation by another
        // process is the one hazard (SIGBUS), documented above.
        let map = unsafe { memmap2::MmapOptions::new().map(file) }
            .map_err(|e| Error::io(path, "cannot memory-map", e))?;
        Ok(MappedFile { map: Some(map) })
    }

    /// Tells the kernel the file will be read front to back.
    pub fn advise_sequential(&self) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            let _ = map.advise(memmap2::Advice::Sequential);
        }
    }

    /// Tells the kernel the file will be read at random places.
    pub fn advise_random(&self) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            let _ = map.advise(memmap2::Advice::Random);
        }
    }

    /// Drops the mapped pages of `range` from this process's memory (they stay in the page
    /// cache and are read again if touched), so that a long sequential read keeps a small
    /// resident set. Offsets are rounded inwards to whole pages.
    pub fn release(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        if let Some(map) = &self.map {
            const PAGE: usize = 4096;
            let start = range.start.div_ceil(PAGE) * PAGE;
            let end = (range.end.min(map.len()) / PAGE) * PAGE;
            if end > start {
                // SAFETY: the mapping is a read-only, file-backed private map; after
                // MADV_DONTNEED a later read of these pages sees the file's contents again,
                // which are the same bytes any outstanding `&[u8]` refers to.
                let _ = unsafe {
                    map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                };
            }
        }
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

/// Owned bytes whose start is 8-byte aligned, as an index held in memory needs (the 16-bit
/// filter is read in place as `u16`).
pub struct AlignedBytes {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBytes {
    /// Copies `bytes` into an aligned buffer.
    pub fn copy_from(bytes: &[u8]) -> AlignedBytes {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (w, c) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut eight = [0u8; 8];
            eight[..c.len()].copy_from_slice(c);
            *w = u64::from_ne_bytes(eight);
        }
        AlignedBytes {
            words,
            len: bytes.len(),
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` owns `words.len() * 8 >= len` initialised bytes; u8 has no
        // alignment or validity requirements, and the borrow ties the slice to `self`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

/// Keeps this process's memory (passwords being checked) out of core dumps, where the
/// platform allows.
pub fn forbid_core_dumps() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(PR_SET_DUMPABLE) takes plain integer arguments and touches no memory.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Free bytes for an unprivileged user on the file system holding `path`.
pub fn free_space(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `c` is a valid NUL-terminated path and `stat` points to writable memory of
        // the right type; statvfs fills it in full when it returns 0.
        let rc = unsafe { libc::statvfs(c.as_ptr(), stat.as_mut_ptr()) };
        if rc != 0 {
            return None;
        }
        // SAFETY: statvfs returned 0, so the struct is initialised.
        let stat = unsafe { stat.assume_init() };
        // The field types differ between platforms (u32 on some), hence the casts.
        #[allow(clippy::unnecessary_cast)]
        let free = stat.f_bavail as u64 * stat.f_frsize as u64;
        Some(free)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Asks the processor to start loading the cache line holding `bytes[at]` (nothing happens
/// past the end). Used to overlap the memory accesses of a batch of lookups.
#[inline(always)]
pub fn prefetch(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if at < bytes.len() {
        // SAFETY: a prefetch is a hint that never faults and reads nothing into the program;
        // the address is inside `bytes` anyway. SSE is part of every x86_64 target.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                bytes.as_ptr().add(at).cast::<i8>(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, at);
}

/// Tells the C allocator to keep and reuse freed memory instead of returning it to the system
/// at once. A build allocates and frees tens of MB per filter shard and per input block; with
/// glibc's defaults each of those comes from fresh pages, and the first write to a page that
/// was read as zero costs a fault and a TLB shootdown across cores (10% of a build's time in
/// a profile). Call it once, early, from a program (it changes the whole process).
pub fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes plain integers and only changes the allocator's thresholds; it is
    // safe to call at any time, and called before any other thread starts.
    unsafe {
        // Blocks up to 32 MiB (glibc's maximum for this setting) come from the heap, and up
        // to 1 GiB of free memory at the heap's top is kept for reuse.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
