//! Checking many items at once: lines of passwords, logins, credential pairs or hex hashes,
//! answered by an index (or the partitions of one) or by a range server.
//!
//! [`Checker::check_lines`] reads items one per line, hashes each batch of them on all cores,
//! asks the answerer in batches and hands each answer back in input order. The item buffers
//! and the scratch that held normalised logins are zeroed once hashed, so that passwords do
//! not linger in memory.
//!
//! ```no_run
//! # fn main() -> leakdex::Result<()> {
//! use leakdex::check::{Checker, CheckError};
//! use leakdex::IndexSet;
//!
//! let index = IndexSet::open(&["pwned.ldx"])?;
//! let passwords = std::io::Cursor::new("password\ncorrect horse battery staple\n");
//! let checker = Checker::new(&index);
//! let summary = checker.check_lines(passwords, "<list>", |answer| {
//!     println!("line {}: {:?}", answer.line, answer.presence);
//!     Ok(())
//! });
//! match summary {
//!     Ok(summary) => println!("{} of {} found", summary.found, summary.answered),
//!     Err(CheckError::Item { error, answered }) => eprintln!("{error} ({answered} answered)"),
//!     Err(other) => eprintln!("{other}"),
//! }
//! # Ok(())
//! # }
//! ```

use crate::error::{Error, Result};
use crate::hash::{parse_hash_item, prefix_of, HashBytes, HashKind};
use crate::index::Presence;
use crate::key::KeyType;
use crate::partition::IndexSet;
use crate::remote::RemoteChecker;
use crate::StoreForm;
use rayon::prelude::*;
use std::io::BufRead;
use std::path::PathBuf;

/// Items read, hashed and answered at a time.
pub const BATCH: usize = 1 << 16;
/// Batches smaller than this run on the calling thread: starting the thread pool (and
/// tearing down a mapping that several threads have used) costs more than they take.
const PARALLEL_MIN: usize = 1 << 12;

/// What answers the checks: an index (or the partitions of one), or a range server.
#[derive(Clone, Copy, Debug)]
pub enum Answerer<'a> {
    /// An index, or the partitions of one: each hash goes to the partition that holds it.
    Index(&'a IndexSet),
    /// A range server, asked one request per distinct prefix of a batch.
    Remote(&'a RemoteChecker),
}

impl<'a> From<&'a IndexSet> for Answerer<'a> {
    fn from(index: &'a IndexSet) -> Answerer<'a> {
        Answerer::Index(index)
    }
}

impl<'a> From<&'a RemoteChecker> for Answerer<'a> {
    fn from(remote: &'a RemoteChecker) -> Answerer<'a> {
        Answerer::Remote(remote)
    }
}

impl Answerer<'_> {
    /// The hash kind of the items' hashes.
    pub fn kind(&self) -> HashKind {
        match self {
            Answerer::Index(index) => index.kind(),
            Answerer::Remote(remote) => remote.mode().kind(),
        }
    }

    /// What an item is: a password, a login or a pair.
    pub fn key(&self) -> KeyType {
        match self {
            Answerer::Index(index) => index.key(),
            Answerer::Remote(remote) => remote.mode().key(),
        }
    }

    /// The store form, which says what a count means; a server's counts are exact, as a full
    /// store's.
    pub fn store_form(&self) -> StoreForm {
        match self {
            Answerer::Index(index) => index.store_form(),
            Answerer::Remote(_) => StoreForm::Full,
        }
    }

    /// Why `hash` cannot be answered: partitions that do not hold its prefix. A server
    /// answers every prefix.
    fn not_held(&self, hash: &HashBytes) -> Option<Error> {
        match self {
            Answerer::Index(index) => index
                .part_for(prefix_of(hash))
                .is_none()
                .then(|| index.not_held()),
            Answerer::Remote(_) => None,
        }
    }

    /// The answer for each hash, in order; on the thread pool when `parallel` (an index), or
    /// one request per distinct prefix (a server).
    fn probe_many(&self, hashes: &[HashBytes], parallel: bool) -> Result<Vec<Presence>> {
        match self {
            Answerer::Index(index) => {
                let chunks: Vec<&[HashBytes]> = hashes.chunks(1024).collect();
                let answers: Vec<Vec<Presence>> = map_items(parallel, &chunks, |chunk| {
                    let mut answers = Vec::with_capacity(chunk.len());
                    index.probe_many(chunk, &mut answers).map(|()| answers)
                })
                .into_iter()
                .collect::<Result<_>>()?;
                Ok(answers.into_iter().flatten().collect())
            }
            Answerer::Remote(remote) => {
                let mut answers = Vec::with_capacity(hashes.len());
                remote.probe_many(hashes, &mut answers)?;
                Ok(answers)
            }
        }
    }
}

