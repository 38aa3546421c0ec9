//! The dense path: fastai's math as written, AdamW over every row of every table at every step.
//! The reference the exact sparse path is tested against (`--mode dense`).
use super::catchup::RowGap;
use super::feed::Touched;
use super::plain::{Plain, StepRule};
use super::tables::{adamw_impl, adamw_zero_impl, Half, SideRule};
use crate::kernels::vectorized;

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
        let (_, grads) = touched.of_parity(half.parity, grads, half.w);
        sweep(half, &mut self.grad_row, grads, &self.scalars);
    }
}

vectorized! {
    /// One AdamW step on every row of `half`: with its gradient row `grad_row[row / 2]` of `grads`
    /// if the batch touched it, else with a zero gradient; leaves `grad_row` all `UNTOUCHED`. One
    /// call per sweep, not per row: with AVX-512 code (`elementwise` takes 16 lanes at a time) a
    /// call per row of 11 floats cost more than the AVX2 one (a 2M-rating epoch 0.32 s against 0.27
    /// s), and one call per sweep took 0.20 s.
    fn sweep => sweep_impl(half: &mut Half, grad_row: &mut [u32], grads: &[f32], k: &[f32; 8])
}

#[inline(always)]
fn sweep_impl(half: &mut Half, grad_row: &mut [u32], grads: &[f32], k: &[f32; 8]) {
    let w = half.w;
    for r in half.rows() {
        let (p, m, v) = half.state(r as usize);
        match std::mem::replace(&mut grad_row[r as usize / 2], UNTOUCHED) {
            UNTOUCHED => adamw_zero_impl(p, m, v, k),
            j => adamw_impl(p, m, v, &grads[j as usize * w..(j as usize + 1) * w], k),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tables::Side;
    use super::*;
    use tch::Tensor;

    /// The sweep, dispatched to the widest vectors the CPU has (AVX-512 or AVX2), gives the bits of
    /// the same loop built for the baseline CPU, at every row width, rows touched or not, moments
    /// of any size (subnormal ones included).
    #[test]
    fn vectorized_sweeps_are_the_baseline_bits() {
        let k = [0.9999f32, 0.93, 0.07, 0.99, 0.01, 0.3, 4e-3, 1e-8];
        let rows = 12usize;
        for w in 1..60usize {
            let value = |e: usize, seed: usize| ((e * seed) % 23) as f32 * 10f32.powi(-((e * 7 % 45) as i32));
            let table = |seed: usize| {
                let x: Vec<f32> = (0..rows * w).map(|e| value(e, seed) * 0.3).collect();
                Tensor::from_slice(&x).view([rows as i64, w as i64])
            };
            let (p, m, v) = (table(3), table(5), table(7));
            let [mut a, mut b] = [(), ()].map(|_| Side::load(&[(&p, &m, &v)], false).unwrap());
            let grads: Vec<f32> = (0..rows * w).map(|e| value(e, 11) - 0.5).collect();
            for parity in 0..2 {
                // Every third row of the half has a gradient row.
                let touched = |l: usize| if l.is_multiple_of(3) { (l / 3) as u32 } else { UNTOUCHED };
                let mut grad_row: Vec<u32> = (0..rows / 2).map(touched).collect();
                sweep(&mut a.halves[parity], &mut grad_row, &grads, &k);
                assert!(grad_row.iter().all(|&j| j == UNTOUCHED));
                let mut grad_row: Vec<u32> = (0..rows / 2).map(touched).collect();
                sweep_impl(&mut b.halves[parity], &mut grad_row, &grads, &k);
                for r in a.halves[parity].rows() {
                    let bits = |side: &mut Side| {
                        let (p, m, v) = side.halves[parity].state(r as usize);
                        p.iter().chain(&*m).chain(&*v).map(|x| x.to_bits()).collect::<Vec<_>>()
                    };
                    assert_eq!(bits(&mut a), bits(&mut b), "width {w}, row {r}");
                }
            }
        }
    }
}
