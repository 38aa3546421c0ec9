//! Named training recipes, and `tuned`: a recipe chosen by validation on a hold-out of the
//! training rows only, wherever it is used (so no test rating ever influences the choice).
use serde::{Serialize, Serializer};

use crate::data::databunch::{CollabDataBunch, Encoded};
use crate::data::split::{random_split, SplitMethod};
use crate::error::Result;
use crate::learner::{collab_learner, CollabLearnerConfig, DeviceChoice, Learner, ModelConfig, TrainMode};
use crate::metrics::rmse;
use crate::model::DotBiasConfig;

/// Everything that decides how a model is trained: the learner (model, weight decay, Adam's β2 and
/// ε) and the fit around it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// The recipe's name (`lesson`, `tuned`, …).
    pub name: &'static str,
    /// The learner's configuration; a [`Run`] gives its mode, device and seed.
    pub learner: CollabLearnerConfig,
    /// Epochs of `fit_one_cycle`.
    pub epochs: usize,
    /// Peak learning rate of `fit_one_cycle`.
    pub lr: f64,
    /// Batch size.
    pub bs: usize,
    /// Number of models (seeds `seed`, `seed + 1`, …) whose predictions are averaged.
    pub ensemble: usize,
}

/// How and where a recipe's models train, and the seed of the first one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    /// How steps are computed.
    pub mode: TrainMode,
    /// Where the models live.
    pub device: DeviceChoice,
    /// Seed of the first model (shuffles and initialisation); ensemble members use the next ones.
    pub seed: u64,
}

impl Default for Run {
    fn default() -> Self {
        Run { mode: TrainMode::Auto, device: DeviceChoice::Auto, seed: 42 }
    }
}

/// The recipes by name (`--recipe`): the fixed ones, and `tuned`, chosen per dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RecipeName {
    /// fastai's lesson 5.
    #[default]
    Lesson,
    /// A single model chosen on a hold-out of the training rows ([`tune`]).
    Tuned,
    /// The lesson at bs 256.
    Bs256,
    /// The lesson at bs 1024.
    Bs1024,
    /// The lesson at bs 4096.
    Bs4096,
}

/// The name as `--recipe` takes it.
impl std::fmt::Display for RecipeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = clap::ValueEnum::to_possible_value(self).expect("no variant is skipped");
        f.write_str(value.get_name())
    }
}

impl RecipeName {
    /// The fixed recipe of this name; `None` for `tuned`, which [`tune`] chooses on the training
    /// rows at hand.
    pub fn fixed(self) -> Option<Recipe> {
        // The larger batches take the learning rate that reached the best MSE at that size on a
        // hold-out of the lesson split's training rows (`examples/batch_size.rs`).
        let (name, bs, lr) = match self {
            RecipeName::Lesson => return Some(Recipe::lesson()),
            RecipeName::Tuned => return None,
            RecipeName::Bs256 => ("bs256", 256, 5e-3),
            RecipeName::Bs1024 => ("bs1024", 1024, 7e-3),
            RecipeName::Bs4096 => ("bs4096", 4096, 1.4e-2),
        };
        Some(Recipe { name, bs, lr, ..Recipe::lesson() })
    }
}

/// The lesson's output range, `y_range = (0, 5.5)`.
pub const LESSON_Y_RANGE: (f64, f64) = (0.0, 5.5);

/// The output range for a model of `ratings`: the lesson's (0, 5.5) when they lie within it (every
/// MovieLens scale), else their range widened as the lesson widens 1–5 stars into (0, 5.5), a
/// quarter of the span below and an eighth above.
pub fn y_range_for(ratings: &[f32]) -> (f64, f64) {
    let (lo, hi) = span(ratings);
    let (l, h) = LESSON_Y_RANGE;
    if lo >= l && hi <= h || lo > hi {
        return LESSON_Y_RANGE;
    }
    let width = (hi - lo).max(1.0);
    (lo - width / 4.0, hi + width / 8.0)
}

/// The lowest and highest of `ratings` (∞ and −∞ for none).
pub fn span(ratings: &[f32]) -> (f64, f64) {
    ratings.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| (lo.min(r as f64), hi.max(r as f64)))
}

