//! `leakdex verify`: check an index completely.

use clap::Args;
use leakdex::Index;

/// Check an index completely: every checksum, the order of every range, every count.
///
/// Exit code 0 when sound; 2 with a message naming what is wrong.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    index: super::IndexArg,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<u8> {
    let index = Index::open(args.index.path())?;
    let report = index.verify()?;
    println!(
        "{}: OK, {} hashes, counts summing to {}, {} bytes checked",
        args.index.path().display(),
        super::grouped(report.hashes),
        super::grouped(report.count_sum),
        super::grouped(report.bytes)
    );
    Ok(0)
}
