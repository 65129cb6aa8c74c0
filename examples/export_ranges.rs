//! Writes every range body of an index as a static file, the way a static mirror serves them:
//! `DIR/<PREFIX>` (plain) and, with `--gzip`, `DIR/<PREFIX>.gz` beside it.
//!
//! Usage: `cargo run --release --example export_ranges -- INDEX DIR [--gzip]`

use leakdex::Index;
use rayon::prelude::*;
use std::io::Write;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(index), Some(dir)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: export_ranges INDEX DIR [--gzip]");
    };
    let gzip = args.iter().any(|a| a == "--gzip");
    let index = Index::open(index)?;
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    (0u32..1 << 20)
        .into_par_iter()
        .try_for_each(|prefix| -> anyhow::Result<()> {
            let body = index.range_body(prefix)?;
            let path = dir.join(format!("{prefix:05X}"));
            std::fs::write(&path, &body)?;
            if gzip {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
                encoder.write_all(&body)?;
                std::fs::write(path.with_extension("gz"), encoder.finish()?)?;
            }
            Ok(())
        })?;
    Ok(())
}
