//! The CPU engine without catch-up, generic over what happens to a side's rows after a batch:
//! every row steps (dense, fastai's math as written) or only the touched ones (lazy).
use std::ops::RangeInclusive;
use std::sync::Arc;

use super::pair::Pair;
use super::tables::{DotTables, Scratch, SideRule};
use super::{Engine, Live};
use crate::error::Result;

/// A rule for one half of a side, given each step's AdamW scalars.
pub(crate) trait StepRule: SideRule + Sized {
    /// The rule for a half of `rows` rows.
    fn new(rows: usize) -> Self;
    /// Sets the scalars of the step about to be taken.
    fn set(&mut self, scalars: [f32; 8]);
}

/// Rust-loop AdamW on an `EmbeddingDotBias`'s tables, rows updated by the rule `R`.
pub(crate) struct Plain<R> {
    tables: DotTables,
    scratch: Scratch,
    par: Option<Pair>,
    /// Per side and half.
    rules: [[R; 2]; 2],
}

impl<R: StepRule> Plain<R> {
    /// An engine over `tables` (copied out of the learner); `par` runs its steps on two threads.
    pub fn new(tables: DotTables, par: bool) -> Self {
        let rules = tables.tables.sides.each_ref().map(|s| s.halves.each_ref().map(|h| R::new(h.rows().len())));
        Plain { scratch: Scratch::new(&tables.tables, par, None), tables, par: par.then(Pair::new), rules }
    }
}

impl<R: StepRule> Engine for Plain<R> {
    fn step(&mut self, live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        let scalars = live.plan.hyper(k).scalars();
        let rules = self.rules.each_mut().map(|halves| {
            halves.each_mut().map(|r| {
                r.set(scalars);
                r
            })
        });
        self.tables.step(batch, &mut self.scratch, self.par.as_mut(), rules) as f64
    }

    fn epoch(&mut self, order: &Arc<Vec<u32>>, bs: usize, steps: RangeInclusive<usize>) {
        self.scratch.epoch(order, bs, steps);
    }

    fn sync(&mut self, live: &mut Live<'_>, _k: usize) -> Result<()> {
        self.tables.store(live.params, live.opt)
    }

    fn predict(&mut self, _k: usize, users: &[u32], items: &[u32]) -> Option<Vec<f32>> {
        Some(self.tables.predict(users, items))
    }
}
