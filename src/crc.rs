//! [`CrcWriter`]: a file written with a running CRC-32 and length, in runs aligned to the
//! file's 1 MiB boundaries.

use crate::format::{align8, encode_record};
use crate::hash::HashBytes;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

/// A file being written with a running CRC and length. Bytes gather in a buffer and go to
/// the file and the CRC in runs that end on 1 MiB boundaries of the file: CRC-32 with
/// carry-less multiplication is many times faster on long runs than on one 18-byte record at
/// a time, and aligned runs let the page cache hold the file in large pages. (2 MiB runs would
/// get 2 MiB pages, which readers map with one TLB entry each, but they were slower to write:
/// see the README's design notes.)
pub(crate) struct CrcWriter {
    file: File,
    /// The file offset of the first byte written through this writer.
    base: u64,
    /// For the index itself: the offset up to which writing back to disk has been started, so
    /// that the final sync has little left to do.
    writeback: Option<u64>,
    /// `WRITE_CHUNK` bytes, of which the first `used` are waiting to be written.
    buf: Box<[u8]>,
    used: usize,
    /// How many bytes `buf` may hold before it reaches the file's next `WRITE_CHUNK` boundary.
    limit: usize,
    /// CRC of the bytes already in the file (not those in `buf`).
    crc: crc32fast::Hasher,
    /// Bytes written, counting those still in `buf`.
    len: u64,
}

/// Bytes per run written to the file.
pub(crate) const WRITE_CHUNK: usize = 1 << 20;

impl CrcWriter {
    /// A writer for a scratch file, from its start.
    pub(crate) fn new(file: File) -> CrcWriter {
        CrcWriter::at(file, 0, false)
    }

