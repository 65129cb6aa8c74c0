//! gzip input, with BGZF decoded in parallel.
//!
//! Inflating one gzip member is sequential, and finding where the next member of an ordinary
//! multi-member file starts takes inflating the one before it. BGZF (`bgzip`, RFC 1952 members
//! of at most 64 KiB each) states every member's size in its header, in an extra subfield
//! `BC` (`SI1 = 66, SI2 = 67, SLEN = 2`) holding the member's size less one. Its members can
//! therefore be cut out of the stream without inflating, and inflated on the pool side by
//! side, in batches of [`BATCH`] members whose output is handed on in order.
//!
//! [`GzipReader`] looks at each member's header as it comes. A BGZF member joins the batch;
//! the first member that is not BGZF (or a file that never was) hands the rest of the stream
//! to flate2's sequential `MultiGzDecoder`, so every gzip file reads as `gzip -dc` would. A
//! BGZF member is checked as gzip's are: its inflated length and CRC-32 against its trailer.

use std::io::{self, Read};

use flate2::{Decompress, FlushDecompress, Status};
use rayon::prelude::*;

/// BGZF members inflated side by side: at most 64 KiB of output each, so 8 MiB a batch.
const BATCH: usize = 128;

/// The fixed part of a member's header with an extra field: ID1 ID2 CM FLG MTIME(4) XFL OS
/// XLEN(2).
const HEADER: usize = 12;

/// FLG's FEXTRA bit, the only flag a BGZF member sets.
const FEXTRA: u8 = 0x04;

/// A BGZF member's inflated size is at most 64 KiB (the format's rule, which bounds memory).
const MAX_MEMBER_OUTPUT: usize = 1 << 16;

/// One BGZF member: its deflate data and trailer, and what it inflates to.
#[derive(Default)]
struct Member {
    /// Offset of the member in the compressed stream, for errors.
    offset: u64,
    /// The raw deflate data.
    deflate: Vec<u8>,
    crc: u32,
    size: u32,
    output: Vec<u8>,
    error: Option<&'static str>,
}

/// Reads gzip: BGZF members inflated in parallel, anything else through `MultiGzDecoder`.
pub struct GzipReader {
    inner: Box<dyn Read + Send>,
    /// The rest of the stream once a member was not BGZF.
    sequential: Option<flate2::read::MultiGzDecoder<Box<dyn Read + Send>>>,
    /// Compressed bytes taken from `inner` so far.
    offset: u64,
    /// The current batch, its members' buffers kept for the next one.
    members: Vec<Member>,
    filled: usize,
    /// The member being handed out, and the position in its output.
    current: usize,
    position: usize,
    /// Members of BGZF read in all (a file that had any is said to be BGZF in errors).
    bgzf_members: u64,
    ended: bool,
}

impl GzipReader {
    /// A reader of the gzip stream `inner`, positioned at its first member.
    pub fn new(inner: Box<dyn Read + Send>) -> Self {
        GzipReader {
            inner,
            sequential: None,
            offset: 0,
            members: Vec::new(),
            filled: 0,
            current: 0,
            position: 0,
            bgzf_members: 0,
            ended: false,
        }
    }

    /// Members of BGZF read so far (inflated in parallel).
    #[cfg(test)]
    pub(crate) fn bgzf_members(&self) -> u64 {
        self.bgzf_members
    }

