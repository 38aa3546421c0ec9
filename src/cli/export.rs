//! `fastcollab export-split`: the rows of a split as CSV, so other tools train on the same rows.
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use fastcollab::{random_split, MovieLens100k, SplitMethod};

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    split: super::SplitArgs,
    /// Folder for train.csv and valid.csv.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: ExportArgs) -> Result<()> {
    let s = &a.split;
    let (n_train, n_valid) = write_split(&super::ml100k(s.data.clone())?, s.valid_pct, s.seed, s.split, &a.out)?;
    println!("wrote {n_train} training and {n_valid} validation rows to {}", a.out.display());
    Ok(())
}

/// Writes the lesson table's split of the ml-100k folder `dir` to `out/train.csv` and
/// `out/valid.csv`; returns the row counts.
pub fn write_split(dir: &Path, valid_pct: f64, seed: u64, method: SplitMethod, out: &Path) -> Result<(usize, usize)> {
    let rating_movie = MovieLens100k::load(dir)?.rating_movie()?;
    let split = random_split(rating_movie.len(), valid_pct, seed, method)?;
    std::fs::create_dir_all(out)?;
    rating_movie.take(&split.train).write_csv(&out.join("train.csv"))?;
    rating_movie.take(&split.valid).write_csv(&out.join("valid.csv"))?;
    Ok((split.train.len(), split.valid.len()))
}
