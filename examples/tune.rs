//! How `tuned` chooses its recipe, shown on one canonical fold: every candidate is scored on a
//! seeded 10% hold-out of `u1.base` alone, then the best as an average of five models. `fastcollab
//! cv --recipe tuned` repeats this on each fold's own base file (nested), so no test rating ever
//! influences the choice.
//!
//! `cargo run --release --example tune -- --data ../shared/datasets/ml-100k [--fold u1]`
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use fastcollab::evaluate::fold_data;
use fastcollab::recipe::{tune, Run, LESSON_Y_RANGE};

#[derive(Parser)]
struct Args {
    /// The ml-100k folder.
    #[arg(long)]
    data: PathBuf,
    /// The fold whose base file is searched.
    #[arg(long, default_value = "u1")]
    fold: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let data = fold_data(&args.data, &args.fold, 64, 42)?;
    let tuning = tune(&data, &Run::default(), 5, LESSON_Y_RANGE)?;
    println!("hold-out RMSE  recipe");
    for (r, rmse) in &tuning.tried {
        println!("{rmse:>13.4}  {r}");
    }
    println!("chosen: {}", tuning.chosen);
    Ok(())
}
