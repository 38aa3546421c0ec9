//! Embedding tables and their Adam moments as plain Rust memory, for the CPU engines (dense, exact,
//! lazy, and the exact path of EmbeddingNN's embeddings): opening the rows a batch touches, and
//! for `EmbeddingDotBias` the whole forward, backward and AdamW written out as loops.
//!
//! The engines own this memory: it is copied from the learner's tensors when a fit starts and
//! written back when it ends (validation between epochs reads these rows), so no pointer into a
//! libtorch tensor is ever kept, whatever a caller does to the tensors between fits.
use std::ops::RangeInclusive;
use std::sync::Arc;

use tch::{Device, Kind, Tensor};

use super::super::optim::AdamState;
use super::super::params::Params;
use super::aligned::{Aligned, FLOATS_PER_LINE};
use super::catchup::{CatchUp, RowGap};
use super::feed::{Epoch, Feed, Packed, Prepared, Preparer, Touched};
use super::lanes::elementwise;
use super::pair::Pair;
use crate::data::databunch::Encoded;
use crate::error::{Error, Result};
use crate::kernels::{dot, dot_bias_score, prefetch, sigmoid, vectorized, Level, AHEAD};
use crate::model::EmbeddingDotBias;

/// One side (users or items), stored in two halves by the parity of the row, so that two threads
/// can each own one half. Within a half, row-major: a row holds its `w` parameters (for
/// `EmbeddingDotBias` the factors, then the bias), then their first moments, then their second
/// moments, so that a row's whole optimizer state is one contiguous stretch of memory (one stream
/// of cache lines); for the exact path, a mark follows (the step the row stands at), and the row is
/// padded to whole cache lines ([`marked_stride`]).
pub(crate) struct Side {
    /// Parameters per row.
    pub w: usize,
    rows: usize,
    /// Rows `2l` (half 0) and `2l + 1` (half 1) at local row `l`.
    pub halves: [Half; 2],
}

/// The rows of one parity of a side; rows are named by their number in the side.
pub(crate) struct Half {
    /// Parameters per row.
    pub w: usize,
    /// Which rows: those with `row % 2 == parity`.
    pub parity: usize,
    /// Where prefetches of this fit's tables bring their lines.
    pub level: Level,
    /// Floats per row: `3w`, or for a marked half `3w` and a mark, padded ([`marked_stride`]).
    stride: usize,
    /// `rows × stride` floats.
    data: Aligned,
}

/// A `[rows, k]` parameter with its first and second moments: one part of a side's rows.
pub(crate) type Part<'a> = (&'a Tensor, &'a Tensor, &'a Tensor);

/// The elements of `t` as f32 on the CPU, in row-major order.
pub(crate) fn floats(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(&t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view([-1]))?)
}

/// Overwrites the tensor `t` with `values` (as many as it has elements, row-major).
pub(crate) fn write(t: &Tensor, values: &[f32]) -> Result<()> {
    tch::no_grad(|| t.shallow_clone().f_copy_(&Tensor::from_slice(values).view(t.size().as_slice())))?;
    Ok(())
}