    /// Reads the next batch of BGZF members and inflates them. On return, either `filled > 0`,
    /// or the stream ended, or the rest of it goes to `sequential`.
    fn next_batch(&mut self) -> io::Result<()> {
        self.filled = 0;
        self.current = 0;
        self.position = 0;
        while self.filled < BATCH && !self.ended && self.sequential.is_none() {
            if self.members.len() == self.filled {
                self.members.push(Member::default());
            }
            let member = &mut self.members[self.filled];
            match read_member(self.inner.as_mut(), self.offset, member)? {
                Next::Member(length) => {
                    self.offset += length;
                    self.filled += 1;
                    self.bgzf_members += 1;
                }
                Next::End => self.ended = true,
                Next::NotBgzf(header) => {
                    // Everything from this member on is read as ordinary gzip.
                    let rest = std::mem::replace(&mut self.inner, Box::new(io::empty()));
                    let chained: Box<dyn Read + Send> =
                        Box::new(io::Cursor::new(header).chain(rest));
                    self.sequential = Some(flate2::read::MultiGzDecoder::new(chained));
                }
            }
        }
        let members = &mut self.members[..self.filled];
        members.par_iter_mut().for_each_init(
            || Decompress::new(false),
            |inflater, member| {
                inflater.reset(false);
                member.error = inflate_member(inflater, member).err();
            },
        );
        if let Some(bad) = members.iter().find(|m| m.error.is_some()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "corrupt gzip (BGZF) member at compressed byte {}: {}",
                    bad.offset,
                    bad.error.unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }
}

impl Read for GzipReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            while self.current < self.filled {
                let output = &self.members[self.current].output;
                if self.position < output.len() {
                    let n = buf.len().min(output.len() - self.position);
                    buf[..n].copy_from_slice(&output[self.position..self.position + n]);
                    self.position += n;
                    return Ok(n);
                }
                self.current += 1;
                self.position = 0;
            }
            if let Some(sequential) = self.sequential.as_mut() {
                return sequential.read(buf);
            }
            if self.ended {
                return Ok(0);
            }
            self.next_batch()?;
        }
    }
}

/// What the stream holds next.
enum Next {
    /// A BGZF member of this many compressed bytes, read into the member given.
    Member(u64),
    /// The end of the stream, at a member boundary.
    End,
    /// A member that is not BGZF: the bytes of its header read so far.
    NotBgzf(Vec<u8>),
}

/// Fills `buf` from `reader`; the bytes read, fewer than asked only at the end of the stream.
fn read_full(reader: &mut (dyn Read + Send), buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn truncated(offset: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the gzip (BGZF) member at compressed byte {offset} is cut short"),
    )
}

/// Reads the member at `offset` into `member` when it is BGZF.
fn read_member(
    reader: &mut (dyn Read + Send),
    offset: u64,
    member: &mut Member,
) -> io::Result<Next> {
    let mut header = [0u8; HEADER];
    let n = read_full(reader, &mut header)?;
    if n == 0 {
        return Ok(Next::End);
    }
    // Not the fixed header of a member with an extra field (or too short to be one): the
    // sequential decoder reads it, and says what is wrong with it, as for any gzip file.
    if n < HEADER || header[..3] != [0x1f, 0x8b, 0x08] || header[3] != FEXTRA {
        return Ok(Next::NotBgzf(header[..n].to_vec()));
    }
    let extra_len = u16::from_le_bytes([header[10], header[11]]) as usize;
    let mut extra = vec![0u8; extra_len];
    let got = read_full(reader, &mut extra)?;
    let block_size = (got == extra_len)
        .then(|| bgzf_block_size(&extra))
        .flatten();
    let Some(block_size) = block_size else {
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(&extra[..got]);
        return Ok(Next::NotBgzf(bytes));
    };
    // The member is BSIZE + 1 bytes: header, extra, deflate data, CRC-32 and ISIZE.
    let total = block_size as usize + 1;
    let Some(deflate_len) = total.checked_sub(HEADER + extra_len + 8) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "corrupt gzip (BGZF) member at compressed byte {offset}: its stated size \
                 ({total} bytes) is smaller than its header"
            ),
        ));
    };
    member.offset = offset;
    member.deflate.resize(deflate_len, 0);
    if read_full(reader, &mut member.deflate)? < deflate_len {
        return Err(truncated(offset));
    }
    let mut trailer = [0u8; 8];
    if read_full(reader, &mut trailer)? < 8 {
        return Err(truncated(offset));
    }
    member.crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    member.size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    Ok(Next::Member(total as u64))
}

