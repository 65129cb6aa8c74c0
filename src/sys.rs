//! The one module with `unsafe` code: mapping files, aligned buffers, process settings, the
//! huge-page allocator the program installs, write-back and prefetch hints, and the SSE2
//! decoding of hex digits.
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

    /// Asks the kernel to back the map with 2 MiB pages where it can: pages read from disk
    /// from now on come into the page cache 2 MiB at a time, and are then mapped with one TLB
    /// entry each. Pages already cached keep their size.
    pub fn advise_huge_pages(&self) {
        #[cfg(target_os = "linux")]
        if let Some(map) = &self.map {
            let _ = map.advise(memmap2::Advice::HugePage);
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
        // One copy of the whole (a copy per word made opening an 8.5 MB index in memory
        // cost more than its queries under the fuzz targets' instrumentation).
        // SAFETY: `words` owns `words.len() * 8 >= bytes.len()` bytes, which cannot overlap
        // `bytes`; any bytes make valid u64s.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                words.as_mut_ptr().cast::<u8>(),
                bytes.len(),
            )
        };
        AlignedBytes {
            words,
            len: bytes.len(),
        }
    }

    /// Reads `len` bytes of `file` from its current position.
    pub fn read_from(file: &mut File, len: usize) -> std::io::Result<AlignedBytes> {
        use std::io::Read;
        let mut words = vec![0u64; len.div_ceil(8)];
        #[cfg(target_os = "linux")]
        if len >= 4 << 20 {
            // Lookups over a large index reach it with far fewer TLB misses in 2 MiB pages
            // (as mapped indexes ask with `advise_huge_pages`); only a hint.
            // SAFETY: madvise reads no memory; the range lies within `words`' allocation
            // rounded down to whole pages.
            unsafe {
                let start = words.as_mut_ptr() as usize;
                let aligned = (start + 4095) & !4095;
                let end = (start + words.len() * 8) & !4095;
                if end > aligned {
                    libc::madvise(
                        aligned as *mut libc::c_void,
                        end - aligned,
                        libc::MADV_HUGEPAGE,
                    );
                }
            }
        }
        // SAFETY: `words` owns `words.len() * 8 >= len` initialised bytes, which any byte
        // pattern may overwrite; the slice lives only for this read.
        let bytes = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) };
        file.read_exact(bytes)?;
        Ok(AlignedBytes { words, len })
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

/// Raises this process's limit on open descriptors (`RLIMIT_NOFILE`) from its soft value to
/// its hard one, as far as the kernel allows, and returns the soft limit now in force (`None`
/// where the platform has no such limit or it cannot be read). A server holds a descriptor
/// per connection, and the soft limit is often 1,024 while the hard one is far higher.
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not on every Unix.
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one `rlimit` through a pointer to a local that outlives the
        // call.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            return None;
        }
        if limit.rlim_cur == libc::RLIM_INFINITY {
            return Some(u64::MAX);
        }
        let mut want = limit.rlim_max;
        if want == libc::RLIM_INFINITY {
            // Linux refuses more than fs.nr_open; other systems have their own ceilings.
            want = std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(1 << 20);
        }
        if want > limit.rlim_cur {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: setrlimit reads one `rlimit` from a local that outlives the call.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                return Some(want as u64);
            }
        }
        Some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}

/// Writes out everything cached for the file system that holds `file` (`syncfs` on Linux; a
/// sync of `file` alone elsewhere): one call instead of a sync per file for a tree of many
/// small files.
pub fn sync_file_system(file: &std::fs::File) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the duration of the call.
        let rc = unsafe { libc::syncfs(file.as_raw_fd()) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        file.sync_all()
    }
}

/// Memory this machine has in all, from `/proc/meminfo` where there is one.
pub fn total_memory() -> Option<u64> {
    meminfo("MemTotal:")
}

/// Memory this machine has available, from `/proc/meminfo` where there is one.
pub fn available_memory() -> Option<u64> {
    meminfo("MemAvailable:")
}

fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
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