impl Side {
    /// The parts' rows side by side (e.g. factors `[rows, nf]` then bias `[rows, 1]`), each row with
    /// a mark (at step 0) when `marked`.
    pub fn load(parts: &[Part<'_>], marked: bool) -> Result<Side> {
        let rows = parts.first().map_or(0, |p| p.0.size()[0] as usize);
        let widths: Vec<usize> = parts.iter().map(|p| p.0.size().get(1).copied().unwrap_or(1) as usize).collect();
        let w: usize = widths.iter().sum();
        let stride = if marked { marked_stride(w) } else { 3 * w };
        let half = |parity: usize| Half {
            w,
            parity,
            level: Level::L1,
            stride,
            data: Aligned::zeroed((rows + 1 - parity) / 2 * stride),
        };
        let mut side = Side { w, rows, halves: [half(0), half(1)] };
        let mut col = 0;
        for (part, &k) in parts.iter().zip(&widths) {
            for (j, t) in [part.0, part.1, part.2].into_iter().enumerate() {
                let values = floats(t)?;
                if values.len() != rows * k {
                    return Err(Error::Shape(format!("tables of {rows} rows disagree in shape: {:?}", t.size())));
                }
                for r in 0..rows {
                    let at = side.halves[r % 2].at(r) + j * w + col;
                    side.halves[r % 2].data[at..at + k].copy_from_slice(&values[r * k..(r + 1) * k]);
                }
            }
            col += k;
        }
        Ok(side)
    }

    /// Writes the rows back into the parts they were loaded from.
    pub fn store(&self, parts: &[Part<'_>]) -> Result<()> {
        let (w, rows) = (self.w, self.rows);
        let mut col = 0;
        for part in parts {
            let k = part.0.size().get(1).copied().unwrap_or(1) as usize;
            for (j, t) in [part.0, part.1, part.2].into_iter().enumerate() {
                let mut values = Vec::with_capacity(rows * k);
                for r in 0..rows {
                    let at = self.halves[r % 2].at(r) + j * w + col;
                    values.extend_from_slice(&self.halves[r % 2].data[at..at + k]);
                }
                write(t, &values)?;
            }
            col += k;
        }
        Ok(())
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The parameters of row `r`.
    #[inline(always)]
    pub fn params(&self, r: usize) -> &[f32] {
        self.halves[r % 2].params(r)
    }

    /// Hints the CPU to fetch row `r`'s parameters into the first-level cache.
    #[inline(always)]
    pub fn prefetch_params(&self, r: usize) {
        let half = &self.halves[r % 2];
        prefetch(&half.data, half.at(r), self.w, Level::L1);
    }
}

impl Half {
    /// Where row `r` (of this half's parity) starts in `data`.
    #[inline(always)]
    fn at(&self, r: usize) -> usize {
        debug_assert_eq!(r % 2, self.parity);
        r / 2 * self.stride
    }

    /// The rows of this half, by their number in the side.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = u32> {
        let parity = self.parity as u32;
        (0..(self.data.len() / self.stride) as u32).map(move |l| 2 * l + parity)
    }

    /// The parameters of row `r`.
    #[inline(always)]
    pub fn params(&self, r: usize) -> &[f32] {
        let at = self.at(r);
        &self.data[at..at + self.w]
    }

    /// Row `r`'s parameters, first and second moments.
    #[inline(always)]
    pub fn state(&mut self, r: usize) -> (&mut [f32], &mut [f32], &mut [f32]) {
        let (at, w) = (self.at(r), self.w);
        let row = &mut self.data[at..at + 3 * w];
        let (p, rest) = row.split_at_mut(w);
        let (m, v) = rest.split_at_mut(w);
        (p, m, v)
    }

    /// The step row `r` stands at (the half must be marked).
    #[inline(always)]
    pub fn mark(&self, r: usize) -> u32 {
        self.data[self.mark_at(r)].to_bits()
    }

    /// Marks row `r` as standing at step `k` (the half must be marked).
    #[inline(always)]
    pub fn set_mark(&mut self, r: usize, k: usize) {
        let at = self.mark_at(r);
        self.data[at] = f32::from_bits(k as u32);
    }

    /// Where row `r`'s mark is: a step number kept as the bits of the float after its state (it
    /// shares the row's cache lines; nothing computes with it, it is only copied).
    #[inline(always)]
    fn mark_at(&self, r: usize) -> usize {
        debug_assert_eq!(self.stride, marked_stride(self.w), "a marked half");
        self.at(r) + 3 * self.w
    }

    /// Hints the CPU to fetch row `r`'s state (and mark).
    #[inline(always)]
    pub fn prefetch(&self, r: usize) {
        prefetch(&self.data, self.at(r), self.stride, self.level);
    }
}

/// Both sides' halves, users then items, even rows then odd.
pub(crate) fn halves(sides: &mut [Side; 2]) -> [[&mut Half; 2]; 2] {
    sides.each_mut().map(|side| side.halves.each_mut())
}

/// Floats per row of a marked half (the exact path's, whose rows are read at random): the row's
/// state and mark padded to an odd number of whole cache lines, so that no two rows share a line
/// and rows start at every line offset within a page. On the synthetic 25M set (5-epoch exact fits,
/// alternating, on a 2-core AMD EPYC of family 25), rows of 34 floats one after the other fitted in
/// 7.07–7.11 s against 5.68–6.01 s padded to 48 (3 lines; 10 factors), and rows of 124 floats in
/// 18.4–18.7 s against 16.4–17.0 s padded to 144 (9 lines) and 22.5 s padded to 128 (8 lines; 40
/// factors); rows padded to 16 bytes only were no faster. The dense path reads every row in order
/// at every step: padding would only add to the bytes it streams (its steps took a fifth longer).
fn marked_stride(w: usize) -> usize {
    let lines = (3 * w + 1).div_ceil(FLOATS_PER_LINE);
    (lines | 1) * FLOATS_PER_LINE
}

/// Users (side 0) and items (side 1), and the training ratings the batches are prepared from.
pub(crate) struct Tables {
    pub sides: [Side; 2],
    data: Arc<Encoded>,
}

impl Tables {
    /// The two sides and the training ratings, which must all have rows in them.
    pub fn new(mut sides: [Side; 2], data: &Arc<Encoded>) -> Result<Self> {
        for (side, ids, what) in [(0, &data.users, "user"), (1, &data.items, "item")] {
            let rows = sides[side].rows();
            if let Some(bad) = ids.iter().find(|&&r| r as usize >= rows) {
                return Err(Error::Shape(format!(
                    "the data has {what} row {bad}, the model only {rows} rows: was the data replaced after the \
                     learner was built?"
                )));
            }
        }
        // A rating's user, item and value: 12 bytes.
        let bytes = data.len() * std::mem::size_of::<Packed>()
            + sides.iter().flat_map(|s| &s.halves).map(|h| std::mem::size_of_val(&*h.data)).sum::<usize>();
        let level = if bytes > FAR_BYTES { Level::L2 } else { Level::L1 };
        for half in sides.iter_mut().flat_map(|s| &mut s.halves) {
            half.level = level;
        }
        Ok(Tables { sides, data: data.clone() })
    }

    /// Takes the prepared `batch` (numbers of training ratings) from `s` and opens its rows on both
    /// sides (`rules[side][parity].open` before anything reads them), even rows on one thread and
    /// odd rows on the other when `par`.
    pub fn open<R: SideRule>(
        &mut self,
        batch: &[u32],
        s: &mut Scratch,
        mut par: Option<&mut Pair>,
        rules: [[&mut R; 2]; 2],
    ) {
        let p = s.feed.next(batch, par.as_deref_mut());
        let [[r00, r01], [r10, r11]] = rules;
        let [[u0, u1], [i0, i1]] = halves(&mut self.sides);
        let ([ur0, ur1], [ir0, ir1]) = (p.touched[0].of_parities(), p.touched[1].of_parities());
        // The loops that open rows prefetch ahead of themselves, so each would start on rows not yet
        // asked for: for tables beyond the caches all four start fetching first (25M fits at 10
        // factors, alternating, seven pairs of two: 4.34 s against 4.42 s on average; the lesson's
        // fits, tables in cache, were 2–3% slower with it).
        if u0.level != Level::L1 {
            for (half, rows) in [(&*u0, ur0), (&*i0, ir0), (&*u1, ur1), (&*i1, ir1)] {
                for &r in rows.iter().take(2 * AHEAD) {
                    half.prefetch(r as usize);
                }
            }
        }
        both(
            par,
            || {
                r00.open(u0, ur0, p.gaps(0, 0));
                r10.open(i0, ir0, p.gaps(1, 0));
            },
            || {
                r01.open(u1, ur1, p.gaps(0, 1));
                r11.open(i1, ir1, p.gaps(1, 1));
            },
        );
    }
}

/// An `EmbeddingDotBias`'s tables (each side's rows: factors, then bias), its factor count and
/// output range.
pub(crate) struct DotTables {
    pub tables: Tables,
    pub nf: usize,
    pub y_range: Option<(f32, f32)>,
}

/// The parameter names of one side: factors, bias.
const NAMES: [[&str; 2]; 2] = [["u_weight.weight", "u_bias.weight"], ["i_weight.weight", "i_bias.weight"]];

/// The parts of a side: each named parameter with its Adam moments.
pub(crate) fn parts<'a>(names: &[&str], params: &'a Params, opt: &'a AdamState) -> Result<Vec<Part<'a>>> {
    names
        .iter()
        .map(|n| {
            let i = params.index(n)?;
            Ok((params.tensor(i), &opt.exp_avg[i], &opt.exp_avg_sq[i]))
        })
        .collect()
}

impl DotTables {
    /// Copies the model's tables and their Adam moments out of the learner's tensors (each row with
    /// a mark when `marked`: the exact path's).
    pub fn load(
        model: &EmbeddingDotBias,
        params: &Params,
        opt: &AdamState,
        data: &Arc<Encoded>,
        marked: bool,
    ) -> Result<Self> {
        let side = |j: usize| Side::load(&parts(&NAMES[j], params, opt)?, marked);
        let tables = Tables::new([side(0)?, side(1)?], data)?;
        Ok(DotTables { tables, nf: model.n_factors(), y_range: model.y_range.map(|(lo, hi)| (lo as f32, hi as f32)) })
    }

    /// Writes the tables and moments back into the learner's tensors.
    pub fn store(&self, params: &Params, opt: &mut AdamState) -> Result<()> {
        for (side, names) in self.tables.sides.iter().zip(NAMES) {
            side.store(&parts(&names, params, opt)?)?;
        }
        Ok(())
    }

    /// Predicted ratings for the pairs `(users[r], items[r])` from the tables as they stand: the
    /// model's own prediction ([`dot_bias_score`]), so the same bits as predicting from the
    /// learner's tensors once the tables are stored there. Many pairs (a large fit's validation
    /// between epochs, while the thread that prepares batches waits) are split over two threads,
    /// both in the caller's floating-point mode: each prediction is independent, so the results
    /// are the same bits.
    pub fn predict(&self, users: &[u32], items: &[u32]) -> Vec<f32> {
        let mut out = vec![0.0; users.len()];
        if users.len() < PREDICT_SPLIT_FROM {
            predict_pairs(&mut out, self, users, items);
            return out;
        }
        let (half, flush) = (users.len() / 2, FlushDenormals::active());
        let (o0, o1) = out.split_at_mut(half);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _flush = flush.then(FlushDenormals::new);
                predict_pairs(o1, self, &users[half..], &items[half..]);
            });
            predict_pairs(o0, self, &users[..half], &items[..half]);
        });
        out
    }

    /// One step over `batch` (numbers of training ratings): the rows the batch touches are opened
    /// (`rules[side][parity].open`, before anything reads them), the batch's predictions and
    /// gradients are computed from the opened rows (read in place, in one pass; every update waits
    /// for the whole backward pass), and each half of each side applies its own
    /// (`rules[side][parity].update`). With `par`, the two parities (and for the gradients, the two
    /// sides, after a forward pass over each half of the batch) run on two threads: each row
    /// belongs to one thread and every sum runs in batch order, so the results are the same bits
    /// either way. Returns the batch's mean squared error.
    pub fn step<R: SideRule>(
        &mut self,
        batch: &[u32],
        s: &mut Scratch,
        mut par: Option<&mut Pair>,
        rules: [[&mut R; 2]; 2],
    ) -> f32 {
        let (nf, y_range) = (self.nf, self.y_range);
        let [[r00, r01], [r10, r11]] = rules;
        self.tables.open(batch, s, par.as_deref_mut(), [[&mut *r00, &mut *r01], [&mut *r10, &mut *r11]]);
        let Scratch { feed, grads, d, sq, .. } = s;
        let p = feed.current();
        let (b, sides, n) = (&p.batch, &self.tables.sides, p.batch.len());
        let loss = match par.as_deref_mut() {
            None => forward_backward(grads, &p.touched, sides, b, nf, y_range),
            Some(pair) => {
                d.resize(n, 0.0);
                sq.resize(n, 0.0);
                let (d0, d1) = d.split_at_mut(n / 2);
                let (q0, q1) = sq.split_at_mut(n / 2);
                pair.join(
                    || forward(d0, q0, sides, b, 0..n / 2, nf, y_range),
                    || forward(d1, q1, sides, b, n / 2..n, nf, y_range),
                );
                let ([g0, g1], [t0, t1], d) = (&mut *grads, &p.touched, &*d);
                pair.join(|| grads_side(g0, t0, &sides[1], b, 0, d), || grads_side(g1, t1, &sides[0], b, 1, d));
                sq.iter().fold(0.0f32, |sum, &q| sum + q)
            }
        };
        let ([g0, g1], [s0, s1]) = (&*grads, &p.touched);
        let [[u0, u1], [i0, i1]] = halves(&mut self.tables.sides);
        both(
            par,
            || {
                r00.update(u0, s0, g0);
                r10.update(i0, s1, g1);
            },
            || {
                r01.update(u1, s0, g0);
                r11.update(i1, s1, g1);
            },
        );
        loss / n as f32
    }
}

