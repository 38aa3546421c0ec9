//! Evaluation the way the benchmarks do it: train on MovieLens' canonical `uN.base` files and
//! measure on the matching `uN.test` (rating error, and optionally top-k ranking), or the same over
//! any folds (k-fold cross-validation of a ratings file); cold-start curves on the base files alone;
//! and the speed figures of `fastcollab bench` ([`mod@bench`]), with the CPU time they took ([`cpu`]).
pub mod bench;
pub mod cold_start;
pub mod cpu;
pub mod ranking;

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::data::databunch::{CollabConfig, CollabDataBunch};
use crate::data::movielens::{read_ratings, ITEM, RATING, USER};
use crate::error::Result;
use crate::infer::rank::{predict_all, top_n_by};
use crate::infer::Seen;
use crate::learner::Learner;
use crate::metrics::{mae, mse};
use crate::recipe::{mean_predictions, tune, y_range_for, Recipe, RecipeName, Run};
use ranking::RankingMetrics;
use tch::Tensor;

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
    /// Top-k ranking of the model and the baselines (with `--ranking`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranking: Option<Ranking>,
}

/// Ranking metrics of the model and of the MostPop and Random baselines, computed alike.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ranking {
    /// The trained model (ensembles: the mean predicted rating).
    pub model: RankingMetrics,
    /// The model's predicted rating plus `alpha · ln(1 + training count)`, with `alpha` chosen on
    /// a hold-out of the base file (never the test file).
    pub blend: RankingMetrics,
    /// The popularity weight of `blend` (for averages over folds: their mean).
    pub alpha: f64,
    /// Items by number of training ratings.
    pub mostpop: RankingMetrics,
    /// Items in random order (seeded).
    pub random: RankingMetrics,
    /// The list length.
    pub k: usize,
    /// Users ranked (with at least one relevant test item).
    pub n_users: usize,
    /// A test rating at least this high is relevant.
    pub relevant_from: f32,
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
    /// The folds' ranking metrics averaged (with `--ranking`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ranking: Option<Ranking>,
}

/// The data-bunch configuration of MovieLens' rating files (`u.data`, `uN.base`…): items by id.
pub fn ratings_config(bs: usize, seed: u64) -> CollabConfig {
    CollabConfig {
        user_name: Some(USER.into()),
        item_name: Some(ITEM.into()),
        rating_name: Some(RATING.into()),
        seed,
        bs,
        ..Default::default()
    }
}

/// The fold `name` of `dir`: `NAME.base` for training, `NAME.test` for validation, items by id.
pub fn fold_data(dir: &Path, name: &str, bs: usize, seed: u64) -> Result<CollabDataBunch> {
    let base = read_ratings(&dir.join(format!("{name}.base")))?;
    let test = read_ratings(&dir.join(format!("{name}.test")))?;
    CollabDataBunch::from_tables(&base, &test, &ratings_config(bs, seed))
}

/// The recipe named `name` for a fold: a fixed one, or for `tuned` the one [`tune`] chooses on the
/// fold's base file alone (nested: the test file is never read for the choice); its output range is
/// `y_range`, else follows the fold's training ratings ([`y_range_for`]: the lesson's on MovieLens'
/// scales).
pub fn recipe_for(name: RecipeName, data: &CollabDataBunch, run: &Run, y_range: Option<(f64, f64)>) -> Result<Recipe> {
    let y_range = y_range.unwrap_or_else(|| y_range_for(&data.train.ratings));
    let mut recipe = match name.fixed() {
        Some(recipe) => recipe,
        None => tune(data, run, 5, y_range)?.chosen,
    };
    recipe.learner.model = recipe.learner.model.clone().with_y_range(Some(y_range));
    Ok(recipe)
}

/// The popularity weights [`choose_alpha`] tries.
pub const ALPHAS: [f64; 12] = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0];

