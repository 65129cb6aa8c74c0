//! gzip: input, with BGZF decoded in parallel; and the server's gzip bodies, padding
//! included.
//!
//! Inflating one gzip member is sequential, and finding where the next member of an ordinary
//! multi-member file starts takes inflating the one before it. BGZF (`bgzip`, RFC 1952 members
//! of at most 64 KiB each) states every member's size in its header, in an extra subfield
//! `BC` (`SI1 = 66, SI2 = 67, SLEN = 2`) holding the member's size less one. Its members can
//! therefore be cut out of the stream without inflating, and inflated on the pool side by
//! side, in batches of 128 members whose output is handed on in order.
//!
//! [`GzipReader`] looks at each member's header as it comes. A BGZF member joins the batch;
//! the first member that is not BGZF (or a file that never was) hands the rest of the stream
//! to flate2's sequential `MultiGzDecoder`, so every gzip file reads as `gzip -dc` would. A
//! BGZF member is checked as gzip's are: its inflated length and CRC-32 against its trailer.

use std::io::{self, Read};

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};
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

// --- Writing: the server's gzip bodies ------------------------------------------------------

thread_local! {
    /// One deflate state per worker thread, reset between bodies: setting one up costs more
    /// than compressing a typical range body.
    static DEFLATE: std::cell::RefCell<Option<(u32, Compress)>> =
        const { std::cell::RefCell::new(None) };
}

/// gzip's fixed header: ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// Appends the raw deflate of `data` to `out` with a fresh (reset) `deflate`. `Finish` ends the
/// stream with a final block; `Sync` leaves it open, byte-aligned, so that more deflate data
/// compressed on its own may follow it.
fn deflate_into(deflate: &mut Compress, data: &[u8], flush: FlushCompress, out: &mut Vec<u8>) {
    deflate.reset();
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(256));
        }
        let consumed = deflate.total_in() as usize;
        let status = deflate
            .compress_vec(&data[consumed..], out, flush)
            .expect("deflate into memory cannot fail");
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            // A sync flush is complete when all input is taken and the output was not cut
            // short by room.
            _ => deflate.total_in() as usize == data.len() && out.len() < out.capacity(),
        };
        if done {
            break;
        }
    }
}

/// Runs `f` with this thread's deflate state at `level`.
fn with_deflate<T>(level: u32, f: impl FnOnce(&mut Compress) -> T) -> T {
    DEFLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !matches!(&*slot, Some((l, _)) if *l == level) {
            *slot = Some((level, Compress::new(flate2::Compression::new(level), false)));
        }
        let (_, deflate) = slot.as_mut().expect("set above");
        f(deflate)
    })
}

/// gzip (RFC 1952) of `body` at `level` (0 to 9): the fixed header, raw deflate, CRC-32 and
/// length.
pub fn gzip_bytes(body: &[u8], level: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() / 2 + 64);
    out.extend_from_slice(&GZIP_HEADER);
    with_deflate(level.min(9), |deflate| {
        deflate_into(deflate, body, FlushCompress::Finish, &mut out)
    });
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out
}

/// Rows in each large piece of a [`PaddingPool`].
const PIECE_ROWS: usize = 256;
/// Large pieces in a pool.
const LARGE_PIECES: usize = 128;
/// The rows of a typical padded body: the middle of 800 to 1,000.
const PAD_ROWS_TYPICAL: usize = 900;
/// Pieces of each smaller row count (1 to [`PIECE_ROWS`] - 1) in a pool.
const SMALL_VARIANTS: usize = 4;

/// Padding rows compressed ahead of time: deflate data that ends byte-aligned and open, and
/// the CRC-32 and length of its text.
struct Piece {
    deflate: Vec<u8>,
    crc: u32,
    len: u64,
}

/// Padding for gzip range bodies, compressed once rather than per request.
///
/// A padded body used to be made of about 1,000 rows, most of them fresh random padding, all
/// deflated for each request: about 40 KB through deflate per answer. A pool holds pieces of
/// padding rows (`\r\nSUFFIX:0`, random upper-case suffixes) deflated once, each on its own
/// and flushed to a byte boundary: 256 pieces of 128 rows, and 8 pieces of each row count
/// from 1 to 127. A padded body then deflates only its real rows, and appends pieces picked at
/// random (as many large ones as fit, then one small one) to the same deflate stream, whose
/// final empty block and trailer (CRC-32 combined from the parts' CRCs) end one ordinary gzip
/// member. The rows are those of the uncompressed design, 800 to 1,000 in all (or the real
/// ones, when more), with the padding after the real rows rather than sorted among them; and
/// a piece's compressed size per row is that of rows deflated together, so that a body's size
/// says no more about its real rows than a body deflated whole (see the README, "Padding").
pub struct PaddingPool {
    large: Vec<Piece>,
    /// `small[n - 1]`: the pieces of `n` rows.
    small: Vec<Vec<Piece>>,
}

