//! The exact sparse path, the default for `EmbeddingDotBias` on the CPU: fastai's dense AdamW
//! semantics at the cost of the rows a batch touches. Each row is marked with the step it was last
//! brought up to date with; the zero-gradient steps it missed are applied in closed form
//! ([`CatchUp`]) just before a batch reads it, and for every row at each synchronisation point
//! (validation, end of fit), so every weight is what the dense path computes, up to rounding.
use std::ops::RangeInclusive;
use std::sync::Arc;

use super::catchup::{CatchUp, RowGap};
use super::feed::Touched;
#[cfg(target_arch = "x86_64")]
use super::narrow;
use super::pair::Pair;
use super::tables::{adamw_rows, DotTables, Half, Scratch, Side, SideRule};
use super::{Engine, Live};
use crate::error::Result;
use crate::kernels::{vectorized, AHEAD};

/// Sparse AdamW with closed-form catch-up of untouched rows.
pub(crate) struct Exact {
    /// The tables, their rows marked.
    tables: DotTables,
    scratch: Scratch,
    catchup: CatchUp,
    par: Option<Pair>,
}

impl Exact {
    /// An engine over `tables` (marked rows) for a fit whose schedule `catchup` was built from;
    /// `par` runs its steps on two threads.
    pub fn new(tables: DotTables, catchup: CatchUp, par: bool) -> Self {
        let scratch = Scratch::new(&tables.tables, par, Some(catchup.clone()));
        Exact { scratch, tables, catchup, par: par.then(Pair::new) }
    }
}

/// Step `k` on one half of a side: rows are caught up to step `k − 1` when opened, and marked as
/// standing at step `k`; then the touched ones step.
#[derive(Clone, Copy)]
pub(crate) struct CatchUpRows<'a> {
    pub catchup: &'a CatchUp,
    pub k: usize,
}

impl<'a> CatchUpRows<'a> {
    /// The rule of step `k` for every half (the catch-up's tables made ready for it).
    pub fn new(catchup: &'a mut CatchUp, k: usize) -> Self {
        catchup.advance(k);
        CatchUpRows { catchup, k }
    }
}

/// Brings every row of both sides (marked) up to step `k` (a synchronisation point), and tells the
/// batches' feed in `scratch`, which works out where rows stand.
pub(crate) fn catch_up_sides(c: &mut CatchUp, sides: &mut [Side; 2], scratch: &mut Scratch, k: usize) {
    scratch.synced(k);
    c.advance(k);
    for half in sides.iter_mut().flat_map(|side| &mut side.halves) {
        let rows: Vec<u32> = half.rows().collect();
        catch_up_rows(c, half, &rows, k);
    }
}

impl SideRule for CatchUpRows<'_> {
    fn open(&mut self, half: &mut Half, rows: &[u32], gaps: &[RowGap]) {
        catch_up_prepared(self.catchup, half, rows, gaps, self.k);
    }

    fn update(&mut self, half: &mut Half, touched: &Touched, grads: &[f32]) {
        let (rows, grads) = touched.of_parity(half.parity, grads, half.w);
        adamw_rows(half, rows, grads, self.catchup.scalars(self.k));
    }
}

vectorized! {
    /// Brings every row of `rows` (all in `half`, marked) from the step it stands at up to step
    /// `k`, prefetching ahead.
    fn catch_up_rows => catch_up_rows_impl(c: &CatchUp, half: &mut Half, rows: &[u32], k: usize)
}

#[inline(always)]
fn catch_up_rows_impl(c: &CatchUp, half: &mut Half, rows: &[u32], k: usize) {
    for (j, &row) in rows.iter().enumerate() {
        if let Some(&far) = rows.get(j + 2 * AHEAD) {
            half.prefetch(far as usize);
        }
        if let Some(&ahead) = rows.get(j + AHEAD) {
            let k0 = half.mark(ahead as usize) as usize;
            if k0 < k {
                c.prefetch(k0, k, half.level);
            }
        }
        let row = row as usize;
        let step = half.mark(row) as usize;
        if step < k {
            let (p, m, v) = half.state(row);
            c.apply(step, k, p, m, v);
            half.set_mark(row, k);
        }
    }
}

