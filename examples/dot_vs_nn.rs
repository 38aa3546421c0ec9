//! EmbeddingDotBias and EmbeddingNN (`use_nn`) trained on the same split, side by side.
//!
//! `cargo run --release --example dot_vs_nn -- [--data DIR] [--seed N] [--epochs N] [--layout v1|v2]
//! [--ps P,P] [--emb-drop P]`
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use fastcollab::{
    collab_learner, untar_data, CollabConfig, CollabDataBunch, CollabLearnerConfig, DatasetSpec, DotBiasConfig,
    EmbeddingNNConfig, ModelConfig, MovieLens100k, NnLayout,
};

#[derive(Parser)]
struct Args {
    /// The ml-100k folder (default: downloaded and cached by `untar_data`).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seed of the split, shuffles and initialisation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Epochs of fit_one_cycle for each model.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// EmbeddingNN's block layout: fastai `v1` or `v2`.
    #[arg(long, value_enum, default_value = "v2")]
    layout: NnLayout,
    /// EmbeddingNN's dropout after each hidden layer (fastai's `ps`), e.g. `0.2,0.1`.
    #[arg(long, value_delimiter = ',')]
    ps: Vec<f64>,
    /// EmbeddingNN's dropout on the embeddings (fastai's `embed_p`).
    #[arg(long, default_value_t = 0.0)]
    emb_drop: f64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let path = match args.data {
        Some(p) => p,
        None => untar_data(&DatasetSpec::ml_100k())?,
    };
    let rating_movie = MovieLens100k::load(&path)?.rating_movie()?;
    let cfg = CollabConfig { item_name: Some("title".into()), seed: args.seed, ..Default::default() };
    let data = CollabDataBunch::from_df(&rating_movie, &cfg)?;
    let y_range = Some((0.0, 5.5));
    let (layout, ps, emb_drop) = (args.layout, args.ps, args.emb_drop);
    let nn = EmbeddingNNConfig { layers: vec![100, 50], y_range, layout, ps, emb_drop, ..Default::default() };
    let models = [
        ("EmbeddingDotBias", ModelConfig::DotBias(DotBiasConfig { n_factors: 40, y_range })),
        ("EmbeddingNN", ModelConfig::Nn(nn)),
    ];
    let mut results = Vec::new();
    for (name, model) in models {
        let mut learn = collab_learner(data.clone(), &CollabLearnerConfig { model, wd: 0.1, ..Default::default() })?;
        println!("\n{}\n", learn.model);
        learn.fit_one_cycle(args.epochs, 5e-3)?;
        let valid = learn.validate().unwrap_or(f64::NAN);
        results.push((name, valid, learn.recorder.fit_seconds, learn.mode()));
    }
    println!("\n{:<18}{:>12}{:>12}{:>10}  mode", "model", "valid_mse", "rmse", "fit_s");
    for (name, mse, secs, mode) in results {
        println!("{name:<18}{mse:>12.6}{:>12.6}{secs:>10.2}  {mode:?}", mse.sqrt());
    }
    Ok(())
}
