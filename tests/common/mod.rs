//! Shared test helpers: temp folders, the local MovieLens copy, small synthetic data.
#![allow(dead_code)]
use std::path::PathBuf;

use fastcollab::data::synthetic::{generate, SyntheticConfig};
use fastcollab::CollabDataBunch;

/// A fresh folder under the target dir, unique to this process and `name`.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The folder holding `ml-100k/` and `ml-100k.zip`: `$FASTCOLLAB_DATA`, else `../shared/datasets`.
pub fn datasets_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FASTCOLLAB_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets"));
    dir.join("ml-100k/u.data").is_file().then_some(dir)
}

/// The extracted ml-100k folder, or `None` (the test then skips, saying so).
pub fn ml100k() -> Option<PathBuf> {
    let dir = datasets_dir().map(|d| d.join("ml-100k"));
    if dir.is_none() {
        eprintln!("skipped: MovieLens 100k not found (set FASTCOLLAB_DATA)");
    }
    dir
}

/// A small rank-3 dataset (noise sd 0.1, noise floor 0.01).
pub fn low_rank(seed: u64) -> (CollabDataBunch, f64) {
    let cfg = SyntheticConfig {
        n_users: 120,
        n_items: 80,
        n_ratings: 6000,
        rank: 3,
        factor_sd: 0.6,
        noise_sd: 0.1,
        popularity: 0.0,
        seed,
    };
    (generate(&cfg, 0.1, 64).unwrap(), cfg.noise_floor())
}
