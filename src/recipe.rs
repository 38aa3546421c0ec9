//! Named training recipes: the lesson's, and a tuned one chosen on training folds only.
use serde::Serialize;

use crate::data::databunch::CollabDataBunch;
use crate::error::{Error, Result};
use crate::learner::{collab_learner, CollabLearnerConfig, Learner, ModelConfig, TrainMode};
use crate::model::DotBiasConfig;

/// Everything that decides how a dot-product model is trained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recipe {
    /// The recipe's name (`lesson`, `tuned`, …).
    pub name: &'static str,
    /// Width of the factor tables.
    pub n_factors: usize,
    /// Output range of the sigmoid.
    pub y_range: (f64, f64),
    /// Decoupled weight decay.
    pub wd: f64,
    /// Epochs of `fit_one_cycle`.
    pub epochs: usize,
    /// Peak learning rate of `fit_one_cycle`.
    pub lr: f64,
    /// Batch size.
    pub bs: usize,
    /// Number of models (seeds `seed`, `seed + 1`, …) whose predictions are averaged.
    pub ensemble: usize,
}

impl Recipe {
    /// Lesson 5: 40 factors, y_range (0, 5.5), wd 0.1, `fit_one_cycle(5, 5e-3)`, bs 64.
    pub fn lesson() -> Self {
        Recipe { name: "lesson", n_factors: 40, y_range: (0.0, 5.5), wd: 0.1, epochs: 5, lr: 5e-3, bs: 64, ensemble: 1 }
    }

    /// Our tuned recipe for MovieLens 100k: the lesson's settings (which won the grid search among
    /// single models) and the mean of five models trained from different seeds. Chosen by validation on a 10% hold-out of `u1.base` only
    /// (never on a test fold) with `examples/tune.rs`; see the README.
    pub fn tuned() -> Self {
        Recipe { name: "tuned", ensemble: 5, ..Recipe::lesson() }
    }

    /// The lesson recipe at a larger batch size, with the learning rate that reached the best
    /// validation MSE at that size on ml-100k (5e-3, 7e-3, 1.4e-2 for bs 256, 1024, 4096).
    pub fn large_batch(bs: usize) -> Result<Self> {
        let lr = match bs {
            256 => 5e-3,
            1024 => 7e-3,
            4096 => 1.4e-2,
            _ => return Err(Error::InvalidConfig(format!("no large-batch preset for bs {bs}; use 256, 1024 or 4096"))),
        };
        Ok(Recipe { name: "large-batch", bs, lr, ..Recipe::lesson() })
    }

    /// A recipe by name: `lesson`, `tuned`, `bs256`, `bs1024` or `bs4096`.
    pub fn by_name(name: &str) -> Result<Self> {
        match name {
            "lesson" => Ok(Recipe::lesson()),
            "tuned" => Ok(Recipe::tuned()),
            "bs256" => Recipe::large_batch(256),
            "bs1024" => Recipe::large_batch(1024),
            "bs4096" => Recipe::large_batch(4096),
            _ => Err(Error::InvalidConfig(format!(
                "unknown recipe {name:?}; use lesson, tuned, bs256, bs1024 or bs4096"
            ))),
        }
    }

    /// A learner for `data` set up with this recipe (the data's batch size is replaced by `bs`),
    /// its model initialised and its batches shuffled from `seed`.
    pub fn learner(&self, mut data: CollabDataBunch, mode: TrainMode, seed: u64) -> Result<Learner> {
        data.bs = self.bs;
        data.seed = seed;
        let model = ModelConfig::DotBias(DotBiasConfig { n_factors: self.n_factors, y_range: Some(self.y_range) });
        collab_learner(data, &CollabLearnerConfig { model, wd: self.wd, mode, seed: Some(seed), ..Default::default() })
    }

    /// Trains `learn` with this recipe's schedule.
    pub fn fit(&self, learn: &mut Learner) -> Result<()> {
        learn.fit_one_cycle(self.epochs, self.lr)
    }

    /// Trains the recipe's `ensemble` models on `data` and returns their mean prediction for each
    /// validation rating.
    pub fn fit_predict(&self, data: &CollabDataBunch, mode: TrainMode, seed: u64) -> Result<Vec<f32>> {
        let mut sum = vec![0.0f32; data.valid.len()];
        for k in 0..self.ensemble.max(1) {
            let mut learn = self.learner(data.clone(), mode, seed + k as u64)?;
            learn.verbose = false;
            self.fit(&mut learn)?;
            for (s, p) in sum.iter_mut().zip(learn.get_preds(true).0) {
                *s += p;
            }
        }
        Ok(sum.into_iter().map(|s| s / self.ensemble.max(1) as f32).collect())
    }
}
