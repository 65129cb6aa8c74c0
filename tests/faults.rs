//! Faults: a disk that fills up under `build` (output and `--tmp`), `merge` and `export`.
//! Each must fail with a clear "no space" error that names the path, exit with code 2, and
//! leave nothing behind: no partial index, no temporary files.
//!
//! The tests mount a small tmpfs, which needs root (or CAP_SYS_ADMIN); where the process may
//! not mount, they say so and skip.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `mib` MiB mounted at a fresh folder, unmounted when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u64) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk { dir }),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs here (needs root): {}",
                    text(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What is left on the disk.
    fn entries(&self) -> Vec<String> {
        std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A sorted dump of `n` generated hashes in `dir`.
fn dump(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join(format!("dump-{n}.txt"));
    let o = run(&["generate", "-n", &n.to_string(), "-o", s(&path)], b"");
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    path
}

fn assert_no_space(o: &std::process::Output, disk: &SmallDisk, what: &str) {
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{what}: {err}");
    assert!(
        err.contains("No space left on device") || err.contains("not enough space"),
        "{what}: {err}"
    );
    assert!(err.contains(s(disk.path())), "{what}: {err}");
    assert_eq!(disk.entries(), Vec::<String>::new(), "{what}: {err}");
}

/// The disk fills while the index is written (a stream's size is not known before, so no
/// estimate can refuse it first), and an index that cannot fit is refused before any work.
#[test]
fn build_onto_a_full_disk_fails_cleanly() {
    let Some(disk) = SmallDisk::mount(40) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let input = dump(work.path(), 2_500_000);
    let out = disk.path().join("x.ldx");
    // From a pipe: written until the disk is full.
    let o = Command::new(env!("CARGO_BIN_EXE_leakdex"))
        .args(["build", "-", "-o", s(&out)])
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert_no_space(&o, &disk, "build from a pipe");
    assert!(text(&o.stderr).contains("No space left on device"));
    // From the file: the estimate refuses it first.
    let o = run(&["build", s(&input), "-o", s(&out)], b"");
    assert_no_space(&o, &disk, "build from a file");
    assert!(text(&o.stderr).contains("not enough space"));
    // A rebuild onto a disk with room succeeds, with nothing to clean up first.
    let o = run(
        &[
            "build",
            s(&input),
            "-o",
            s(&work.path().join("ok.ldx")),
            "-q",
        ],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

/// Unsorted input past its memory budget spills to --tmp: a --tmp too small is refused.
#[test]
fn a_full_temporary_disk_fails_cleanly() {
    let Some(disk) = SmallDisk::mount(8) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let sorted = dump(work.path(), 1_000_000);
    // Reverse the lines: unsorted, and too many to sort in 16 MiB.
    let text_bytes = std::fs::read(&sorted).unwrap();
    let mut lines: Vec<&[u8]> = text_bytes.split_inclusive(|&b| b == b'\n').collect();
    lines.reverse();
    let unsorted = write_file(work.path(), "unsorted.txt", &lines.concat());
    let out = work.path().join("u.ldx");
    let o = run(
        &[
            "build",
            s(&unsorted),
            "-o",
            s(&out),
            "--tmp",
            s(disk.path()),
            "--memory",
            "16M",
        ],
        b"",
    );
    assert_no_space(&o, &disk, "spill");
    assert!(!out.exists());
    assert!(files_named_with(work.path(), ".leakdex").is_empty());
}

/// `merge` and `export` onto a full disk: the same.
#[test]
fn merge_and_export_onto_a_full_disk_fail_cleanly() {
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let input = dump(work.path(), 1_000_000);
    let index = work.path().join("i.ldx");
    let o = run(&["build", s(&input), "-o", s(&index), "-q"], b"");
    assert_eq!(o.status.code(), Some(0));
    let small = write_file(
        work.path(),
        "small.txt",
        b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:3\n",
    );
    let o = run(
        &[
            "merge",
            "-o",
            s(&disk.path().join("m.ldx")),
            s(&index),
            s(&small),
        ],
        b"",
    );
    assert_no_space(&o, &disk, "merge");
    // 65,536 bodies of about 15 rows each: more than 24 MiB of files and blocks.
    let o = run(
        &[
            "export",
            "-i",
            s(&index),
            s(&disk.path().join("tree")),
            "--gzip",
            "--prefixes",
            "00000-0FFFF",
        ],
        b"",
    );
    assert_no_space(&o, &disk, "export");
}
