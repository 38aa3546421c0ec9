//! `EmbeddingDotBias`: the lesson's model, a dot product of user and item factors plus two biases.
use std::fmt;

use tch::{nn, Device, Kind, Tensor};

use super::init::{embedding, sigmoid_range, InitRng};
use crate::kernels::{prefetch, Level, AHEAD};

/// Shape of an [`EmbeddingDotBias`].
#[derive(Debug, Clone, PartialEq)]
pub struct DotBiasConfig {
    /// Width of the user and item factor tables.
    pub n_factors: usize,
    /// Predictions are squashed into this range by a sigmoid; `None` leaves them raw.
    pub y_range: Option<(f64, f64)>,
}

impl Default for DotBiasConfig {
    fn default() -> Self {
        DotBiasConfig { n_factors: 40, y_range: Some((0.0, 5.5)) }
    }
}

/// `u_weight[u]·i_weight[i] + u_bias[u] + i_bias[i]`, optionally through `sigmoid_range`.
#[derive(Debug)]
pub struct EmbeddingDotBias {
    /// User factors `[n_users, n_factors]`.
    pub u_weight: Tensor,
    /// Item factors `[n_items, n_factors]`.
    pub i_weight: Tensor,
    /// User biases `[n_users, 1]`.
    pub u_bias: Tensor,
    /// Item biases `[n_items, 1]`.
    pub i_bias: Tensor,
    /// The output range, if any.
    pub y_range: Option<(f64, f64)>,
}

impl EmbeddingDotBias {
    /// Creates the four tables under `path` in fastai's order, initialised from `rng`.
    pub fn new(path: &nn::Path, n_users: usize, n_items: usize, cfg: &DotBiasConfig, rng: &mut InitRng) -> Self {
        EmbeddingDotBias {
            u_weight: embedding(path, "u_weight", n_users, cfg.n_factors, rng),
            i_weight: embedding(path, "i_weight", n_items, cfg.n_factors, rng),
            u_bias: embedding(path, "u_bias", n_users, 1, rng),
            i_bias: embedding(path, "i_bias", n_items, 1, rng),
            y_range: cfg.y_range,
        }
    }

    /// Predicted ratings for (`users`, `items`), both int64 `[bs]`; output `[bs]`.
    pub fn forward(&self, users: &Tensor, items: &Tensor) -> Tensor {
        let lookup = |w: &Tensor, idx: &Tensor| Tensor::embedding(w, idx, -1, false, false);
        let dot = (lookup(&self.u_weight, users) * lookup(&self.i_weight, items)).sum_dim_intlist(1, false, None);
        let res = dot + lookup(&self.u_bias, users).squeeze_dim(1) + lookup(&self.i_bias, items).squeeze_dim(1);
        match self.y_range {
            Some(range) => sigmoid_range(&res, range),
            None => res,
        }
    }

    /// Predictions for the row pairs `(users[r], items[r])` in Rust loops, with the arithmetic of
    /// the CPU training engines' forward pass (the same bits); `None` unless the weights are f32 on
    /// the CPU. Several times faster than libtorch's ops, which gather each small row separately.
    pub fn predict_rows_cpu(&self, users: &[u32], items: &[u32]) -> Option<Vec<f32>> {
        let tables = [&self.u_weight, &self.u_bias, &self.i_weight, &self.i_bias];
        if !tables.iter().all(|t| t.device() == Device::Cpu && t.kind() == Kind::Float) {
            return None;
        }
        // A few pairs (one prediction served at a time) copy out their rows; many copy the whole
        // tables, which costs less than a copy per pair.
        let few = users.len() * 4 < (self.u_weight.size()[0] + self.i_weight.size()[0]) as usize;
        let index =
            |rows: &[u32]| few.then(|| Tensor::from_slice(&rows.iter().map(|&r| i64::from(r)).collect::<Vec<_>>()));
        let (u_index, i_index) = (index(users), index(items));
        let host = |t: &Tensor, index: &Option<Tensor>| {
            let t = index.as_ref().map_or_else(|| t.shallow_clone(), |index| t.index_select(0, index));
            Vec::<f32>::try_from(t.contiguous().view([-1])).expect("f32 on the CPU")
        };
        let w = HostWeights {
            u: host(&self.u_weight, &u_index),
            i: host(&self.i_weight, &i_index),
            u_bias: host(&self.u_bias, &u_index),
            i_bias: host(&self.i_bias, &i_index),
            nf: self.n_factors(),
            y_range: self.y_range.map(|(lo, hi)| (lo as f32, hi as f32)),
        };
        let mut out = vec![0.0; users.len()];
        if few {
            let gathered: Vec<u32> = (0..users.len() as u32).collect();
            predict_into(&mut out, &w, &gathered, &gathered);
        } else {
            predict_into(&mut out, &w, users, items);
        }
        Some(out)
    }

