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

/// The four tables of an `EmbeddingDotBias`, flat, plus the width of a factor row.
pub(crate) struct DotTables<'a> {
    pub tables: [&'a mut [f32]; 4],
    pub nf: usize,
}

/// Dense gradient buffers shaped like the four tables, and the rows each batch touched.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    grads: [Vec<f32>; 4],
    touched: [Vec<u32>; 2],
    seen: [Vec<bool>; 2],
}

impl Scratch {
    pub fn new(sizes: [usize; 4], n_users: usize, n_items: usize) -> Self {
        Scratch {
            grads: sizes.map(|n| vec![0.0; n]),
            touched: [Vec::new(), Vec::new()],
            seen: [vec![false; n_users], vec![false; n_items]],
        }
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
    let [g_uw, g_iw, g_ub, g_ib] = &mut s.grads;
    let scale = 2.0 / batch.len() as f32;
    let mut loss = 0.0f32;
    for &r in batch {
        let (u, i) = (data.users[r as usize] as usize, data.items[r as usize] as usize);
        for (side, row) in [(0, u), (1, i)] {
            if !s.seen[side][row] {
                s.seen[side][row] = true;
                s.touched[side].push(row as u32);
            }
        }
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
        let err = pred - data.ratings[r as usize];
        loss += err * err;
        let d = scale * err * dpred;
        for (g, a) in g_uw[u * nf..(u + 1) * nf].iter_mut().zip(ir) {
            *g += d * a;
        }
        for (g, b) in g_iw[i * nf..(i + 1) * nf].iter_mut().zip(ur) {
            *g += d * b;
        }
        g_ub[u] += d;
        g_ib[i] += d;
    }
    loss / batch.len() as f32
}

/// AdamW over whole slices; reads and clears the gradient as it goes.
#[inline]
fn adamw(p: &mut [f32], g: &mut [f32], m: &mut [f32], v: &mut [f32], k: &[f32; 8]) {
    let [decay, b1, one_b1, b2, one_b2, bc2_sqrt, step_size, eps] = *k;
    for (((p, g), m), v) in p.iter_mut().zip(g.iter_mut()).zip(m.iter_mut()).zip(v.iter_mut()) {
        let grad = *g;
        *g = 0.0;
        *p *= decay;
        *m = *m * b1 + grad * one_b1;
        *v = *v * b2 + grad * grad * one_b2;
        let denom = v.sqrt() / bc2_sqrt + eps;
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
    let widths = [t.nf, t.nf, 1, 1];
    for (j, width) in widths.into_iter().enumerate() {
        let (p, g, mj, vj) = (&mut *t.tables[j], &mut s.grads[j][..], &mut *m[j], &mut *v[j]);
        if lazy {
            for &row in &s.touched[j % 2] {
                let r = row as usize * width..(row as usize + 1) * width;
                adamw(&mut p[r.clone()], &mut g[r.clone()], &mut mj[r.clone()], &mut vj[r], &k);
            }
        } else {
            adamw(p, g, mj, vj, &k);
        }
    }
    for side in 0..2 {
        for &row in &s.touched[side] {
            s.seen[side][row as usize] = false;
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