/// Where a step's prepared batches come from, and room for its gradients (`rows × w` per side,
/// one row per slot) and, for steps on two threads, for the derivative of the loss with respect to
/// each rating's raw score.
pub(crate) struct Scratch {
    feed: Feed,
    /// The step of the last synchronisation point since the current epoch started, for the feed.
    synced: Option<usize>,
    grads: [Vec<f32>; 2],
    d: Vec<f32>,
    /// Each rating's squared error.
    sq: Vec<f32>,
}

impl Scratch {
    /// Scratch space for steps on `tables`, whose batches are prepared ahead on a helper thread
    /// when the fit is large and the engine has no second thread (`par`); with `catchup` (the
    /// exact path's schedule), each batch comes with its rows' catch-up gaps.
    pub fn new(tables: &Tables, par: bool, catchup: Option<CatchUp>) -> Self {
        let level = tables.sides[0].halves[0].level;
        let prep = Preparer::new(tables.data.clone(), tables.sides.each_ref().map(Side::rows), level, catchup);
        Scratch { feed: Feed::new(prep, par), synced: None, grads: Default::default(), d: vec![], sq: vec![] }
    }

    /// An epoch starts whose local steps `steps` (at most) take `order`'s batches of `bs` in turn.
    pub fn epoch(&mut self, order: &Arc<Vec<u32>>, bs: usize, steps: RangeInclusive<usize>) {
        self.feed.epoch(Epoch { order: order.clone(), bs, steps, synced: self.synced.take() });
    }

