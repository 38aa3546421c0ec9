//! `fastcollab export-split`: the rows of a split as CSV, so other tools train on the same rows.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use fastcollab::{random_split, MovieLens100k, SplitMethod};

#[derive(Args)]
pub struct ExportArgs {
    /// The ml-100k folder (default: the untar_data cache).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Share of ratings in the validation file.
    #[arg(long, default_value_t = 0.1)]
    valid_pct: f64,
    /// Seed of the split.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// `fastai-v1` (numpy's permutation, the lesson's rows) or `seeded`.
    #[arg(long, default_value = "fastai-v1")]
    split: SplitMethod,
    /// Folder for train.csv and valid.csv.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: ExportArgs) -> Result<()> {
    let rating_movie = MovieLens100k::load(&super::ml100k(a.data)?)?.rating_movie()?;
    let split = random_split(rating_movie.len(), a.valid_pct, a.seed, a.split)?;
    std::fs::create_dir_all(&a.out)?;
    rating_movie.take(&split.train).write_csv(&a.out.join("train.csv"))?;
    rating_movie.take(&split.valid).write_csv(&a.out.join("valid.csv"))?;
    println!("wrote {} training and {} validation rows to {}", split.train.len(), split.valid.len(), a.out.display());
    Ok(())
}
