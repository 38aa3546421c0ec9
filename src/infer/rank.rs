//! Ranking items for users: every item scored (dot models: in Rust loops, a tile of items at a
//! time for a block of users; EmbeddingNN: by libtorch, a chunk of users at a time), items a user
//! already rated masked out, the top `n` kept, in bounded memory.
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
    /// The ratings of `data` grouped by user (`n_users` rows): counted by user, placed, then each
    /// user's sorted by item (a repeated item keeps the data's order).
    pub fn from_encoded(data: &Encoded, n_users: usize) -> Seen {
        let mut indptr = vec![0usize; n_users + 1];
        for &u in &data.users {
            indptr[u as usize + 1] += 1;
        }
        for u in 0..n_users {
            indptr[u + 1] += indptr[u];
        }
        let mut next = indptr[..n_users].to_vec();
        let mut pairs = vec![(0u32, 0.0f32); data.len()];
        for ((&u, &i), &r) in data.users.iter().zip(&data.items).zip(&data.ratings) {
            pairs[next[u as usize]] = (i, r);
            next[u as usize] += 1;
        }
        for w in indptr.windows(2) {
            pairs[w[0]..w[1]].sort_by_key(|p| p.0);
        }
        let (items, ratings) = pairs.into_iter().unzip();
        Seen { indptr, items, ratings }
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
        CollabModel::DotBias(m) => top_n_dot(m, users, n, exclude, None),
        CollabModel::Nn(_) => {
            let n_items = model.weight_table(true).size()[0] as usize;
            top_n_by(|part| score_all(model, part), n_items, users, n, exclude)
        }
    }
}

/// [`top_n`] with items ranked by predicted rating plus `bonus` (one per item row, for instance
/// `α · ln(1 + training count)`, see `cv --ranking`); the scores returned are those ranked by.
///
/// # Panics
/// If `bonus` does not hold one value per item row.
pub fn top_n_with_bonus(
    model: &CollabModel,
    users: &[u32],
    n: usize,
    exclude: Option<&Seen>,
    bonus: &[f32],
) -> Vec<Vec<(u32, f32)>> {
    let n_items = model.weight_table(true).size()[0] as usize;
    assert_eq!(bonus.len(), n_items, "one bonus per item row");
    match model {
        CollabModel::DotBias(m) => {
            let user_bias = tch::no_grad(|| floats(&m.u_bias));
            let y_range = m.y_range.map(|(lo, hi)| (lo as f32, hi as f32));
            top_n_dot(m, users, n, exclude, Some(&Bonus::new(user_bias, y_range, bonus)))
        }
        CollabModel::Nn(_) => {
            let per_item = Tensor::from_slice(bonus).view([1, -1]);
            top_n_by(|part| predict_all(model, part) + &per_item, n_items, users, n, exclude)
        }
    }
}

/// What a dot model's items are ranked by when a per-item bonus is added: the prediction (user's
/// bias added to the raw score, the output range applied) plus the bonus; with each panel's largest
/// bonus, so that a panel whose best raw score cannot beat a user's threshold is skipped.
struct Bonus<'a> {
    user_bias: Vec<f32>,
    y_range: Option<(f32, f32)>,
    per_item: &'a [f32],
    panel_max: Vec<f32>,
}

impl<'a> Bonus<'a> {
    fn new(user_bias: Vec<f32>, y_range: Option<(f32, f32)>, per_item: &'a [f32]) -> Self {
        let panel_max = per_item.chunks(PANEL).map(|p| p.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x))).collect();
        Bonus { user_bias, y_range, per_item, panel_max }
    }

    /// The prediction for user bias `bu` and raw score `raw` (non-decreasing in `raw`).
    #[inline]
    fn predict(&self, bu: f32, raw: f32) -> f32 {
        crate::kernels::sigmoid_range(bu + raw, self.y_range)
    }

    /// Replaces the raw scores of items `first..` of user `u` by what they are ranked by, in the
    /// panels where some item could beat `threshold`; returns those panels.
    fn rank_scores(&self, u: usize, scores: &mut [f32], first: usize, threshold: f32) -> u64 {
        let bu = self.user_bias[u];
        let mut hits = 0u64;
        for (p, panel) in scores.chunks_mut(PANEL).enumerate() {
            let from = first + p * PANEL;
            let best_raw = panel.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            // The prediction is non-decreasing in the raw score, so this bounds the panel's scores.
            if self.predict(bu, best_raw) + self.panel_max[from / PANEL] > threshold {
                for (x, &b) in panel.iter_mut().zip(&self.per_item[from..]) {
                    *x = self.predict(bu, *x) + b;
                }
                hits |= 1 << p;
            }
        }
        hits
    }
}