/// [`crate::hash::decode_hex_16`] with SSE2: sixteen hex digits, either case, into eight
/// bytes (the first in the low byte); `None` if any is not a hex digit.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn decode_hex_16_sse2(digits: &[u8; 16]) -> Option<u64> {
    // SAFETY: the function only needs SSE2, which every x86-64 processor has and every x86_64
    // target of Rust enables; it reads nothing but its argument.
    unsafe { hex_16_sse2(digits) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn hex_16_sse2(digits: &[u8; 16]) -> Option<u64> {
    use core::arch::x86_64::*;
    let half = |at: usize| i64::from_le_bytes(digits[at..at + 8].try_into().expect("8 digits"));
    let x = _mm_set_epi64x(half(8), half(0));
    let zero = _mm_setzero_si128();
    // Unsigned bytes: v <= k exactly where v minus k, saturating, is 0.
    let at_most = |v: __m128i, k: i8| _mm_cmpeq_epi8(_mm_subs_epu8(v, _mm_set1_epi8(k)), zero);
    let digit = _mm_sub_epi8(x, _mm_set1_epi8(b'0' as i8));
    let is_digit = at_most(digit, 9);
    // Setting bit 5 maps 'A'..'F' onto 'a'..'f', and no byte that is not a letter onto them.
    let letter = _mm_sub_epi8(
        _mm_or_si128(x, _mm_set1_epi8(0x20)),
        _mm_set1_epi8(b'a' as i8),
    );
    let is_letter = at_most(letter, 5);
    if _mm_movemask_epi8(_mm_or_si128(is_digit, is_letter)) != 0xFFFF {
        return None;
    }
    let values = _mm_or_si128(
        _mm_and_si128(is_digit, digit),
        _mm_and_si128(is_letter, _mm_add_epi8(letter, _mm_set1_epi8(10))),
    );
    // Each 16-bit lane holds two digits, the first in its low byte: first << 4 | second.
    let pairs = _mm_or_si128(
        _mm_and_si128(_mm_slli_epi16(values, 4), _mm_set1_epi16(0xF0)),
        _mm_srli_epi16(values, 8),
    );
    Some(_mm_cvtsi128_si64(_mm_packus_epi16(pairs, pairs)) as u64)
}

/// Bytes of files this process maps with 2 MiB page-table entries (Linux's
/// `FilePmdMapped`), or `None` where unknown. For reports: an index mapped that way answers
/// lookups with far fewer TLB misses.
pub fn file_bytes_in_huge_pages() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/smaps_rollup").ok()?;
    let line = text.lines().find(|l| l.starts_with("FilePmdMapped:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Starts writing the dirty pages of `range` of `file` to disk without waiting for them, so a
/// later sync of a large file has less left to do. Does nothing where unsupported.
pub fn start_writeback(file: &std::fs::File, range: std::ops::Range<u64>) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let (Ok(start), Ok(len)) = (
            i64::try_from(range.start),
            i64::try_from(range.end.saturating_sub(range.start)),
        ) else {
            return;
        };
        // SAFETY: sync_file_range takes a descriptor `file` keeps open and plain integers; it
        // touches no memory of ours. Failure only means the final sync does all the work.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), start, len, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, range);
}

/// The system allocator, asking for transparent huge pages for every block of 4 MiB or more.
/// A build's large tables (filter construction scratch, parsed blocks) are written at random
/// or all at once; with 2 MiB pages they take 512 times fewer page faults and TLB misses (the
/// README's design notes give a measurement). Install it in a program with
/// `#[global_allocator]`; where huge pages are unsupported it is the system allocator.
pub struct HugePageAlloc;

const HUGE_ALLOC_MIN: usize = 4 << 20;

#[inline]
fn advise_huge_pages(ptr: *mut u8, size: usize) {
    #[cfg(target_os = "linux")]
    if !ptr.is_null() && size >= HUGE_ALLOC_MIN {
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + size) & !(HUGE - 1);
        if end > start {
            // SAFETY: the range lies inside the block just allocated, which this process owns;
            // MADV_HUGEPAGE changes only how the kernel backs it, never its contents.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, size);
}

// SAFETY: every method forwards to `System` with the same arguments; the advice given after
// an allocation does not change the memory's contents or ownership.
unsafe impl std::alloc::GlobalAlloc for HugePageAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        let p = unsafe { std::alloc::System.alloc(layout) };
        advise_huge_pages(p, layout.size());
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { std::alloc::System.alloc_zeroed(layout) };
        advise_huge_pages(p, layout.size());
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, with the caller's guarantees on `new_size`.
        let p = unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        advise_huge_pages(p, new_size);
        p
    }
}

// --- Stopping on signals -------------------------------------------------------------------

/// The signals that ask a long job to stop and clean up: Ctrl-C, `kill`/`timeout`/systemd,
/// and a closed terminal or dropped ssh session.
#[cfg(unix)]
pub const STOP_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// Turns SIGINT, SIGTERM and SIGHUP into a request to stop: the first sets a flag that the
/// work polls (it then removes its temporary files and returns); a second one ends the process
/// at once with the usual exit code of 128 plus the signal's number.
pub struct StopSignals {
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
    signal: std::sync::Arc<std::sync::atomic::AtomicI32>,
}

impl StopSignals {
    /// Installs the handlers for this process (they stay for its lifetime).
    pub fn install() -> std::io::Result<StopSignals> {
        use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
        use std::sync::Arc;
        let flag = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicI32::new(0));
        #[cfg(unix)]
        for sig in STOP_SIGNALS {
            // A signal the process was started ignoring stays ignored: `nohup` ignores SIGHUP,
            // shells ignore SIGINT for background jobs, and such a build must run on.
            if ignored(sig) {
                continue;
            }
            let (f, s) = (Arc::clone(&flag), Arc::clone(&signal));
            let action = move || {
                if f.load(Ordering::SeqCst) {
                    // SAFETY: _exit is async-signal-safe, and ends the process without running
                    // anything else of it.
                    unsafe { libc::_exit(128 + sig) };
                }
                // The signal first: whoever sees the flag set finds which signal set it.
                s.store(sig, Ordering::SeqCst);
                f.store(true, Ordering::SeqCst);
            };
            // SAFETY: the action only does atomic operations and calls _exit, all of which are
            // async-signal-safe; it neither allocates nor takes locks.
            unsafe { signal_hook_registry::register(sig, action) }?;
        }
        Ok(StopSignals { flag, signal })
    }

    /// The flag a signal sets, for [`crate::BuildOptions::cancel`].
    pub fn flag(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        std::sync::Arc::clone(&self.flag)
    }

    /// Whether a stop was asked for.
    pub fn stopped(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The name of the signal received (`SIGINT` where none or an unknown one was).
    pub fn signal_name(&self) -> &'static str {
        #[cfg(unix)]
        match self.signal.load(std::sync::atomic::Ordering::SeqCst) {
            libc::SIGTERM => return "SIGTERM",
            libc::SIGHUP => return "SIGHUP",
            _ => {}
        }
        "SIGINT"
    }

    /// The exit code a shell reports for the signal received: 128 plus its number (130 for
    /// SIGINT, 143 for SIGTERM, 129 for SIGHUP).
    pub fn exit_code(&self) -> u8 {
        match self.signal.load(std::sync::atomic::Ordering::SeqCst) {
            s @ 1..=127 => 128 + s as u8,
            _ => 130,
        }
    }
}

