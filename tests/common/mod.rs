//! Shared test helpers: temp folders, the local MovieLens copy, small synthetic data.
#![allow(dead_code)]
use std::path::PathBuf;

use fastcollab::data::synthetic::{generate, SyntheticConfig};
use fastcollab::{CollabDataBunch, CollabLearnerConfig, DeviceChoice, DotBiasConfig, ModelConfig, TrainMode};

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

/// The extracted ml-100k folder, or `None`: the test then skips, saying so on stderr (and
/// `scripts/test` says before the run how many tests need the data). With
/// `FASTCOLLAB_REQUIRE_DATA=1` (as in CI) a missing dataset fails the test instead.
pub fn ml100k() -> Option<PathBuf> {
    let dir = datasets_dir().map(|d| d.join("ml-100k"));
    if dir.is_none() {
        assert!(
            std::env::var("FASTCOLLAB_REQUIRE_DATA").as_deref() != Ok("1"),
            "MovieLens 100k not found and FASTCOLLAB_REQUIRE_DATA=1: set FASTCOLLAB_DATA to the folder holding ml-100k/"
        );
        eprintln!("SKIPPED: MovieLens 100k not found (set FASTCOLLAB_DATA)");
    }
    dir
}

/// A small dataset in ml-100k's layout and its zip archive (synthetic ratings, not MovieLens'),
/// for the download tests: `(zip bytes, u.data bytes)`.
pub fn tiny_ml100k_zip() -> (Vec<u8>, Vec<u8>) {
    use std::io::Write;
    let mut data = String::new();
    for k in 0..500 {
        data += &format!("{}\t{}\t{}\t{}\n", k % 31 + 1, k % 47 + 1, k % 5 + 1, 880000000 + k);
    }
    let mut item = Vec::new();
    for i in 1..=47 {
        item.extend_from_slice(format!("{i}|Movie {i} (1990)|01-Jan-1990||http://x|").as_bytes());
        item.extend_from_slice(&vec!["0"; 19].join("|").into_bytes());
        item.push(b'\n');
    }
    let genre: String = (0..19).map(|g| format!("g{g}|{g}\n")).collect();
    let user: String = (1..=31).map(|u| format!("{u}|30|F|other|12345\n")).collect();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (name, bytes) in
        [("u.data", data.as_bytes()), ("u.item", &item[..]), ("u.genre", genre.as_bytes()), ("u.user", user.as_bytes())]
    {
        zip.start_file(format!("ml-100k/{name}"), opts).unwrap();
        zip.write_all(bytes).unwrap();
    }
    (zip.finish().unwrap().into_inner(), data.into_bytes())
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

/// An EmbeddingDotBias learner on the CPU with the lesson's `y_range`, trained through `mode`.
pub fn dot_bias_on_cpu(n_factors: usize, wd: f64, mode: TrainMode) -> CollabLearnerConfig {
    CollabLearnerConfig {
        model: ModelConfig::DotBias(DotBiasConfig { n_factors, y_range: Some((0.0, 5.5)) }),
        wd,
        mode,
        device: DeviceChoice::Cpu,
        ..Default::default()
    }
}
