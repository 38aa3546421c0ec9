//! `fastcollab cv`: canonical-fold evaluation.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use fastcollab::evaluate::{evaluate_folds, AB, FOLDS};
use fastcollab::recipe::Recipe;
use fastcollab::TrainMode;

#[derive(Args)]
pub struct CvArgs {
    /// The ml-100k folder (default: the untar_data cache).
    #[arg(long)]
    data: Option<PathBuf>,
    /// `lesson` or `tuned` (also `bs256`, `bs1024`, `bs4096`).
    #[arg(long, default_value = "lesson")]
    recipe: String,
    /// Also evaluate the ua and ub splits (ten test ratings per user).
    #[arg(long)]
    ab: bool,
    /// Seed of the shuffles and the initialisation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// `auto`, `exact`, `autograd` or `lazy`.
    #[arg(long, default_value = "auto")]
    mode: TrainMode,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: CvArgs) -> Result<()> {
    let dir = super::ml100k(args.data)?;
    let recipe = Recipe::by_name(&args.recipe)?;
    let report = evaluate_folds(&dir, &FOLDS, &recipe, args.seed, args.mode)?;
    println!("{report}");
    let mut json = serde_json::to_value(&report)?;
    if args.ab {
        let ab = evaluate_folds(&dir, &AB, &recipe, args.seed, args.mode)?;
        println!("\n{ab}");
        json["ab"] = serde_json::to_value(&ab)?;
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
