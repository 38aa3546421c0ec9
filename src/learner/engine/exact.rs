//! The exact sparse path, the default for `EmbeddingDotBias` on the CPU: fastai's dense AdamW
//! semantics at the cost of the rows a batch touches. Each row remembers the step it was last
//! brought up to date; the zero-gradient steps it missed are applied in closed form
//! ([`CatchUp`]) just before a batch reads it, and for every row at each synchronisation point
//! (validation, end of fit), so every weight is what the dense path computes, up to rounding.
use std::ops::RangeInclusive;
use std::sync::Arc;

use super::catchup::{CatchUp, RowGap};
use super::feed::Touched;
use super::pair::Pair;
use super::tables::{adamw_rows, DotTables, Half, Scratch, Side, SideRule};
use super::{Engine, Live};
use crate::error::Result;
use crate::kernels::{prefetch, vectorized, AHEAD};

/// Sparse AdamW with closed-form catch-up of untouched rows.
pub(crate) struct Exact {
    tables: DotTables,
    scratch: Scratch,
    catchup: CatchUp,
    /// Per side and half, where each row stands.
    last: [[Vec<RowMark>; 2]; 2],
    par: Option<Pair>,
}

impl Exact {
    /// An engine over `tables` for a fit whose schedule `catchup` was built from; `par` runs its
    /// steps on two threads.
    pub fn new(tables: DotTables, catchup: CatchUp, par: bool) -> Self {
        let last = last_steps(&tables.tables.sides);
        let scratch = Scratch::new(&tables.tables, par, Some(catchup.clone()));
        Exact { scratch, tables, catchup, last, par: par.then(Pair::new) }
    }
}

/// Where a row stands: the local step it is up to date with (within a step, a row the step opened
/// is marked with it already), and a lower bound of its second moments (0 when unknown), which
/// spares most catch-ups the search for elements near ε.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RowMark {
    step: u32,
    v_floor: f32,
}

/// Step `k` on one half of a side: rows are caught up to step `k − 1` when opened, and marked as
/// standing at step `k`; then the touched ones step.
pub(crate) struct CatchUpRows<'a> {
    pub catchup: &'a CatchUp,
    /// Where the half's rows stand (row `r` at `r / 2`).
    pub last: &'a mut [RowMark],
    pub k: usize,
}

impl<'a> CatchUpRows<'a> {
    /// The rules of step `k` for both halves of both sides (the catch-up's tables made ready for it).
    pub fn all(catchup: &'a mut CatchUp, last: &'a mut [[Vec<RowMark>; 2]; 2], k: usize) -> [[Self; 2]; 2] {
        catchup.advance(k);
        let catchup = &*catchup;
        last.each_mut().map(|halves| halves.each_mut().map(|last| CatchUpRows { catchup, last, k }))
    }
}

/// Per side and half, where each row stands for a fit that starts now.
pub(crate) fn last_steps(sides: &[Side; 2]) -> [[Vec<RowMark>; 2]; 2] {
    sides.each_ref().map(|side| side.halves.each_ref().map(|h| vec![RowMark::default(); h.rows().len()]))
}

/// Brings every row of both sides up to step `k` (a synchronisation point), and tells the batches'
/// feed in `scratch`, which works out where rows stand.
pub(crate) fn catch_up_sides(
    c: &mut CatchUp,
    last: &mut [[Vec<RowMark>; 2]; 2],
    sides: &mut [Side; 2],
    scratch: &mut Scratch,
    k: usize,
) {
    scratch.synced(k);
    c.advance(k);
    for (side, last) in sides.iter_mut().zip(last) {
        for (half, last) in side.halves.iter_mut().zip(last) {
            let rows: Vec<u32> = half.rows().collect();
            catch_up_rows(c, last, half, &rows, k);
        }
    }
}

