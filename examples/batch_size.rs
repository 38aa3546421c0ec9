//! The learning rate that gives the best validation MSE at each batch size, on the lesson's split
//! (what the `bs256`, `bs1024` and `bs4096` recipes use).
//!
//! `cargo run --release --example batch_size -- --data ../shared/datasets/ml-100k`
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use fastcollab::recipe::Recipe;
use fastcollab::{CollabConfig, CollabDataBunch, MovieLens100k, TrainMode};

#[derive(Parser)]
struct Args {
    /// The ml-100k folder.
    #[arg(long)]
    data: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rating_movie = MovieLens100k::load(&args.data)?.rating_movie()?;
    let data = CollabDataBunch::from_df(
        &rating_movie,
        &CollabConfig { item_name: Some("title".into()), ..Default::default() },
    )?;
    println!("{:>6}{:>10}{:>12}{:>9}", "bs", "lr", "valid_mse", "fit_s");
    for bs in [64, 256, 1024, 4096] {
        let mut best = (f64::INFINITY, 0.0);
        for lr in [2e-3, 3e-3, 5e-3, 7e-3, 1e-2, 1.4e-2, 2e-2, 3e-2] {
            let r = Recipe { bs, lr, ..Recipe::lesson() };
            let mut learn = r.learner(data.clone(), TrainMode::Auto, 42)?;
            learn.verbose = false;
            r.fit(&mut learn)?;
            let mse = learn.validate().unwrap_or(f64::NAN);
            println!("{bs:>6}{lr:>10}{mse:>12.6}{:>9.2}", learn.recorder.fit_seconds);
            if mse < best.0 {
                best = (mse, lr);
            }
        }
        println!("  best at bs {bs}: lr {} (valid MSE {:.6})", best.1, best.0);
    }
    Ok(())
}