    /// A writer whose first byte goes at file offset `offset`. With `writeback` (for the index
    /// itself) it starts writing the data out to disk every 32 MB instead of leaving it all to
    /// the sync at the end.
    pub(crate) fn at(file: File, offset: u64, writeback: bool) -> CrcWriter {
        CrcWriter {
            file,
            base: offset,
            writeback: writeback.then_some(offset),
            buf: vec![0u8; WRITE_CHUNK].into_boxed_slice(),
            used: 0,
            limit: WRITE_CHUNK - (offset % WRITE_CHUNK as u64) as usize,
            crc: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    /// The file written to (the bytes still buffered are not in it yet).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// Bytes written, counting those still buffered.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends a record of `N` bytes (a constant, so that it compiles to a few moves). The
    /// record is encoded in place in the buffer: encoded on the stack and copied, it was
    /// stored and loaded back in other widths, where perf found most of the writer's samples.
    #[inline(always)]
    pub(crate) fn write_record<const N: usize>(
        &mut self,
        hash: &HashBytes,
        code: u8,
    ) -> io::Result<()> {
        let end = self.used + N;
        if end < self.limit {
            encode_record(hash, code, &mut self.buf[self.used..end]);
            self.used = end;
            self.len += N as u64;
            Ok(())
        } else {
            let mut record = [0u8; N];
            encode_record(hash, code, &mut record);
            self.write_all(&record)
        }
    }

    /// The CRC of everything written so far.
    pub(crate) fn crc(&mut self) -> io::Result<u32> {
        self.flush()?;
        Ok(self.crc.clone().finalize())
    }

    /// Pads what was written to a multiple of 8 bytes with zeros.
    pub(crate) fn pad_to_8(&mut self) -> io::Result<()> {
        let pad = (align8(self.len) - self.len) as usize;
        self.write_all(&[0u8; 8][..pad])
    }

    /// Copies a scratch file's contents (from its start) to `out`; returns their length (the
    /// caller takes the scratch file's CRC).
    pub(crate) fn copy_to(&mut self, out: &mut CrcWriter) -> io::Result<u64> {
        self.flush()?;
        let file = &mut self.file;
        file.seek(SeekFrom::Start(0))?;
        let mut chunk = vec![0u8; WRITE_CHUNK];
        let mut left = self.len;
        while left > 0 {
            let n = left.min(WRITE_CHUNK as u64) as usize;
            file.read_exact(&mut chunk[..n]).map_err(|e| {
                io::Error::new(e.kind(), format!("a temporary file came back short: {e}"))
            })?;
            out.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        Ok(self.len)
    }
}

impl Write for CrcWriter {
    /// Takes all of `bytes` (never a part).
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.write_all(bytes)?;
        Ok(bytes.len())
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while self.used + bytes.len() >= self.limit {
            let (now, rest) = bytes.split_at(self.limit - self.used);
            self.buf[self.used..self.limit].copy_from_slice(now);
            self.used = self.limit;
            self.len += now.len() as u64;
            self.flush()?;
            bytes = rest;
        }
        self.buf[self.used..self.used + bytes.len()].copy_from_slice(bytes);
        self.used += bytes.len();
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Writes out the buffer (into the file and the CRC).
    fn flush(&mut self) -> io::Result<()> {
        if self.used > 0 {
            let pending = &self.buf[..self.used];
            self.crc.update(pending);
            self.file.write_all(pending)?;
            self.used = 0;
        }
        let end = self.base + self.len;
        self.limit = WRITE_CHUNK - (end % WRITE_CHUNK as u64) as usize;
        if let Some(started) = &mut self.writeback {
            const STEP: u64 = 32 << 20;
            if end - *started >= STEP {
                crate::sys::start_writeback(&self.file, *started..end);
                *started = end;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::encode_record;

    /// Pieces of every size, records among them, crossing chunk boundaries from an unaligned
    /// start: the file must hold exactly the bytes written, and the CRC and length match.
    #[test]
    fn crc_writer_keeps_every_byte_across_chunk_boundaries() {
        let base = 12_345u64;
        let mut file = tempfile::tempfile().unwrap();
        file.seek(SeekFrom::Start(base)).unwrap();
        let mut w = CrcWriter::at(file.try_clone().unwrap(), base, true);
        let mut expected = Vec::new();
        let mut x = 7u64;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 33
        };
        while expected.len() < 3 * WRITE_CHUNK + 1000 {
            match next() % 4 {
                0 => {
                    let mut hash = [0u8; 20];
                    hash.iter_mut().for_each(|b| *b = next() as u8);
                    let code = (next() % 16) as u8;
                    w.write_record::<18>(&hash, code).unwrap();
                    let mut record = [0u8; 18];
                    encode_record(&hash, code, &mut record);
                    expected.extend_from_slice(&record);
                }
                1 => {
                    // Larger than a chunk.
                    let piece: Vec<u8> = (0..WRITE_CHUNK + 3).map(|_| next() as u8).collect();
                    w.write_all(&piece).unwrap();
                    expected.extend_from_slice(&piece);
                }
                2 => w.flush().unwrap(),
                _ => {
                    let piece: Vec<u8> = (0..next() % 5000).map(|_| next() as u8).collect();
                    w.write_all(&piece).unwrap();
                    expected.extend_from_slice(&piece);
                }
            }
            assert_eq!(w.len(), expected.len() as u64);
        }
        assert_eq!(w.crc().unwrap(), crc32fast::hash(&expected));
        let mut written = Vec::new();
        file.seek(SeekFrom::Start(base)).unwrap();
        file.read_to_end(&mut written).unwrap();
        assert!(
            written == expected,
            "the file differs from what was written"
        );

        // And a scratch copy of it lands whole behind other bytes.
        let mut scratch = CrcWriter::new(tempfile::tempfile().unwrap());
        scratch.write_all(&expected).unwrap();
        let out_file = tempfile::tempfile().unwrap();
        let mut out = CrcWriter::new(out_file.try_clone().unwrap());
        out.write_all(b"front").unwrap();
        assert_eq!(scratch.copy_to(&mut out).unwrap(), expected.len() as u64);
        out.flush().unwrap();
        let mut copied = Vec::new();
        (&out_file).seek(SeekFrom::Start(0)).unwrap();
        (&out_file).read_to_end(&mut copied).unwrap();
        assert!(copied[..5] == *b"front" && copied[5..] == expected[..]);
    }
}