/// An `EmbeddingDotBias` learner with the lesson's output range and fastai's Adam.
pub fn dot_bias(n_factors: usize, wd: f64) -> CollabLearnerConfig {
    let model = ModelConfig::DotBias(DotBiasConfig { n_factors, y_range: Some(LESSON_Y_RANGE) });
    CollabLearnerConfig { model, wd, ..Default::default() }
}

impl Recipe {
    /// Lesson 5: 40 factors, y_range (0, 5.5), wd 0.1, `fit_one_cycle(5, 5e-3)`, bs 64.
    pub fn lesson() -> Self {
        Recipe { name: "lesson", learner: dot_bias(40, 0.1), epochs: 5, lr: 5e-3, bs: 64, ensemble: 1 }
    }

    /// A learner for `data` set up with this recipe (the data's batch size is replaced by `bs`),
    /// its model initialised and its batches shuffled from `seed`.
    pub fn learner(&self, mut data: CollabDataBunch, run: &Run, seed: u64) -> Result<Learner> {
        data.bs = self.bs;
        data.seed = seed;
        let cfg = CollabLearnerConfig { mode: run.mode, device: run.device, seed: Some(seed), ..self.learner.clone() };
        collab_learner(data, &cfg)
    }

    /// Trains `learn` with this recipe's schedule.
    pub fn fit(&self, learn: &mut Learner) -> Result<()> {
        learn.fit_one_cycle(self.epochs, self.lr)
    }

    /// Trains the recipe's `ensemble` models on `data` (seeds `run.seed`, `run.seed + 1`, …).
    pub fn fit_all(&self, data: &CollabDataBunch, run: &Run) -> Result<Vec<Learner>> {
        (0..self.ensemble.max(1))
            .map(|k| {
                let mut learn = self.learner(data.clone(), run, run.seed + k as u64)?;
                learn.verbose = false;
                self.fit(&mut learn)?;
                Ok(learn)
            })
            .collect()
    }

    /// Trains the recipe's `ensemble` models on `data` and returns their mean prediction for each
    /// validation rating.
    pub fn fit_predict(&self, data: &CollabDataBunch, run: &Run) -> Result<Vec<f32>> {
        Ok(mean_predictions(&self.fit_all(data, run)?, &data.valid))
    }
}

/// `40 factors, wd 0.1, lr 0.005, 5 epochs, ensemble 1` (EmbeddingNN: its layers for the factors).
impl std::fmt::Display for Recipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.learner.model {
            ModelConfig::DotBias(c) => write!(f, "{} factors", c.n_factors)?,
            ModelConfig::Nn(c) => write!(f, "EmbeddingNN {:?}", c.layers)?,
        }
        write!(f, ", wd {}, lr {}, {} epochs, ensemble {}", self.learner.wd, self.lr, self.epochs, self.ensemble)
    }
}

/// As `metrics.json` and `cv --json` record it: `name`, the model's shape (`n_factors`, or
/// EmbeddingNN's `layers`), `y_range`, `wd`, `sqr_mom`, `eps`, `epochs`, `lr`, `bs`, `ensemble`.
impl Serialize for Recipe {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Record<'a> {
            name: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            n_factors: Option<usize>,
            #[serde(skip_serializing_if = "Option::is_none")]
            layers: Option<&'a [usize]>,
            y_range: Option<(f64, f64)>,
            wd: f64,
            sqr_mom: f64,
            eps: f64,
            epochs: usize,
            lr: f64,
            bs: usize,
            ensemble: usize,
        }
        let l = &self.learner;
        let (n_factors, layers, y_range) = match &l.model {
            ModelConfig::DotBias(c) => (Some(c.n_factors), None, c.y_range),
            ModelConfig::Nn(c) => (None, Some(c.layers.as_slice()), c.y_range),
        };
        Record {
            name: self.name,
            n_factors,
            layers,
            y_range,
            wd: l.wd,
            sqr_mom: l.beta2,
            eps: l.eps,
            epochs: self.epochs,
            lr: self.lr,
            bs: self.bs,
            ensemble: self.ensemble,
        }
        .serialize(s)
    }
}

