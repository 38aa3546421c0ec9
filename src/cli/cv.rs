//! `fastcollab cv`: canonical-fold evaluation.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use fastcollab::evaluate::cold_start::{cold_start, table, ColdStartPoint};
use fastcollab::evaluate::{evaluate_folds, AB, FOLDS};
use fastcollab::plot::plot_lines;
use fastcollab::recipe::{Recipe, RecipeName, Run};
use fastcollab::{DeviceChoice, TrainMode};

#[derive(Args)]
pub struct CvArgs {
    /// The ml-100k folder (default: the untar_data cache).
    #[arg(long)]
    data: Option<PathBuf>,
    /// `lesson`, `tuned` (chosen per fold on its base file alone), `bs256`, `bs1024` or `bs4096`.
    #[arg(long, value_enum, default_value = "lesson")]
    recipe: RecipeName,
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
    /// Also rank items for each test user: precision, recall, NDCG, MAP, hit rate at k and
    /// coverage, against MostPop and Random baselines.
    #[arg(long)]
    ranking: bool,
    /// The list length for --ranking.
    #[arg(long, default_value_t = 10, requires = "ranking")]
    k: usize,
    /// Also measure cold start on the base files: 10% of users held out, folded in from k of their
    /// ratings, against `#na#` and retraining; writes the curve as a PNG (`--plot`).
    #[arg(long)]
    cold_start: bool,
    /// Where --cold-start draws its curve.
    #[arg(long, default_value = "cold_start.png", requires = "cold_start")]
    plot: PathBuf,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: CvArgs) -> Result<()> {
    let dir = super::ml100k(args.data)?;
    let run = Run { mode: args.mode, device: args.device, seed: args.seed };
    let k = args.ranking.then_some(args.k);
    let report = evaluate_folds(&dir, &FOLDS, args.recipe, &run, k)?;
    println!("{report}");
    let mut json = serde_json::to_value(&report)?;
    if args.ab {
        let ab = evaluate_folds(&dir, &AB, args.recipe, &run, k)?;
        println!("\n{ab}");
        json["ab"] = serde_json::to_value(&ab)?;
    }
    if args.cold_start {
        let recipe = args.recipe.fixed().unwrap_or_else(Recipe::lesson);
        let l = &recipe.learner;
        let fold_in = fastcollab::infer::FoldIn::with_training(l.wd, l.beta2, l.eps);
        let points = cold_start(&dir, &FOLDS, &recipe, &run, &fold_in)?;
        println!(
            "\ncold start ({} recipe; fold-in: {} AdamW steps, lr {}):\n{}",
            recipe.name,
            fold_in.steps,
            fold_in.lr,
            table(&points)
        );
        let line = |f: fn(&ColdStartPoint) -> f64| points.iter().map(|p| (p.k as f64, f(p))).collect::<Vec<_>>();
        let series = [
            ("fold-in", line(|p| p.fold_in_rmse)),
            ("unknown user (#na#)", line(|p| p.unknown_rmse)),
            ("retrain", line(|p| p.retrain_rmse)),
        ];
        plot_lines(&series, &args.plot, "Cold start: RMSE on a new user's other ratings", "ratings known (k)", "RMSE")?;
        println!("wrote {}", args.plot.display());
        json["cold_start"] = serde_json::to_value(&points)?;
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