impl SideRule for CatchUpRows<'_> {
    fn open(&mut self, half: &mut Half, rows: &[u32], gaps: &[RowGap]) {
        catch_up_prepared(self.catchup, self.last, half, rows, gaps, self.k);
    }

    fn update(&mut self, half: &mut Half, touched: &Touched, grads: &[f32]) {
        let (rows, grads) = touched.of_parity(half.parity, grads, half.w);
        adamw_rows(half, rows, grads, self.catchup.scalars(self.k));
    }
}

/// The smallest element of `x` (∞ for none; a NaN is never chosen), eight lanes at a time: a
/// minimum is exact, so the order in which elements are compared changes nothing. Plain loops: with
/// `Iterator::fold` the compiler kept the loop out of line, in SSE code called per row from the
/// AVX2 loop: 6.6% of the lesson's profile, against 4.5% inlined (its fits 4–9% faster).
#[inline(always)]
fn smallest(x: &[f32]) -> f32 {
    let min = |low: f32, x: f32| if x < low { x } else { low };
    let groups = x.chunks_exact(8);
    let mut rest = f32::INFINITY;
    for &x in groups.remainder() {
        rest = min(rest, x);
    }
    let mut low = [f32::INFINITY; 8];
    for group in groups {
        for l in 0..8 {
            low[l] = min(low[l], group[l]);
        }
    }
    let low: [f32; 4] = std::array::from_fn(|l| min(low[l], low[l + 4]));
    min(min(min(low[0], low[2]), min(low[1], low[3])), rest)
}

vectorized! {
    /// Brings every row of `rows` (all in `half`) from `last[row / 2]` up to step `k`, prefetching
    /// ahead.
    fn catch_up_rows => catch_up_rows_impl(c: &CatchUp, last: &mut [RowMark], half: &mut Half, rows: &[u32], k: usize)
}

#[inline(always)]
fn catch_up_rows_impl(c: &CatchUp, last: &mut [RowMark], half: &mut Half, rows: &[u32], k: usize) {
    for (j, &row) in rows.iter().enumerate() {
        if let Some(&far) = rows.get(j + 2 * AHEAD) {
            prefetch(last, far as usize / 2, 1, half.level);
        }
        if let Some(&ahead) = rows.get(j + AHEAD) {
            let ahead = ahead as usize;
            half.prefetch(ahead);
            let k0 = last[ahead / 2].step as usize;
            if k0 < k {
                c.prefetch(k0, k, half.level);
            }
        }
        let row = row as usize;
        let RowMark { step, v_floor } = last[row / 2];
        if (step as usize) < k {
            let (p, m, v) = half.state(row);
            let v_floor = c.apply(step as usize, k, p, m, v, v_floor);
            last[row / 2] = RowMark { step: k as u32, v_floor };
        }
    }
}

vectorized! {
    /// Before step `k` touches `rows` (all in `half`): brings each row up to step `k − 1` through its
    /// gap in `gaps` (computed ahead from where the order says it stands, `last[row / 2].step`),
    /// prefetching ahead, and marks it as standing at step `k`, which the step's update will make
    /// true. The mark's bound of the second moments holds after the update: it only adds squares
    /// to `β2·v`, and rounding is monotone, so `β2` times the smallest `v` bounds every element.
    /// Marking here, where the row is at hand, saves a pass over the rows after the update: the
    /// lesson's fits took 0.043–0.048 s against 0.044–0.050 s (three sets of 40, alternating, their
    /// means), 5-epoch fits of the synthetic 25M set 6.92 s against 7.01 s (six each, alternating).
    /// The smallest `v` is taken before the gap scales it (the same number: rounding is monotone),
    /// since reading the row just written, in groups that overlap, stalled: 7.11 s.
    fn catch_up_prepared => catch_up_prepared_impl(
        c: &CatchUp, last: &mut [RowMark], half: &mut Half, rows: &[u32], gaps: &[RowGap], k: usize
    )
}

