//! Range bodies for the k-anonymity API: every suffix of a 5-hex prefix with its count.
//!
//! The body is byte-exact with the Pwned Passwords range API (`protocol.md`): upper-case
//! `SUFFIX:COUNT` rows sorted by suffix, CRLF between rows, no trailing newline, empty for a
//! prefix with no entries.

use crate::error::Result;
use crate::hash::{decimal_into, hex_upper_16, hex_upper_4, HEX_PAIRS, HEX_UPPER};
use crate::index::{compare_record, CountCursor, Index};
use crate::rng::SplitMix64;
use rand::Rng;

/// Fewest rows a padded body may hold.
pub const PAD_MIN_ROWS: usize = 800;
/// Most rows padding brings a body to.
pub const PAD_MAX_ROWS: usize = 1000;

impl Index {
    /// Number of hashes under a 20-bit prefix (an error for a damaged directory).
    pub fn range_len(&self, prefix: u32) -> Result<u64> {
        let r = self.bucket_records(prefix & 0xF_FFFF)?;
        Ok(r.end - r.start)
    }

    /// Appends the range body of `prefix` (a 20-bit value) to `out`. An error for an index
    /// without a full store, whose hashes cannot be written out whole.
    pub fn write_range(&self, prefix: u32, out: &mut Vec<u8>) -> Result<()> {
        self.write_range_merged(prefix, &[], out)
    }

    /// Appends the range body of `prefix` padded as the API's `Add-Padding` asks: count-0 rows
    /// with random suffixes that collide with no real one, merged in order, up to a random
    /// total between 800 and 1,000 rows (none when the real rows number more than that).
    pub fn write_padded_range<R: Rng + ?Sized>(
        &self,
        prefix: u32,
        rng: &mut R,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.require_full_store("a range")?;
        let prefix = prefix & 0xF_FFFF;
        let real = self.range_len(prefix)? as usize;
        let target = rng.random_range(PAD_MIN_ROWS..=PAD_MAX_ROWS);
        let wanted = target.saturating_sub(real);
        let len = self.record_len();
        // Random records with count code 0, sorted. A fast generator seeded from `rng` is
        // plenty: the rows only need to look like hash suffixes, and a suffix that equals a
        // real one (a chance of 2^-108 or less per row) is dropped in the merge.
        let mut bits = SplitMix64::new(rng.next_u64());
        let mut pads = vec![0u8; wanted * len];
        for rec in pads.chunks_exact_mut(len) {
            for chunk in rec.chunks_mut(8) {
                let v = bits.next_bits().to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            rec[0] &= 0x0F;
        }
        let mut order: Vec<(u64, u32)> = pads
            .chunks_exact(len)
            .enumerate()
            .map(|(i, rec)| {
                let mut key = [0u8; 8];
                key.copy_from_slice(&rec[..8]);
                (u64::from_be_bytes(key), i as u32)
            })
            .collect();
        order.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| {
                let (x, y) = (a.1 as usize * len, b.1 as usize * len);
                pads[x..x + len].cmp(&pads[y..y + len])
            })
        });
        let mut sorted = Vec::with_capacity(pads.len());
        for (_, i) in order {
            let at = i as usize * len;
            sorted.extend_from_slice(&pads[at..at + len]);
        }
        self.write_range_merged(prefix, &sorted, out)
    }

    /// Writes the real rows of `prefix` merged with `pads` (records with count code 0,
    /// sorted, none equal to a real one).
    fn write_range_merged(&self, prefix: u32, pads: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.require_full_store("a range")?;
        let prefix = prefix & 0xF_FFFF;
        let len = self.record_len();
        let records = self.bucket_bytes(prefix)?;
        let mut counts = CountCursor::new(self, self.bucket_overflow(prefix)?);
        let rows = records.len() / len + pads.len() / len;
        // Rows are written in place into room made up front (the longest a row can be), and
        // the vector is cut to what was written at the end.
        let start = out.len();
        // Typical rows take the suffix, a colon, two digits and CRLF; room grows as needed.
        let typical = self.kind().suffix_hex_len() + 5;
        out.resize(start + rows * typical + MAX_ROW, 0);
        let mut at = start;
        if pads.is_empty() {
            // The common case: real rows only, no merge to decide.
            for (i, rec) in records.chunks_exact(len).enumerate() {
                let Some(count) = counts.count(i, rec) else {
                    out.truncate(start);
                    return Err(self.out_of_step(prefix));
                };
                if out.len() < at + MAX_ROW {
                    out.resize(out.len() + (out.len() - start) / 2 + MAX_ROW, 0);
                }
                at += write_row(rec, count, &mut out[at..at + MAX_ROW]);
            }
            // Every row ended in CRLF; the body has none after its last row.
            out.truncate(at.saturating_sub(2).max(start));
            return Ok(());
        }
        let (mut r, mut p) = (0usize, 0usize);
        while r < records.len() || p < pads.len() {
            let take_real = if p >= pads.len() {
                true
            } else if r >= records.len() {
                false
            } else {
                let pad = &pads[p..p + len];
                match compare_record(&records[r..r + len], pad[0] & 0x0F, &pad[1..]) {
                    std::cmp::Ordering::Less => true,
                    std::cmp::Ordering::Greater => false,
                    std::cmp::Ordering::Equal => {
                        // A padding row may never repeat (or hide) a real one.
                        p += len;
                        continue;
                    }
                }
            };
            let (rec, count) = if take_real {
                let rec = &records[r..r + len];
                let Some(count) = counts.count(r / len, rec) else {
                    out.truncate(start);
                    return Err(self.out_of_step(prefix));
                };
                r += len;
                (rec, count)
            } else {
                let rec = &pads[p..p + len];
                p += len;
                (rec, 0)
            };
            if out.len() < at + MAX_ROW {
                out.resize(out.len() + (out.len() - start) / 2 + MAX_ROW, 0);
            }
            at += write_row(rec, count, &mut out[at..at + MAX_ROW]);
        }
        out.truncate(at.saturating_sub(2).max(start));
        Ok(())
    }

    /// The range body of `prefix` as a new vector.
    pub fn range_body(&self, prefix: u32) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_range(prefix, &mut out)?;
        Ok(out)
    }
}

