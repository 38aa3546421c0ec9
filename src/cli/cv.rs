//! `fastcollab cv`: canonical-fold evaluation.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use fastcollab::evaluate::{evaluate_folds, AB, FOLDS};
use fastcollab::recipe::{self, Run};
use fastcollab::{DeviceChoice, TrainMode};

#[derive(Args)]
pub struct CvArgs {
    /// The ml-100k folder (default: the untar_data cache).
    #[arg(long)]
    data: Option<PathBuf>,
    /// `lesson`, `tuned` (chosen per fold on its base file alone), `bs256`, `bs1024` or `bs4096`.
    #[arg(long, default_value = "lesson", value_parser = clap::builder::PossibleValuesParser::new(recipe::NAMES))]
    recipe: String,
    /// Also evaluate the ua and ub splits (ten test ratings per user).
    #[arg(long)]
    ab: bool,
    /// Seed of the shuffles and the initialisation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// How steps are computed: `auto`, `exact`, `dense`, `autograd` or `lazy`.
    #[arg(long, value_enum, default_value = "auto")]
    mode: TrainMode,
    /// Where the models train: `auto`, `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: CvArgs) -> Result<()> {
    let dir = super::ml100k(args.data)?;
    let run = Run { mode: args.mode, device: args.device, seed: args.seed };
    let report = evaluate_folds(&dir, &FOLDS, &args.recipe, &run)?;
    println!("{report}");
    let mut json = serde_json::to_value(&report)?;
    if args.ab {
        let ab = evaluate_folds(&dir, &AB, &args.recipe, &run)?;
        println!("\n{ab}");
        json["ab"] = serde_json::to_value(&ab)?;
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