/// Before step `k` touches `rows` (all in `half`, marked): [`catch_up_prepared_wide`], or for rows
/// of at most 16 floats on a CPU with AVX-512, [`narrow::catch_up_prepared`] (the same bits).
pub(crate) fn catch_up_prepared(c: &CatchUp, half: &mut Half, rows: &[u32], gaps: &[RowGap], k: usize) {
    #[cfg(target_arch = "x86_64")]
    if narrow::fits(half.w) {
        // SAFETY: `fits` checked that the CPU has AVX-512F.
        return unsafe { narrow::catch_up_prepared(c, half, rows, gaps, k) };
    }
    catch_up_prepared_wide(c, half, rows, gaps, k)
}

vectorized! {
    /// Before step `k` touches `rows` (all in `half`, marked): brings each row up to step `k − 1`
    /// through its gap in `gaps` (computed ahead from where the order says it stands, which its
    /// mark confirms), prefetching ahead, and marks it as standing at step `k`, which the step's
    /// update will make true. The mark shares the row's cache lines: kept in a table of their own
    /// (with a lower bound of the row's second moments that spared the search for elements near
    /// ε), marks cost a line per row, and 5-epoch fits of the synthetic 25M set took 5.87–6.29 s
    /// against 5.56–5.70 s (six each, alternating); the lesson's fits were not slower.
    fn catch_up_prepared_wide => catch_up_prepared_impl(c: &CatchUp, half: &mut Half, rows: &[u32], gaps: &[RowGap], k: usize)
}

#[inline(always)]
fn catch_up_prepared_impl(c: &CatchUp, half: &mut Half, rows: &[u32], gaps: &[RowGap], k: usize) {
    assert_eq!(rows.len(), gaps.len(), "the exact path's batches are prepared with their rows' gaps");
    for (j, (&row, g)) in rows.iter().zip(gaps).enumerate() {
        if let Some(&ahead) = rows.get(j + AHEAD) {
            half.prefetch(ahead as usize);
        }
        let row = row as usize;
        debug_assert_eq!(half.mark(row), g.k0, "row {row} stands where its order says");
        if (g.k0 as usize) + 1 < k {
            let (p, m, v) = half.state(row);
            c.apply_gap(&g.gap, g.k0 as usize, k - 1, p, m, v);
        }
        half.set_mark(row, k);
    }
}

impl Engine for Exact {
    fn step(&mut self, _live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        let Exact { tables, scratch, catchup, par } = self;
        let [mut r00, mut r01, mut r10, mut r11] = [CatchUpRows::new(catchup, k); 4];
        tables.step(batch, scratch, par.as_mut(), [[&mut r00, &mut r01], [&mut r10, &mut r11]]) as f64
    }

    fn epoch(&mut self, order: &Arc<Vec<u32>>, bs: usize, steps: RangeInclusive<usize>) {
        self.scratch.epoch(order, bs, steps);
    }

    fn sync(&mut self, live: &mut Live<'_>, k: usize) -> Result<()> {
        catch_up_sides(&mut self.catchup, &mut self.tables.tables.sides, &mut self.scratch, k);
        self.tables.store(live.params, live.opt)
    }

