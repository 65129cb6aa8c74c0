//! [`BuildProgress`]: how a long operation (a build, a shrink, an export) reports how far it
//! has got.

/// Receives progress while a build runs. All methods have empty defaults.
pub trait BuildProgress: Sync {
    /// A phase starts; `total_bytes` is what it will go through (0 when unknown).
    fn phase(&self, _name: &str, _total_bytes: u64) {}
    /// Bytes and lines done since the last call.
    fn advance(&self, _bytes: u64, _lines: u64) {}
    /// Something the user should know now, not only at the end: an input that looks like the
    /// wrong `--input`, temporary files of an earlier build removed. Also kept in
    /// [`BuildSummary::warnings`](crate::BuildSummary::warnings).
    fn warning(&self, _message: &str) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;
impl BuildProgress for NoProgress {}