/// Whether `sig` is set to be ignored (SIG_IGN) in this process.
#[cfg(unix)]
fn ignored(sig: i32) -> bool {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: sigaction with a null new action only reads the current one into `old`, which
    // points to writable memory of the right type.
    let rc = unsafe { libc::sigaction(sig, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: zeroed is a valid sigaction, and sigaction filled it in when it returned 0.
    rc == 0 && unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN
}

// --- Temporary files of builds ---------------------------------------------------------------

/// Takes an exclusive advisory lock (flock) on a temporary file or folder that this process
/// has just created, waiting for it if need be (a sweep by another process holds it for
/// microseconds). Where the file system does not support flock (ENOSYS, ENOLCK, EOPNOTSUPP),
/// goes on without: such files are never swept, as they cannot be locked.
pub fn lock_own(file: &File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        loop {
            // SAFETY: flock takes a descriptor `file` keeps open and plain flags.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(());
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ENOSYS | libc::ENOLCK | libc::EOPNOTSUPP) => return Ok(()),
                _ => return Err(err),
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}

/// Takes an exclusive advisory lock (flock) on `file` without waiting: `Ok(true)` when taken,
/// `Ok(false)` when another open file holds it. A running build holds the lock on each of its
/// temporary files and folders for as long as it lives, so a temporary that can be locked was
/// left by a process that is gone. Where flock is unsupported, reports the lock as taken.
pub fn try_lock(file: &File) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::io::AsRawFd;
        // SAFETY: flock takes a descriptor `file` keeps open and plain flags.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Ok(false);
        }
        Err(err)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(true)
    }
}

/// The suffix of the temporary files in which indexes and generated dumps are written before
/// they are renamed into place: `.NAME.RANDOM.leakdex-tmp`.
pub const TEMP_FILE_SUFFIX: &str = ".leakdex-tmp";
/// The prefix of a build's folder of temporary partition files: `.leakdex-build-RANDOM`.
pub const TEMP_DIR_PREFIX: &str = ".leakdex-build-";
/// Temporaries younger than this are never removed by a sweep: a process that has just created
/// one may not have locked it yet.
pub const SWEEP_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(10);