    /// Number of factors.
    pub fn n_factors(&self) -> usize {
        self.u_weight.size()[1] as usize
    }
}

/// The four tables copied out of their tensors.
pub(crate) struct HostWeights {
    u: Vec<f32>,
    i: Vec<f32>,
    u_bias: Vec<f32>,
    i_bias: Vec<f32>,
    nf: usize,
    y_range: Option<(f32, f32)>,
}

crate::kernels::vectorized! {
    /// Each pair's dot product of factors plus both biases, through `sigmoid_range` when there is
    /// a `y_range`.
    fn predict_into => predict_into_impl(out: &mut [f32], w: &HostWeights, users: &[u32], items: &[u32])
}

#[inline(always)]
fn predict_into_impl(out: &mut [f32], w: &HostWeights, users: &[u32], items: &[u32]) {
    let nf = w.nf;
    for (k, ((out, &u), &i)) in out.iter_mut().zip(users).zip(items).enumerate() {
        if let (Some(&u), Some(&i)) = (users.get(k + AHEAD), items.get(k + AHEAD)) {
            let (u, i) = (u as usize, i as usize);
            prefetch(&w.u, u * nf, nf, Level::L1);
            prefetch(&w.i, i * nf, nf, Level::L1);
            prefetch(&w.u_bias, u, 1, Level::L1);
            prefetch(&w.i_bias, i, 1, Level::L1);
        }
        let (u, i) = (u as usize, i as usize);
        let (uf, itf) = (&w.u[u * nf..(u + 1) * nf], &w.i[i * nf..(i + 1) * nf]);
        *out = crate::kernels::dot_bias_score(uf, itf, w.u_bias[u], w.i_bias[i], w.y_range);
    }
}

impl fmt::Display for EmbeddingDotBias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "EmbeddingDotBias(")?;
        for (name, t) in [
            ("u_weight", &self.u_weight),
            ("i_weight", &self.i_weight),
            ("u_bias", &self.u_bias),
            ("i_bias", &self.i_bias),
        ] {
            let s = t.size();
            writeln!(f, "  ({name}): Embedding({}, {})", s[0], s[1])?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_predictions_are_the_same_bits_for_few_and_many_pairs_and_match_libtorch() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = DotBiasConfig { n_factors: 11, y_range: Some((0.0, 5.5)) };
        // Drawn under the generator's lock, which `rng` holds while it lives.
        let mut rng = InitRng::new(3);
        let m = EmbeddingDotBias::new(&vs.root(), 50, 30, &cfg, &mut rng);
        let _ = tch::no_grad(|| m.u_weight.shallow_clone().normal_(0.0, 0.5));
        drop(rng);
        let users: Vec<u32> = (0..400).map(|k| k * 7 % 50).collect();
        let items: Vec<u32> = (0..400).map(|k| k * 11 % 30).collect();
        let many = m.predict_rows_cpu(&users, &items).unwrap();
        let few = m.predict_rows_cpu(&users[5..9], &items[5..9]).unwrap();
        assert_eq!(few, many[5..9], "a served prediction must equal the batch one bit for bit");
        let idx = |r: &[u32]| Tensor::from_slice(&r.iter().map(|&x| i64::from(x)).collect::<Vec<_>>());
        let torch = Vec::<f32>::try_from(tch::no_grad(|| m.forward(&idx(&users), &idx(&items)))).unwrap();
        let worst = many.iter().zip(&torch).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        eprintln!("largest difference from libtorch: {worst:e}");
        assert!(worst <= 1e-5, "{worst} vs libtorch");
    }
}
