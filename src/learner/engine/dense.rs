//! The dense path: fastai's math as written, AdamW over every row of every table at every step.
//! The reference the exact sparse path is tested against (`--mode dense`).
use super::tables::{adamw, adamw_zero, DotTables, Scratch};
use super::{Engine, Live};
use crate::error::Result;

/// Dense AdamW on an `EmbeddingDotBias`'s tables in Rust loops.
pub(crate) struct Dense {
    tables: DotTables,
    scratch: Scratch,
}

impl Dense {
    /// An engine over `tables` (copied out of the learner).
    pub fn new(tables: DotTables) -> Self {
        Dense { scratch: Scratch::new(&tables), tables }
    }
}

impl Engine for Dense {
    fn step(&mut self, live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        self.step_inner(live, batch, k)
    }

    fn sync(&mut self, live: &mut Live<'_>, _k: usize) -> Result<()> {
        self.tables.store(live.params, live.opt)
    }
}

impl Dense {
    #[inline(always)]
    fn step_inner(&mut self, live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        let loss = self.tables.forward_backward(batch, &mut self.scratch, |_, _, _| {});
        let scalars = live.plan.hyper(k).scalars();
        for (j, side) in self.tables.sides.iter_mut().enumerate() {
            let w = side.w;
            for r in 0..side.rows() {
                let (p, m, v) = side.state(r);
                match self.scratch.slot(j, r) {
                    Some(s) => adamw(p, m, v, &self.scratch.grads[j][s * w..(s + 1) * w], &scalars),
                    None => adamw_zero(p, m, v, &scalars),
                }
            }
        }
        self.scratch.clear();
        loss as f64
    }
}
