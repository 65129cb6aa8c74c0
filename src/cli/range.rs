//! `leakdex range`: print the range body of a 5-hex prefix.

use anyhow::Context;
use clap::Args;
use leakdex::hash::parse_prefix;
use leakdex::IndexSet;
use std::io::Write;
use std::path::PathBuf;

/// Print the range body of a 5-hex prefix, as the Pwned Passwords range API sends it.
///
/// Byte for byte: upper-case `SUFFIX:COUNT` rows sorted by suffix, CRLF between rows, no
/// trailing newline, nothing at all for a prefix with no entries.
#[derive(Args, Debug)]
pub struct RangeArgs {
    /// The index to read. Repeat it for the partitions of one index (`build --prefixes`): the
    /// partition that holds the prefix answers, and a prefix that none holds is an error.
    #[arg(short, long, value_name = "INDEX", required = true)]
    index: Vec<PathBuf>,
    /// Five hex digits, either case.
    prefix: String,
    /// Pad with count-0 rows of random suffixes to 800-1,000 rows, as `Add-Padding: true`.
    #[arg(long)]
    pad: bool,
}

pub fn run(args: RangeArgs) -> anyhow::Result<u8> {
    let prefix = parse_prefix(args.prefix.as_bytes())
        .with_context(|| format!("bad prefix `{}`", args.prefix))?;
    let index = IndexSet::open(&args.index)?;
    let mut body = Vec::new();
    if args.pad {
        index.write_padded_range(prefix, &mut rand::rng(), &mut body)?;
    } else {
        index.write_range(prefix, &mut body)?;
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&body)?;
    out.flush()?;
    Ok(0)
}
