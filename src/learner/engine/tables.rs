//! The four tables of an `EmbeddingDotBias` and their Adam moments as plain Rust memory, for the
//! CPU engines (dense, exact, lazy): forward, backward and AdamW written out as loops.
//!
//! The engines own this memory: it is copied from the learner's tensors when a fit starts and
//! written back at every synchronisation point (end of epoch, end of fit), so no pointer into a
//! libtorch tensor is ever kept, whatever a caller does to the tensors between fits.
use tch::{Device, Kind, Tensor};

use super::super::optim::AdamState;
use super::super::params::Params;
use crate::data::databunch::Encoded;
use crate::error::{Error, Result};
use crate::model::EmbeddingDotBias;

/// One side (users or items), row-major: row `r` holds its `w = n_factors + 1` parameters (the
/// factors, then the bias), then their first moments, then their second moments, so that a row's
/// whole optimizer state is one contiguous stretch of memory (one stream of cache lines).
pub(crate) struct Side {
    /// Parameters per row: factors and bias.
    pub w: usize,
    /// `rows × 3w` floats.
    pub data: Vec<f32>,
}

impl Side {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len() / (3 * self.w)
    }

    /// The parameters of row `r` (factors, then bias).
    #[inline(always)]
    pub fn params(&self, r: usize) -> &[f32] {
        &self.data[r * 3 * self.w..r * 3 * self.w + self.w]
    }

    /// Row `r`'s parameters, first and second moments.
    #[inline(always)]
    pub fn state(&mut self, r: usize) -> (&mut [f32], &mut [f32], &mut [f32]) {
        let w = self.w;
        let row = &mut self.data[r * 3 * w..(r + 1) * 3 * w];
        let (p, rest) = row.split_at_mut(w);
        let (m, v) = rest.split_at_mut(w);
        (p, m, v)
    }
}

/// Users (side 0) and items (side 1), the factor count, the output range, and the training
/// ratings packed as (user, item, rating) so that reading one costs one cache miss, not three.
pub(crate) struct DotTables {
    pub sides: [Side; 2],
    pub nf: usize,
    pub y_range: Option<(f32, f32)>,
    ratings: Vec<(u32, u32, f32)>,
}

/// `n` zeroed elements whose memory the kernel is asked to back with 2 MiB pages (transparent huge
/// pages in `madvise` mode): the engines read rows at random, and with 4 KiB pages nearly every
/// such read on a large table also misses the TLB.
pub(crate) fn huge_zeroed<T: Copy + Default>(n: usize) -> Vec<T> {
    let v = vec![T::default(); n];
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        let bytes = n * std::mem::size_of::<T>();
        let start = v.as_ptr() as usize;
        let aligned = start.next_multiple_of(PAGE);
        let end = (start + bytes) / PAGE * PAGE;
        if bytes >= 4 << 20 && end > aligned {
            // SAFETY: advice only, on whole pages inside this allocation; it changes no contents.
            unsafe { libc::madvise(aligned as *mut libc::c_void, end - aligned, libc::MADV_HUGEPAGE) };
        }
    }
    v
}

/// The parameter names of one side: factors, bias.
const NAMES: [[&str; 2]; 2] = [["u_weight.weight", "u_bias.weight"], ["i_weight.weight", "i_bias.weight"]];

fn floats(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(&t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view([-1]))?)
}

