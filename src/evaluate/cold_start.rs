//! Cold start on the canonical base files: how well a user the model has never seen is predicted
//! from their first k ratings, folded in, against predicting them through `#na#` (what a model
//! without fold-in does) and against retraining with those k ratings included.
//!
//! Protocol, per base file (test files are never read): 10% of its users are held out entirely
//! (seeded), the recipe is trained on the others' ratings; each held-out user with more than k
//! ratings gets k of them chosen at random (seeded), and the RMSE is measured on their other
//! ratings, pooled over users and folds.
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::ratings_config;
use crate::data::databunch::{CollabDataBunch, Encoded};
use crate::data::movielens::{read_ratings, USER};
use crate::data::table::Column;
use crate::error::{Error, Result};
use crate::infer::{fold_in_rows, predict_folded, FoldIn};
use crate::recipe::{Recipe, Run};

/// The numbers of known ratings the curve is measured at.
pub const KS: [usize; 5] = [1, 3, 5, 10, 20];

/// One point of the cold-start curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ColdStartPoint {
    /// Ratings known of each held-out user.
    pub k: usize,
    /// RMSE on their other ratings after folding the k in.
    pub fold_in_rmse: f64,
    /// RMSE predicting them as an unknown user (`#na#`).
    pub unknown_rmse: f64,
    /// RMSE after retraining the model with the k ratings of every held-out user included.
    pub retrain_rmse: f64,
    /// Held-out users with more than k ratings (summed over folds).
    pub n_users: usize,
}

/// Squared-error sums for one k.
#[derive(Default, Clone, Copy)]
struct Sums {
    fold_in: f64,
    unknown: f64,
    retrain: f64,
    n: usize,
    users: usize,
}

/// The cold-start curve of `recipe` over the base files of `folds` in `dir`; fold-in uses `fold_in`
/// (its `wd`, `beta2` and `eps` are replaced by the recipe's).
pub fn cold_start(
    dir: &Path,
    folds: &[&str],
    recipe: &Recipe,
    run: &Run,
    fold_in: &FoldIn,
) -> Result<Vec<ColdStartPoint>> {
    let mut sums = [Sums::default(); KS.len()];
    let l = &recipe.learner;
    let cfg = FoldIn { wd: l.wd, beta2: l.beta2, eps: l.eps, ..*fold_in };
    for (f, name) in folds.iter().enumerate() {
        let base = read_ratings(&dir.join(format!("{name}.base")))?;
        let Column::Int(user_ids) = base.column(USER)? else {
            return Err(Error::InvalidConfig("user ids must be whole numbers".into()));
        };
        let mut users: Vec<i64> = user_ids.clone();
        users.sort_unstable();
        users.dedup();
        let mut rng = ChaCha8Rng::seed_from_u64(run.seed.wrapping_add(f as u64));
        users.shuffle(&mut rng);
        let held: std::collections::HashSet<i64> = users[..users.len() / 10].iter().copied().collect();
        let (mut train_rows, mut held_rows) = (Vec::new(), Vec::new());
        for (r, u) in user_ids.iter().enumerate() {
            if held.contains(u) { &mut held_rows } else { &mut train_rows }.push(r);
        }
        // Held-out ratings, grouped by user, in file order.
        let mut by_user: std::collections::BTreeMap<i64, Vec<usize>> = Default::default();
        for &r in &held_rows {
            by_user.entry(user_ids[r]).or_default().push(r);
        }
        let data = CollabDataBunch::from_tables(
            &base.take(&train_rows),
            &base.take(&held_rows),
            &ratings_config(recipe.bs, run.seed),
        )?;
        let learn = recipe.fit_all(&data, run)?.remove(0);
        // Row k of `data.valid` is held_rows[k]: the encoded item and rating of each held-out rating.
        let position: std::collections::HashMap<usize, usize> =
            held_rows.iter().enumerate().map(|(k, &r)| (r, k)).collect();
        for (j, &k) in KS.iter().enumerate() {
            let mut known_rows = Vec::new();
            let mut rest: Vec<Vec<usize>> = Vec::new();
            for (&u, rows) in &by_user {
                if rows.len() <= k {
                    continue;
                }
                let mut shuffled = rows.clone();
                shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(run.seed ^ (u as u64) << 8 ^ k as u64));
                let (known, other) = shuffled.split_at(k);
                let pos = |rows: &[usize]| rows.iter().map(|r| position[r]).collect::<Vec<_>>();
                let (known_pos, other_pos) = (pos(known), pos(other));
                let items: Vec<u32> = known_pos.iter().map(|&p| data.valid.items[p]).filter(|&i| i != 0).collect();
                let ratings: Vec<f32> =
                    known_pos.iter().filter(|&&p| data.valid.items[p] != 0).map(|&p| data.valid.ratings[p]).collect();
                let folded = fold_in_rows(&learn.model, &items, &ratings, None, &cfg);
                let other_items: Vec<u32> = other_pos.iter().map(|&p| data.valid.items[p]).collect();
                let targets: Vec<f32> = other_pos.iter().map(|&p| data.valid.ratings[p]).collect();
                let unknown = learn.predict_encoded(&Encoded {
                    users: vec![0; other_items.len()],
                    items: other_items.clone(),
                    ratings: targets.clone(),
                });
                let s = &mut sums[j];
                for ((p, q), y) in
                    predict_folded(&learn.model, &folded, &other_items).iter().zip(&unknown).zip(&targets)
                {
                    s.fold_in += (*p as f64 - *y as f64).powi(2);
                    s.unknown += (*q as f64 - *y as f64).powi(2);
                }
                s.n += targets.len();
                s.users += 1;
                known_rows.extend_from_slice(known);
                rest.push(other.to_vec());
            }
            // Retraining with every held-out user's k ratings included, scored on the same rows.
            let rest: Vec<usize> = rest.concat();
            let mut with_known = train_rows.clone();
            with_known.extend_from_slice(&known_rows);
            let retrain = CollabDataBunch::from_tables(
                &base.take(&with_known),
                &base.take(&rest),
                &ratings_config(recipe.bs, run.seed),
            )?;
            let preds = crate::recipe::mean_predictions(&recipe.fit_all(&retrain, run)?, &retrain.valid);
            sums[j].retrain +=
                preds.iter().zip(&retrain.valid.ratings).map(|(p, y)| (*p as f64 - *y as f64).powi(2)).sum::<f64>();
        }
    }
    Ok(KS
        .iter()
        .zip(sums)
        .map(|(&k, s)| {
            let n = s.n.max(1) as f64;
            ColdStartPoint {
                k,
                fold_in_rmse: (s.fold_in / n).sqrt(),
                unknown_rmse: (s.unknown / n).sqrt(),
                retrain_rmse: (s.retrain / n).sqrt(),
                n_users: s.users,
            }
        })
        .collect())
}

/// The curve as a table.
pub fn table(points: &[ColdStartPoint]) -> String {
    let mut out =
        format!("{:>4}{:>14}{:>14}{:>14}{:>9}\n", "k", "fold_in_rmse", "unknown_rmse", "retrain_rmse", "users");
    for p in points {
        out += &format!(
            "{:>4}{:>14.4}{:>14.4}{:>14.4}{:>9}\n",
            p.k, p.fold_in_rmse, p.unknown_rmse, p.retrain_rmse, p.n_users
        );
    }
    out
}
