//! Seeded train/validation splits of row indices.
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// Which random permutation chooses the validation rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SplitMethod {
    /// The default: exactly fastai v1's split, numpy's legacy MT19937 `permutation` after
    /// `np.random.seed(seed)`. Applied to the lesson's merged table it selects the same rows as
    /// the lesson, so results line up with the Python notebook.
    #[default]
    #[value(name = "fastai-v1")]
    FastaiV1,
    /// A ChaCha8 permutation seeded with `seed`, for seeds beyond 32 bits.
    Seeded,
}

impl std::fmt::Display for SplitMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SplitMethod::FastaiV1 => "fastai-v1",
            SplitMethod::Seeded => "seeded",
        })
    }
}

/// Row indices of a train/validation split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Training rows, ascending (as fastai v1 keeps them).
    pub train: Vec<usize>,
    /// Validation rows, in permutation order.
    pub valid: Vec<usize>,
}

/// Splits `0..n`: the first `int(valid_pct · n)` entries of a seeded permutation are validation
/// rows, the rest (sorted) are training rows — fastai v1's `split_by_rand_pct`.
pub fn random_split(n: usize, valid_pct: f64, seed: u64, method: SplitMethod) -> Result<Split> {
    if !(0.0..1.0).contains(&valid_pct) {
        return Err(Error::InvalidConfig(format!("valid_pct must be in [0, 1), got {valid_pct}")));
    }
    let perm = permutation(n, seed, method)?;
    let cut = (valid_pct * n as f64) as usize;
    Ok(split_at(&perm, 0..cut))
}

/// `k` splits of `0..n` for cross-validation: the seeded permutation of [`random_split`] cut into
/// `k` consecutive parts (sizes differing by one at most); part `f` validates fold `f` and the
/// rest (sorted) trains it, so every row is validated exactly once.
pub fn k_fold(n: usize, k: usize, seed: u64, method: SplitMethod) -> Result<Vec<Split>> {
    if k < 2 || k > n {
        return Err(Error::InvalidConfig(format!("k-fold needs 2 ≤ k ≤ the number of rows ({n}), got k = {k}")));
    }
    let perm = permutation(n, seed, method)?;
    Ok((0..k).map(|f| split_at(&perm, f * n / k..(f + 1) * n / k)).collect())
}

/// The split whose validation rows are `perm[valid]`.
fn split_at(perm: &[usize], valid: std::ops::Range<usize>) -> Split {
    let mut train: Vec<usize> = perm[..valid.start].iter().chain(&perm[valid.end..]).copied().collect();
    train.sort_unstable();
    Split { train, valid: perm[valid].to_vec() }
}

/// The seeded permutation of `0..n` that `method` draws.
fn permutation(n: usize, seed: u64, method: SplitMethod) -> Result<Vec<usize>> {
    Ok(match method {
        SplitMethod::Seeded => {
            let mut p: Vec<usize> = (0..n).collect();
            p.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
            p
        }
        SplitMethod::FastaiV1 => {
            let seed = u32::try_from(seed)
                .map_err(|_| Error::InvalidConfig(format!("numpy seeds must fit in 32 bits, got {seed}")))?;
            numpy_legacy_permutation(n, seed)
        }
    })
}

/// `np.random.seed(seed); np.random.permutation(n)` with numpy's legacy `RandomState`:
/// a Fisher–Yates shuffle from the end, each index drawn by masked rejection on MT19937 outputs.
pub fn numpy_legacy_permutation(n: usize, seed: u32) -> Vec<usize> {
    let mut mt = rand_mt::Mt::new(seed);
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let max = i as u64;
        assert!(max <= u32::MAX as u64, "permutations beyond 2^32 rows are not supported");
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16] {
            mask |= mask >> shift;
        }
        let j = loop {
            let v = mt.next_u32() as u64 & mask;
            if v <= max {
                break v as usize;
            }
        };
        p.swap(i, j);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_permutation_matches_numpy() {
        // np.random.seed(42); np.random.permutation(100000)[:8]
        let p = numpy_legacy_permutation(100_000, 42);
        assert_eq!(&p[..8], &[75721, 80184, 19864, 76699, 92991, 76434, 84004, 80917]);
        // np.random.seed(42); first raw outputs of MT19937 init_genrand(42)
        let mut mt = rand_mt::Mt::new(42);
        assert_eq!([mt.next_u32(), mt.next_u32(), mt.next_u32()], [1608637542, 3421126067, 4083286876]);
    }

    /// Every row is validated by exactly one fold and trains the others; the parts differ in size
    /// by one at most; the same seed gives the same folds; k outside 2..=n is refused.
    #[test]
    fn k_folds_validate_every_row_once() {
        for method in [SplitMethod::FastaiV1, SplitMethod::Seeded] {
            let folds = k_fold(103, 5, 7, method).unwrap();
            let mut validated = vec![0; 103];
            for f in &folds {
                assert_eq!(f.train.len() + f.valid.len(), 103);
                assert!(f.valid.len() == 20 || f.valid.len() == 21, "{}", f.valid.len());
                assert!(
                    f.train.windows(2).all(|w| w[0] < w[1])
                        && f.valid.iter().all(|v| f.train.binary_search(v).is_err())
                );
                f.valid.iter().for_each(|&r| validated[r] += 1);
            }
            assert!(validated.iter().all(|&c| c == 1));
            assert_eq!(folds, k_fold(103, 5, 7, method).unwrap());
            assert_ne!(folds, k_fold(103, 5, 8, method).unwrap());
        }
        assert!(k_fold(10, 1, 0, SplitMethod::Seeded).is_err() && k_fold(3, 4, 0, SplitMethod::Seeded).is_err());
        // random_split is the first part of the same permutation cut at valid_pct.
        let split = random_split(100, 0.2, 7, SplitMethod::FastaiV1).unwrap();
        assert_eq!(split, k_fold(100, 5, 7, SplitMethod::FastaiV1).unwrap()[0]);
    }
}
