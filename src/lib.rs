//! leakdex: check passwords and password hashes against leaked-credential dumps, offline.
//!
//! Build an index from a dump of hashes (`HASH:COUNT` lines, as the Pwned Passwords corpus
//! publishes them) with [`build_index`], open it with [`Index::open`], and ask it:
//! [`Index::check`] for one hash, [`Index::check_password`] for a password, and
//! [`Index::write_range`] for the k-anonymity range body of a 5-hex prefix.
//!
//! Plaintext leaks (stealer logs, combolists) are split into login and password by
//! [`credential`] before the password is hashed.
//!
//! A machine without the corpus asks a range server instead, sending only 5-hex prefixes:
//! [`remote::RemoteChecker`].
//!
//! The index file format is specified in [`mod@format`].
//!
//! # Example: build, open, check, range
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use leakdex::{build_index, BuildOptions, Checker, Index, IndexSet, NoProgress, Presence};
//!
//! let dir = tempfile::tempdir()?;
//! // A dump in the form the Pwned Passwords corpus publishes: SHA-1 hash, count.
//! let dump = dir.path().join("dump.txt");
//! std::fs::write(
//!     &dump,
//!     "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:9545824\r\n\
//!      7C4A8D09CA3762AF61E59520943DC26494F8941B:4636738\r\n",
//! )?;
//! let path = dir.path().join("pwned.ldx");
//! build_index(&[dump], &path, &BuildOptions::default(), &NoProgress)?;
//!
//! // One password, then a hash.
//! let index = Index::open(&path)?;
//! let (_hash, count) = index.check_password(b"password")?;
//! assert_eq!(count, Some(9_545_824));
//! let hash = leakdex::hash::sha1_password(b"correct horse battery staple");
//! assert_eq!(index.check(&hash)?, None);
//!
//! // Many passwords, one per line, batched on all cores, answers in input order.
//! let set = IndexSet::new(vec![index])?;
//! let mut found = Vec::new();
//! Checker::new(&set).check_lines(&b"123456\nhunter2\n"[..], "<list>", |answer| {
//!     found.push((answer.line, answer.presence));
//!     Ok(())
//! })?;
//! assert_eq!(found, [(1, Presence::Found(4_636_738)), (2, Presence::Absent)]);
//!
//! // The k-anonymity range body of prefix 5BAA6, byte for byte as the range API's.
//! let mut body = Vec::new();
//! set.write_range(0x5BAA6, &mut body)?;
//! assert_eq!(body, b"1E4C9B93F3F0682250B6CF8331B7EE68FD8:9545824");
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
// Every `unsafe` block lives in `sys`, the one module allowed it, and says why it is sound.
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

// The library's API: these modules, and the re-exports below.
pub mod audit;
pub mod check;
pub mod credential;
pub mod export;
pub mod format;
pub mod generate;
pub mod hash;
pub mod key;
pub mod remote;
#[cfg(feature = "server")]
pub mod server;

// Internal modules; what they offer users is re-exported below.
mod crc;
mod error;
mod filter;
mod index;
mod partition;
mod progress;
mod range;
mod rng;
mod shrink;
mod tree;
mod verify;

// Modules that the `leakdex` command, the tests, the benchmarks and the fuzz targets (crates
// of their own) reach into. They are not part of the library's API and may change in any
// release; they are hidden from its documentation.
#[doc(hidden)]
pub mod bench;
#[doc(hidden)]
pub mod build;
#[doc(hidden)]
pub mod dump;
#[doc(hidden)]
pub mod fuzzing;
#[doc(hidden)]
pub mod gzip;
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod sys;
#[doc(hidden)]
pub mod web;
#[doc(hidden)]
pub mod writer;

pub use build::{
    build_index, BuildOptions, BuildProgress, BuildSummary, BuildTimings, InputFormat, NoProgress,
};
pub use check::{Answer, CheckError, CheckSummary, Checker};
pub use error::{Error, Result};
pub use format::{FilterKind, StoreForm};
pub use hash::{HashBytes, HashKind};
pub use index::{Count, Index, Presence};
pub use key::KeyType;
pub use partition::{IndexSet, PrefixRange};
pub use shrink::{shrink, ShrinkOptions, ShrinkSummary};
pub use verify::{IndexInfo, VerifyReport};
pub use writer::{IndexSummary, IndexWriter, SourceInfo};
