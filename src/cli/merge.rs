//! `leakdex merge`: combine indexes and dumps into one index.

use clap::Args;
use std::path::PathBuf;

/// Combine indexes (and dumps) into a new index, counts summed, without the original text.
///
/// Inputs may be leakdex indexes, dumps, gzip files, `-` or downloader trees (folders of range
/// files, as `build --help` describes), in any mix of one hash kind. The new index lists every
/// source its inputs were built from.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The index or dump to start from.
    #[arg(value_name = "OLD")]
    old: PathBuf,
    /// Indexes or dumps to add.
    #[arg(value_name = "NEW", required = true)]
    new: Vec<PathBuf>,
    #[command(flatten)]
    build: super::build::CommonBuildArgs,
}

pub fn run(args: MergeArgs) -> anyhow::Result<u8> {
    let mut inputs = vec![args.old];
    inputs.extend(args.new);
    super::build::run_build(inputs, args.build)
}
