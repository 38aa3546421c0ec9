//! Top-k ranking quality on the canonical folds, with MostPop and Random baselines computed the
//! same way in the same run.
//!
//! Protocol: relevant = a user's test ratings ≥ a threshold (4 on MovieLens' 1–5 stars); candidates = every item of the base file's
//! vocabulary the user did not rate in the base file; users = those with at least one relevant test
//! item. A relevant item the base file never saw cannot be recommended but still counts in the
//! user's number of relevant items (recall's and NDCG's denominators).
use std::collections::HashSet;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::data::databunch::CollabDataBunch;
use crate::infer::Seen;

/// A rating at least this high is relevant on MovieLens' scales.
pub const RELEVANT_FROM: f32 = 4.0;

/// The relevance threshold for training ratings `ratings` on any scale: three quarters of the way
/// up their range ([`RELEVANT_FROM`], 4, on 1–5 stars).
pub fn relevant_from_for(ratings: &[f32]) -> f32 {
    let (lo, hi) = crate::recipe::span(ratings);
    (lo + 0.75 * (hi - lo)) as f32
}

/// Precision, recall, NDCG, MAP and hit rate at `k`, averaged over users, and catalogue coverage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RankingMetrics {
    /// Share of the `k` recommended items that are relevant.
    pub precision: f64,
    /// Share of the user's relevant items among the `k` recommended.
    pub recall: f64,
    /// Discounted cumulative gain of the list over the best possible one.
    pub ndcg: f64,
    /// Average precision at the ranks of the hits, over `min(relevant, k)`.
    pub map: f64,
    /// Share of users with at least one hit.
    pub hit_rate: f64,
    /// Share of the catalogue that appears in at least one list.
    pub coverage: f64,
}

impl RankingMetrics {
    /// The element-wise mean of several folds' metrics.
    pub fn mean(all: &[RankingMetrics]) -> RankingMetrics {
        let n = all.len().max(1) as f64;
        let sum = |f: fn(&RankingMetrics) -> f64| all.iter().map(f).sum::<f64>() / n;
        RankingMetrics {
            precision: sum(|m| m.precision),
            recall: sum(|m| m.recall),
            ndcg: sum(|m| m.ndcg),
            map: sum(|m| m.map),
            hit_rate: sum(|m| m.hit_rate),
            coverage: sum(|m| m.coverage),
        }
    }
}

/// The users to rank for and their relevant item rows (rated `from` or higher; 0 for items the base
/// file never saw).
pub fn relevant(data: &CollabDataBunch, from: f32) -> Vec<(u32, Vec<u32>)> {
    let mut by_user: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
    for k in 0..data.valid.len() {
        let u = data.valid.users[k];
        if u != 0 && data.valid.ratings[k] >= from {
            by_user.entry(u).or_default().push(data.valid.items[k]);
        }
    }
    by_user.into_iter().collect()
}

/// Metrics of the lists `tops` (item rows, best first) against `relevant` (per user), over a
/// catalogue of `n_items` item rows (`#na#` excluded).
pub fn metrics(tops: &[Vec<u32>], relevant: &[(u32, Vec<u32>)], n_items: usize, k: usize) -> RankingMetrics {
    let (mut p, mut r, mut ndcg, mut map, mut hits_any) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut shown = HashSet::new();
    for (top, (_, rel)) in tops.iter().zip(relevant) {
        let rel: HashSet<u32> = rel.iter().copied().collect();
        let (mut hits, mut dcg, mut ap) = (0usize, 0.0, 0.0);
        for (rank, item) in top.iter().take(k).enumerate() {
            shown.insert(*item);
            if *item != 0 && rel.contains(item) {
                hits += 1;
                dcg += 1.0 / (rank as f64 + 2.0).log2();
                ap += hits as f64 / (rank as f64 + 1.0);
            }
        }
        let n_rel = rel.len().max(1);
        let ideal: f64 = (0..n_rel.min(k)).map(|j| 1.0 / (j as f64 + 2.0).log2()).sum();
        p += hits as f64 / k as f64;
        r += hits as f64 / n_rel as f64;
        ndcg += dcg / ideal;
        map += ap / n_rel.min(k) as f64;
        hits_any += (hits > 0) as u8 as f64;
    }
    let n = tops.len().max(1) as f64;
    RankingMetrics {
        precision: p / n,
        recall: r / n,
        ndcg: ndcg / n,
        map: map / n,
        hit_rate: hits_any / n,
        coverage: shown.len() as f64 / (n_items - 1).max(1) as f64,
    }
}

/// MostPop: the `k` items with the most training ratings that each user has not rated.
pub fn most_popular(seen: &Seen, count: &[i64], users: &[u32], k: usize) -> Vec<Vec<u32>> {
    let mut order: Vec<u32> = (1..count.len() as u32).collect();
    order.sort_by(|&a, &b| count[b as usize].cmp(&count[a as usize]).then(a.cmp(&b)));
    users
        .iter()
        .map(|&u| {
            let rated = seen.items(u as usize);
            order.iter().copied().filter(|i| rated.binary_search(i).is_err()).take(k).collect()
        })
        .collect()
}

/// Random: `k` items drawn without replacement from each user's candidates (seeded).
pub fn random(seen: &Seen, n_items: usize, users: &[u32], k: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    users
        .iter()
        .map(|&u| {
            let rated = seen.items(u as usize);
            let mut candidates: Vec<u32> = (1..n_items as u32).filter(|i| rated.binary_search(i).is_err()).collect();
            candidates.shuffle(&mut rng);
            candidates.truncate(k);
            candidates
        })
        .collect()
}
