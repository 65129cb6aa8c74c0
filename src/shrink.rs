//! [`shrink`]: a smaller index (a compact store, or the filter alone) made from a larger one,
//! without the dump.

use crate::error::{Error, Result};
use crate::format::{FilterKind, SectionId, StoreForm};
use crate::index::Index;
use crate::progress::BuildProgress;
use crate::writer::{IndexSummary, IndexWriter, ReusedFilter};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// What [`shrink`] makes.
#[derive(Clone, Copy, Debug)]
pub struct ShrinkOptions {
    /// The store form of the new index: `Compact` or `None`.
    pub store: StoreForm,
    /// Its filter; `None` keeps the source's kind.
    pub filter: Option<FilterKind>,
    /// Memory a filter-only index may hold its keys in before it builds its filter as they
    /// stream by (see [`IndexWriter::set_store`]).
    pub memory: u64,
}

/// How [`shrink`] made its filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShrinkSummary {
    /// What was written.
    pub index: IndexSummary,
    /// Whether the source's filter bytes were copied rather than the filter built again.
    pub filter_reused: bool,
}

/// Writes at `output` an index with a smaller store made from `source`: a compact store from
/// a full one, or the filter alone from a full or compact one. The filter is copied as it is
/// when its kind stays the same and the source is of format version 3 or later (whose filter keys are
/// the first 64 bits of each hash, which every store form keeps); otherwise it is built
/// again from the source's hashes. `cancel`, when set, stops it with
/// [`Error::Interrupted`], leaving nothing behind.
pub fn shrink(
    source: &Index,
    output: &Path,
    options: &ShrinkOptions,
    progress: &dyn BuildProgress,
    cancel: Option<&AtomicBool>,
) -> Result<ShrinkSummary> {
    let from = source.store_form();
    let store = options.store;
    let filter = options.filter.unwrap_or(source.filter().kind());
    if store == StoreForm::Full {
        return Err(Error::Invalid(
            "shrink makes a compact or filter-only index: use --store compact or --store none"
                .into(),
        ));
    }
    if !store.can_be_made_from(from) {
        return Err(Error::Invalid(format!(
            "{}: it has a {from} store, from which a {store} one cannot be made{}",
            source.path().display(),
            if from == StoreForm::None {
                " (it holds a filter and no hashes)"
            } else {
                ""
            }
        )));
    }
    if store == StoreForm::None && filter == FilterKind::None {
        return Err(Error::Invalid(match options.filter {
            Some(_) => "a filter-only index needs a filter: --store none cannot go with \
                        --filter none"
                .to_string(),
            None => format!(
                "a filter-only index needs a filter, and {} has none: add --filter fuse8 or \
                 --filter fuse16",
                source.path().display()
            ),
        }));
    }
    let id = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| crate::build::identity_of(&m))
    };
    if id(output).is_some() && id(output) == id(source.path()) {
        return Err(Error::Invalid(format!(
            "{}: is the index being shrunk; choose another output path",
            output.display()
        )));
    }
    let reuse = (filter != FilterKind::None
        && filter == source.filter().kind()
        && !source.filter().legacy_key())
    .then(|| ReusedFilter {
        kind: filter,
        shard_bits: source.filter().shard_bits(),
        table: source.section(SectionId::FilterTable),
        data: source.section(SectionId::FilterData),
        keys: source.filter().keys(),
        count_sum: source.header().count_sum,
    });
    let mut writer = IndexWriter::create(output, source.kind(), filter)?;
    writer.set_key(source.key())?;
    writer.set_store(store, options.memory)?;
    writer.set_partition(source.partition());
    for s in source.sources() {
        writer.add_source(s.clone());
    }
    let stopped = || cancel.is_some_and(|c| c.load(Ordering::Relaxed));
    // A filter-only index with the filter copied needs nothing else of the source.
    if !(store == StoreForm::None && reuse.is_some()) {
        progress.phase("reading", source.hash_count());
        // Entries go to the writer a block at a time, as a build gives them.
        source.for_each_block(1 << 16, &mut |block| {
            progress.advance(block.len() as u64, 0);
            if stopped() {
                return Err(Error::Interrupted);
            }
            if writer.push_sorted(block)? < block.len() {
                return Err(Error::Internal(format!(
                    "{} gave its hashes out of order",
                    source.path().display()
                )));
            }
            Ok(())
        })?;
    }
    if stopped() {
        return Err(Error::Interrupted);
    }
    let filter_reused = reuse.is_some();
    let index = writer.finish_with_filter(progress, reuse)?;
    Ok(ShrinkSummary {
        index,
        filter_reused,
    })
}