#[inline(always)]
fn catch_up_prepared_impl(c: &CatchUp, last: &mut [RowMark], half: &mut Half, rows: &[u32], gaps: &[RowGap], k: usize) {
    assert_eq!(rows.len(), gaps.len(), "the exact path's batches are prepared with their rows' gaps");
    let beta2 = c.scalars(k)[3];
    for (j, (&row, g)) in rows.iter().zip(gaps).enumerate() {
        if let Some(&far) = rows.get(j + 2 * AHEAD) {
            prefetch(last, far as usize / 2, 1, half.level);
        }
        if let Some(&ahead) = rows.get(j + AHEAD) {
            half.prefetch(ahead as usize);
        }
        let row = row as usize;
        let RowMark { step, v_floor } = last[row / 2];
        debug_assert_eq!(step, g.k0, "row {row} stands where its order says");
        let v_floor = if (step as usize) + 1 < k {
            let (p, m, v) = half.state(row);
            let low = smallest(v) * g.gap.v_scale;
            c.apply_gap(&g.gap, step as usize, k - 1, p, m, v, v_floor);
            low
        } else {
            v_floor
        };
        last[row / 2] = RowMark { step: k as u32, v_floor: v_floor * beta2 };
    }
}

impl Engine for Exact {
    fn step(&mut self, _live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        let Exact { tables, scratch, catchup, last, par } = self;
        let [[mut r00, mut r01], [mut r10, mut r11]] = CatchUpRows::all(catchup, last, k);
        tables.step(batch, scratch, par.as_mut(), [[&mut r00, &mut r01], [&mut r10, &mut r11]]) as f64
    }

    fn epoch(&mut self, order: &Arc<Vec<u32>>, bs: usize, steps: RangeInclusive<usize>) {
        self.scratch.epoch(order, bs, steps);
    }

    fn sync(&mut self, live: &mut Live<'_>, k: usize) -> Result<()> {
        catch_up_sides(&mut self.catchup, &mut self.last, &mut self.tables.tables.sides, &mut self.scratch, k);
        self.tables.store(live.params, live.opt)
    }

    fn predict(&mut self, k: usize, users: &[u32], items: &[u32]) -> Option<Vec<f32>> {
        catch_up_sides(&mut self.catchup, &mut self.last, &mut self.tables.tables.sides, &mut self.scratch, k);
        Some(self.tables.predict(users, items))
    }
}

#[cfg(test)]
mod tests {
    use super::super::catchup::Plan;
    use super::*;
    use crate::learner::schedule::OneCycle;
    use tch::{Kind, Tensor};

    /// The catch-up tables of fastai's one-cycle schedule over `n` steps.
    fn one_cycle(n: usize) -> CatchUp {
        let cycle = OneCycle::new(5e-3);
        let plan = Plan {
            lr_mom: (0..n).map(|i| cycle.at(i, n)).collect(),
            steps_before: 0,
            beta2: 0.99,
            eps: 1e-8,
            wd: 0.01,
            bs: 8,
        };
        CatchUp::new(&plan).expect("fastai's schedule")
    }