/// What [`sweep_temporaries`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Temporaries of stopped processes that were removed, with their sizes in bytes.
    pub removed: Vec<(std::path::PathBuf, u64)>,
    /// Temporaries that no running process holds but that were left alone: too recent, or
    /// they could not be removed (the reason is given).
    pub left: Vec<(std::path::PathBuf, String)>,
}

/// Removes the temporary files and folders that stopped leakdex processes (killed with SIGKILL,
/// or by a power cut) left in `dir`. Those of running processes are locked and left alone, as
/// are any younger than [`SWEEP_MIN_AGE`]. Errors reading the folder give an empty sweep: this
/// is housekeeping, and the work that follows reports any real problem with the folder.
pub fn sweep_temporaries(dir: &Path) -> Sweep {
    let mut sweep = Sweep::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return sweep;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_file = name.starts_with('.') && name.ends_with(TEMP_FILE_SUFFIX);
        let is_dir = name.starts_with(TEMP_DIR_PREFIX);
        if !is_file && !is_dir {
            continue;
        }
        let path = entry.path();
        let Ok(handle) = File::open(&path) else {
            continue;
        };
        let Ok(meta) = handle.metadata() else {
            continue;
        };
        if meta.is_dir() != is_dir || !try_lock(&handle).unwrap_or(false) {
            continue;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .unwrap_or_default();
        if age < SWEEP_MIN_AGE {
            sweep.left.push((
                path,
                "it was written in the last few seconds; remove it if no leakdex is running".into(),
            ));
            continue;
        }
        let (bytes, result) = if is_dir {
            let bytes = std::fs::read_dir(&path)
                .map(|d| {
                    d.flatten()
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
            (bytes, std::fs::remove_dir_all(&path))
        } else {
            (meta.len(), std::fs::remove_file(&path))
        };
        match result {
            Ok(()) => sweep.removed.push((path, bytes)),
            Err(e) => sweep.left.push((path, format!("cannot remove it: {e}"))),
        }
    }
    sweep.removed.sort();
    sweep.left.sort();
    sweep
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn backdate(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::open(path)
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_modified(old))
            .unwrap();
    }

    #[test]
    fn aligned_bytes_hold_every_byte_of_any_length() {
        let source: Vec<u8> = (1..=40).collect();
        for len in 0..=source.len() {
            let copy = AlignedBytes::copy_from(&source[..len]);
            assert_eq!(copy.bytes(), &source[..len]);
            assert_eq!(copy.bytes().as_ptr().align_offset(8), 0);
        }
    }

    #[test]
    fn sweeps_stale_temporaries_and_leaves_held_recent_and_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let stale = d.join(".a.ldx.Xy12Ab.leakdex-tmp");
        std::fs::write(&stale, b"partial index").unwrap();
        backdate(&stale);
        let stale_dir = d.join(".leakdex-build-Qw34Er");
        std::fs::create_dir(&stale_dir).unwrap();
        std::fs::write(stale_dir.join("0ab"), [0u8; 56]).unwrap();
        backdate(&stale_dir);
        // Held by a running build: locked.
        let held = d.join(".b.ldx.Zz99Zz.leakdex-tmp");
        std::fs::write(&held, b"being written").unwrap();
        backdate(&held);
        let holder = File::open(&held).unwrap();
        assert!(try_lock(&holder).unwrap());
        // Just created: maybe not locked yet.
        let recent = d.join(".c.ldx.Rr11Rr.leakdex-tmp");
        std::fs::write(&recent, b"new").unwrap();
        // Not leakdex's.
        let other = d.join("notes.leakdex-tmp.txt");
        std::fs::write(&other, b"mine").unwrap();
        backdate(&other);

        let sweep = sweep_temporaries(d);
        assert_eq!(
            sweep.removed,
            vec![(stale.clone(), 13), (stale_dir.clone(), 56)]
        );
        assert_eq!(sweep.left.len(), 1);
        assert_eq!(sweep.left[0].0, recent);
        assert!(!stale.exists() && !stale_dir.exists());
        assert!(held.exists() && recent.exists() && other.exists());
        // Released, the held one goes too.
        drop(holder);
        let sweep = sweep_temporaries(d);
        assert_eq!(sweep.removed, vec![(held.clone(), 13)]);
    }
}
