//! Evaluation the way the benchmarks do it: train on MovieLens' canonical `uN.base` files and
//! measure on the matching `uN.test`.
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::data::databunch::{CollabConfig, CollabDataBunch};
use crate::data::movielens::{read_ratings, ITEM, RATING, USER};
use crate::error::Result;
use crate::metrics::{mae, mse};
use crate::recipe::{tune, Recipe, Run};

/// The five-fold cross-validation splits shipped with ml-100k.
pub const FOLDS: [&str; 5] = ["u1", "u2", "u3", "u4", "u5"];
/// The two splits with exactly ten test ratings per user.
pub const AB: [&str; 2] = ["ua", "ub"];

/// The result of one fold.
#[derive(Debug, Clone, Serialize)]
pub struct FoldResult {
    /// Fold name, e.g. `u1`.
    pub name: String,
    /// The recipe trained on this fold (for `tuned`: the one chosen on its base file).
    pub recipe: Recipe,
    /// Mean squared error on the test file.
    pub mse: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Test ratings.
    pub n_test: usize,
    /// Test ratings whose user or item never occurs in the base file (predicted via `#na#`).
    pub n_unseen: usize,
}

/// Every fold's result, their mean and spread, and the run time.
#[derive(Debug, Clone, Serialize)]
pub struct CvReport {
    /// The recipe's name.
    pub recipe: String,
    /// Per-fold results.
    pub folds: Vec<FoldResult>,
    /// Mean RMSE over the folds.
    pub mean_rmse: f64,
    /// Sample standard deviation of the folds' RMSE.
    pub sd_rmse: f64,
    /// Wall time of the whole evaluation.
    pub seconds: f64,
}

/// The fold `name` of `dir`: `NAME.base` for training, `NAME.test` for validation, items by id.
pub fn fold_data(dir: &Path, name: &str, bs: usize, seed: u64) -> Result<CollabDataBunch> {
    let base = read_ratings(&dir.join(format!("{name}.base")))?;
    let test = read_ratings(&dir.join(format!("{name}.test")))?;
    let cfg = CollabConfig {
        user_name: Some(USER.into()),
        item_name: Some(ITEM.into()),
        rating_name: Some(RATING.into()),
        seed,
        bs,
        ..Default::default()
    };
    CollabDataBunch::from_tables(&base, &test, &cfg)
}

/// The recipe named `name` for a fold: a fixed one, or for `tuned` the one [`tune`] chooses on the
/// fold's base file alone (nested: the test file is never read for the choice).
pub fn recipe_for(name: &str, data: &CollabDataBunch, run: &Run) -> Result<Recipe> {
    match name {
        "tuned" => Ok(tune(data, run, 5)?.chosen),
        _ => Recipe::by_name(name),
    }
}

/// Trains the recipe `recipe` on `dir/NAME.base` and evaluates on `dir/NAME.test` for each fold.
pub fn evaluate_folds(dir: &Path, folds: &[&str], recipe: &str, run: &Run) -> Result<CvReport> {
    let start = Instant::now();
    let mut results = Vec::new();
    for name in folds {
        let data = fold_data(dir, name, 64, run.seed)?;
        let chosen = recipe_for(recipe, &data, run)?;
        let n_unseen = data.n_unseen_valid();
        let preds = chosen.fit_predict(&data, run)?;
        let targets = &data.valid.ratings;
        let m = mse(&preds, targets);
        results.push(FoldResult {
            name: name.to_string(),
            recipe: chosen,
            mse: m,
            rmse: m.sqrt(),
            mae: mae(&preds, targets),
            n_test: targets.len(),
            n_unseen,
        });
    }
    let n = results.len() as f64;
    let mean_rmse = results.iter().map(|f| f.rmse).sum::<f64>() / n;
    let sd_rmse = (results.iter().map(|f| (f.rmse - mean_rmse).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    Ok(CvReport {
        recipe: recipe.to_string(),
        folds: results,
        mean_rmse,
        sd_rmse,
        seconds: start.elapsed().as_secs_f64(),
    })
}

impl std::fmt::Display for CvReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:<6}{:>10}{:>10}{:>10}{:>9}{:>9}  recipe", "fold", "mse", "rmse", "mae", "n_test", "unseen")?;
        for r in &self.folds {
            let c = &r.recipe;
            writeln!(
                f,
                "{:<6}{:>10.4}{:>10.4}{:>10.4}{:>9}{:>9}  {} factors, wd {}, lr {}, {} epochs, ensemble {}",
                r.name, r.mse, r.rmse, r.mae, r.n_test, r.n_unseen, c.n_factors, c.wd, c.lr, c.epochs, c.ensemble
            )?;
        }
        write!(
            f,
            "recipe {}: mean RMSE {:.4} ± {:.4} (sd) over {} folds in {:.1}s",
            self.recipe,
            self.mean_rmse,
            self.sd_rmse,
            self.folds.len(),
            self.seconds
        )
    }
}
