//! The CPU engine without catch-up, generic over what happens to a side's rows after a batch:
//! every row steps (dense, fastai's math as written) or only the touched ones (lazy).
use std::marker::PhantomData;

use super::pair::Pair;
use super::tables::{DotTables, Scratch, SideRule};
use super::{Engine, Live};
use crate::error::Result;

/// A rule built from the step's AdamW scalars.
pub(crate) trait StepRule: SideRule + Sized {
    /// The rule for one step.
    fn new(scalars: [f32; 8]) -> Self;
}

/// Rust-loop AdamW on an `EmbeddingDotBias`'s tables, rows updated by the rule `R`.
pub(crate) struct Plain<R> {
    tables: DotTables,
    scratch: Scratch,
    par: Option<Pair>,
    rule: PhantomData<R>,
}

impl<R> Plain<R> {
    /// An engine over `tables` (copied out of the learner); `par` runs its steps on two threads.
    pub fn new(tables: DotTables, par: bool) -> Self {
        Plain { scratch: Scratch::new(&tables.tables), tables, par: par.then(Pair::new), rule: PhantomData }
    }
}

impl<R: StepRule> Engine for Plain<R> {
    fn step(&mut self, live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        let scalars = live.plan.hyper(k).scalars();
        let [[mut r00, mut r01], [mut r10, mut r11]] = [[(); 2]; 2].map(|h| h.map(|_| R::new(scalars)));
        let rules = [[&mut r00, &mut r01], [&mut r10, &mut r11]];
        self.tables.step(batch, &mut self.scratch, self.par.as_mut(), rules) as f64
    }

    fn sync(&mut self, live: &mut Live<'_>, _k: usize) -> Result<()> {
        self.tables.store(live.params, live.opt)
    }

    fn predict(&mut self, _k: usize, users: &[u32], items: &[u32]) -> Option<Vec<f32>> {
        Some(self.tables.predict(users, items))
    }
}
