//! The lazy path (opt-in, `--mode lazy`): AdamW updates only the rows in the batch. Untouched rows
//! neither decay nor coast on their momentum, so this is not fastai's optimizer; it is never
//! chosen automatically.
use super::catchup::RowGap;
use super::feed::Touched;
use super::plain::{Plain, StepRule};
use super::tables::{adamw_rows, Half, SideRule};
use crate::kernels::{Level, AHEAD};

/// Row-sparse ("lazy") AdamW on an `EmbeddingDotBias`'s tables.
pub(crate) type Lazy = Plain<TouchedRows>;

/// Only the touched rows step.
pub(crate) struct TouchedRows([f32; 8]);

impl StepRule for TouchedRows {
    fn new(_rows: usize) -> Self {
        TouchedRows([0.0; 8])
    }

    fn set(&mut self, scalars: [f32; 8]) {
        self.0 = scalars;
    }
}

impl SideRule for TouchedRows {
    /// For tables beyond the caches, asks for every touched row before the step reads them, as the
    /// exact path's catch-up does: `bench --scale 25000000 --mode lazy` fitted in 5.08 and 5.25 s
    /// against 9.57 and 9.58 s with the rows fetched as the step reached them (alternating; the
    /// same bits).
    fn open(&mut self, half: &mut Half, rows: &[u32], _gaps: &[RowGap]) {
        if half.level != Level::L1 {
            // `Tables::open` asked for the first rows already.
            rows.iter().skip(2 * AHEAD).for_each(|&r| half.prefetch(r as usize));
        }
    }

    fn update(&mut self, half: &mut Half, touched: &Touched, grads: &[f32]) {
        let (rows, grads) = touched.of_parity(half.parity, grads, half.w);
        adamw_rows(half, rows, grads, &self.0);
    }
}
