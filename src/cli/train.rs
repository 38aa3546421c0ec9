//! `fastcollab train`: train on MovieLens 100k (or an ml-latest `ratings.csv`) and save.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use fastcollab::data::movielens::{ITEM, TITLE};
use fastcollab::data::stream::{beyond_bulk, load_ratings_csv, load_train_valid_csv};
use fastcollab::data::titles::ItemTitles;
use fastcollab::evaluate::ranking::relevant_from_for;
use fastcollab::evaluate::{choose_alpha, rank_fold, Ranking};
use fastcollab::plot::plot_lr_find;
use fastcollab::recipe::{self, Recipe, RecipeName, Run, LESSON_Y_RANGE};
use fastcollab::{
    collab_learner, CollabConfig, CollabDataBunch, CollabLearnerConfig, DeviceChoice, EmbeddingNNConfig, Learner,
    LrFindConfig, Metrics, ModelConfig, MovieLens100k, TrainMode,
};

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    split: super::SplitArgs,
    /// Train on this ratings CSV instead (with a header; commas, tabs, semicolons or bars; MovieLens'
    /// ml-latest ratings.csv, or your own): users, items and ratings from the columns --user-col,
    /// --item-col and --rating-col name, else from userId, movieId and rating, else from the first
    /// three columns (fastai's default). Ids may be numbers or text.
    #[arg(long, conflicts_with_all = ["data", "item"])]
    ratings: Option<PathBuf>,
    /// Validate on the ratings of this CSV (the same columns) instead of a random share of
    /// --ratings: a split of your own, e.g. by time. --ratings then trains on all its rows.
    #[arg(long, requires = "ratings", conflicts_with_all = ["valid_pct", "split"])]
    valid_ratings: Option<PathBuf>,
    #[command(flatten)]
    columns: super::ColumnArgs,
    /// The model's output range, `LO,HI` (fastai's `y_range`). Default: the lesson's 0,5.5 when the
    /// training ratings lie within it, else the range of the training ratings widened as the
    /// lesson widens 1–5 stars (a quarter of the span below, an eighth above).
    #[arg(long, value_delimiter = ',', value_name = "LO,HI", allow_hyphen_values = true)]
    y_range: Option<Vec<f64>>,
    /// Also rank every item for the validation users and report top-k precision, recall, NDCG,
    /// MAP, hit rate and coverage against MostPop and Random, as `cv --ranking` does (metrics.json:
    /// `ranking`).
    #[arg(long)]
    ranking: bool,
    /// The list length for --ranking.
    #[arg(long, default_value_t = 10, requires = "ranking")]
    k: usize,
    /// A validation rating at least this high is relevant for --ranking. Default: three quarters of
    /// the way up the training ratings' range (4 on 1–5 stars, as `cv --ranking`).
    #[arg(long, requires = "ranking", allow_negative_numbers = true)]
    relevant_from: Option<f32>,
    /// Item column for ml-100k: `title` (the lesson) or `movieId` (the model's items are then ids,
    /// shown with u.item's titles).
    #[arg(long, default_value = TITLE)]
    item: String,
    /// Titles to show with the model's items (`recommend`, `similar`, `interpret`; exported with
    /// --export): a CSV with a header, ids from the ratings' item column where it has one (e.g.
    /// movieId), else from its first column, titles from `title`, else from its second column.
    /// MovieLens' movies.csv works as it is. The items stay ids.
    #[arg(long, value_name = "FILE")]
    items: Option<PathBuf>,
    /// Start from a named recipe: lesson, bs256, bs1024, bs4096, or tuned (a single model chosen on
    /// a hold-out of the training rows; ensembles apply to `cv` only).
    #[arg(long, value_enum, default_value = "lesson")]
    recipe: RecipeName,
    /// Override the recipe's number of factors (EmbeddingDotBias; EmbeddingNN takes fastai's
    /// embedding sizes).
    #[arg(long, conflicts_with = "use_nn")]
    n_factors: Option<usize>,
    /// Override the recipe's weight decay.
    #[arg(long, allow_negative_numbers = true)]
    wd: Option<f64>,
    /// Override the recipe's epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Override the recipe's peak learning rate.
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Adam's β2 (fastai's `sqr_mom`; 0.99 unless given). On large sparse data a longer memory
    /// trains rarely rated rows better: see "Scale" in the README.
    #[arg(long, allow_negative_numbers = true)]
    sqr_mom: Option<f64>,
    /// Override the recipe's batch size.
    #[arg(long)]
    bs: Option<usize>,
    /// Train the multi-layer EmbeddingNN instead of EmbeddingDotBias.
    #[arg(long)]
    use_nn: bool,
    /// Hidden layer widths for --use-nn.
    #[arg(long, value_delimiter = ',', default_value = "100,50", requires = "use_nn")]
    layers: Vec<usize>,
    /// How steps are computed: `auto`, `exact`, `dense`, `autograd` or `lazy`.
    #[arg(long, value_enum, default_value = "auto")]
    mode: TrainMode,
    /// Where the model trains: `auto`, `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Output folder: models/NAME.pth and metrics.json go here.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Name of the saved model.
    #[arg(long, default_value = "model")]
    name: String,
    /// Also export the trained model as one self-contained file for inference (`info`,
    /// `predict`, `recommend`, `similar`).
    #[arg(long)]
    export: Option<PathBuf>,
    /// Run fastai's learning-rate finder first: print its suggestions, plot `lr_find.png` into
    /// --out and record them in metrics.json. The fit afterwards is exactly what it would have
    /// been without (the finder restores the learner); its rate is still --lr or the recipe's.
    #[arg(long)]
    lr_find: bool,
}

