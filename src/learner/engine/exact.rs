//! The exact sparse path, the default for `EmbeddingDotBias` on the CPU: fastai's dense AdamW
//! semantics at the cost of the rows a batch touches. Each row remembers the step it was last
//! brought up to date; the zero-gradient steps it missed are applied in closed form
//! ([`CatchUp`]) just before a batch reads it, and for every row at each synchronisation point
//! (validation, end of fit), so every weight is what the dense path computes, up to rounding.
use super::catchup::CatchUp;
use super::tables::{adamw, DotTables, Scratch, Side};
use super::{Engine, Live};
use crate::error::Result;

/// Sparse AdamW with closed-form catch-up of untouched rows.
pub(crate) struct Exact {
    tables: DotTables,
    scratch: Scratch,
    catchup: CatchUp,
    /// Per side and row, the local step the row is up to date with.
    last: [Vec<u32>; 2],
}

impl Exact {
    /// An engine over `tables` for a fit whose schedule `catchup` was built from.
    pub fn new(tables: DotTables, catchup: CatchUp) -> Self {
        let last = [0, 1].map(|s| vec![0u32; tables.sides[s].rows()]);
        Exact { scratch: Scratch::new(&tables), tables, catchup, last }
    }
}

/// Brings `row` of `side` from step `last[row]` up to step `k`.
#[inline(always)]
fn catch_up(catchup: &CatchUp, last: &mut [u32], side: &mut Side, row: usize, k: usize) {
    let k0 = last[row] as usize;
    if k0 < k {
        let (p, m, v) = side.state(row);
        catchup.apply(k0, k, p, m, v);
        last[row] = k as u32;
    }
}

impl Engine for Exact {
    fn step(&mut self, _live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        self.step_inner(batch, k)
    }

    fn sync(&mut self, live: &mut Live<'_>, k: usize) -> Result<()> {
        for (j, side) in self.tables.sides.iter_mut().enumerate() {
            for row in 0..side.rows() {
                catch_up(&self.catchup, &mut self.last[j], side, row, k);
            }
        }
        self.tables.store(live.params, live.opt)
    }
}

impl Exact {
    #[inline(always)]
    fn step_inner(&mut self, batch: &[u32], k: usize) -> f64 {
        let Exact { tables, scratch, catchup, last } = self;
        let loss =
            tables.forward_backward(batch, scratch, |j, row, side| catch_up(catchup, &mut last[j], side, row, k - 1));
        let scalars = catchup.scalars(k);
        for (j, side) in tables.sides.iter_mut().enumerate() {
            let w = side.w;
            for (s, &row) in scratch.touched[j].iter().enumerate() {
                let (p, m, v) = side.state(row as usize);
                adamw(p, m, v, &scratch.grads[j][s * w..(s + 1) * w], scalars);
                last[j][row as usize] = k as u32;
            }
        }
        scratch.clear();
        loss as f64
    }
}