/// BSIZE from a member's extra field, when it holds a `BC` subfield of two bytes.
fn bgzf_block_size(mut extra: &[u8]) -> Option<u16> {
    while extra.len() >= 4 {
        let length = u16::from_le_bytes([extra[2], extra[3]]) as usize;
        let data = extra.get(4..4 + length)?;
        if extra[..2] == *b"BC" && length == 2 {
            return Some(u16::from_le_bytes([data[0], data[1]]));
        }
        extra = &extra[4 + length..];
    }
    None
}

/// Inflates one member's deflate data into its output, checked against its trailer.
fn inflate_member(inflater: &mut Decompress, member: &mut Member) -> Result<(), &'static str> {
    let size = member.size as usize;
    if size > MAX_MEMBER_OUTPUT {
        return Err("its stated inflated size is over BGZF's 64 KiB");
    }
    member.output.clear();
    // One byte of room past the stated size: data that inflates to more is caught.
    member.output.reserve(size + 1);
    let status = inflater
        .decompress_vec(&member.deflate, &mut member.output, FlushDecompress::Finish)
        .map_err(|_| "its deflate data is invalid")?;
    if status != Status::StreamEnd || member.output.len() != size {
        return Err("it does not inflate to its stated size");
    }
    if inflater.total_in() != member.deflate.len() as u64 {
        return Err("its deflate data ends before its stated size");
    }
    if crc32fast::hash(&member.output) != member.crc {
        return Err("CRC-32 mismatch");
    }
    Ok(())
}