/// The mean of the learners' predictions for every rating of `rows`.
pub fn mean_predictions(learners: &[Learner], rows: &Encoded) -> Vec<f32> {
    let mut sum = vec![0.0f32; rows.len()];
    for learn in learners {
        for (s, p) in sum.iter_mut().zip(learn.predict_encoded(rows)) {
            *s += p;
        }
    }
    sum.into_iter().map(|s| s / learners.len().max(1) as f32).collect()
}

/// The single-model candidates of `tuned`: the lesson's settings and their neighbours.
pub fn candidates() -> Vec<Recipe> {
    let mut out = Vec::new();
    for n_factors in [40, 80, 160] {
        for wd in [0.1, 0.2, 0.3] {
            for lr in [5e-3, 1e-2] {
                out.push(Recipe { name: "tuned", learner: dot_bias(n_factors, wd), lr, ..Recipe::lesson() });
            }
        }
    }
    out
}

/// What [`tune`] tried and chose.
#[derive(Debug, Clone, Serialize)]
pub struct Tuning {
    /// The chosen recipe.
    pub chosen: Recipe,
    /// Hold-out RMSE of every candidate, in the order tried.
    pub tried: Vec<(Recipe, f64)>,
}

/// Chooses `tuned` for `data` from its training rows alone: every [`candidates`] single model, with
/// output range `y_range`, is scored on a seeded 10% hold-out of `data.train`, then the best is
/// scored as an average of up to `max_ensemble` models (1 and 5 by default); the lowest hold-out
/// RMSE wins. `data.valid` is never read.
pub fn tune(data: &CollabDataBunch, run: &Run, max_ensemble: usize, y_range: (f64, f64)) -> Result<Tuning> {
    let holdout = hold_out(data, 0.1, run.seed)?;
    let score = |r: &Recipe| -> Result<f64> { Ok(rmse(&r.fit_predict(&holdout, run)?, &holdout.valid.ratings)) };
    let mut tried = Vec::new();
    for mut r in candidates() {
        r.learner.model = r.learner.model.with_y_range(Some(y_range));
        tried.push((r.clone(), score(&r)?));
    }
    let best = tried.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|t| t.0.clone()).expect("candidates");
    if max_ensemble >= 5 {
        let e = Recipe { ensemble: 5, ..best };
        tried.push((e.clone(), score(&e)?));
    }
    let chosen = tried.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|t| t.0.clone()).expect("candidates");
    Ok(Tuning { chosen, tried })
}

/// `data` with its validation rows replaced by a seeded `pct` of its training rows (the rest stay
/// for training); the vocabularies are kept, so rows mean the same.
pub fn hold_out(data: &CollabDataBunch, pct: f64, seed: u64) -> Result<CollabDataBunch> {
    let split = random_split(data.train.len(), pct, seed, SplitMethod::Seeded)?;
    let pick = |rows: &[usize]| Encoded {
        users: rows.iter().map(|&r| data.train.users[r]).collect(),
        items: rows.iter().map(|&r| data.train.items[r]).collect(),
        ratings: rows.iter().map(|&r| data.train.ratings[r]).collect(),
    };
    let mut out = data.clone();
    out.train = pick(&split.train);
    out.valid = pick(&split.valid);
    out.train_rows.clear();
    out.valid_rows.clear();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_name_parses_back_and_the_fixed_ones_are_the_presets() {
        for name in RecipeName::value_variants() {
            assert_eq!(RecipeName::from_str(&name.to_string(), false), Ok(*name));
            if let Some(recipe) = name.fixed() {
                assert_eq!(recipe.name, name.to_string(), "a recipe carries the name it was asked by");
            }
        }
        assert_eq!(RecipeName::Lesson.fixed(), Some(Recipe::lesson()));
        assert_eq!(RecipeName::Tuned.fixed(), None);
        let big = RecipeName::from_str("bs1024", false).unwrap().fixed().unwrap();
        assert_eq!((big.bs, big.lr, &big.learner), (1024, 7e-3, &Recipe::lesson().learner));
        assert_eq!(RecipeName::Bs4096.fixed().map(|r| r.lr), Some(1.4e-2));
    }
}
