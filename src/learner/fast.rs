//! The fast exact path for `EmbeddingDotBias` on the CPU: forward, backward and AdamW written out
//! over the tensors' memory, with the same math as autograd + [`AdamState::step_tensors`].
//!
//! Per step it does what fastai does — dense AdamW over every row of every table — but in one
//! pass per table instead of a dozen libtorch ops, so tiny batches are not dominated by op
//! overhead. The lazy variant updates only the rows in the batch, which changes the result.
//!
//! [`AdamState::step_tensors`]: super::optim::AdamState::step_tensors
use tch::{Device, Kind, Tensor};

use super::optim::AdamHyper;
use crate::data::databunch::Encoded;

/// A mutable view of a contiguous f32 CPU tensor's memory.
///
/// # Safety
/// The caller must not create two views of the same tensor at once, nor use the tensor through
/// libtorch while the view lives.
#[allow(clippy::mut_from_ref)] // the memory belongs to libtorch, not to the handle
pub(crate) unsafe fn slice_mut(t: &Tensor) -> &mut [f32] {
    assert!(
        t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous(),
        "fast path needs contiguous f32 CPU tensors"
    );
    std::slice::from_raw_parts_mut(t.data_ptr() as *mut f32, t.numel())
}

/// Where the fast path's twelve tensors (four parameters, their first and second moments) keep
/// their floats. libtorch never moves a tensor's storage, so this stays valid while the learner
/// holds those tensors; the learner forgets it whenever it replaces one (load, restore). Looking
/// the pointers up once instead of every step saves ~60 FFI calls per step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Memory([(*mut f32, usize); 12]);

// SAFETY: the pointers refer to storage owned by tensors that move with the learner.
unsafe impl Send for Memory {}

impl Memory {
    pub fn of(params: &[Tensor], m: &[Tensor], v: &[Tensor]) -> Memory {
        let all: Vec<&Tensor> = params.iter().chain(m).chain(v).collect();
        assert_eq!(all.len(), 12, "EmbeddingDotBias has four parameters");
        Memory(std::array::from_fn(|k| {
            // SAFETY: only the pointer and length are taken here.
            let s = unsafe { slice_mut(all[k]) };
            (s.as_mut_ptr(), s.len())
        }))
    }

    /// The parameters, first and second moments as slices.
    ///
    /// # Safety
    /// The tensors `of` was built from must still be alive and unchanged, and no other view of
    /// them may exist while these live.
    #[allow(clippy::type_complexity)]
    pub unsafe fn views<'a>(&self) -> ([&'a mut [f32]; 4], [&'a mut [f32]; 4], [&'a mut [f32]; 4]) {
        let view = |k: usize| std::slice::from_raw_parts_mut(self.0[k].0, self.0[k].1);
        ([0, 1, 2, 3].map(view), [4, 5, 6, 7].map(view), [8, 9, 10, 11].map(view))
    }
}

/// The four tables of an `EmbeddingDotBias`, flat, plus the width of a factor row.
pub(crate) struct DotTables<'a> {
    pub tables: [&'a mut [f32]; 4],
    pub nf: usize,
}

/// Gradients of one batch, compact: slot `k` of a side holds the gradient of its `k`-th touched
/// row, so the backward pass and lazy updates stay in cache however large the tables are.
/// The exact path scatters them into dense buffers shaped like the tables.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    grads: [Vec<f32>; 4],
    dense: [Vec<f32>; 4],
    touched: [Vec<u32>; 2],
    slot: [Vec<u32>; 2],
    batch: Vec<(u32, u32, f32)>,
}

const NO_SLOT: u32 = u32::MAX;

impl Scratch {
    pub fn new(sizes: [usize; 4], n_users: usize, n_items: usize) -> Self {
        Scratch {
            grads: Default::default(),
            dense: sizes.map(|n| vec![0.0; n]),
            touched: [Vec::new(), Vec::new()],
            slot: [vec![NO_SLOT; n_users], vec![NO_SLOT; n_items]],
            batch: Vec::new(),
        }
    }

    /// The slot of `row` on `side` (0 users, 1 items), opening one with zero gradients if new.
    #[inline]
    fn slot(&mut self, side: usize, row: usize, nf: usize) -> usize {
        let s = self.slot[side][row];
        if s != NO_SLOT {
            return s as usize;
        }
        let s = self.touched[side].len();
        self.slot[side][row] = s as u32;
        self.touched[side].push(row as u32);
        self.grads[side].resize((s + 1) * nf, 0.0);
        self.grads[side + 2].push(0.0);
        s
    }
}

