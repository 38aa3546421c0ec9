//! `fastcollab export-split`: the rows of a split as CSV, so other tools train on the same rows.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use fastcollab::{random_split, MovieLens100k};

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
    let rating_movie = MovieLens100k::load(&super::ml100k(s.data.clone())?)?.rating_movie()?;
    let split = random_split(rating_movie.len(), s.valid_pct, s.seed, s.split)?;
    std::fs::create_dir_all(&a.out)?;
    rating_movie.take(&split.train).write_csv(&a.out.join("train.csv"))?;
    rating_movie.take(&split.valid).write_csv(&a.out.join("valid.csv"))?;
    println!("wrote {} training and {} validation rows to {}", split.train.len(), split.valid.len(), a.out.display());
    Ok(())
}