/// Lists of the top `k` items for `users` by the learners' mean predicted rating plus
/// `alpha · ln(1 + count)`, excluding what each user rated in `seen`.
fn model_lists(learners: &[Learner], count: &[i64], alpha: f64, users: &[u32], k: usize, seen: &Seen) -> Vec<Vec<u32>> {
    let pop: Vec<f32> = count.iter().map(|&c| (alpha * (c as f64).ln_1p()) as f32).collect();
    let pop = Tensor::from_slice(&pop).view([1, -1]);
    let score = |part: &[u32]| {
        let sum = learners.iter().map(|l| predict_all(&l.model, part)).reduce(|a, b| a + b).expect("one learner");
        sum / learners.len() as f64 + &pop
    };
    top_n_by(score, count.len(), users, k, Some(seen))
        .into_iter()
        .map(|t| t.into_iter().map(|x| x.0).collect())
        .collect()
}

/// Training counts per item row of `data`.
fn item_counts(data: &CollabDataBunch) -> Vec<i64> {
    let mut count = vec![0i64; data.n_items()];
    for &i in &data.train.items {
        count[i as usize] += 1;
    }
    count
}

/// The popularity weight for ranking, chosen on `data`'s training rows alone: the recipe is trained
/// on 90% of them, and the weight of [`ALPHAS`] with the best NDCG@k on the other 10% (relevant:
/// rated `relevant_from` or higher) wins.
pub fn choose_alpha(data: &CollabDataBunch, recipe: &Recipe, run: &Run, k: usize, relevant_from: f32) -> Result<f64> {
    let holdout = crate::recipe::hold_out(data, 0.1, run.seed)?;
    let learners = recipe.fit_all(&holdout, run)?;
    let relevant = ranking::relevant(&holdout, relevant_from);
    let users: Vec<u32> = relevant.iter().map(|r| r.0).collect();
    let seen = Seen::from_encoded(&holdout.train, holdout.n_users());
    let count = item_counts(&holdout);
    let mut best = (f64::NEG_INFINITY, 0.0);
    for alpha in ALPHAS {
        let ndcg =
            ranking::metrics(&model_lists(&learners, &count, alpha, &users, k, &seen), &relevant, count.len(), k).ndcg;
        if ndcg > best.0 {
            best = (ndcg, alpha);
        }
    }
    Ok(best.1)
}

/// Ranks every item for the test file's users with `learners` (their mean predicted rating, alone
/// and blended with popularity by `alpha`) and with the baselines, excluding what each user rated
/// in the base file; a test rating of `relevant_from` or higher is relevant.
pub fn rank_fold(
    data: &CollabDataBunch,
    learners: &[Learner],
    alpha: f64,
    k: usize,
    seed: u64,
    relevant_from: f32,
) -> Ranking {
    let relevant = ranking::relevant(data, relevant_from);
    let users: Vec<u32> = relevant.iter().map(|r| r.0).collect();
    let seen = Seen::from_encoded(&data.train, data.n_users());
    let count = item_counts(data);
    let n_items = count.len();
    let lists = |alpha| model_lists(learners, &count, alpha, &users, k, &seen);
    Ranking {
        model: ranking::metrics(&lists(0.0), &relevant, n_items, k),
        blend: ranking::metrics(&lists(alpha), &relevant, n_items, k),
        alpha,
        mostpop: ranking::metrics(&ranking::most_popular(&seen, &count, &users, k), &relevant, n_items, k),
        random: ranking::metrics(&ranking::random(&seen, n_items, &users, k, seed), &relevant, n_items, k),
        k,
        n_users: users.len(),
        relevant_from,
    }
}

/// Trains the recipe `recipe` on `dir/NAME.base` and evaluates on `dir/NAME.test` for each fold,
/// with top-`k` ranking metrics too when `ranking_k` is given.
pub fn evaluate_folds(
    dir: &Path,
    folds: &[&str],
    recipe: RecipeName,
    run: &Run,
    ranking_k: Option<usize>,
) -> Result<CvReport> {
    let data = folds.iter().map(|name| Ok((name.to_string(), fold_data(dir, name, 64, run.seed)?)));
    evaluate(data, recipe, run, ranking_k, None)
}

