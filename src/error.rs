//! The one error type of the library, with messages that say what went wrong and what to do.
use std::path::PathBuf;

/// Everything that can go wrong in fastcollab.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read, written or renamed.
    #[error("{path}: {error}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// The operating system's error (part of the message, so it is not repeated as a cause).
        error: std::io::Error,
    },
    /// A value in a data file could not be parsed.
    #[error("{path}:{line}: field {field:?}: {message}")]
    Parse {
        /// The file being read.
        path: PathBuf,
        /// 1-based line number of the bad record.
        line: u64,
        /// Name (or 1-based number) of the bad field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A download failed or delivered something other than the expected file.
    #[error("download of {url} failed: {message}")]
    Download {
        /// The address that was fetched.
        url: String,
        /// What went wrong; nothing was left in the cache.
        message: String,
    },
    /// A dataset archive failed its integrity check.
    #[error("{path}: checksum mismatch (expected {expected}, got {actual}); the file was not used")]
    Checksum {
        /// The archive checked.
        path: PathBuf,
        /// The expected digest.
        expected: String,
        /// The digest of the bytes found.
        actual: String,
    },
    /// A table column was asked for that does not exist.
    #[error("no column {name:?}; the table has {available:?}")]
    NoColumn {
        /// The missing column.
        name: String,
        /// The columns that exist.
        available: Vec<String>,
    },
    /// A user or item name that the training vocabulary does not know.
    #[error("{kind} {name:?} is not in the training vocabulary; it may only occur in the validation split{}", suggest(.close))]
    UnknownName {
        /// "user" or "item".
        kind: &'static str,
        /// The name looked up.
        name: String,
        /// The closest known names, best first.
        close: Vec<String>,
    },
    /// A title that several items of a model share, given to name one item.
    #[error("{} items have the title {title:?}: name one by its id ({})", .ids.len(), .ids.join(", "))]
    AmbiguousTitle {
        /// The title given.
        title: String,
        /// The ids of the items that have it.
        ids: Vec<String>,
    },
    /// A user that a trained model does not know.
    #[error("user {name:?} is not in the model's vocabulary{}; to recommend for a new user, pass their ratings (fold-in: `recommend --ratings FILE`)", suggest(.close))]
    UnknownUser {
        /// The name looked up.
        name: String,
        /// The closest known names, best first.
        close: Vec<String>,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The model, training path or device cannot do what was asked (e.g. biases of an
    /// EmbeddingNN, the dense path on CUDA).
    #[error("not supported: {0}")]
    Unsupported(String),
    /// Tensors, tables or data that must agree in shape or row count do not.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A saved model does not fit the learner it is loaded into.
    #[error("{path}: {message}")]
    Model {
        /// The model file.
        path: PathBuf,
        /// What does not match.
        message: String,
    },
    /// Training produced a NaN or infinite loss; the learner was put back as it was before the fit.
    #[error(
        "training diverged at epoch {epoch}, batch {batch} (lr {lr:.3e}): the loss became {loss}; the learning rate \
         is likely too high, or ratings lie far outside the model's range. The learner was restored to its state \
         before this fit and nothing was saved"
    )]
    Diverged {
        /// 0-based epoch.
        epoch: usize,
        /// 0-based batch within the epoch.
        batch: usize,
        /// The learning rate of that batch.
        lr: f64,
        /// The loss found.
        loss: f64,
    },
    /// A plot could not be drawn.
    #[error("plot {path}: {message}")]
    Plot {
        /// The PNG being written.
        path: PathBuf,
        /// The drawing backend's message.
        message: String,
    },
    /// An error raised by libtorch.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

fn suggest(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", close.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(" or "))
    }
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), error: source }
    }
}

/// `Result` with fastcollab's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
