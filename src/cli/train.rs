//! `fastcollab train`: train on MovieLens 100k (or an ml-latest `ratings.csv`) and save.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use fastcollab::data::movielens::TITLE;
use fastcollab::data::stream::load_ratings_csv;
use fastcollab::plot::plot_lr_find;
use fastcollab::recipe::{self, Recipe, RecipeName, Run, LESSON_Y_RANGE};
use fastcollab::{
    collab_learner, CollabDataBunch, CollabLearnerConfig, DeviceChoice, EmbeddingNNConfig, LrFindConfig, Metrics,
    ModelConfig, MovieLens100k, TrainMode,
};

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    split: super::SplitArgs,
    /// Train on this ml-latest style ratings.csv (userId,movieId,rating,timestamp) instead; ids may
    /// be numbers or text.
    #[arg(long)]
    ratings: Option<PathBuf>,
    /// Item column for ml-100k: `title` (the lesson) or `movieId`.
    #[arg(long, default_value = TITLE)]
    item: String,
    /// Start from a named recipe: lesson, bs256, bs1024, bs4096, or tuned (a single model chosen on
    /// a hold-out of the training rows; ensembles apply to `cv` only).
    #[arg(long, value_enum, default_value = "lesson")]
    recipe: RecipeName,
    /// Override the recipe's number of factors (EmbeddingDotBias; EmbeddingNN takes fastai's
    /// embedding sizes).
    #[arg(long, conflicts_with = "use_nn")]
    n_factors: Option<usize>,
    /// Override the recipe's weight decay.
    #[arg(long)]
    wd: Option<f64>,
    /// Override the recipe's epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Override the recipe's peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Adam's β2 (fastai's `sqr_mom`; 0.99 unless given). On large sparse data a longer memory
    /// trains rarely rated rows better: see "Scale" in the README.
    #[arg(long)]
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
    let data = match &a.ratings {
        Some(csv) => load_ratings_csv(csv, &a.split.config("movieId", bs, LESSON_Y_RANGE))?,
        None => {
            let ml = MovieLens100k::load(&super::ml100k(a.split.data.clone())?)?;
            CollabDataBunch::from_df(&ml.rating_movie()?, &a.split.config(&a.item, bs, LESSON_Y_RANGE))?
                .with_sources(ml.sources)
        }
    };
    let mut r = match a.recipe.fixed() {
        Some(recipe) => recipe,
        None => {
            let run = Run { mode: a.mode, device: a.device, seed: a.split.seed };
            let tuning = recipe::tune(&data, &run, 1)?;
            println!("tuned on a 10% hold-out of the training rows: {}", tuning.chosen);
            tuning.chosen
        }
    };
    // Flags override the recipe.
    let l = &mut r.learner;
    if a.use_nn {
        let y_range = Some(LESSON_Y_RANGE);
        l.model = ModelConfig::Nn(EmbeddingNNConfig { layers: a.layers.clone(), y_range, ..Default::default() });
    } else if let (ModelConfig::DotBias(c), Some(n)) = (&mut l.model, a.n_factors) {
        c.n_factors = n;
    }
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
    let saved = learn.save(&a.name)?;
    let metrics = TrainMetrics { run: Metrics { lr_suggestions: suggestions, ..learn.metrics() }, recipe: &r };
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

/// `metrics.json` of `train`: the run's metrics and the recipe it trained.
#[derive(serde::Serialize)]
struct TrainMetrics<'a> {
    #[serde(flatten)]
    run: Metrics,
    recipe: &'a Recipe,
}