impl DotTables {
    /// Copies the model's tables and their Adam moments out of the learner's tensors, and packs the
    /// training ratings (which must all have rows in the tables).
    pub fn load(model: &EmbeddingDotBias, params: &Params, opt: &AdamState, data: &Encoded) -> Result<Self> {
        let nf = model.n_factors();
        let side = |names: [&str; 2]| -> Result<Side> {
            let w = nf + 1;
            let (iw, ib) = (params.index(names[0])?, params.index(names[1])?);
            let rows = params.tensor(iw).size()[0] as usize;
            let mut data = huge_zeroed::<f32>(rows * 3 * w);
            let sources = [
                (params.tensor(iw), params.tensor(ib)),
                (&opt.exp_avg[iw], &opt.exp_avg[ib]),
                (&opt.exp_avg_sq[iw], &opt.exp_avg_sq[ib]),
            ];
            for (part, (weight, bias)) in sources.into_iter().enumerate() {
                let (weight, bias) = (floats(weight)?, floats(bias)?);
                if weight.len() != rows * nf || bias.len() != rows {
                    return Err(Error::InvalidConfig(format!("{} and {} disagree in shape", names[0], names[1])));
                }
                for r in 0..rows {
                    let dst = &mut data[r * 3 * w + part * w..r * 3 * w + (part + 1) * w];
                    dst[..nf].copy_from_slice(&weight[r * nf..(r + 1) * nf]);
                    dst[nf] = bias[r];
                }
            }
            Ok(Side { w, data })
        };
        let y_range = model.y_range.map(|(lo, hi)| (lo as f32, hi as f32));
        let sides = [side(NAMES[0])?, side(NAMES[1])?];
        for (side, ids, what) in [(0, &data.users, "user"), (1, &data.items, "item")] {
            let rows = sides[side].rows();
            if let Some(bad) = ids.iter().find(|&&r| r as usize >= rows) {
                return Err(Error::InvalidConfig(format!(
                    "the data has {what} row {bad}, the model only {rows} rows: was the data replaced after the \
                     learner was built?"
                )));
            }
        }
        let mut ratings = huge_zeroed::<(u32, u32, f32)>(data.len());
        for (r, packed) in ratings.iter_mut().enumerate() {
            *packed = (data.users[r], data.items[r], data.ratings[r]);
        }
        Ok(DotTables { sides, nf, y_range, ratings })
    }

    /// Writes the tables and moments back into the learner's tensors.
    pub fn store(&self, params: &Params, opt: &mut AdamState) -> Result<()> {
        let nf = self.nf;
        for (side, names) in self.sides.iter().zip(NAMES) {
            let (w, rows) = (side.w, side.rows());
            let (iw, ib) = (params.index(names[0])?, params.index(names[1])?);
            for part in 0..3 {
                let mut weight = Vec::with_capacity(rows * nf);
                let mut bias = Vec::with_capacity(rows);
                for r in 0..rows {
                    let src = &side.data[r * 3 * w + part * w..r * 3 * w + (part + 1) * w];
                    weight.extend_from_slice(&src[..nf]);
                    bias.push(src[nf]);
                }
                let (tw, tb) = match part {
                    0 => (params.tensor(iw).shallow_clone(), params.tensor(ib).shallow_clone()),
                    1 => (opt.exp_avg[iw].shallow_clone(), opt.exp_avg[ib].shallow_clone()),
                    _ => (opt.exp_avg_sq[iw].shallow_clone(), opt.exp_avg_sq[ib].shallow_clone()),
                };
                tch::no_grad(|| -> Result<()> {
                    tw.shallow_clone().f_copy_(&Tensor::from_slice(&weight).view([rows as i64, nf as i64]))?;
                    tb.shallow_clone().f_copy_(&Tensor::from_slice(&bias).view([rows as i64, 1]))?;
                    Ok(())
                })?;
            }
        }
        Ok(())
    }
}

/// Gradients of one batch, compact: slot `k` of a side holds the gradient of its `k`-th touched
/// row (factors and bias), so the backward pass and sparse updates stay in cache however large
/// the tables are.
#[derive(Default)]
pub(crate) struct Scratch {
    slot: [Vec<u32>; 2],
    /// Rows touched by the batch, per side, in order of first touch.
    pub touched: [Vec<u32>; 2],
    /// `touched × w` gradients per side.
    pub grads: [Vec<f32>; 2],
    batch: Vec<(u32, u32, f32)>,
}

/// Marks a row without a slot.
pub(crate) const NO_SLOT: u32 = u32::MAX;