    /// Every row was brought up to date with step `k` (a synchronisation point).
    pub fn synced(&mut self, k: usize) {
        self.synced = Some(k);
    }

    /// The batch being stepped, as prepared.
    pub fn prepared(&self) -> &Prepared {
        self.feed.current()
    }
}

/// What an engine does to one side's rows around a step.
pub(crate) trait SideRule: Send {
    /// Called on the rows of `half` that a batch touches, in slot order, before anything reads
    /// them (the exact path's catch-up, with each row's gap in `gaps` when the batch was prepared
    /// with them).
    fn open(&mut self, half: &mut Half, rows: &[u32], gaps: &[RowGap]);
    /// Applies the batch's gradients (`grads`, one row of `w` per slot of `touched`) to `half`.
    fn update(&mut self, half: &mut Half, touched: &Touched, grads: &[f32]);
}

/// Runs `f0` and `f1`, on two threads when there is a `par` (callers give them disjoint work, each
/// done in the same order either way, so the results are the same bits).
#[inline(always)]
pub(crate) fn both<A: Send, B: Send>(
    par: Option<&mut Pair>,
    f0: impl FnOnce() -> A + Send,
    f1: impl FnOnce() -> B + Send,
) -> (A, B) {
    match par {
        Some(pair) => pair.join(f0, f1),
        None => (f0(), f1()),
    }
}