impl PaddingPool {
    /// A pool of rows with suffixes of `suffix_hex_len` digits, deflated at `level`.
    pub fn new(suffix_hex_len: usize, level: u32, rng: &mut impl rand::Rng) -> PaddingPool {
        let mut deflate = Compress::new(flate2::Compression::new(level.min(9)), false);
        let mut text = Vec::new();
        let mut starts = Vec::new();
        let mut piece = |rows: usize, rng: &mut dyn rand::RngCore| {
            // The rows of a piece look like a run of a sorted body of PAD_ROWS_TYPICAL rows:
            // sorted suffixes, as densely spread. Sorted neighbours share their first digits,
            // which deflate finds; rows as sparse as a piece's own would compress less well
            // than the rows of a body deflated whole, and a body's size would then depend on
            // how many of its rows are real.
            let span = (u64::MAX / PAD_ROWS_TYPICAL as u64).saturating_mul(rows as u64);
            let offset = rng.next_u64();
            starts.clear();
            starts.extend((0..rows).map(|_| rng.next_u64() % span.max(1)));
            starts.sort_unstable();
            text.clear();
            for start in &starts {
                text.extend_from_slice(b"\r\n");
                let lead = start.wrapping_add(offset);
                for i in 0..suffix_hex_len {
                    let digit = if i < 16 {
                        (lead >> (60 - 4 * i)) & 15
                    } else {
                        (rng.next_u32() & 15) as u64
                    };
                    text.push(b"0123456789ABCDEF"[digit as usize]);
                }
                text.extend_from_slice(b":0");
            }
            let mut out = Vec::with_capacity(text.len() * 2 / 3 + 64);
            deflate_into(&mut deflate, &text, FlushCompress::Sync, &mut out);
            Piece {
                deflate: out,
                crc: crc32fast::hash(&text),
                len: text.len() as u64,
            }
        };
        let large = (0..LARGE_PIECES).map(|_| piece(PIECE_ROWS, rng)).collect();
        let small = (1..PIECE_ROWS)
            .map(|rows| (0..SMALL_VARIANTS).map(|_| piece(rows, rng)).collect())
            .collect();
        PaddingPool { large, small }
    }

    /// gzip of `real` (a range body's real rows, not empty) followed by `rows` padding rows
    /// from the pool, at `level`.
    pub fn gzip_padded(
        &self,
        real: &[u8],
        rows: usize,
        level: u32,
        rng: &mut impl rand::Rng,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(real.len() / 2 + rows * 24 + 64);
        out.extend_from_slice(&GZIP_HEADER);
        with_deflate(level.min(9), |deflate| {
            deflate_into(deflate, real, FlushCompress::Sync, &mut out)
        });
        let mut crc = crc32fast::Hasher::new();
        crc.update(real);
        let mut len = real.len() as u64;
        let mut add = |piece: &Piece, out: &mut Vec<u8>| {
            out.extend_from_slice(&piece.deflate);
            crc.combine(&crc32fast::Hasher::new_with_initial_len(
                piece.crc, piece.len,
            ));
            len += piece.len;
        };
        for _ in 0..rows / PIECE_ROWS {
            add(&self.large[rng.random_range(0..self.large.len())], &mut out);
        }
        if !rows.is_multiple_of(PIECE_ROWS) {
            let variants = &self.small[rows % PIECE_ROWS - 1];
            add(&variants[rng.random_range(0..variants.len())], &mut out);
        }
        // The final block: fixed Huffman codes, no symbols but its end (BFINAL 1, BTYPE 01,
        // end-of-block code 0000000).
        out.extend_from_slice(&[0x03, 0x00]);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out
    }
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

#[cfg(test)]
mod padding_tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn row(rng: &mut impl Rng, count: u64) -> String {
        let suffix: String = (0..35)
            .map(|_| b"0123456789ABCDEF"[rng.random_range(0..16)] as char)
            .collect();
        format!("{suffix}:{count}")
    }