/// Items scored together for one user: a tile's factors (`nf × ITEM_TILE` floats) stay in cache
/// while a block of users is scored against them.
const ITEM_TILE: usize = 256;
const _: () = assert!(ITEM_TILE.is_multiple_of(PANEL) && ITEM_TILE / PANEL <= 64);
/// Users scored against each tile before the next: a tile is read from memory once per block.
const USER_BLOCK: usize = 8;
/// Items per panel: four vectors of 8, four independent sums per factor (one vector's sum is a
/// chain of dependent adds).
const PANEL: usize = 32;

/// A dot model's factors as plain memory: users row by row; items in panels of `PANEL` items,
/// factor by factor (`[panel][factor][item]`, the last panel padded with zeros), so that scoring
/// a panel is `nf` multiply-adds of whole vectors; and the item biases.
struct DotScorer {
    nf: usize,
    users: Vec<f32>,
    panels: Vec<f32>,
    item_bias: Vec<f32>,
}

fn floats(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view([-1])).unwrap_or_default()
}

/// [`top_n`] for EmbeddingDotBias: each user's raw scores `b_i + u·i` (the user's bias, the same
/// for every item, left out; the factors added in order, as a plain loop would) computed a tile
/// of items at a time for a block of users, and the best `n` kept with a running threshold, users
/// split over two threads. Memory: one tile of scores per thread.
fn top_n_dot(
    m: &crate::model::EmbeddingDotBias,
    users: &[u32],
    n: usize,
    exclude: Option<&Seen>,
    bonus: Option<&Bonus>,
) -> Vec<Vec<(u32, f32)>> {
    let s = tch::no_grad(|| DotScorer::new(floats(&m.u_weight), &floats(&m.i_weight), floats(&m.i_bias)));
    let run = |part: &[u32]| -> Vec<Vec<(u32, f32)>> {
        let mut tile = [0.0f32; ITEM_TILE];
        part.chunks(USER_BLOCK).flat_map(|block| s.top(block, n, exclude, bonus, &mut tile)).collect()
    };
    if users.len() > 64 {
        let (mut a, b) = rayon::join(|| run(&users[..users.len() / 2]), || run(&users[users.len() / 2..]));
        a.extend(b);
        a
    } else {
        run(users)
    }
}

impl DotScorer {
    /// The scorer of user factors `users` and item factors `items` (both row-major, with
    /// `item_bias.len()` items).
    fn new(users: Vec<f32>, items: &[f32], item_bias: Vec<f32>) -> Self {
        let n_items = item_bias.len();
        let nf = items.len() / n_items.max(1);
        let n_panels = n_items.div_ceil(PANEL);
        let mut panels = vec![0.0f32; n_panels * nf * PANEL];
        for (i, row) in items.chunks_exact(nf.max(1)).enumerate() {
            let panel = &mut panels[i / PANEL * nf * PANEL..][..nf * PANEL];
            for (f, &x) in row.iter().enumerate() {
                panel[f * PANEL + i % PANEL] = x;
            }
        }
        DotScorer { nf, users, panels, item_bias }
    }