/// Above this many bytes of tables and training ratings, a fit's prefetches go to [`Level::L2`].
/// Measured with 1-epoch exact fits of the synthetic set, both levels alternating in one process:
/// at 25M ratings (300 MB) the second level was 4.5–7.8% faster in five of six runs (of 3 to 10
/// pairs; even in the sixth), at 5M 5.6%, at 2M (25 MB) 4.7%, at 1M (13 MB) even; the lesson's fit
/// (2.3 MB) was 3.5% slower with it.
const FAR_BYTES: usize = 16 << 20;

/// From this many pairs on, [`DotTables::predict`] runs on two threads (starting one costs tens of
/// microseconds, predicting this many pairs about a millisecond).
const PREDICT_SPLIT_FROM: usize = 1 << 16;

vectorized! {
    /// [`DotTables::predict`] into `out`.
    fn predict_pairs => predict_pairs_impl(out: &mut [f32], t: &DotTables, users: &[u32], items: &[u32])
}

#[inline(always)]
fn predict_pairs_impl(out: &mut [f32], t: &DotTables, users: &[u32], items: &[u32]) {
    let (nf, [us, is]) = (t.nf, &t.tables.sides);
    for (k, ((out, &u), &i)) in out.iter_mut().zip(users).zip(items).enumerate() {
        if let (Some(&u), Some(&i)) = (users.get(k + AHEAD), items.get(k + AHEAD)) {
            us.prefetch_params(u as usize);
            is.prefetch_params(i as usize);
        }
        let (u, i) = (us.params(u as usize), is.params(i as usize));
        *out = dot_bias_score(&u[..nf], &i[..nf], u[nf], i[nf], t.y_range);
    }
}

