//! How fold-in's settings were chosen: the cold-start curve on `u1.base` alone (10% of its users
//! held out, folded in from k of their ratings, scored on their other base ratings; no test file is
//! read) for each number of AdamW steps and peak learning rate.
//!
//! `cargo run --release --example fold_in -- --data ../shared/datasets/ml-100k`
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use fastcollab::evaluate::cold_start::cold_start;
use fastcollab::infer::FoldIn;
use fastcollab::recipe::{Recipe, Run};

#[derive(Parser)]
struct Args {
    /// The ml-100k folder.
    #[arg(long)]
    data: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let recipe = Recipe::lesson();
    println!("{:>6}{:>8}  fold-in RMSE at k = 1, 3, 5, 10, 20 (retrain at k = 20)", "steps", "lr");
    for steps in [25, 50, 100, 200] {
        for lr in [5e-3, 1e-2, 2e-2, 5e-2] {
            let l = &recipe.learner;
            let cfg = FoldIn { steps, lr, ..FoldIn::with_training(l.wd, l.beta2, l.eps) };
            let points = cold_start(&args.data, &["u1"], &recipe, &Run::default(), &cfg)?;
            let rmse: Vec<String> = points.iter().map(|p| format!("{:.4}", p.fold_in_rmse)).collect();
            println!("{steps:>6}{lr:>8}  {}  ({:.4})", rmse.join(" "), points[4].retrain_rmse);
        }
    }
    Ok(())
}
