//! Synthetic ratings with a planted low-rank signal, so the best achievable MSE is known: for
//! tests (small) and for scale benchmarks shaped like MovieLens 25M (large).
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::databunch::{CollabDataBunch, Encoded};
use super::split::{random_split, SplitMethod};
use super::vocab::Vocab;
use crate::error::Result;

/// Shape and signal of a synthetic dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Number of users.
    pub n_users: usize,
    /// Number of items.
    pub n_items: usize,
    /// Number of ratings (user–item pairs may repeat).
    pub n_ratings: usize,
    /// Rank of the planted factors.
    pub rank: usize,
    /// Standard deviation of each planted factor entry.
    pub factor_sd: f64,
    /// Standard deviation of the noise; the noise floor (best possible MSE) is its square.
    pub noise_sd: f64,
    /// Zipf exponent of item popularity (0 = uniform); users use half of it.
    pub popularity: f64,
    /// Seed of everything random.
    pub seed: u64,
}

impl SyntheticConfig {
    /// A dataset shaped like MovieLens 25M scaled to `n_ratings` (162,541 users and 59,047 items at
    /// 25M ratings, power-law popularity, rank 5, noise sd 0.5).
    pub fn movielens_25m(n_ratings: usize) -> Self {
        let scale = n_ratings as f64 / 25_000_095.0;
        SyntheticConfig {
            n_users: ((162_541.0 * scale) as usize).max(10),
            n_items: ((59_047.0 * scale) as usize).max(10),
            n_ratings,
            rank: 5,
            factor_sd: 0.5,
            noise_sd: 0.5,
            popularity: 1.0,
            seed: 42,
        }
    }

    /// The best achievable mean squared error: the noise variance.
    pub fn noise_floor(&self) -> f64 {
        self.noise_sd * self.noise_sd
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    rng.sample(StandardNormal)
}

fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let mut acc = 0.0;
    let mut cdf: Vec<f64> = (1..=n)
        .map(|k| {
            acc += (k as f64).powf(-s);
            acc
        })
        .collect();
    cdf.iter_mut().for_each(|c| *c /= acc);
    cdf
}

/// Generates `valid_pct` of validation and the rest training, already encoded: user `u` (0-based)
/// is row `u + 1`, row 0 stays `#na#`. Ratings are `3.5 + b_u + b_i + U_u·V_i + noise`, unclipped,
/// so the noise floor is exact.
pub fn generate(cfg: &SyntheticConfig, valid_pct: f64, bs: usize) -> Result<CollabDataBunch> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let draw =
        |n: usize, sd: f64, rng: &mut ChaCha8Rng| -> Vec<f32> { (0..n).map(|_| (normal(rng) * sd) as f32).collect() };
    let (u_f, i_f) =
        (draw(cfg.n_users * cfg.rank, cfg.factor_sd, &mut rng), draw(cfg.n_items * cfg.rank, cfg.factor_sd, &mut rng));
    let (u_b, i_b) = (draw(cfg.n_users, 0.3, &mut rng), draw(cfg.n_items, 0.3, &mut rng));
    let (u_cdf, i_cdf) = (zipf_cdf(cfg.n_users, cfg.popularity / 2.0), zipf_cdf(cfg.n_items, cfg.popularity));
    // Inverse-CDF sampling: one uniform draw, then the first index whose CDF reaches it.
    let sample = |cdf: &[f64], rng: &mut ChaCha8Rng| {
        let x = rng.gen::<f64>();
        cdf.partition_point(|&c| c < x).min(cdf.len() - 1)
    };
    let mut all = Encoded {
        users: Vec::with_capacity(cfg.n_ratings),
        items: Vec::with_capacity(cfg.n_ratings),
        ratings: Vec::with_capacity(cfg.n_ratings),
    };
    let r = cfg.rank;
    for _ in 0..cfg.n_ratings {
        let (u, i) = (sample(&u_cdf, &mut rng), sample(&i_cdf, &mut rng));
        let dot: f32 = u_f[u * r..(u + 1) * r].iter().zip(&i_f[i * r..(i + 1) * r]).map(|(a, b)| a * b).sum();
        all.users.push(u as u32 + 1);
        all.items.push(i as u32 + 1);
        all.ratings.push(3.5 + u_b[u] + i_b[i] + dot + (normal(&mut rng) * cfg.noise_sd) as f32);
    }
    let split = random_split(cfg.n_ratings, valid_pct, cfg.seed, SplitMethod::Seeded)?;
    let pick = |rows: &[usize]| Encoded {
        users: rows.iter().map(|&k| all.users[k]).collect(),
        items: rows.iter().map(|&k| all.items[k]).collect(),
        ratings: rows.iter().map(|&k| all.ratings[k]).collect(),
    };
    let (train, valid) = (pick(&split.train), pick(&split.valid));
    let vocab = |n: usize| {
        Vocab::from_names(std::iter::once("#na#".to_string()).chain((1..=n).map(|k| k.to_string())).collect(), true)
    };
    let mut data = CollabDataBunch::from_encoded(train, valid, vocab(cfg.n_users), vocab(cfg.n_items), bs, cfg.seed);
    data.provenance.split = "synthetic".into();
    data.provenance.valid_pct = valid_pct;
    Ok(data)
}