vectorized! {
    /// The forward pass over the ratings `part` of the batch, reading both sides' opened rows in
    /// place: the derivative of the batch's mean squared error with respect to each rating's raw
    /// score into `d`, its squared error into `sq`.
    #[allow(clippy::too_many_arguments)]
    fn forward => forward_impl(
        d: &mut [f32],
        sq: &mut [f32],
        sides: &[Side; 2],
        batch: &[Packed],
        part: std::ops::Range<usize>,
        nf: usize,
        y_range: Option<(f32, f32)>
    )
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn forward_impl(
    d: &mut [f32],
    sq: &mut [f32],
    sides: &[Side; 2],
    batch: &[Packed],
    part: std::ops::Range<usize>,
    nf: usize,
    y_range: Option<(f32, f32)>,
) {
    let scale = 2.0 / batch.len() as f32;
    for ((k, d), sq) in part.zip(d).zip(sq) {
        let (u, i, y) = batch[k];
        (*sq, *d) = residual(sides[0].params(u as usize), sides[1].params(i as usize), y, nf, y_range, scale);
    }
}

/// One rating's squared error and the derivative of the batch's loss with respect to its raw
/// score (`scale` is 2 over the batch size), from the user's and the item's rows.
#[inline(always)]
fn residual(ur: &[f32], ir: &[f32], y: f32, nf: usize, y_range: Option<(f32, f32)>, scale: f32) -> (f32, f32) {
    let res = dot(&ur[..nf], &ir[..nf]) + ur[nf] + ir[nf];
    let (pred, dpred) = match y_range {
        Some((lo, hi)) => {
            let sig = sigmoid(res);
            let span = hi - lo;
            (sig * span + lo, sig * (1.0 - sig) * span)
        }
        None => (res, 1.0),
    };
    let err = pred - y;
    (err * err, scale * err * dpred)
}

/// Makes `grads` one zeroed gradient row of `w` per slot of `touched`.
#[inline(always)]
fn zero_rows(grads: &mut Vec<f32>, touched: &Touched, w: usize) {
    grads.clear();
    grads.resize(touched.rows.len() * w, 0.0);
}

/// Adds `d` times the other side's row `x` to a gradient row `g` (factors; the bias, last, gets `d`).
#[inline(always)]
fn accumulate(g: &mut [f32], x: &[f32], d: f32) {
    let nf = g.len() - 1;
    for (g, x) in g[..nf].iter_mut().zip(&x[..nf]) {
        *g += d * x;
    }
    g[nf] += d;
}

/// [`accumulate`] on rows of `W` floats.
#[inline(always)]
fn accumulate_of<const W: usize>(g: &mut [f32; W], x: &[f32; W], d: f32) {
    for e in 0..W - 1 {
        g[e] += d * x[e];
    }
    g[W - 1] += d;
}

vectorized! {
    /// [`forward`] over the whole batch and both sides' [`grads_side`] in one pass over its ratings,
    /// each rating's two rows read once: every gradient row still sums its ratings in batch order,
    /// and the loss its squared errors, so the results are the same bits. Returns the sum of the
    /// squared errors. 5-epoch fits of the synthetic 25M set took 5.39–5.88 s against 5.72–6.03 s
    /// with the two passes (six each, alternating).
    fn forward_backward => forward_backward_impl(
        grads: &mut [Vec<f32>; 2],
        touched: &[Touched; 2],
        sides: &[Side; 2],
        batch: &[Packed],
        nf: usize,
        y_range: Option<(f32, f32)>
    ) -> f32
}

#[inline(always)]
fn forward_backward_impl(
    grads: &mut [Vec<f32>; 2],
    touched: &[Touched; 2],
    sides: &[Side; 2],
    batch: &[Packed],
    nf: usize,
    y_range: Option<(f32, f32)>,
) -> f32 {
    match nf {
        10 => forward_backward_of::<11>(grads, touched, sides, batch, y_range),
        _ => forward_backward_any(grads, touched, sides, batch, nf, y_range),
    }
}

/// [`forward_backward_impl`] for rows of any width.
#[inline(always)]
fn forward_backward_any(
    grads: &mut [Vec<f32>; 2],
    touched: &[Touched; 2],
    sides: &[Side; 2],
    batch: &[Packed],
    nf: usize,
    y_range: Option<(f32, f32)>,
) -> f32 {
    let w = nf + 1;
    for (g, t) in grads.iter_mut().zip(touched) {
        zero_rows(g, t, w);
    }
    let [gu, gi] = grads;
    let scale = 2.0 / batch.len() as f32;
    let slots = touched[0].of_rating().iter().zip(touched[1].of_rating());
    let mut loss = 0.0f32;
    for (&(u, i, y), (&su, &si)) in batch.iter().zip(slots) {
        let (ur, ir) = (sides[0].params(u as usize), sides[1].params(i as usize));
        let (sq, d) = residual(ur, ir, y, nf, y_range, scale);
        loss += sq;
        let (su, si) = (su as usize, si as usize);
        accumulate(&mut gu[su * w..(su + 1) * w], ir, d);
        accumulate(&mut gi[si * w..(si + 1) * w], ur, d);
    }
    loss
}

/// [`forward_backward_any`] compiled for rows of `W` floats (`W − 1` factors and a bias): its
/// loops over a row unrolled, the same arithmetic in the same order, so the same bits. For the
/// scale benchmark's 10 factors, 5-epoch fits of the synthetic 25M set took 5.43–5.61 s against
/// 5.92–6.52 s (six each, alternating). Compiled for the lesson's 40 factors, the lesson's fits
/// measured no faster (medians of 40, four alternating sets), so no other width has one; nor did a
/// change for every width (the any-width `accumulate` in groups of eight: 25M fits 5.90–6.23 s
/// against 5.60–6.40 s). Its loop is written out again rather than shared with the any-width pass
/// through a closure: so shared, 10-factor fits were 2–3% slower and the lesson's 4–11% (medians
/// of 40, four alternating sets).
#[inline(always)]
fn forward_backward_of<const W: usize>(
    grads: &mut [Vec<f32>; 2],
    touched: &[Touched; 2],
    sides: &[Side; 2],
    batch: &[Packed],
    y_range: Option<(f32, f32)>,
) -> f32 {
    for (g, t) in grads.iter_mut().zip(touched) {
        zero_rows(g, t, W);
    }
    let [gu, gi] = grads;
    let scale = 2.0 / batch.len() as f32;
    let slots = touched[0].of_rating().iter().zip(touched[1].of_rating());
    let mut loss = 0.0f32;
    for (&(u, i, y), (&su, &si)) in batch.iter().zip(slots) {
        let (ur, ir) = (row::<W>(sides[0].params(u as usize)), row::<W>(sides[1].params(i as usize)));
        let (sq, d) = residual(ur, ir, y, W - 1, y_range, scale);
        loss += sq;
        let (su, si) = (su as usize, si as usize);
        accumulate_of(row_mut::<W>(&mut gu[su * W..(su + 1) * W]), ir, d);
        accumulate_of(row_mut::<W>(&mut gi[si * W..(si + 1) * W]), ur, d);
    }
    loss
}

/// A row known to hold `W` floats, as an array.
#[inline(always)]
fn row<const W: usize>(r: &[f32]) -> &[f32; W] {
    r.try_into().expect("a row of W floats")
}

/// [`row`], to write.
#[inline(always)]
fn row_mut<const W: usize>(r: &mut [f32]) -> &mut [f32; W] {
    r.try_into().expect("a row of W floats")
}

vectorized! {
    /// The backward pass for side `j`: each rating adds `d` times the other side's row (read in
    /// `other`) to its own row's gradient (factors; the bias, last in a row, gets `d`), in batch
    /// order.
    fn grads_side => grads_side_impl(
        grads: &mut Vec<f32>, own: &Touched, other: &Side, batch: &[Packed], j: usize, d: &[f32]
    )
}

#[inline(always)]
fn grads_side_impl(grads: &mut Vec<f32>, own: &Touched, other: &Side, batch: &[Packed], j: usize, d: &[f32]) {
    let w = other.w;
    zero_rows(grads, own, w);
    for (k, (&d, &so)) in d.iter().zip(own.of_rating()).enumerate() {
        let so = so as usize;
        let x = if j == 0 { batch[k].1 } else { batch[k].0 };
        accumulate(&mut grads[so * w..(so + 1) * w], other.params(x as usize), d);
    }
}

vectorized! {
    /// One AdamW step on a row from its gradient `g` (fastai's order of operations, one division per
    /// element: `sqrt(v)/sqrt(bc2)` as a product with the reciprocal, within an ulp of libtorch).
    fn adamw => adamw_impl(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: &[f32; 8])
}

/// [`adamw`] on the given rows of a side, row `rows[j]` with gradient row `j` of `grads`: rows of
/// at most 16 floats on a CPU with AVX-512 by [`narrow::adamw_rows`] (the same bits).
pub(crate) fn adamw_rows(half: &mut Half, rows: &[u32], grads: &[f32], k: &[f32; 8]) {
    #[cfg(target_arch = "x86_64")]
    if super::narrow::fits(half.w) {
        // SAFETY: `fits` checked that the CPU has AVX-512F.
        return unsafe { super::narrow::adamw_rows(half, rows, grads, k) };
    }
    adamw_rows_wide(half, rows, grads, k)
}

vectorized! {
    /// [`adamw`] on the given rows of a side, row `rows[j]` with gradient row `j` of `grads`, in
    /// the CPU's widest vectors.
    fn adamw_rows_wide => adamw_rows_impl(half: &mut Half, rows: &[u32], grads: &[f32], k: &[f32; 8])
}

#[inline(always)]
fn adamw_rows_impl(half: &mut Half, rows: &[u32], grads: &[f32], k: &[f32; 8]) {
    let w = half.w;
    for (j, &row) in rows.iter().enumerate() {
        let (p, m, v) = half.state(row as usize);
        adamw_impl(p, m, v, &grads[j * w..(j + 1) * w], k);
    }
}

/// [`adamw`], inlined into a caller compiled for the CPU's vectors.
#[inline(always)]
pub(crate) fn adamw_impl(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: &[f32; 8]) {
    let [decay, b1, one_b1, b2, one_b2, bc2_sqrt, step_size, eps] = *k;
    let inv_bc2_sqrt = 1.0 / bc2_sqrt;
    elementwise([p, m, v], [g], |[p, m, v], [grad]| {
        let m = m * b1 + grad * one_b1;
        let v = v * b2 + grad * grad * one_b2;
        let denom = v.sqrt() * inv_bc2_sqrt + eps;
        [p * decay - m / denom * step_size, m, v]
    });
}

/// [`adamw_impl`] with a zero gradient (bit for bit the same result, without reading a gradient).
#[inline(always)]
pub(crate) fn adamw_zero_impl(p: &mut [f32], m: &mut [f32], v: &mut [f32], k: &[f32; 8]) {
    let [decay, b1, _, b2, _, bc2_sqrt, step_size, eps] = *k;
    let inv_bc2_sqrt = 1.0 / bc2_sqrt;
    elementwise([p, m, v], [], |[p, m, v], []| {
        let (m, v) = (m * b1, v * b2);
        let denom = v.sqrt() * inv_bc2_sqrt + eps;
        [p * decay - m / denom * step_size, m, v]
    });
}

/// While it lives, this thread flushes subnormal floats to zero (the FTZ and DAZ bits of its
/// MXCSR, what `torch.set_flush_denormal(True)` sets): Adam's moments for rarely seen rows decay
/// into subnormals, which are ~40× slower to compute with; flushing them changes no reported
/// figure. Dropping it puts the thread's previous mode back, so a fit leaves its caller's
/// floating-point mode as it found it.
pub(crate) struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

/// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) bits.
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = 0x8040;

impl FlushDenormals {
    /// Flushes subnormals on this thread until dropped.
    pub fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        #[allow(deprecated)]
        // SAFETY: only floating-point control bits of the current thread change.
        unsafe {
            use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
            let saved = _mm_getcsr();
            _mm_setcsr(saved | FTZ_DAZ);
            FlushDenormals { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        FlushDenormals {}
    }

    /// Whether this thread flushes subnormals now (so that a helper thread can do as it does).
    pub fn active() -> bool {
        #[cfg(target_arch = "x86_64")]
        #[allow(deprecated)]
        // SAFETY: reads the current thread's floating-point control bits only.
        unsafe {
            std::arch::x86_64::_mm_getcsr() & FTZ_DAZ == FTZ_DAZ
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        #[allow(deprecated)]
        // SAFETY: puts back the control bits this thread had when the guard was made.
        unsafe {
            std::arch::x86_64::_mm_setcsr(self.saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::aligned::LINE;
    use super::*;

    /// A marked half's rows each start on a cache line of their own, hold the state and mark, and
    /// span an odd number of lines; its rows keep what was loaded.
    #[test]
    fn marked_rows_own_their_cache_lines() {
        for w in 1..70 {
            let stride = marked_stride(w);
            let lines = stride / FLOATS_PER_LINE;
            assert!(stride > 3 * w && stride.is_multiple_of(FLOATS_PER_LINE) && lines % 2 == 1, "width {w}");
        }
        let p = Tensor::arange(5 * 11, (Kind::Float, Device::Cpu)).view([5, 11]);
        let side = Side::load(&[(&p, &p.zeros_like(), &p.zeros_like())], true).unwrap();
        for r in 0..5 {
            assert!((side.params(r).as_ptr() as usize).is_multiple_of(LINE));
            assert_eq!(side.params(r), &Vec::<f32>::try_from(p.get(r as i64)).unwrap()[..]);
        }
    }

    /// AdamW's step, dispatched to the widest vectors the CPU has (AVX-512 or AVX2), gives the
    /// bits of the same loop built for the baseline CPU, at every row width and for moments of any
    /// size, subnormal ones included.
    #[test]
    fn vectorized_steps_are_the_baseline_bits() {
        let k = [0.9999f32, 0.93, 0.07, 0.99, 0.01, 0.3, 4e-3, 1e-8];
        for w in 1..70 {
            let value = |e: usize, seed: usize| ((e * seed) % 23) as f32 * 10f32.powi(-((e * 7 % 45) as i32)) - 0.5;
            let start: [Vec<f32>; 4] = std::array::from_fn(|j| (0..w).map(|e| value(e, j + 3).abs() * 0.3).collect());
            let [mut a, mut b] = [start.clone(), start.clone()];
            let [p, m, v, g] = &mut a;
            adamw(p, m, v, g, &k);
            let [p, m, v, g] = &mut b;
            adamw_impl(p, m, v, g, &k);
            let bits = |x: &[Vec<f32>; 4]| x.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "width {w}");
        }
    }

    /// The forward and backward pass compiled for rows of 11 floats gives the bits of the pass for
    /// any width (built for the baseline CPU, and dispatched to the widest vectors the CPU has):
    /// the loss and every gradient row, with and without a `y_range`.
    #[test]
    fn the_pass_for_one_width_is_the_pass_for_any() {
        let (rows, nf) = (40usize, 10usize);
        let side = |seed: usize| {
            let table = |width: usize| {
                let values: Vec<f32> =
                    (0..rows * width).map(|e| ((e * seed) % 17) as f32 * 0.07 - 0.5 + 1e-4 * e as f32).collect();
                Tensor::from_slice(&values).view([rows as i64, width as i64])
            };
            let (w, b) = (table(nf), table(1));
            let (zw, zb) = (w.zeros_like(), b.zeros_like());
            Side::load(&[(&w, &zw, &zw), (&b, &zb, &zb)], false).unwrap()
        };
        let sides = [side(3), side(5)];
        let n = 300;
        let data = Arc::new(Encoded {
            users: (0..n).map(|k| (k * 7 % rows) as u32).collect(),
            items: (0..n).map(|k| (k * k % rows) as u32).collect(),
            ratings: (0..n).map(|k| (k % 5) as f32 + 1.0).collect(),
        });
        let mut prepared = Prepared::default();
        let batch: Vec<u32> = (0..n as u32).collect();
        Preparer::new(data, [rows, rows], Level::L1, None).prepare(&batch, 1, &mut prepared, None);
        for y_range in [None, Some((0.0, 5.5))] {
            let [mut of, mut any, mut wide] = <[[Vec<f32>; 2]; 3]>::default();
            let p = &prepared;
            let a = forward_backward_of::<11>(&mut of, &p.touched, &sides, &p.batch, y_range);
            let b = forward_backward_any(&mut any, &p.touched, &sides, &p.batch, nf, y_range);
            let c = forward_backward(&mut wide, &p.touched, &sides, &p.batch, nf, y_range);
            let bits = |g: &[Vec<f32>; 2]| g.iter().flatten().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(a.to_bits() == b.to_bits() && bits(&of) == bits(&any), "y_range {y_range:?}");
            assert!(c.to_bits() == b.to_bits() && bits(&wide) == bits(&any), "y_range {y_range:?}, dispatched");
            assert!(!of[1].is_empty() && of[1].iter().any(|&g| g != 0.0));
        }
    }

    /// Predicting many pairs on two threads gives the bits of one thread, with subnormals flushed
    /// (as during a fit) or not.
    #[test]
    fn predictions_split_over_two_threads_are_the_same_bits() {
        let (rows, nf) = (50usize, 4usize);
        let table = |width: usize, seed: usize| {
            let values: Vec<f32> = (0..rows * width).map(|e| ((e * seed) % 11) as f32 * 0.1 - 0.5).collect();
            Tensor::from_slice(&values).view([rows as i64, width as i64])
        };
        let side = |seed: usize| {
            let (w, b) = (table(nf, seed), table(1, seed + 1));
            let (zw, zb) = (w.zeros_like(), b.zeros_like());
            Side::load(&[(&w, &zw, &zw), (&b, &zb, &zb)], false).unwrap()
        };
        let n = PREDICT_SPLIT_FROM + 7;
        let users: Vec<u32> = (0..n).map(|k| (k * 7 % rows) as u32).collect();
        let items: Vec<u32> = (0..n).map(|k| (k * 13 % rows) as u32).collect();
        let data = Arc::new(Encoded { users: users.clone(), items: items.clone(), ratings: vec![3.0; n] });
        let tables =
            DotTables { tables: Tables::new([side(3), side(5)], &data).unwrap(), nf, y_range: Some((0.0, 5.5)) };
        for flush in [false, true] {
            let _flush = flush.then(FlushDenormals::new);
            let mut one = vec![0.0; n];
            predict_pairs(&mut one, &tables, &users, &items);
            let two = tables.predict(&users, &items);
            assert!(one.iter().zip(&two).all(|(a, b)| a.to_bits() == b.to_bits()), "flush {flush}");
        }
    }
}