    /// After each step, every row the step touched is marked as standing at that step, with a bound
    /// at or below each of its second moments (so the search for elements near ε is never wrongly
    /// spared), whether the row was caught up across a gap, stepped just before, or never touched.
    #[test]
    fn marks_set_when_rows_open_hold_after_the_update() {
        let (rows, w, n) = (40usize, 5usize, 300usize);
        let mut c = one_cycle(n);
        let zeros = Tensor::zeros([rows as i64, w as i64], (Kind::Float, tch::Device::Cpu));
        let p = Tensor::from_slice(&(0..rows * w).map(|e| (e % 7) as f32 * 0.1 - 0.3).collect::<Vec<_>>())
            .view([rows as i64, w as i64]);
        let mut side = Side::load(&[(&p, &zeros, &zeros)]).unwrap();
        let mut last = [vec![RowMark::default(); rows / 2], vec![RowMark::default(); rows / 2]];
        for k in 1..=n {
            c.advance(k);
            // Even rows every step from step 100 on, others now and then; gradients of all sizes.
            let touched: Vec<u32> = (0..rows as u32)
                .filter(|&r| (r % 2 == 0 && k >= 100) || (k * 7 + r as usize).is_multiple_of(23))
                .collect();
            for (parity, half) in side.halves.iter_mut().enumerate() {
                let mine: Vec<u32> = touched.iter().copied().filter(|r| *r as usize % 2 == parity).collect();
                let last = &mut last[parity];
                let gaps: Vec<RowGap> = mine
                    .iter()
                    .map(|&r| {
                        let k0 = last[r as usize / 2].step;
                        let gap = if k0 as usize + 1 < k { c.gap(k0 as usize, k - 1) } else { Default::default() };
                        RowGap { k0, gap }
                    })
                    .collect();
                catch_up_prepared(&c, last, half, &mine, &gaps, k);
                let grads: Vec<f32> =
                    (0..mine.len() * w).map(|e| ((e * 13 + k) % 17) as f32 * 10f32.powi(-((e % 9) as i32))).collect();
                adamw_rows(half, &mine, &grads, c.scalars(k));
                for &r in &mine {
                    let mark = last[r as usize / 2];
                    let v = half.state(r as usize).2;
                    assert_eq!(mark.step as usize, k);
                    assert!(v.iter().all(|&v| mark.v_floor <= v), "step {k}, row {r}: {} above {v:?}", mark.v_floor);
                }
            }
        }
        assert!(last.iter().flatten().any(|m| m.v_floor > 0.0), "some bounds are more than 0");
    }

    /// Catching rows up, dispatched to the widest vectors the CPU has (AVX-512 or AVX2), gives the
    /// bits of the same loops built for the baseline CPU, at the widths of the lesson (50 factors
    /// and a bias), of `bench --scale` (10, 40) and others, elements near ε included.
    #[test]
    fn vectorized_catch_ups_are_the_baseline_bits() {
        let n = 400;
        let mut c = one_cycle(n);
        c.advance(n);
        for w in [1usize, 7, 11, 16, 23, 41, 51] {
            let rows = 30usize;
            let table = |seed: usize, scale: f32| {
                let x: Vec<f32> = (0..rows * w)
                    .map(|e| ((e * seed) % 19) as f32 * scale * 10f32.powi(-((e * 5 % 21) as i32)))
                    .collect();
                Tensor::from_slice(&x).view([rows as i64, w as i64])
            };
            let (p, m, v) = (table(3, 0.1), table(7, 0.01), table(11, 1e-3));
            let [mut a, mut b] = [(), ()].map(|_| Side::load(&[(&p, &m, &v)]).unwrap());
            // Each row stands at its own step, some of them near the end (short gaps).
            let stands = |rows: usize| -> Vec<RowMark> {
                (0..rows).map(|l| RowMark { step: ((l * 37) % (n - 1)) as u32, v_floor: 0.0 }).collect()
            };
            for parity in 0..2 {
                let mine: Vec<u32> = a.halves[parity].rows().collect();
                let (mut la, mut lb) = (stands(mine.len()), stands(mine.len()));
                catch_up_rows(&c, &mut la, &mut a.halves[parity], &mine, n);
                catch_up_rows_impl(&c, &mut lb, &mut b.halves[parity], &mine, n);
                for &r in &mine {
                    let bits = |side: &mut Side| {
                        let (p, m, v) = side.halves[parity].state(r as usize);
                        p.iter().chain(&*m).chain(&*v).map(|x| x.to_bits()).collect::<Vec<_>>()
                    };
                    assert_eq!(bits(&mut a), bits(&mut b), "width {w}, row {r}");
                }
            }
        }
    }

    /// Eight lanes, any remainder, and NaNs (never chosen) give what a plain scan gives.
    #[test]
    fn smallest_is_the_plain_minimum_at_any_length() {
        for n in 0..50 {
            let mut x: Vec<f32> = (0..n).map(|e| ((e * 37 % 23) as f32 - 3.0) * 1e-3).collect();
            if n > 5 {
                x[5] = f32::NAN;
            }
            let plain = x.iter().fold(f32::INFINITY, |low, &x| if x < low { x } else { low });
            assert_eq!(smallest(&x).to_bits(), plain.to_bits(), "n {n}");
        }
    }
}