/// One item's answer, handed back in input order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The item's 1-based line in the input.
    pub line: u64,
    /// The item's hash (NTLM uses the first 16 bytes).
    pub hash: HashBytes,
    /// What the answerer said.
    pub presence: Presence,
}

impl Answer {
    /// Whether the answer counts as found: a count above 0, or a filter-only index's
    /// possible hit.
    pub fn is_found(&self) -> bool {
        match self.presence {
            Presence::Found(c) => c > 0,
            Presence::Possible => true,
            Presence::Absent => false,
        }
    }
}

/// What a whole check answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckSummary {
    /// Items answered.
    pub answered: u64,
    /// Of them, found (see [`Answer::is_found`]).
    pub found: u64,
}

/// Why a check stopped. The answers handed back before it stand.
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckError {
    /// A line that cannot be read as an item, or whose hash no partition given holds: an
    /// [`Error::Parse`] naming the input and the line. The items before it were answered.
    Item {
        /// What is wrong, with the input's name and the line.
        error: Error,
        /// Items answered before it.
        answered: u64,
    },
    /// The range server failed (see [`crate::remote`]); the items of earlier batches were
    /// answered.
    Remote {
        /// The server's failure.
        error: Error,
        /// Items answered before the failing batch.
        answered: u64,
    },
    /// The answer callback failed (for example, writing to a closed pipe).
    Output(std::io::Error),
    /// Reading the input, or the index, failed.
    Other(Error),
}

impl std::fmt::Display for CheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckError::Item { error, .. }
            | CheckError::Remote { error, .. }
            | CheckError::Other(error) => error.fmt(f),
            CheckError::Output(e) => write!(f, "cannot write the answers: {e}"),
        }
    }
}

impl std::error::Error for CheckError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckError::Output(e) => Some(e),
            _ => None,
        }
    }
}

/// Checks items against an [`Answerer`]: see the [module](self).
#[derive(Clone, Debug)]
pub struct Checker<'a> {
    answerer: Answerer<'a>,
    hashes: bool,
}

impl<'a> Checker<'a> {
    /// A checker of passwords, logins or pairs (what the answerer holds decides), answered by
    /// `answerer`: an [`IndexSet`] or a [`RemoteChecker`].
    pub fn new(answerer: impl Into<Answerer<'a>>) -> Checker<'a> {
        Checker {
            answerer: answerer.into(),
            hashes: false,
        }
    }

    /// Items are hex hashes of the answerer's kind (either case, blanks around them allowed,
    /// a `HASH:COUNT` line read as its hash), and blank lines are skipped.
    pub fn hashes(mut self, hashes: bool) -> Checker<'a> {
        self.hashes = hashes;
        self
    }

