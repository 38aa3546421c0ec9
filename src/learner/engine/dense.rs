//! The dense path: fastai's math as written, AdamW over every row of every table at every step.
//! The reference the exact sparse path is tested against (`--mode dense`).
use super::tables::{adamw, adamw_zero, DotTables, Scratch, Side, SideRule, Touched};
use super::{Engine, Live};
use crate::error::Result;

/// Dense AdamW on an `EmbeddingDotBias`'s tables in Rust loops.
pub(crate) struct Dense {
    tables: DotTables,
    scratch: Scratch,
    par: bool,
}

impl Dense {
    /// An engine over `tables` (copied out of the learner); `par` runs the two sides on two threads.
    pub fn new(tables: DotTables, par: bool) -> Self {
        Dense { scratch: Scratch::new(&tables.tables), tables, par }
    }
}

/// Every row steps: with its gradient if the batch touched it, else with a zero gradient.
struct EveryRow([f32; 8]);

impl SideRule for EveryRow {
    fn open(&mut self, _side: &mut Side, _rows: &[u32]) {}

    fn update(&mut self, side: &mut Side, touched: &Touched, grads: &[f32]) {
        let w = side.w;
        for r in 0..side.rows() {
            let (p, m, v) = side.state(r);
            match touched.slot(r) {
                Some(k) => adamw(p, m, v, &grads[k * w..(k + 1) * w], &self.0),
                None => adamw_zero(p, m, v, &self.0),
            }
        }
    }
}

impl Engine for Dense {
    fn step(&mut self, live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        let scalars = live.plan.hyper(k).scalars();
        let rules = [&mut EveryRow(scalars), &mut EveryRow(scalars)];
        self.tables.step(batch, &mut self.scratch, self.par, rules) as f64
    }

    fn sync(&mut self, live: &mut Live<'_>, _k: usize) -> Result<()> {
        self.tables.store(live.params, live.opt)
    }
}
