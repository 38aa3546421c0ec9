//! `fastcollab export-split`: the rows of a split as CSV, so other tools train on the same rows.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use fastcollab::data::stream::write_split;
use fastcollab::MovieLens100k;

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    split: super::SplitArgs,
    /// Split this ratings CSV (as `train --ratings` splits it) instead of ml-100k's lesson table.
    #[arg(long, conflicts_with = "data")]
    ratings: Option<PathBuf>,
    /// Folder for train.csv and valid.csv.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(a: ExportArgs) -> Result<()> {
    let s = &a.split;
    let (n_train, n_valid) = match &a.ratings {
        Some(csv) => write_split(csv, s.valid_pct, s.seed, s.split, &a.out)?,
        None => {
            let ml = MovieLens100k::load(&super::ml100k(s.data.clone())?)?;
            ml.write_split(s.valid_pct, s.seed, s.split, &a.out)?
        }
    };
    println!("wrote {n_train} training and {n_valid} validation rows to {}", a.out.display());
    Ok(())
}
