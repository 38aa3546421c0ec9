//! How the `tuned` recipe was chosen: a grid search scored on a 10% hold-out of `u1.base` only.
//! No test file is ever read, so the canonical-fold figures of `fastcollab cv` stay honest.
//!
//! `cargo run --release --example tune -- --data ../shared/datasets/ml-100k`
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use fastcollab::data::movielens::read_ratings;
use fastcollab::recipe::Recipe;
use fastcollab::{CollabConfig, CollabDataBunch, SplitMethod, TrainMode};

#[derive(Parser)]
struct Args {
    /// The ml-100k folder.
    #[arg(long)]
    data: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let base = read_ratings(&args.data.join("u1.base"))?;
    let cfg = CollabConfig { valid_pct: 0.1, seed: 7, split: SplitMethod::Seeded, ..Default::default() };
    let data = CollabDataBunch::from_df(&base, &cfg)?;
    let mut results = Vec::new();
    for n_factors in [40, 80, 160] {
        for wd in [0.1, 0.2, 0.3] {
            for epochs in [5, 8] {
                for lr in [5e-3, 1e-2] {
                    for y_range in [(0.0, 5.5), (0.5, 5.5)] {
                        let r = Recipe { name: "candidate", n_factors, y_range, wd, epochs, lr, bs: 64 };
                        let mut learn = r.learner(data.clone(), TrainMode::Auto)?;
                        learn.verbose = false;
                        r.fit(&mut learn)?;
                        let mse = learn.validate().unwrap_or(f64::NAN);
                        println!("{n_factors:>4} wd {wd:<4} epochs {epochs:<3} lr {lr:<6} y_range {y_range:?}: hold-out RMSE {:.4}", mse.sqrt());
                        results.push((mse, r));
                    }
                }
            }
        }
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    println!("\nbest five:");
    for (mse, r) in results.iter().take(5) {
        println!("  RMSE {:.4}  {r:?}", mse.sqrt());
    }
    Ok(())
}
