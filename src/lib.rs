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
#![deny(missing_docs)]
// Every `unsafe` block lives in `sys`, the one module allowed it, and says why it is sound.
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod audit;
pub mod bench;
pub mod build;
mod crc;
pub mod credential;
pub mod dump;
pub mod error;
pub mod export;
pub mod filter;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
pub mod gzip;
pub mod hash;
pub mod index;
pub mod key;
pub mod partition;
mod progress;
pub mod range;
pub mod remote;
mod rng;
pub mod server;
pub mod shrink;
#[allow(unsafe_code)]
pub mod sys;
pub mod tree;
pub mod verify;
pub mod web;
pub mod writer;

pub use build::{
    build_index, BuildOptions, BuildProgress, BuildSummary, BuildTimings, InputFormat, NoProgress,
};
pub use error::{Error, Result};
pub use format::{FilterKind, StoreForm};
pub use hash::{HashBytes, HashKind};
pub use index::{Count, Index, Presence};
pub use key::KeyType;
pub use partition::{IndexSet, PrefixRange};
pub use shrink::{shrink, ShrinkOptions, ShrinkSummary};
pub use verify::{IndexInfo, VerifyReport};
pub use writer::{IndexSummary, IndexWriter, SourceInfo};