    /// The best `n` items for each user row of `block`, best first (ties: lower row first), never
    /// `#na#` (row 0) nor, with `exclude`, an item the user rated; by raw score, or with `bonus`
    /// by prediction plus bonus.
    fn top(
        &self,
        block: &[u32],
        n: usize,
        exclude: Option<&Seen>,
        bonus: Option<&Bonus>,
        tile: &mut [f32; ITEM_TILE],
    ) -> Vec<Vec<(u32, f32)>> {
        if n == 0 {
            return vec![Vec::new(); block.len()];
        }
        let mut best: Vec<Best> = block.iter().map(|_| Best::new(n)).collect();
        let (nf, n_items) = (self.nf, self.item_bias.len());
        for from in (0..n_items).step_by(ITEM_TILE) {
            let to = (from + ITEM_TILE).min(n_items);
            let panels = &self.panels[from / PANEL * nf * PANEL..to.div_ceil(PANEL) * nf * PANEL];
            for (&u, best) in block.iter().zip(&mut best) {
                let user = &self.users[u as usize * nf..(u as usize + 1) * nf];
                let scores = &mut tile[..to - from];
                let bias = &self.item_bias[from..to];
                let hits = match bonus {
                    None => scores_into(scores, bias, panels, user, best.threshold),
                    Some(b) => {
                        scores_into(scores, bias, panels, user, f32::INFINITY);
                        b.rank_scores(u as usize, scores, from, best.threshold)
                    }
                };
                let seen = exclude.map_or(&[][..], |s| s.items(u as usize));
                best.offer_all(scores, from, seen, hits);
            }
        }
        best.into_iter().map(|b| b.items).collect()
    }
}

/// The best `n` items of one user so far, best first, ties in the order offered.
struct Best {
    items: Vec<(u32, f32)>,
    n: usize,
    /// The score an item must beat: the `n`-th best once there are `n`, −∞ before.
    threshold: f32,
}

impl Best {
    fn new(n: usize) -> Self {
        Best { items: Vec::with_capacity(n + 1), n, threshold: f32::NEG_INFINITY }
    }

    /// Offers items `first..` with `scores`, in the panels of `hits` (those holding a score above
    /// the threshold; `n ≥ 1`); row 0 and the items of `seen` (sorted) are skipped, and a NaN or
    /// −∞ score never enters.
    #[inline]
    fn offer_all(&mut self, scores: &[f32], first: usize, seen: &[u32], mut hits: u64) {
        while hits != 0 {
            let p = hits.trailing_zeros() as usize;
            hits &= hits - 1;
            let from = p * PANEL;
            for (k, &x) in scores[from..(from + PANEL).min(scores.len())].iter().enumerate() {
                let i = (first + from + k) as u32;
                if x > self.threshold && i != 0 && seen.binary_search(&i).is_err() {
                    let at = self.items.partition_point(|&(_, y)| y >= x);
                    self.items.insert(at, (i, x));
                    self.items.truncate(self.n);
                    if self.items.len() == self.n {
                        self.threshold = self.items[self.n - 1].1;
                    }
                }
            }
        }
    }
}

crate::kernels::vectorized! {
    /// `scores[t] = bias[t] + Σ_f user[f] · item_t[f]` for the items of `panels`, the products
    /// added in factor order; returns the panels holding a score above `threshold` (bit `p` for
    /// panel `p`), so that selection skips the others.
    fn scores_into => scores_into_impl(scores: &mut [f32], bias: &[f32], panels: &[f32], user: &[f32], threshold: f32) -> u64
}

#[inline(always)]
fn scores_into_impl(scores: &mut [f32], bias: &[f32], panels: &[f32], user: &[f32], threshold: f32) -> u64 {
    let nf = user.len();
    let mut hits = 0u64;
    for (p, (out, bias)) in scores.chunks_mut(PANEL).zip(bias.chunks(PANEL)).enumerate() {
        let panel = &panels[p * nf * PANEL..(p + 1) * nf * PANEL];
        // A full panel (all but a tile's last) is scored and tested in whole vectors: its biases
        // start the sums, and one comparison says whether a score beats the threshold. Counting
        // them lane by lane, the sums started in memory, all-users top 10 at 25M took 7.2–7.6 s
        // against 3.0–3.7 s (10 factors; 12.2 s against 9.0–9.4 s at 40).
        let hit = match (<&mut [f32; PANEL]>::try_from(&mut *out), <&[f32; PANEL]>::try_from(bias)) {
            (Ok(out), Ok(bias)) => {
                *out = panel_scores(bias, panel, user);
                out.iter().fold(false, |any, &x| any | (x > threshold))
            }
            _ => {
                let mut padded = [0.0f32; PANEL];
                padded[..bias.len()].copy_from_slice(bias);
                let acc = panel_scores(&padded, panel, user);
                out.copy_from_slice(&acc[..out.len()]);
                out.iter().any(|&x| x > threshold)
            }
        };
        hits |= (hit as u64) << p;
    }
    hits
}

