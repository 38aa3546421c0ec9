//! The exact sparse path, the default for `EmbeddingDotBias` on the CPU: fastai's dense AdamW
//! semantics at the cost of the rows a batch touches. Each row remembers the step it was last
//! brought up to date; the zero-gradient steps it missed are applied in closed form
//! ([`CatchUp`]) just before a batch reads it, and for every row at each synchronisation point
//! (validation, end of fit), so every weight is what the dense path computes, up to rounding.
use super::catchup::CatchUp;
use super::pair::Pair;
use super::tables::{adamw_rows, prefetch, vectorized, DotTables, Scratch, Side, SideRule, Touched, AHEAD};
use super::{Engine, Live};
use crate::error::Result;

/// Sparse AdamW with closed-form catch-up of untouched rows.
pub(crate) struct Exact {
    tables: DotTables,
    scratch: Scratch,
    catchup: CatchUp,
    /// Per side and row, the local step the row is up to date with.
    last: [Vec<u32>; 2],
    par: Option<Pair>,
}

impl Exact {
    /// An engine over `tables` for a fit whose schedule `catchup` was built from; `par` runs the
    /// two sides on two threads.
    pub fn new(tables: DotTables, catchup: CatchUp, par: bool) -> Self {
        let par = par.then(Pair::new);
        let last = [0, 1].map(|s| vec![0u32; tables.tables.sides[s].rows()]);
        Exact { scratch: Scratch::new(&tables.tables), tables, catchup, last, par }
    }
}

/// Step `k` on one side: rows are caught up to step `k − 1` when opened, then the touched ones step.
pub(crate) struct CatchUpRows<'a> {
    pub catchup: &'a CatchUp,
    pub last: &'a mut [u32],
    pub k: usize,
}

impl CatchUpRows<'_> {
    /// Brings `rows` of `side` up to step `k`.
    pub fn catch_up(&mut self, side: &mut Side, rows: impl ExactSizeIterator<Item = u32>, k: usize) {
        let rows: Vec<u32> = rows.collect();
        catch_up_rows(self.catchup, self.last, side, &rows, k);
    }
}

impl SideRule for CatchUpRows<'_> {
    fn open(&mut self, side: &mut Side, rows: &[u32]) {
        catch_up_rows(self.catchup, self.last, side, rows, self.k - 1);
    }

    fn update(&mut self, side: &mut Side, touched: &Touched, grads: &[f32]) {
        adamw_rows(side, &touched.rows, grads, self.catchup.scalars(self.k));
        for &row in &touched.rows {
            self.last[row as usize] = self.k as u32;
        }
    }
}

vectorized! {
    /// Brings every row of `rows` from `last[row]` up to step `k`, prefetching ahead.
    fn catch_up_rows => catch_up_rows_impl(c: &CatchUp, last: &mut [u32], side: &mut Side, rows: &[u32], k: usize)
}

#[inline(always)]
fn catch_up_rows_impl(c: &CatchUp, last: &mut [u32], side: &mut Side, rows: &[u32], k: usize) {
    let w = side.w;
    for (j, &row) in rows.iter().enumerate() {
        if let Some(&far) = rows.get(j + 2 * AHEAD) {
            prefetch(last, far as usize, 1);
        }
        if let Some(&ahead) = rows.get(j + AHEAD) {
            let ahead = ahead as usize;
            prefetch(&side.data, ahead * 3 * w, 3 * w);
            let k0 = last[ahead] as usize;
            if k0 < k {
                c.prefetch(k0, k);
            }
        }
        let row = row as usize;
        let k0 = last[row] as usize;
        if k0 < k {
            let (p, m, v) = side.state(row);
            c.apply(k0, k, p, m, v);
            last[row] = k as u32;
        }
    }
}

impl Engine for Exact {
    fn step(&mut self, _live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        let Exact { tables, scratch, catchup, last: [l0, l1], par } = self;
        let (mut r0, mut r1) = (CatchUpRows { catchup, last: l0, k }, CatchUpRows { catchup, last: l1, k });
        tables.step(batch, scratch, par.as_mut(), [&mut r0, &mut r1]) as f64
    }

    fn sync(&mut self, live: &mut Live<'_>, k: usize) -> Result<()> {
        for (side, last) in self.tables.tables.sides.iter_mut().zip(&mut self.last) {
            let rows = side.rows() as u32;
            CatchUpRows { catchup: &self.catchup, last, k }.catch_up(side, 0..rows, k);
        }
        self.tables.store(live.params, live.opt)
    }
}
