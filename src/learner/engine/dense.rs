//! The dense path: fastai's math as written, AdamW over every row of every table at every step.
//! The reference the exact sparse path is tested against (`--mode dense`).
use super::plain::{Plain, StepRule};
use super::tables::{adamw, adamw_zero, Half, SideRule, Touched};

/// Dense AdamW on an `EmbeddingDotBias`'s tables in Rust loops.
pub(crate) type Dense = Plain<EveryRow>;

/// Every row steps: with its gradient if the batch touched it, else with a zero gradient.
pub(crate) struct EveryRow([f32; 8]);

impl StepRule for EveryRow {
    fn new(scalars: [f32; 8]) -> Self {
        EveryRow(scalars)
    }
}

impl SideRule for EveryRow {
    fn open(&mut self, _half: &mut Half, _rows: &[u32]) {}

    fn update(&mut self, half: &mut Half, touched: &Touched, grads: &[f32]) {
        let w = half.w;
        for r in half.rows() {
            let r = r as usize;
            let (p, m, v) = half.state(r);
            match touched.slot(r) {
                Some(k) => adamw(p, m, v, &grads[k * w..(k + 1) * w], &self.0),
                None => adamw_zero(p, m, v, &self.0),
            }
        }
    }
}