    /// Real rows as a dump's: counts heavy-tailed, most of them small.
    fn real_rows(rng: &mut impl Rng, n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let count = (1.0 / rng.random_range(0.0005f64..1.0)) as u64;
                row(rng, count)
            })
            .collect()
    }

    /// The sizes of `samples` padded gzip bodies of `real`, made whole (every row deflated per
    /// request, padding sorted among the real rows) and from the pool.
    fn sizes(real: &[String], samples: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let pool = PaddingPool::new(35, 1, &mut rng);
        let mut sorted = real.to_vec();
        sorted.sort();
        let real_text = sorted.join("\r\n");
        let (mut whole, mut pooled) = (Vec::new(), Vec::new());
        for _ in 0..samples {
            let target = rng.random_range(800..=1000usize);
            let pad = target.saturating_sub(real.len());
            let mut rows = sorted.clone();
            rows.extend((0..pad).map(|_| row(&mut rng, 0)));
            rows.sort();
            whole.push(gzip_bytes(rows.join("\r\n").as_bytes(), 1).len() as f64);
            pooled.push(
                pool.gzip_padded(real_text.as_bytes(), pad, 1, &mut rng)
                    .len() as f64,
            );
        }
        (whole, pooled)
    }

    fn mean_sd(v: &[f64]) -> (f64, f64) {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64;
        (m, var.sqrt())
    }

    #[test]
    fn pooled_padding_unpacks_to_the_rows_asked_for() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let pool = PaddingPool::new(27, 1, &mut rng);
        for (real, pad) in [(1, 1), (3, 127), (5, 128), (40, 960), (2, 129), (700, 300)] {
            let real: Vec<String> = real_rows(&mut rng, real)
                .into_iter()
                .map(|r| r[8..].to_string())
                .collect();
            let text = real.join("\r\n");
            let gz = pool.gzip_padded(text.as_bytes(), pad, 1, &mut rng);
            let mut out = String::new();
            // One gzip member, read by flate2's single-member decoder, which checks the CRC
            // and length.
            flate2::read::GzDecoder::new(&gz[..])
                .read_to_string(&mut out)
                .unwrap();
            let rows: Vec<&str> = out.split("\r\n").collect();
            assert_eq!(rows.len(), real.len() + pad);
            assert_eq!(
                rows[..real.len()],
                real.iter().map(String::as_str).collect::<Vec<_>>()[..]
            );
            assert!(rows[real.len()..].iter().all(|r| r.len() == 29
                && r.ends_with(":0")
                && r[..27]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())));
        }
    }

    /// The sizes of pooled bodies follow those of bodies deflated whole, for ranges of few and
    /// of many real rows: means within 6% (pooled padding costs about 1.5 bytes a row more, the
    /// price of pieces deflated on their own), spreads within 15%, and above all a mean that
    /// moves with the number of real rows no more than the spread of sizes allows anyone to
    /// see: the size of a pooled body tells no more about its real rows than one deflated
    /// whole. (Printed with --nocapture; the README's "Padding" table comes from here.)
    #[test]
    fn pooled_bodies_are_sized_as_bodies_deflated_whole() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut means = Vec::new();
        for real in [1, 20, 100, 200, 400, 600, 799] {
            let rows = real_rows(&mut rng, real);
            let (whole, pooled) = sizes(&rows, 200, real as u64);
            let (mw, sw) = mean_sd(&whole);
            let (mp, sp) = mean_sd(&pooled);
            eprintln!("| {real} | {mw:.0} ± {sw:.0} | {mp:.0} ± {sp:.0} |");
            assert!((mp - mw).abs() / mw < 0.06, "{real}: means {mw} and {mp}");
            assert!((sp - sw).abs() / sw < 0.15, "{real}: spreads {sw} and {sp}");
            means.push((mw, mp, sp));
        }
        let range = |f: fn(&(f64, f64, f64)) -> f64| {
            let v: Vec<f64> = means.iter().map(f).collect();
            v.iter().cloned().fold(f64::MIN, f64::max) - v.iter().cloned().fold(f64::MAX, f64::min)
        };
        let (whole_range, pooled_range) = (range(|m| m.0), range(|m| m.1));
        eprintln!("means move by {whole_range:.0} (whole) and {pooled_range:.0} (pooled) bytes");
        assert!(
            pooled_range < 0.6 * means[0].2,
            "{pooled_range} against {}",
            means[0].2
        );
    }
}
