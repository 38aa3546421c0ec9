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
    let score = |r: &Recipe| -> Result<f64> {
        let preds = r.fit_predict(&data, TrainMode::Auto, 42)?;
        Ok(fastcollab::metrics::rmse(&preds, &data.valid.ratings))
    };
    // Stage 1: single models over a grid.
    let mut results = Vec::new();
    for n_factors in [40, 80, 160] {
        for wd in [0.1, 0.2, 0.3, 0.6] {
            for epochs in [5, 8] {
                for lr in [5e-3, 1e-2] {
                    let r = Recipe { name: "candidate", n_factors, wd, epochs, lr, ..Recipe::lesson() };
                    let rmse = score(&r)?;
                    println!(
                        "{n_factors:>4} factors, wd {wd:<4} epochs {epochs:<3} lr {lr:<6}: hold-out RMSE {rmse:.4}"
                    );
                    results.push((rmse, r));
                }
            }
        }
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Stage 2: the three best, averaged over 3 and 5 seeds.
    println!("\nensembles of the three best:");
    let mut best = results[0].clone();
    for (rmse, r) in results.iter().take(3) {
        println!("  {rmse:.4} single: {r:?}");
        for ensemble in [3, 5] {
            let e = Recipe { ensemble, ..r.clone() };
            let rmse = score(&e)?;
            println!("  {rmse:.4} ensemble of {ensemble}");
            if rmse < best.0 {
                best = (rmse, e);
            }
        }
    }
    println!("\nchosen: hold-out RMSE {:.4} with {:?}", best.0, best.1);
    Ok(())
}
