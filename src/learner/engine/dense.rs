//! The dense path: fastai's math as written, AdamW over every row of every table at every step.
//! The reference the exact sparse path is tested against (`--mode dense`).
use super::catchup::RowGap;
use super::feed::Touched;
use super::plain::{Plain, StepRule};
use super::tables::{adamw, adamw_zero, Half, SideRule};

/// Dense AdamW on an `EmbeddingDotBias`'s tables in Rust loops.
pub(crate) type Dense = Plain<EveryRow>;

/// Every row steps: with its gradient if the batch touched it, else with a zero gradient.
pub(crate) struct EveryRow {
    scalars: [f32; 8],
    /// Per row of the half (row `r` at `r / 2`): its gradient row in the step's batch, or
    /// `UNTOUCHED`.
    grad_row: Vec<u32>,
}

/// Marks a row the batch does not touch.
const UNTOUCHED: u32 = u32::MAX;

impl StepRule for EveryRow {
    fn new(rows: usize) -> Self {
        EveryRow { scalars: [0.0; 8], grad_row: vec![UNTOUCHED; rows] }
    }

    fn set(&mut self, scalars: [f32; 8]) {
        self.scalars = scalars;
    }
}

impl SideRule for EveryRow {
    fn open(&mut self, _half: &mut Half, rows: &[u32], _gaps: &[RowGap]) {
        for (j, &r) in rows.iter().enumerate() {
            self.grad_row[r as usize / 2] = j as u32;
        }
    }

    fn update(&mut self, half: &mut Half, touched: &Touched, grads: &[f32]) {
        let w = half.w;
        let (_, grads) = touched.of_parity(half.parity, grads, w);
        for r in half.rows() {
            let (p, m, v) = half.state(r as usize);
            match std::mem::replace(&mut self.grad_row[r as usize / 2], UNTOUCHED) {
                UNTOUCHED => adamw_zero(p, m, v, &self.scalars),
                j => adamw(p, m, v, &grads[j as usize * w..(j as usize + 1) * w], &self.scalars),
            }
        }
    }
}