    /// What answers.
    pub fn answerer(&self) -> Answerer<'a> {
        self.answerer
    }

    /// The hash of one item (a line without its line end), or the error that names `name`
    /// and `line`: an item that is not what the answerer holds, or whose prefix no partition
    /// holds. The error never repeats the item.
    pub fn hash_item(&self, item: &[u8], name: &str, line: u64) -> Result<HashBytes> {
        let kind = self.answerer.kind();
        let hashed = if self.hashes {
            parse_hash_item(item, kind)
        } else {
            thread_local! {
                static SCRATCH: std::cell::RefCell<Vec<u8>> =
                    const { std::cell::RefCell::new(Vec::new()) };
            }
            SCRATCH.with_borrow_mut(|scratch| {
                let hashed = crate::key::hash_item(self.answerer.key(), kind, item, scratch);
                // The normalised login stays in no buffer once hashed.
                scratch.fill(0);
                hashed.map_err(str::to_string)
            })
        };
        let parse = |message: String| Error::Parse {
            path: PathBuf::from(name),
            line,
            message,
        };
        let hash = hashed.map_err(parse)?;
        if let Some(why) = self.answerer.not_held(&hash) {
            return Err(parse(why.to_string()));
        }
        Ok(hash)
    }

    /// The answer for one hash.
    pub fn probe(&self, hash: &HashBytes) -> Result<Presence> {
        Ok(self.answerer.probe_many(&[*hash], false)?[0])
    }

    /// Reads items from `input`, one per line (LF or CRLF; only the line end is removed),
    /// and calls `on_answer` for each in input order. `name` names the input in errors.
    /// [`BATCH`] items at a time are hashed on all cores and answered together; each batch's
    /// item buffers are zeroed once hashed.
    ///
    /// A line that cannot be read as an item stops the check with [`CheckError::Item`] after
    /// the answers for the lines before it. A server's failure stops it with
    /// [`CheckError::Remote`] after the answers of the earlier batches.
    pub fn check_lines<R: BufRead>(
        &self,
        mut input: R,
        name: &str,
        mut on_answer: impl FnMut(Answer) -> std::io::Result<()>,
    ) -> Result<CheckSummary, CheckError> {
        let mut items: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut spare: Vec<Vec<u8>> = Vec::new();
        let mut line_no = 0u64;
        let mut batches = 0u64;
        let mut summary = CheckSummary::default();
        loop {
            let mut buf = spare.pop().unwrap_or_default();
            buf.clear();
            let n = input.read_until(b'\n', &mut buf).map_err(|e| {
                buf.fill(0);
                CheckError::Other(Error::io(name, "cannot read", e))
            })?;
            let at_end = n == 0;
            if !at_end {
                line_no += 1;
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                }
                if self.hashes && buf.iter().all(|b| b.is_ascii_whitespace()) {
                    spare.push(buf);
                } else {
                    items.push((line_no, buf));
                }
            }
            if items.len() == BATCH || (at_end && !items.is_empty()) {
                batches += 1;
                if let (2, Answerer::Index(index)) = (batches, &self.answerer) {
                    // An audit of many items, for which the index is worth reading from disk
                    // in 2 MiB pages.
                    index.prefer_huge_pages();
                }
                self.check_batch(&mut items, name, &mut summary, &mut on_answer)?;
                spare.extend(items.drain(..).map(|(_, b)| b));
            }
            if at_end {
                return Ok(summary);
            }
        }
    }

    /// Hashes `items` on all cores (zeroing them after), asks for the hashes before the first
    /// bad item, and hands their answers on in order.
    fn check_batch(
        &self,
        items: &mut [(u64, Vec<u8>)],
        name: &str,
        summary: &mut CheckSummary,
        on_answer: &mut impl FnMut(Answer) -> std::io::Result<()>,
    ) -> Result<(), CheckError> {
        let parallel = items.len() >= PARALLEL_MIN;
        let mut hashed: Vec<Result<HashBytes>> = map_items(parallel, items, |(line, item)| {
            self.hash_item(item, name, *line)
        });
        for (_, item) in items.iter_mut() {
            item.fill(0);
        }
        let good = hashed
            .iter()
            .position(|r| r.is_err())
            .unwrap_or(hashed.len());
        let failure = (good < hashed.len()).then(|| hashed.swap_remove(good));
        let hashes: Vec<HashBytes> = hashed
            .into_iter()
            .take(good)
            .map(|r| r.expect("only items before the first error"))
            .collect();
        let answers = match self.answerer.probe_many(&hashes, parallel) {
            Ok(answers) => answers,
            Err(error) => {
                return Err(match self.answerer {
                    Answerer::Index(_) => CheckError::Other(error),
                    Answerer::Remote(_) => CheckError::Remote {
                        error,
                        answered: summary.answered,
                    },
                })
            }
        };
        for ((hash, presence), (line, _)) in hashes.iter().zip(answers).zip(items.iter()) {
            let answer = Answer {
                line: *line,
                hash: *hash,
                presence,
            };
            summary.answered += 1;
            summary.found += u64::from(answer.is_found());
            on_answer(answer).map_err(CheckError::Output)?;
        }
        match failure {
            Some(Err(error)) => Err(CheckError::Item {
                error,
                answered: summary.answered,
            }),
            _ => Ok(()),
        }
    }
}

/// `f` of every item in order, on the thread pool when `parallel`.
fn map_items<T: Sync, R: Send>(
    parallel: bool,
    items: &[T],
    f: impl Fn(&T) -> R + Sync + Send,
) -> Vec<R> {
    if parallel {
        items.par_iter().map(f).collect()
    } else {
        items.iter().map(f).collect()
    }
}
