//! The learning rate for each batch size, chosen on a hold-out of the training rows: the lesson's
//! split is made, 10% of its *training* rows are held out, and each (bs, lr) is scored there, so
//! the lesson's validation rows never influence the choice (what the `bs256`, `bs1024` and
//! `bs4096` recipes use). The last column is the chosen setting's MSE on the lesson's validation
//! rows, for reference.
//!
//! `cargo run --release --example batch_size -- --data ../shared/datasets/ml-100k`
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use fastcollab::recipe::{hold_out, Recipe, Run};
use fastcollab::{CollabConfig, CollabDataBunch, MovieLens100k};

#[derive(Parser)]
struct Args {
    /// The ml-100k folder.
    #[arg(long)]
    data: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let rating_movie = MovieLens100k::load(&args.data)?.rating_movie()?;
    let cfg = CollabConfig { item_name: Some("title".into()), ..Default::default() };
    let data = CollabDataBunch::from_df(&rating_movie, &cfg)?;
    let holdout = hold_out(&data, 0.1, 7)?;
    let run = Run::default();
    let mse = |r: &Recipe, d: &CollabDataBunch| -> Result<f64> {
        Ok(fastcollab::metrics::mse(&r.fit_predict(d, &run)?, &d.valid.ratings))
    };
    println!("{:>6}{:>10}{:>14}", "bs", "lr", "hold-out MSE");
    for bs in [64, 256, 1024, 4096] {
        let mut best = (f64::INFINITY, 0.0);
        for lr in [2e-3, 3e-3, 5e-3, 7e-3, 1e-2, 1.4e-2, 2e-2, 3e-2] {
            let m = mse(&Recipe { bs, lr, ..Recipe::lesson() }, &holdout)?;
            println!("{bs:>6}{lr:>10}{m:>14.6}");
            if m < best.0 {
                best = (m, lr);
            }
        }
        let valid = mse(&Recipe { bs, lr: best.1, ..Recipe::lesson() }, &data)?;
        println!("  chosen at bs {bs}: lr {} (hold-out MSE {:.6}; lesson validation MSE {valid:.6})", best.1, best.0);
    }
    Ok(())
}
