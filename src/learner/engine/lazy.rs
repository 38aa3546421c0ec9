//! The lazy path (opt-in, `--mode lazy`): AdamW updates only the rows in the batch. Untouched rows
//! neither decay nor coast on their momentum, so this is not fastai's optimizer; it is never
//! chosen automatically.
use super::tables::{adamw, DotTables, Scratch};
use super::{Engine, Live};
use crate::error::Result;

/// Row-sparse ("lazy") AdamW on an `EmbeddingDotBias`'s tables.
pub(crate) struct Lazy {
    tables: DotTables,
    scratch: Scratch,
}

impl Lazy {
    /// An engine over `tables` (copied out of the learner).
    pub fn new(tables: DotTables) -> Self {
        Lazy { scratch: Scratch::new(&tables), tables }
    }
}

impl Engine for Lazy {
    fn step(&mut self, live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        self.step_inner(live, batch, k)
    }

    fn sync(&mut self, live: &mut Live<'_>, _k: usize) -> Result<()> {
        self.tables.store(live.params, live.opt)
    }
}

impl Lazy {
    #[inline(always)]
    fn step_inner(&mut self, live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        let loss = self.tables.forward_backward(batch, &mut self.scratch, |_, _, _| {});
        let scalars = live.plan.hyper(k).scalars();
        for (j, side) in self.tables.sides.iter_mut().enumerate() {
            let w = side.w;
            for (s, &row) in self.scratch.touched[j].iter().enumerate() {
                let (p, m, v) = side.state(row as usize);
                adamw(p, m, v, &self.scratch.grads[j][s * w..(s + 1) * w], &scalars);
            }
        }
        self.scratch.clear();
        loss as f64
    }
}