impl Scratch {
    /// Empty scratch space for `tables`.
    pub fn new(tables: &DotTables) -> Self {
        Scratch { slot: [0, 1].map(|s| vec![NO_SLOT; tables.sides[s].rows()]), ..Default::default() }
    }

    /// The slot of `row` on `side`, if the batch touches it.
    #[inline(always)]
    pub fn slot(&self, side: usize, row: usize) -> Option<usize> {
        let s = self.slot[side][row];
        (s != NO_SLOT).then_some(s as usize)
    }

    /// Forgets the batch: no row has a slot and no gradient is held.
    pub fn clear(&mut self) {
        for side in 0..2 {
            for &row in &self.touched[side] {
                self.slot[side][row as usize] = NO_SLOT;
            }
            self.touched[side].clear();
            self.grads[side].clear();
        }
    }
}

/// Declares `fn $name`, which runs the `#[inline(always)]` function `$imp` compiled for AVX2 when
/// the CPU has it, so that its elementwise loops work on 8 floats at a time instead of 4. The
/// arithmetic is the same IEEE operations in the same order (no fused multiply-add), so the results
/// are the same bits with or without AVX2.
macro_rules! vectorized {
    ($(#[$doc:meta])* fn $name:ident => $imp:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        $(#[$doc])*
        #[inline(always)]
        pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $imp($($arg),*)
                }
                // SAFETY: the CPU has AVX2.
                return unsafe { avx2($($arg),*) };
            }
            $imp($($arg),*)
        }
    };
}
pub(crate) use vectorized;

/// How many ratings (or rows) ahead the loops prefetch.
const AHEAD: usize = 8;

/// Hints the CPU to fetch `len` elements of `data` from `start` into cache.
#[inline(always)]
pub(crate) fn prefetch<T>(data: &[T], start: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let end = (start + len).min(data.len());
        let stride = (64 / std::mem::size_of::<T>().max(1)).max(1);
        let mut k = start;
        while k < end {
            // SAFETY: prefetching is only a hint, and the address lies inside `data`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(data.as_ptr().add(k) as *const i8) };
            k += stride;
        }
    }
}

impl DotTables {
    /// Forward and backward of the mean squared error over `batch` (numbers of training ratings):
    /// gives every touched row a slot, calling
    /// `open(side, row, state)` on its whole state (parameters and moments) before its first use,
    /// accumulates the gradients into the slots, and returns the batch's mean loss.
    #[inline(always)]
    pub fn forward_backward(
        &mut self,
        batch: &[u32],
        s: &mut Scratch,
        mut open: impl FnMut(usize, usize, &mut Side),
    ) -> f32 {
        let (nf, w) = (self.nf, self.nf + 1);
        s.batch.clear();
        for (k, &r) in batch.iter().enumerate() {
            if let Some(&ahead) = batch.get(k + 4 * AHEAD) {
                prefetch(&self.ratings, ahead as usize, 1);
            }
            s.batch.push(self.ratings[r as usize]);
        }
        // Pass 1: slots, and whatever the engine does to a row before it is read (catch-up).
        for k in 0..s.batch.len() {
            if let Some(&(pu, pi, _)) = s.batch.get(k + AHEAD) {
                for (side, row) in [(0, pu), (1, pi)] {
                    let side = &self.sides[side];
                    prefetch(&side.data, row as usize * 3 * w, 3 * w);
                }
            }
            let (u, i, _) = s.batch[k];
            for (side, row) in [(0, u as usize), (1, i as usize)] {
                if s.slot[side][row] == NO_SLOT {
                    s.slot[side][row] = s.touched[side].len() as u32;
                    s.touched[side].push(row as u32);
                    open(side, row, &mut self.sides[side]);
                }
            }
        }
        for side in 0..2 {
            s.grads[side].resize(s.touched[side].len() * w, 0.0);
        }
        // Pass 2: forward and backward, on rows now in cache.
        let scale = 2.0 / s.batch.len() as f32;
        let mut loss = 0.0f32;
        let [users, items] = &self.sides;
        let [gu, gi] = &mut s.grads;
        for &(u, i, y) in &s.batch {
            let (u, i) = (u as usize, i as usize);
            let (su, si) = (s.slot[0][u] as usize, s.slot[1][i] as usize);
            let (ur, ir) = (users.params(u), items.params(i));
            let dot = dot(&ur[..nf], &ir[..nf]);
            let res = dot + ur[nf] + ir[nf];
            let (pred, dpred) = match self.y_range {
                Some((lo, hi)) => {
                    let sig = 1.0 / (1.0 + (-res).exp());
                    let span = hi - lo;
                    (sig * span + lo, sig * (1.0 - sig) * span)
                }
                None => (res, 1.0),
            };
            let err = pred - y;
            loss += err * err;
            let d = scale * err * dpred;
            let (gu, gi) = (&mut gu[su * w..(su + 1) * w], &mut gi[si * w..(si + 1) * w]);
            for (g, a) in gu[..nf].iter_mut().zip(&ir[..nf]) {
                *g += d * a;
            }
            for (g, b) in gi[..nf].iter_mut().zip(&ur[..nf]) {
                *g += d * b;
            }
            gu[nf] += d;
            gi[nf] += d;
        }
        loss / s.batch.len() as f32
    }
}

