//! `fastcollab export-split`: the rows of a split as CSV, so other tools train on the same rows.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use fastcollab::MovieLens100k;

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
    let ml = MovieLens100k::load(&super::ml100k(s.data.clone())?)?;
    let (n_train, n_valid) = ml.write_split(s.valid_pct, s.seed, s.split, &a.out)?;
    println!("wrote {n_train} training and {n_valid} validation rows to {}", a.out.display());
    Ok(())
}
