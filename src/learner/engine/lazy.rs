//! The lazy path (opt-in, `--mode lazy`): AdamW updates only the rows in the batch. Untouched rows
//! neither decay nor coast on their momentum, so this is not fastai's optimizer; it is never
//! chosen automatically.
use super::tables::{adamw_rows, DotTables, Scratch, Side, SideRule, Touched};
use super::{Engine, Live};
use crate::error::Result;

/// Row-sparse ("lazy") AdamW on an `EmbeddingDotBias`'s tables.
pub(crate) struct Lazy {
    tables: DotTables,
    scratch: Scratch,
    par: bool,
}

impl Lazy {
    /// An engine over `tables` (copied out of the learner); `par` runs the two sides on two threads.
    pub fn new(tables: DotTables, par: bool) -> Self {
        Lazy { scratch: Scratch::new(&tables.tables), tables, par }
    }
}

/// Only the touched rows step.
struct TouchedRows([f32; 8]);

impl SideRule for TouchedRows {
    fn open(&mut self, _side: &mut Side, _rows: &[u32]) {}

    fn update(&mut self, side: &mut Side, touched: &Touched, grads: &[f32]) {
        adamw_rows(side, &touched.rows, grads, &self.0);
    }
}

impl Engine for Lazy {
    fn step(&mut self, live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        let scalars = live.plan.hyper(k).scalars();
        let rules = [&mut TouchedRows(scalars), &mut TouchedRows(scalars)];
        self.tables.step(batch, &mut self.scratch, self.par, rules) as f64
    }

    fn sync(&mut self, live: &mut Live<'_>, _k: usize) -> Result<()> {
        self.tables.store(live.params, live.opt)
    }
}
