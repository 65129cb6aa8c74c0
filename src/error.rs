//! The library's error type: every failure names the file, and the line where there is one.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in building, opening or querying an index. New variants may
/// come in later releases: match with a wildcard arm.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system error on a file.
    Io {
        /// The file concerned.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// A line of input that cannot be read.
    Parse {
        /// The input file (`-` for standard input).
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// An index file that is damaged, truncated or not an index.
    Corrupt {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An index from a newer format version than this build reads.
    UnsupportedVersion {
        /// The index file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The request cannot be carried out as asked: bad options, inputs that cannot go
    /// together, too little memory or disk, an output in the way. The message says what to
    /// change.
    Invalid(String),
    /// Valid input that the index format, or the store form asked for, cannot hold: more
    /// hashes in one range than a compact store allows, counts that add up past 2^64 - 1.
    /// The message says which limit, and what to do instead where something can be done.
    Limit(String),
    /// A broken internal invariant: a bug in leakdex, never the input's fault. Displayed as
    /// `internal error: ` and what went wrong.
    Internal(String),
    /// The work was stopped on request (Ctrl-C); its temporary files are removed.
    Interrupted,
    /// A range server could not be reached, or answered something other than a range body
    /// (see [`crate::remote`]). The message names the request by its number, never its prefix.
    Remote(String),
}

impl Error {
    pub(crate) fn io(path: impl AsRef<Path>, action: &'static str, source: io::Error) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            action,
            source,
        }
    }

    pub(crate) fn corrupt(path: impl AsRef<Path>, message: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                path,
                action,
                source,
            } => write!(f, "{}: {action}: {source}", path.display()),
            Error::Parse {
                path,
                line,
                message,
            } => write!(f, "{}:{line}: {message}", path.display()),
            Error::Corrupt { path, message } => {
                write!(
                    f,
                    "{}: not a valid leakdex index: {message}",
                    path.display()
                )
            }
            Error::UnsupportedVersion {
                path,
                found,
                supported,
            } => write!(
                f,
                "{}: index format version {found} is newer than this leakdex reads \
                 (up to {supported}); upgrade leakdex or rebuild the index",
                path.display()
            ),
            Error::Invalid(message) | Error::Limit(message) => f.write_str(message),
            Error::Internal(message) => write!(f, "internal error: {message}"),
            Error::Interrupted => f.write_str("interrupted; nothing was written"),
            Error::Remote(message) => f.write_str(message),
        }
    }
}

// The I/O error's text is part of this error's own message, so it is not also reported as
// a source (error chains would print it twice).
impl std::error::Error for Error {}

impl Error {
    /// The operating-system error behind an [`Error::Io`].
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn each_kind_of_failure_displays_its_message() {
        assert_eq!(
            Error::Invalid("use --store full".into()).to_string(),
            "use --store full"
        );
        assert_eq!(
            Error::Limit("range 5BAA6 holds more than 65,536 hashes".into()).to_string(),
            "range 5BAA6 holds more than 65,536 hashes"
        );
        assert_eq!(
            Error::Internal("the filter thread is gone".into()).to_string(),
            "internal error: the filter thread is gone"
        );
    }
}