    fn predict(&mut self, k: usize, users: &[u32], items: &[u32]) -> Option<Vec<f32>> {
        catch_up_sides(&mut self.catchup, &mut self.tables.tables.sides, &mut self.scratch, k);
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

    /// Each row's mark follows it: a step's touched rows stand at that step once opened and still
    /// do after the update (which writes their state, not their marks), the others stay where they
    /// were; storing the side writes back the parameters and moments alone.
    #[test]
    fn rows_are_marked_where_they_stand() {
        let (rows, w, n) = (40usize, 5usize, 300usize);
        let mut c = one_cycle(n);
        let zeros = || Tensor::zeros([rows as i64, w as i64], (Kind::Float, tch::Device::Cpu));
        let p = Tensor::from_slice(&(0..rows * w).map(|e| (e % 7) as f32 * 0.1 - 0.3).collect::<Vec<_>>())
            .view([rows as i64, w as i64]);
        let mut side = Side::load(&[(&p, &zeros(), &zeros())], true).unwrap();
        let mut stands = vec![0u32; rows];
        for k in 1..=n {
            c.advance(k);
            // Even rows every step from step 100 on, others now and then; gradients of all sizes.
            let touched: Vec<u32> = (0..rows as u32)
                .filter(|&r| (r % 2 == 0 && k >= 100) || (k * 7 + r as usize).is_multiple_of(23))
                .collect();
            for (parity, half) in side.halves.iter_mut().enumerate() {
                let mine: Vec<u32> = touched.iter().copied().filter(|r| *r as usize % 2 == parity).collect();
                let gaps: Vec<RowGap> = mine
                    .iter()
                    .map(|&r| {
                        let k0 = stands[r as usize];
                        let gap = if k0 as usize + 1 < k { c.gap(k0 as usize, k - 1) } else { Default::default() };
                        RowGap { k0, gap }
                    })
                    .collect();
                catch_up_prepared(&c, half, &mine, &gaps, k);
                let grads: Vec<f32> =
                    (0..mine.len() * w).map(|e| ((e * 13 + k) % 17) as f32 * 10f32.powi(-((e % 9) as i32))).collect();
                adamw_rows(half, &mine, &grads, c.scalars(k));
                mine.iter().for_each(|&r| stands[r as usize] = k as u32);
            }
            for (r, &at) in stands.iter().enumerate() {
                assert_eq!(side.halves[r % 2].mark(r), at, "step {k}, row {r}");
            }
        }
        let (p, m, v) = (zeros(), zeros(), zeros());
        side.store(&[(&p, &m, &v)]).unwrap();
        for r in 0..rows {
            let (hp, hm, hv) = side.halves[r % 2].state(r);
            for (t, h) in [(&p, &*hp), (&m, &*hm), (&v, &*hv)] {
                assert_eq!(Vec::<f32>::try_from(t.get(r as i64)).unwrap(), h, "row {r}");
            }
        }
    }

    /// Catching rows up, dispatched to the widest vectors the CPU has (AVX-512 or AVX2), gives the
    /// bits of the same loops built for the baseline CPU, at the widths of the lesson (50 factors
    /// and a bias), of `bench --scale` (10, 40) and others, elements near ε included: at a
    /// synchronisation point (`catch_up_rows`), and before a step from prepared gaps
    /// (`catch_up_prepared`, for rows of up to 16 floats one AVX-512 vector a row where the CPU has
    /// it, `narrow.rs`).
    #[test]
    fn vectorized_catch_ups_are_the_baseline_bits() {
        let n = 400;
        let mut c = one_cycle(n);
        c.advance(n);
        for w in (1..=16).chain([23, 41, 51]) {
            let rows = 30usize;
            let table = |seed: usize, scale: f32| {
                let x: Vec<f32> = (0..rows * w)
                    .map(|e| ((e * seed) % 19) as f32 * scale * 10f32.powi(-((e * 5 % 21) as i32)))
                    .collect();
                Tensor::from_slice(&x).view([rows as i64, w as i64])
            };
            let (p, m, v) = (table(3, 0.1), table(7, 0.01), table(11, 1e-3));
            let [mut a, mut b, mut c0, mut c1] = [(); 4].map(|_| {
                let mut side = Side::load(&[(&p, &m, &v)], true).unwrap();
                // Each row stands at its own step, some of them near the end (short gaps).
                for r in 0..rows {
                    side.halves[r % 2].set_mark(r, (r * 37) % (n - 1));
                }
                side
            });
            for parity in 0..2 {
                let mine: Vec<u32> = a.halves[parity].rows().collect();
                catch_up_rows(&c, &mut a.halves[parity], &mine, n);
                catch_up_rows_impl(&c, &mut b.halves[parity], &mine, n);
                let gaps: Vec<RowGap> = mine
                    .iter()
                    .map(|&r| {
                        let k0 = c0.halves[parity].mark(r as usize);
                        let gap = if k0 as usize + 1 < n { c.gap(k0 as usize, n - 1) } else { Default::default() };
                        RowGap { k0, gap }
                    })
                    .collect();
                catch_up_prepared(&c, &mut c0.halves[parity], &mine, &gaps, n);
                catch_up_prepared_impl(&c, &mut c1.halves[parity], &mine, &gaps, n);
                let bits = |side: &mut Side, r: u32| {
                    assert_eq!(side.halves[parity].mark(r as usize), n as u32);
                    let (p, m, v) = side.halves[parity].state(r as usize);
                    p.iter().chain(&*m).chain(&*v).map(|x| x.to_bits()).collect::<Vec<_>>()
                };
                for &r in &mine {
                    assert_eq!(bits(&mut a, r), bits(&mut b, r), "width {w}, row {r}");
                    assert_eq!(bits(&mut c0, r), bits(&mut c1, r), "width {w}, row {r}, prepared");
                }
            }
        }
    }
}