/// Forward and backward of the mean squared error over `batch` (row numbers into `data`);
/// accumulates gradients into `scratch` and returns the batch's mean loss.
pub(crate) fn forward_backward(
    t: &DotTables,
    data: &Encoded,
    batch: &[u32],
    y_range: Option<(f64, f64)>,
    s: &mut Scratch,
) -> f32 {
    let nf = t.nf;
    let [u_w, i_w, u_b, i_b] = &t.tables;
    let scale = 2.0 / batch.len() as f32;
    let mut loss = 0.0f32;
    // Gather the batch first (independent loads overlap), then walk it prefetching the embedding
    // rows a few ratings ahead: on tables larger than the caches the loop is bound by memory.
    s.batch.clear();
    s.batch.extend(batch.iter().map(|&r| (data.users[r as usize], data.items[r as usize], data.ratings[r as usize])));
    let batch = std::mem::take(&mut s.batch);
    for (k, &(u, i, y)) in batch.iter().enumerate() {
        if let Some(&(pu, pi, _)) = batch.get(k + AHEAD) {
            prefetch_row(u_w, pu as usize * nf, nf);
            prefetch_row(i_w, pi as usize * nf, nf);
        }
        let (u, i) = (u as usize, i as usize);
        let (su, si) = (s.slot(0, u, nf), s.slot(1, i, nf));
        let (ur, ir) = (&u_w[u * nf..(u + 1) * nf], &i_w[i * nf..(i + 1) * nf]);
        let dot: f32 = ur.iter().zip(ir).map(|(a, b)| a * b).sum();
        let res = dot + u_b[u] + i_b[i];
        let (pred, dpred) = match y_range {
            Some((lo, hi)) => {
                let sig = 1.0 / (1.0 + (-res).exp());
                let span = (hi - lo) as f32;
                (sig * span + lo as f32, sig * (1.0 - sig) * span)
            }
            None => (res, 1.0),
        };
        let err = pred - y;
        loss += err * err;
        let d = scale * err * dpred;
        for (g, a) in s.grads[0][su * nf..(su + 1) * nf].iter_mut().zip(ir) {
            *g += d * a;
        }
        for (g, b) in s.grads[1][si * nf..(si + 1) * nf].iter_mut().zip(ur) {
            *g += d * b;
        }
        s.grads[2][su] += d;
        s.grads[3][si] += d;
    }
    let n = batch.len();
    s.batch = batch;
    loss / n as f32
}

/// How many ratings (or rows) ahead the loops prefetch.
const AHEAD: usize = 6;

/// Hints the CPU to fetch `len` floats of `table` from `start` into cache.
#[inline(always)]
fn prefetch_row(table: &[f32], start: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let end = (start + len).min(table.len());
        let mut k = start;
        while k < end {
            // SAFETY: prefetching is a hint; the address lies inside `table`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(table.as_ptr().add(k) as *const i8) };
            k += 16;
        }
    }
}

/// AdamW over whole slices; reads and clears the gradient as it goes.
#[inline(always)]
fn adamw(p: &mut [f32], g: &mut [f32], m: &mut [f32], v: &mut [f32], k: &[f32; 8]) {
    let [decay, b1, one_b1, b2, one_b2, bc2_sqrt, step_size, eps] = *k;
    // One division per element: sqrt(v)/sqrt(bc2) as a product with the reciprocal (within an
    // ulp of libtorch's quotient; the tests compare with the autograd path).
    let inv_bc2_sqrt = 1.0 / bc2_sqrt;
    for (((p, g), m), v) in p.iter_mut().zip(g.iter_mut()).zip(m.iter_mut()).zip(v.iter_mut()) {
        let grad = *g;
        *g = 0.0;
        *p *= decay;
        *m = *m * b1 + grad * one_b1;
        *v = *v * b2 + grad * grad * one_b2;
        let denom = v.sqrt() * inv_bc2_sqrt + eps;
        *p -= *m / denom * step_size;
    }
}

/// One AdamW step over the four tables: every row (`lazy == false`, fastai's semantics) or only
/// the rows of this batch (`lazy == true`).
pub(crate) fn step(
    t: &mut DotTables,
    m: &mut [&mut [f32]; 4],
    v: &mut [&mut [f32]; 4],
    s: &mut Scratch,
    h: AdamHyper,
    lazy: bool,
) {
    let k = h.scalars();
    for (j, width) in [t.nf, t.nf, 1, 1].into_iter().enumerate() {
        let (p, mj, vj, g) = (&mut *t.tables[j], &mut *m[j], &mut *v[j], &mut s.grads[j]);
        let rows = &s.touched[j % 2];
        if lazy {
            for (slot, &row) in rows.iter().enumerate() {
                if let Some(&ahead) = rows.get(slot + AHEAD) {
                    let start = ahead as usize * width;
                    prefetch_row(p, start, width);
                    prefetch_row(mj, start, width);
                    prefetch_row(vj, start, width);
                }
                let r = row as usize * width..(row as usize + 1) * width;
                adamw(&mut p[r.clone()], &mut g[slot * width..(slot + 1) * width], &mut mj[r.clone()], &mut vj[r], &k);
            }
        } else {
            let dense = &mut s.dense[j];
            for (slot, &row) in rows.iter().enumerate() {
                dense[row as usize * width..(row as usize + 1) * width]
                    .copy_from_slice(&g[slot * width..(slot + 1) * width]);
            }
            adamw(p, dense, mj, vj, &k);
        }
        g.clear();
    }
    for side in 0..2 {
        for &row in &s.touched[side] {
            s.slot[side][row as usize] = NO_SLOT;
        }
        s.touched[side].clear();
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