/// The longest row: 35 hex digits, a colon, 20 digits and CRLF.
const MAX_ROW: usize = 2 + 35 + 1 + 20;

/// Writes `SUFFIX:COUNT` and CRLF for a record at the start of `line`; returns the bytes
/// written.
#[inline]
fn write_row(rec: &[u8], count: u64, line: &mut [u8]) -> usize {
    line[0] = HEX_UPPER[(rec[0] & 0x0F) as usize];
    let mut n = 1;
    let mut rest = &rec[1..];
    if let Some((sixteen, tail)) = rest.split_first_chunk::<16>() {
        line[1..33].copy_from_slice(&hex_upper_16(sixteen));
        n = 33;
        rest = tail;
    } else if rest.len() >= 8 {
        // NTLM's 13 bytes: convert them padded to 16; the surplus digits are overwritten.
        let mut sixteen = [0u8; 16];
        sixteen[..rest.len()].copy_from_slice(rest);
        line[1..33].copy_from_slice(&hex_upper_16(&sixteen));
        n += 2 * rest.len();
        rest = &[];
    }
    let mut quads = rest.chunks_exact(4);
    for quad in &mut quads {
        let four = [quad[0], quad[1], quad[2], quad[3]];
        line[n..n + 8].copy_from_slice(&hex_upper_4(four));
        n += 8;
    }
    for &b in quads.remainder() {
        line[n..n + 2].copy_from_slice(&HEX_PAIRS[b as usize]);
        n += 2;
    }
    line[n] = b':';
    n += 1;
    n += decimal_into(count, &mut line[n..]);
    line[n..n + 2].copy_from_slice(b"\r\n");
    n + 2
}
