//! `fastcollab cv`: canonical-fold evaluation on ml-100k, or k-fold cross-validation of a ratings
//! file of one's own.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use fastcollab::data::split::{k_fold, SplitMethod};
use fastcollab::data::stream::{beyond_bulk, RatingsFile};
use fastcollab::evaluate::cold_start::{cold_start, table, ColdStartPoint};
use fastcollab::evaluate::{evaluate, evaluate_folds, CvReport, AB, FOLDS};
use fastcollab::plot::plot_lines;
use fastcollab::recipe::{Recipe, RecipeName, Run};
use fastcollab::{CollabConfig, DeviceChoice, TrainMode};

#[derive(Args)]
pub struct CvArgs {
    /// The ml-100k folder (default: the untar_data cache).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Cross-validate on this ratings CSV instead (read as `train --ratings` reads it, columns
    /// userId, movieId and rating, else the first three): --folds parts of a seeded permutation of
    /// its rows, each validated once by a model trained on the others.
    #[arg(long, conflicts_with_all = ["data", "ab", "cold_start"])]
    ratings: Option<PathBuf>,
    /// How many folds for --ratings.
    #[arg(long, default_value_t = 5, requires = "ratings")]
    folds: usize,
    #[command(flatten)]
    columns: super::ColumnArgs,
    /// The models' output range for --ratings, `LO,HI`. Default: the lesson's 0,5.5 when a fold's
    /// training ratings lie within it, else their range widened as `train --ratings` widens it.
    #[arg(long, value_delimiter = ',', value_name = "LO,HI", allow_hyphen_values = true, requires = "ratings")]
    y_range: Option<Vec<f64>>,
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
    let run = Run { mode: args.mode, device: args.device, seed: args.seed };
    let k = args.ranking.then_some(args.k);
    if let Some(csv) = &args.ratings {
        let report = k_fold_file(csv, &args, &run, k)?;
        println!("{report}");
        return write_json(args.json.as_deref(), &serde_json::to_value(&report)?);
    }
    let dir = super::ml100k(args.data)?;
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
    write_json(args.json.as_deref(), &json)
}

/// `--ratings`: `--folds`-fold cross-validation of the file, its folds cut from the seeded
/// permutation `train --ratings` draws its split from. As in `train`, without `--y-range` a rating
/// further from the bulk of the file's ratings than the bulk's span is refused with its line; with
/// it, one further outside it than its width.
fn k_fold_file(csv: &Path, a: &CvArgs, run: &Run, k: Option<usize>) -> Result<CvReport> {
    let y_range = super::y_range_arg(a.y_range.as_deref())?;
    let mut cfg =
        CollabConfig { seed: run.seed, rating_range: y_range.map(super::accepted_around), ..Default::default() };
    a.columns.name_in(&mut cfg);
    let file = RatingsFile::read(csv, &cfg)?;
    if let (None, Some(accepted)) = (y_range, beyond_bulk(file.ratings())) {
        cfg.rating_range = Some(accepted);
        RatingsFile::read(csv, &cfg)
            .context("ratings are accepted within the span of their bulk (1st to 99th percentile) around it")?;
    }
    let splits = k_fold(file.len(), a.folds, run.seed, SplitMethod::FastaiV1)?;
    let data = splits.iter().enumerate().map(|(f, split)| Ok((format!("fold{}", f + 1), file.bunch(split, &cfg))));
    Ok(evaluate(data, a.recipe, run, k, y_range)?)
}

/// Writes the report as JSON to `path`, if given.
fn write_json(path: Option<&Path>, json: &serde_json::Value) -> Result<()> {
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_string_pretty(json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
