//! Ranking items for users: every item scored (dot models: one matrix product per chunk of
//! users), items a user already rated masked out, the top `n` kept, in bounded memory.
use tch::{Device, Kind, Tensor};

use crate::data::databunch::Encoded;
use crate::model::CollabModel;

/// Items each user rated, with the ratings: compressed rows by user row, items sorted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Seen {
    /// `indptr[u]..indptr[u + 1]` are user `u`'s entries.
    pub indptr: Vec<usize>,
    /// Item rows.
    pub items: Vec<u32>,
    /// The ratings, parallel to `items`.
    pub ratings: Vec<f32>,
}

impl Seen {
    /// The ratings of `data` grouped by user (`n_users` rows).
    pub fn from_encoded(data: &Encoded, n_users: usize) -> Seen {
        let mut order: Vec<usize> = (0..data.len()).collect();
        order.sort_unstable_by_key(|&r| (data.users[r], data.items[r]));
        let mut indptr = vec![0usize; n_users + 1];
        for &u in &data.users {
            indptr[u as usize + 1] += 1;
        }
        for u in 0..n_users {
            indptr[u + 1] += indptr[u];
        }
        Seen {
            indptr,
            items: order.iter().map(|&r| data.items[r]).collect(),
            ratings: order.iter().map(|&r| data.ratings[r]).collect(),
        }
    }

    /// Number of user rows.
    pub fn n_users(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }

    /// The items user row `u` rated.
    pub fn items(&self, u: usize) -> &[u32] {
        self.indptr.get(u + 1).map_or(&[], |&end| &self.items[self.indptr[u]..end])
    }

    /// The ratings user row `u` gave, parallel to [`Seen::items`].
    pub fn ratings(&self, u: usize) -> &[f32] {
        self.indptr.get(u + 1).map_or(&[], |&end| &self.ratings[self.indptr[u]..end])
    }
}

/// Most score elements held at once while ranking (64 MiB of f32).
const CHUNK_ELEMENTS: usize = 16 << 20;

/// Raw scores `[users, n_items]` of every item for `users`, in the model's own order of
/// preference (dot models: before the output sigmoid, which preserves the order).
pub fn score_all(model: &CollabModel, users: &[u32]) -> Tensor {
    tch::no_grad(|| match model {
        CollabModel::DotBias(m) => {
            let idx = Tensor::from_slice(&users.iter().map(|&u| u as i64).collect::<Vec<_>>()).to(m.u_weight.device());
            let u = m.u_weight.index_select(0, &idx);
            let bu = m.u_bias.index_select(0, &idx);
            u.matmul(&m.i_weight.tr()) + bu + m.i_bias.view([1, -1])
        }
        CollabModel::Nn(m) => {
            let n_items = m.i_embed.size()[0];
            let device = m.i_embed.device();
            let items = Tensor::arange(n_items, (Kind::Int64, device));
            let rows: Vec<Tensor> = users
                .iter()
                .map(|&u| {
                    let uu = Tensor::full([n_items], u as i64, (Kind::Int64, device));
                    m.forward_t(&uu, &items, false)
                })
                .collect();
            Tensor::stack(&rows, 0)
        }
    })
}

/// Predicted ratings `[users, n_items]` of every item for `users` (the output range applied).
pub fn predict_all(model: &CollabModel, users: &[u32]) -> Tensor {
    let raw = score_all(model, users);
    match model {
        CollabModel::DotBias(m) => match m.y_range {
            Some(range) => tch::no_grad(|| crate::model::init::sigmoid_range(&raw, range)),
            None => raw,
        },
        CollabModel::Nn(_) => raw,
    }
}

/// The top `n` item rows and raw scores for each of `users`, best first; `#na#` (row 0) and, when
/// `exclude` is given, the items each user rated there are never returned. Users are scored in
/// chunks, so memory stays bounded whatever the catalogue's size.
pub fn top_n(model: &CollabModel, users: &[u32], n: usize, exclude: Option<&Seen>) -> Vec<Vec<(u32, f32)>> {
    match model {
        CollabModel::DotBias(m) => top_n_dot(m, users, n, exclude),
        CollabModel::Nn(_) => {
            let n_items = model.weight_table(true).size()[0] as usize;
            top_n_by(|part| score_all(model, part), n_items, users, n, exclude)
        }
    }
}

/// A dot model's factors as plain memory: users row by row, items factor by factor (so that one
/// user's scores for every item are `nf` vectorised passes), and the item biases.
struct DotScorer {
    nf: usize,
    n_items: usize,
    users: Vec<f32>,
    items_t: Vec<f32>,
    item_bias: Vec<f32>,
}

fn floats(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view([-1])).unwrap_or_default()
}