pub fn run(a: TrainArgs) -> Result<()> {
    // Outputs are checked before any training, so a bad --out fails in a second, not after the fit.
    let models = a.out.join("models");
    super::check_writable_dir(&models).with_context(|| format!("--out {}", a.out.display()))?;
    if let Some(export) = &a.export {
        super::check_writable_file(export).with_context(|| format!("--export {}", export.display()))?;
    }
    if a.use_nn && a.recipe == RecipeName::Tuned {
        bail!("--recipe tuned chooses among EmbeddingDotBias models; with --use-nn give --wd and --lr instead");
    }
    let bs = a.bs.unwrap_or(a.recipe.fixed().map_or(Recipe::lesson().bs, |r| r.bs));
    let y_range = super::y_range_arg(a.y_range.as_deref())?;
    let data = match &a.ratings {
        Some(csv) => load_csv(csv, &a, bs, y_range)?,
        None => {
            let ml = MovieLens100k::load(&super::ml100k(a.split.data.clone())?)?;
            let cfg = a.split.config(&a.item, bs, y_range.unwrap_or(LESSON_Y_RANGE));
            let data = CollabDataBunch::from_df(&ml.rating_movie()?, &cfg)?.with_sources(ml.sources);
            match (a.item.as_str(), &a.items) {
                (TITLE, Some(_)) => bail!("--items: the model's items are u.item's titles already (--item title)"),
                (ITEM, None) => data.with_item_titles(&ItemTitles::from_table(&ml.movies, ITEM, TITLE)?).0,
                _ => data,
            }
        }
    };
    let data = match &a.items {
        Some(path) => {
            let titles =
                ItemTitles::read(path, &data.names[1]).with_context(|| format!("--items {}", path.display()))?;
            let (data, missing) = data.with_item_titles(&titles);
            let [id, title] = &titles.columns;
            eprintln!(
                "{}: titles from column {title:?} by {id:?}; {missing} of the model's {} items have none",
                path.display(),
                data.n_items() - 1
            );
            data
        }
        None => data,
    };
    let y_range = y_range.unwrap_or_else(|| {
        let chosen = recipe::y_range_for(&data.train.ratings);
        if chosen != LESSON_Y_RANGE {
            eprintln!("training ratings outside the lesson's y_range (0, 5.5): y_range {chosen:?} (--y-range sets it)");
        }
        chosen
    });
    let mut r = match a.recipe.fixed() {
        Some(recipe) => recipe,
        None => {
            let run = Run { mode: a.mode, device: a.device, seed: a.split.seed };
            let tuning = recipe::tune(&data, &run, 1, y_range)?;
            println!("tuned on a 10% hold-out of the training rows: {}", tuning.chosen);
            tuning.chosen
        }
    };
    // Flags override the recipe.
    let l = &mut r.learner;
    if a.use_nn {
        l.model = ModelConfig::Nn(EmbeddingNNConfig { layers: a.layers.clone(), ..Default::default() });
    } else if let (ModelConfig::DotBias(c), Some(n)) = (&mut l.model, a.n_factors) {
        c.n_factors = n;
    }
    l.model = l.model.clone().with_y_range(Some(y_range));
    l.wd = a.wd.unwrap_or(l.wd);
    l.beta2 = a.sqr_mom.unwrap_or(l.beta2);
    r.epochs = a.epochs.unwrap_or(r.epochs);
    r.lr = a.lr.unwrap_or(r.lr);
    r.bs = bs;
    let lcfg = CollabLearnerConfig { mode: a.mode, device: a.device, path: a.out.clone(), ..r.learner.clone() };
    let mut learn = collab_learner(data, &lcfg)?;
    println!("{}\n", learn.model);
    let suggestions = if a.lr_find {
        let lr = learn.lr_find(&LrFindConfig::default())?;
        let plot = a.out.join("lr_find.png");
        plot_lr_find(&lr, &plot, 10, 5)?;
        println!("{lr}\n(plotted in {}; this fit uses lr {})\n", plot.display(), r.lr);
        Some(lr.suggestions())
    } else {
        None
    };
    learn.fit_one_cycle(r.epochs, r.lr)?;
    let ranking = if a.ranking { Some(rank(&learn, &r, &a)?) } else { None };
    let saved = learn.save(&a.name)?;
    let metrics = TrainMetrics { run: Metrics { lr_suggestions: suggestions, ..learn.metrics() }, recipe: &r, ranking };
    let path = a.out.join("metrics.json");
    std::fs::write(&path, serde_json::to_string_pretty(&metrics)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("Total time: {:.2}s; saved {} and {}", learn.recorder.fit_seconds, saved.display(), path.display());
    if let Some(export) = &a.export {
        learn.export(export)?;
        println!("exported the model for inference to {}", export.display());
    }
    Ok(())
}

/// The ratings of `csv` from the columns `a` names (else MovieLens', else the first three), split.
/// Without `y_range` the scale follows from the ratings, and one far from their bulk is taken for a
/// typo: the file is read again with that bulk's range, which stops at the first such rating with
/// its line.
fn load_csv(csv: &Path, a: &TrainArgs, bs: usize, y_range: Option<(f64, f64)>) -> Result<CollabDataBunch> {
    let mut cfg = a.split.config("movieId", bs, y_range.unwrap_or(LESSON_Y_RANGE));
    a.columns.name_in(&mut cfg);
    cfg.rating_range = cfg.rating_range.filter(|_| y_range.is_some());
    let load = |cfg: &CollabConfig| match &a.valid_ratings {
        Some(valid) => load_train_valid_csv(csv, valid, cfg),
        None => load_ratings_csv(csv, cfg),
    };
    let data = load(&cfg)?;
    let all: Vec<f32> = data.train.ratings.iter().chain(&data.valid.ratings).copied().collect();
    if let (None, Some(accepted)) = (y_range, beyond_bulk(&all)) {
        cfg.rating_range = Some(accepted);
        load(&cfg).context(
            "without --y-range, ratings are accepted within the span of their bulk (1st to 99th percentile) \
             around it; --y-range LO,HI accepts LO−(HI−LO) to HI+(HI−LO)",
        )?;
    }
    if data.names != ["userId", "movieId", "rating"] {
        let [u, i, r] = &data.names;
        eprintln!("{}: users from column {u:?}, items from {i:?}, ratings from {r:?}", csv.display());
    }
    Ok(data)
}

/// `--ranking`: every item ranked for the validation users by the trained model (alone and blended
/// with popularity, its weight chosen on a hold-out of the training rows) and by the baselines.
fn rank(learn: &Learner, recipe: &Recipe, a: &TrainArgs) -> Result<Ranking> {
    let ratings = &learn.data.train.ratings;
    let from = a.relevant_from.unwrap_or_else(|| relevant_from_for(ratings));
    let run = Run { mode: a.mode, device: a.device, seed: a.split.seed };
    let alpha = choose_alpha(&learn.data, recipe, &run, a.k, from)?;
    let ranking = rank_fold(&learn.data, std::slice::from_ref(learn), alpha, a.k, a.split.seed, from);
    println!(
        "\nranking@{} on the validation rows ({} users with a validation rating of {from} or higher; blend = model + \
         {alpha:.3}·ln(1+count), the weight chosen on a hold-out of the training rows)\n{ranking}",
        a.k, ranking.n_users
    );
    Ok(ranking)
}

/// `metrics.json` of `train`: the run's metrics, the recipe it trained and, with `--ranking`, the
/// ranking metrics.
#[derive(serde::Serialize)]
struct TrainMetrics<'a> {
    #[serde(flatten)]
    run: Metrics,
    recipe: &'a Recipe,
    #[serde(skip_serializing_if = "Option::is_none")]
    ranking: Option<Ranking>,
}