/// `data` compressed as BGZF, the way `bgzip` writes it: members of at most `piece` input bytes
/// (at most 65,280, bgzip's own size, so that every member fits its 16-bit size), then the
/// empty member that marks the end. For tests and benchmarks of the parallel reader.
pub fn encode_bgzf(data: &[u8], piece: usize) -> Vec<u8> {
    use std::io::Write;
    let piece = piece.clamp(1, 0xff00);
    let mut out = Vec::new();
    let mut member = |input: &[u8]| {
        let mut deflate =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflate.write_all(input).unwrap();
        let deflate = deflate.finish().unwrap();
        let total = HEADER + 6 + deflate.len() + 8;
        out.extend_from_slice(&[0x1f, 0x8b, 8, FEXTRA, 0, 0, 0, 0, 0, 0xff, 6, 0]);
        out.extend_from_slice(b"BC\x02\x00");
        out.extend_from_slice(&((total - 1) as u16).to_le_bytes());
        out.extend_from_slice(&deflate);
        out.extend_from_slice(&crc32fast::hash(input).to_le_bytes());
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    };
    for input in data.chunks(piece) {
        member(input);
    }
    member(b"");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn text(lines: usize) -> Vec<u8> {
        (0..lines)
            .flat_map(|i| format!("{:040X}:{}\r\n", i * 7919, i % 97 + 1).into_bytes())
            .collect()
    }

    fn read_all(bytes: Vec<u8>, step: usize) -> (io::Result<Vec<u8>>, u64) {
        let mut reader = GzipReader::new(Box::new(io::Cursor::new(bytes)));
        let mut out = Vec::new();
        let mut buf = vec![0u8; step];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return (Ok(out), reader.bgzf_members()),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => return (Err(e), reader.bgzf_members()),
            }
        }
    }

    #[test]
    fn bgzf_reads_as_the_text_in_batches_and_any_read_size() {
        let data = text(20_000);
        // 900 members: several batches, the last one partial.
        let piece = data.len() / 900 + 1;
        let file = encode_bgzf(&data, piece);
        for step in [1, 7, 4096, 1 << 20] {
            let (out, members) = read_all(file.clone(), step);
            assert_eq!(out.unwrap(), data, "read size {step}");
            assert_eq!(members, 901, "read size {step}");
        }
    }

    #[test]
    fn ordinary_gzip_and_mixed_files_read_whole() {
        let data = text(5_000);
        let (out, members) = read_all(gzip(&data), 4096);
        assert_eq!((out.unwrap(), members), (data.clone(), 0));
        // BGZF, then an ordinary member (`cat a.bgz b.gz`), then BGZF again.
        let (a, b) = data.split_at(data.len() / 3);
        let (b, c) = b.split_at(b.len() / 2);
        let mut mixed = encode_bgzf(a, 10_000);
        mixed.extend(gzip(b));
        mixed.extend(encode_bgzf(c, 10_000));
        let (out, members) = read_all(mixed, 4096);
        assert_eq!(out.unwrap(), data);
        assert!(members > 1, "the BGZF start was read in parallel");
        // An empty stream is empty text.
        assert_eq!(read_all(Vec::new(), 10).0.unwrap(), b"");
    }

    #[test]
    fn damaged_bgzf_is_an_error_naming_the_member() {
        let data = text(3_000);
        let file = encode_bgzf(&data, 20_000);
        let second = {
            let size = u16::from_le_bytes([file[16], file[17]]) as usize + 1;
            size as u64
        };
        // A flipped bit in the second member's CRC.
        let mut bad_crc = file.clone();
        let crc_at = second as usize
            + u16::from_le_bytes([file[16 + second as usize], file[17 + second as usize]]) as usize
            + 1
            - 8;
        bad_crc[crc_at] ^= 1;
        let error = read_all(bad_crc, 4096).0.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            error.to_string(),
            format!("corrupt gzip (BGZF) member at compressed byte {second}: CRC-32 mismatch")
        );
        // A wrong inflated size.
        let mut bad_size = file.clone();
        bad_size[crc_at + 4] ^= 1;
        let error = read_all(bad_size, 4096).0.unwrap_err();
        assert!(error.to_string().contains("stated size"), "{error}");
        // Garbage deflate data.
        let mut bad_data = file.clone();
        for b in &mut bad_data[second as usize + 18..second as usize + 30] {
            *b = 0xff;
        }
        assert!(read_all(bad_data, 4096).0.is_err());
        // Cut short, in the middle of a member.
        let cut = file[..second as usize + 100].to_vec();
        let error = read_all(cut, 4096).0.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            error.to_string().contains(&format!("byte {second}")),
            "{error}"
        );
        // A stated size below the header's.
        let mut tiny = file.clone();
        tiny[16] = 3;
        tiny[17] = 0;
        assert!(read_all(tiny, 4096)
            .0
            .unwrap_err()
            .to_string()
            .contains("smaller than its header"));
        // A stated inflated size over 64 KiB.
        let mut huge = file;
        let trailer = second as usize - 4;
        huge[trailer..trailer + 4].copy_from_slice(&(1u32 << 20).to_le_bytes());
        assert!(read_all(huge, 4096)
            .0
            .unwrap_err()
            .to_string()
            .contains("64 KiB"));
    }

    #[test]
    fn extra_fields_other_than_bc_are_ordinary_gzip() {
        let data = text(100);
        let mut encoder = flate2::GzBuilder::new()
            .extra(b"XY\x02\x00ab".to_vec())
            .write(Vec::new(), flate2::Compression::default());
        encoder.write_all(&data).unwrap();
        let file = encoder.finish().unwrap();
        let (out, members) = read_all(file, 4096);
        assert_eq!((out.unwrap(), members), (data, 0));
        assert_eq!(bgzf_block_size(b"XY\x02\x00abBC\x02\x00\x10\x00"), Some(16));
        assert_eq!(bgzf_block_size(b"BC\x03\x00abc"), None);
        assert_eq!(bgzf_block_size(b"BC\x02\x00a"), None);
    }
}