/// [`top_n`] for EmbeddingDotBias: each user's raw scores `b_i + u·i` (the user's bias, the same
/// for every item, left out) computed into one buffer and the best `n` selected with a running
/// threshold, users split over two threads. Memory: one score buffer per thread.
fn top_n_dot(
    m: &crate::model::EmbeddingDotBias,
    users: &[u32],
    n: usize,
    exclude: Option<&Seen>,
) -> Vec<Vec<(u32, f32)>> {
    let nf = m.n_factors();
    let s = tch::no_grad(|| DotScorer {
        nf,
        n_items: m.i_weight.size()[0] as usize,
        users: floats(&m.u_weight),
        items_t: floats(&m.i_weight.tr()),
        item_bias: floats(&m.i_bias),
    });
    let half = users.len() / 2;
    let run = |part: &[u32]| -> Vec<Vec<(u32, f32)>> {
        let mut scores = vec![0.0f32; s.n_items];
        part.iter().map(|&u| s.top(u as usize, n, exclude, &mut scores)).collect()
    };
    let (mut a, b) = if users.len() > 64 {
        rayon::join(|| run(&users[..half]), || run(&users[half..]))
    } else {
        (run(users), Vec::new())
    };
    a.extend(b);
    a
}

impl DotScorer {
    /// The best `n` items for user row `u`, best first (ties: lower row first).
    fn top(&self, u: usize, n: usize, exclude: Option<&Seen>, scores: &mut [f32]) -> Vec<(u32, f32)> {
        scores_into(scores, &self.item_bias, &self.items_t, &self.users[u * self.nf..(u + 1) * self.nf]);
        scores[0] = f32::NEG_INFINITY;
        if let Some(seen) = exclude {
            for &i in seen.items(u) {
                scores[i as usize] = f32::NEG_INFINITY;
            }
        }
        let mut best: Vec<(u32, f32)> = Vec::with_capacity(n + 1);
        let mut threshold = f32::NEG_INFINITY;
        for (i, &x) in scores.iter().enumerate() {
            if x > threshold || (best.len() < n && x > f32::NEG_INFINITY) {
                let at = best.partition_point(|&(_, y)| y >= x);
                best.insert(at, (i as u32, x));
                best.truncate(n);
                if best.len() == n {
                    threshold = best[n - 1].1;
                }
            }
        }
        best
    }
}

crate::kernels::vectorized! {
    /// `scores = bias + Σ_f user[f] · items_t[f]` over every item.
    fn scores_into => scores_into_impl(scores: &mut [f32], bias: &[f32], items_t: &[f32], user: &[f32])
}

#[inline(always)]
fn scores_into_impl(scores: &mut [f32], bias: &[f32], items_t: &[f32], user: &[f32]) {
    let n = scores.len();
    scores.copy_from_slice(bias);
    for (f, &uf) in user.iter().enumerate() {
        for (s, &x) in scores.iter_mut().zip(&items_t[f * n..(f + 1) * n]) {
            *s += uf * x;
        }
    }
}

/// [`top_n`] for any scoring function giving `[users, n_items]` scores for a chunk of users.
pub fn top_n_by(
    score: impl Fn(&[u32]) -> Tensor,
    n_items: usize,
    users: &[u32],
    n: usize,
    exclude: Option<&Seen>,
) -> Vec<Vec<(u32, f32)>> {
    let chunk = (CHUNK_ELEMENTS / n_items.max(1)).max(1);
    let k = n.min(n_items.saturating_sub(1));
    let mut out = Vec::with_capacity(users.len());
    for part in users.chunks(chunk) {
        let scores = score(part).to_device(Device::Cpu).to_kind(Kind::Float);
        let mut masked: Vec<i64> = (0..part.len()).map(|r| (r * n_items) as i64).collect();
        if let Some(seen) = exclude {
            for (r, &u) in part.iter().enumerate() {
                masked.extend(seen.items(u as usize).iter().map(|&i| (r * n_items + i as usize) as i64));
            }
        }
        let mut flat = scores.view([-1]);
        let _ = flat.index_fill_(0, &Tensor::from_slice(&masked), f64::NEG_INFINITY);
        let (values, indices) = scores.topk(k as i64, 1, true, true);
        let values = Vec::<f32>::try_from(values.contiguous().view([-1])).unwrap_or_default();
        let indices = Vec::<i64>::try_from(indices.contiguous().view([-1])).unwrap_or_default();
        for r in 0..part.len() {
            let row: Vec<(u32, f32)> = (r * k..(r + 1) * k)
                .filter(|&j| values[j] > f32::NEG_INFINITY)
                .map(|j| (indices[j] as u32, values[j]))
                .collect();
            out.push(row);
        }
    }
    out
}
