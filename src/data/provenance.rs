//! Where a dataset came from and how it was split: recorded in exported models, so a model says
//! which data its rows belong to.
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A file the data was read from, and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The file's name as given to the reader.
    pub path: String,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
}

impl Source {
    /// Hashes the file at `path`.
    pub fn of(path: &Path) -> Result<Source> {
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let sha256 = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(Source { path: path.display().to_string(), sha256 })
    }
}

/// The data's origin and split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Source files (empty for data built in memory).
    pub sources: Vec<Source>,
    /// How the validation rows were chosen: `fastai-v1`, `seeded`, `given` (a separate file) or
    /// `synthetic`.
    pub split: String,
    /// Share of rows held out for validation (0 when they were given).
    pub valid_pct: f64,
    /// Seed of the split and of the shuffles.
    pub seed: u64,
    /// The user, item and rating columns.
    pub columns: [String; 3],
}