vectorized! {
    /// One AdamW step on a row from its gradient `g` (fastai's order of operations, one division per
    /// element: `sqrt(v)/sqrt(bc2)` as a product with the reciprocal, within an ulp of libtorch).
    fn adamw => adamw_impl(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: &[f32; 8])
}

vectorized! {
    /// [`adamw`] with a zero gradient (bit for bit the same result, without reading a gradient).
    fn adamw_zero => adamw_zero_impl(p: &mut [f32], m: &mut [f32], v: &mut [f32], k: &[f32; 8])
}

vectorized! {
    /// `Σ a[f]·b[f]` in eight interleaved partial sums, added pairwise (a fixed order: the same
    /// bits on every CPU).
    fn dot => dot_impl(a: &[f32], b: &[f32]) -> f32
}

#[inline(always)]
fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[l] += x * y;
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

#[inline(always)]
fn adamw_impl(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: &[f32; 8]) {
    let [decay, b1, one_b1, b2, one_b2, bc2_sqrt, step_size, eps] = *k;
    let inv_bc2_sqrt = 1.0 / bc2_sqrt;
    for (((p, m), v), &grad) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        *p *= decay;
        *m = *m * b1 + grad * one_b1;
        *v = *v * b2 + grad * grad * one_b2;
        let denom = v.sqrt() * inv_bc2_sqrt + eps;
        *p -= *m / denom * step_size;
    }
}

#[inline(always)]
fn adamw_zero_impl(p: &mut [f32], m: &mut [f32], v: &mut [f32], k: &[f32; 8]) {
    let [decay, b1, _, b2, _, bc2_sqrt, step_size, eps] = *k;
    let inv_bc2_sqrt = 1.0 / bc2_sqrt;
    for ((p, m), v) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()) {
        *p *= decay;
        *m *= b1;
        *v *= b2;
        let denom = v.sqrt() * inv_bc2_sqrt + eps;
        *p -= *m / denom * step_size;
    }
}

/// Sets the FTZ and DAZ bits of this thread's MXCSR (what `torch.set_flush_denormal(True)` does):
/// Adam's moments for rarely seen rows decay into subnormals, which are ~40× slower to compute
/// with; flushing them to zero changes no reported figure.
pub fn flush_denormals() {
    #[cfg(target_arch = "x86_64")]
    #[allow(deprecated)]
    // SAFETY: only floating-point control bits of the current thread change.
    unsafe {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        _mm_setcsr(_mm_getcsr() | 0x8040);
    }
}