/// [`evaluate_folds`] for any folds, each named with its data (made as the evaluation reaches it):
/// the recipe trains on its training rows (with the output range `y_range`, else one that follows
/// them) and is measured on its validation rows. A rating ¾ of the way up the training ratings'
/// range or higher is relevant for ranking (4 on 1–5 stars).
pub fn evaluate(
    folds: impl IntoIterator<Item = Result<(String, CollabDataBunch)>>,
    recipe: RecipeName,
    run: &Run,
    ranking_k: Option<usize>,
    y_range: Option<(f64, f64)>,
) -> Result<CvReport> {
    let start = Instant::now();
    let mut results = Vec::new();
    let mut relevant_from = ranking::RELEVANT_FROM;
    for fold in folds {
        let (name, data) = fold?;
        let chosen = recipe_for(recipe, &data, run, y_range)?;
        let n_unseen = data.n_unseen_valid();
        let learners = chosen.fit_all(&data, run)?;
        let preds = mean_predictions(&learners, &data.valid);
        relevant_from = ranking::relevant_from_for(&data.train.ratings);
        let ranking = match ranking_k {
            Some(k) => {
                let alpha = choose_alpha(&data, &chosen, run, k, relevant_from)?;
                Some(rank_fold(&data, &learners, alpha, k, run.seed, relevant_from))
            }
            None => None,
        };
        let targets = &data.valid.ratings;
        let m = mse(&preds, targets);
        results.push(FoldResult {
            name,
            recipe: chosen,
            mse: m,
            rmse: m.sqrt(),
            mae: mae(&preds, targets),
            n_test: targets.len(),
            n_unseen,
            ranking,
        });
    }
    let n = results.len() as f64;
    let mean_rmse = results.iter().map(|f| f.rmse).sum::<f64>() / n;
    let sd_rmse = (results.iter().map(|f| (f.rmse - mean_rmse).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
    let ranking = ranking_k.map(|k| {
        let each: Vec<&Ranking> = results.iter().filter_map(|f| f.ranking.as_ref()).collect();
        let mean =
            |f: fn(&Ranking) -> RankingMetrics| RankingMetrics::mean(&each.iter().map(|r| f(r)).collect::<Vec<_>>());
        Ranking {
            model: mean(|r| r.model),
            blend: mean(|r| r.blend),
            alpha: each.iter().map(|r| r.alpha).sum::<f64>() / each.len().max(1) as f64,
            mostpop: mean(|r| r.mostpop),
            random: mean(|r| r.random),
            k,
            n_users: each.iter().map(|r| r.n_users).sum(),
            relevant_from,
        }
    });
    Ok(CvReport {
        recipe: recipe.to_string(),
        folds: results,
        mean_rmse,
        sd_rmse,
        seconds: start.elapsed().as_secs_f64(),
        ranking,
    })
}

/// The metrics as a table: one row each for the model, the blend and the baselines.
impl std::fmt::Display for Ranking {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<9}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}",
            "", "precision", "recall", "ndcg", "map", "hit_rate", "coverage"
        )?;
        for (name, m) in
            [("model", self.model), ("blend", self.blend), ("mostpop", self.mostpop), ("random", self.random)]
        {
            writeln!(
                f,
                "{name:<9}{:>10.4}{:>10.4}{:>10.4}{:>10.4}{:>10.4}{:>10.4}",
                m.precision, m.recall, m.ndcg, m.map, m.hit_rate, m.coverage
            )?;
        }
        Ok(())
    }
}

impl std::fmt::Display for CvReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{:<6}{:>10}{:>10}{:>10}{:>9}{:>9}  recipe", "fold", "mse", "rmse", "mae", "n_test", "unseen")?;
        for r in &self.folds {
            writeln!(
                f,
                "{:<6}{:>10.4}{:>10.4}{:>10.4}{:>9}{:>9}  {}",
                r.name, r.mse, r.rmse, r.mae, r.n_test, r.n_unseen, r.recipe
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
        )?;
        if let Some(r) = &self.ranking {
            writeln!(
                f,
                "\n\nranking@{} (mean over folds, {} users ranked in all; blend = model + {:.3}·ln(1+count), weight chosen per fold on its base file)",
                r.k, r.n_users, r.alpha
            )?;
            write!(f, "{r}")?;
        }
        Ok(())
    }
}