/// One panel's scores: `bias` plus the user's factors times the panel's, added in factor order.
#[inline(always)]
fn panel_scores(bias: &[f32; PANEL], panel: &[f32], user: &[f32]) -> [f32; PANEL] {
    let mut acc = *bias;
    for (&uf, x) in user.iter().zip(panel.chunks_exact(PANEL)) {
        for l in 0..PANEL {
            acc[l] += uf * x[l];
        }
    }
    acc
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform draws in [−0.5, 0.5) from a xorshift generator seeded with `x` (nonzero).
    fn uniform(mut x: u32) -> impl FnMut() -> f32 {
        move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / (1 << 24) as f32 - 0.5
        }
    }

    /// User `u`'s raw score of item `i` by a plain loop: the item's bias, then the factors in order.
    fn plain_raw(bias: &[f32], users: &[f32], items: &[f32], nf: usize, u: usize, i: usize) -> f32 {
        let mut score = bias[i];
        for f in 0..nf {
            score += users[u * nf + f] * items[i * nf + f];
        }
        score
    }

    /// Grouping by user is sorting by (user, item), stably: a repeated pair keeps the data's order.
    #[test]
    fn seen_groups_ratings_by_user_and_item() {
        let data = Encoded {
            users: vec![2, 0, 2, 1, 2, 2],
            items: vec![7, 3, 1, 4, 7, 5],
            ratings: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        let seen = Seen::from_encoded(&data, 4);
        assert_eq!(seen.indptr, [0, 1, 2, 6, 6]);
        assert_eq!(seen.items(2), [1, 5, 7, 7]);
        assert_eq!(seen.ratings(2), [3.0, 6.0, 1.0, 5.0]);
        assert_eq!((seen.items(0), seen.ratings(1)), (&[3][..], &[4.0][..]));
        assert!(seen.items(3).is_empty() && seen.items(9).is_empty());
    }

    /// The blocked ranking against the plain definition: every item's score by a simple loop
    /// (bias, then the factors in order), rated items and row 0 left out, sorted best first with
    /// ties by row. Ties are planted (items 5 and 9, 300 and 301 identical), and the catalogue is
    /// not a whole number of tiles or vectors.
    #[test]
    fn blocked_top_n_is_the_plain_definition() {
        let (n_users, n_items, nf) = (21usize, 2 * ITEM_TILE + 13, 7usize);
        let mut next = uniform(0x9e3779b9u32);
        let users: Vec<f32> = (0..n_users * nf).map(|_| next()).collect();
        let mut items: Vec<f32> = (0..n_items * nf).map(|_| next()).collect();
        let mut bias: Vec<f32> = (0..n_items).map(|_| next()).collect();
        for (a, b) in [(5, 9), (300, 301)] {
            let row = items[a * nf..(a + 1) * nf].to_vec();
            items[b * nf..(b + 1) * nf].copy_from_slice(&row);
            bias[b] = bias[a];
        }
        let seen_items: Vec<Vec<u32>> = (0..n_users)
            .map(|u| (1..n_items as u32).filter(|i| (i * 7 + u as u32).is_multiple_of(11)).collect())
            .collect();
        let seen = Seen {
            indptr: std::iter::once(0)
                .chain(seen_items.iter().scan(0, |at, s| {
                    *at += s.len();
                    Some(*at)
                }))
                .collect(),
            ratings: vec![4.0; seen_items.iter().map(Vec::len).sum()],
            items: seen_items.concat(),
        };
        let scorer = DotScorer::new(users.clone(), &items, bias.clone());
        let all: Vec<u32> = (0..n_users as u32).collect();
        for n in [0, 1, 10, n_items + 5] {
            for exclude in [None, Some(&seen)] {
                let mut tile = [0.0f32; ITEM_TILE];
                let got: Vec<Vec<(u32, f32)>> =
                    all.chunks(USER_BLOCK).flat_map(|b| scorer.top(b, n, exclude, None, &mut tile)).collect();
                for (u, got) in got.iter().enumerate() {
                    let mut want: Vec<(u32, f32)> = (1..n_items as u32)
                        .filter(|i| exclude.is_none() || !seen_items[u].contains(i))
                        .map(|i| (i, plain_raw(&bias, &users, &items, nf, u, i as usize)))
                        .collect();
                    want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    want.truncate(n);
                    assert_eq!(got, &want, "user {u}, n {n}, excluding {}", exclude.is_some());
                }
            }
        }
        // Without factors, items rank by their bias alone.
        let by_bias = DotScorer::new(vec![0.0; 2], &[], bias.clone()).top(&[1], 3, None, None, &mut [0.0; ITEM_TILE]);
        let mut want: Vec<(u32, f32)> = (1..n_items as u32).map(|i| (i, bias[i as usize])).collect();
        want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(by_bias[0], want[..3]);
    }

    /// Ranking by prediction plus a per-item bonus (`recommend --popularity`) against the plain
    /// definition: each item's prediction (user bias + item bias + factors in order, the output
    /// range applied) plus its bonus, sorted best first with ties by row. The bonus is zero for
    /// some items, equal for planted twins, and large for a few, so that skipped panels matter.
    #[test]
    fn blocked_top_n_with_a_bonus_is_the_plain_definition() {
        let (n_users, n_items, nf) = (13usize, ITEM_TILE + 77, 5usize);
        let mut next = uniform(0x2545f491u32);
        let users: Vec<f32> = (0..n_users * nf).map(|_| next()).collect();
        let user_bias: Vec<f32> = (0..n_users).map(|_| next()).collect();
        let mut items: Vec<f32> = (0..n_items * nf).map(|_| next()).collect();
        let mut bias: Vec<f32> = (0..n_items).map(|_| next()).collect();
        let mut bonus: Vec<f32> = (0..n_items).map(|i| if i % 5 == 0 { 0.0 } else { (next() + 0.5) * 0.3 }).collect();
        for i in [40, 170, 290] {
            bonus[i] = 2.0;
        }
        for (a, b) in [(7, 8), (100, 260)] {
            let row = items[a * nf..(a + 1) * nf].to_vec();
            items[b * nf..(b + 1) * nf].copy_from_slice(&row);
            (bias[b], bonus[b]) = (bias[a], bonus[a]);
        }
        let scorer = DotScorer::new(users.clone(), &items, bias.clone());
        let all: Vec<u32> = (0..n_users as u32).collect();
        for y_range in [Some((0.0f32, 5.5f32)), None] {
            let ranked = Bonus::new(user_bias.clone(), y_range, &bonus);
            for n in [1, 10, n_items + 5] {
                let mut tile = [0.0f32; ITEM_TILE];
                let got: Vec<Vec<(u32, f32)>> =
                    all.chunks(USER_BLOCK).flat_map(|b| scorer.top(b, n, None, Some(&ranked), &mut tile)).collect();
                for (u, got) in got.iter().enumerate() {
                    let mut want: Vec<(u32, f32)> = (1..n_items as u32)
                        .map(|i| {
                            let x = user_bias[u] + plain_raw(&bias, &users, &items, nf, u, i as usize);
                            let pred = match y_range {
                                Some((lo, hi)) => 1.0 / (1.0 + (-x).exp()) * (hi - lo) + lo,
                                None => x,
                            };
                            (i, pred + bonus[i as usize])
                        })
                        .collect();
                    want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    want.truncate(n);
                    assert_eq!(got, &want, "user {u}, n {n}, y_range {y_range:?}");
                }
            }
        }
    }
}
