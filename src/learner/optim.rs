//! AdamW with decoupled weight decay (fastai's `true_wd`), its state, and the reference step in
//! tensor ops that works for any model on any device.
use tch::Tensor;

use super::params::Params;

/// Hyper-parameters of one AdamW step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamHyper {
    /// Learning rate.
    pub lr: f64,
    /// β1, scheduled as fastai's momentum.
    pub beta1: f64,
    /// β2 (fastai: 0.99).
    pub beta2: f64,
    /// ε (fastai v1: 1e-8).
    pub eps: f64,
    /// Decoupled weight decay.
    pub wd: f64,
    /// 1-based count of steps taken, for bias correction.
    pub step: u64,
}

impl AdamHyper {
    /// Scalars of the update in f32, computed in f64 as libtorch does:
    /// `(decay, β1, 1−β1, β2, 1−β2, sqrt(1−β2^t), lr/(1−β1^t), ε)`.
    pub(crate) fn scalars(&self) -> [f32; 8] {
        self.scalars_f64().map(|x| x as f32)
    }

    /// [`AdamHyper::scalars`] before their rounding to f32.
    pub(crate) fn scalars_f64(&self) -> [f64; 8] {
        let t = self.step as i32;
        [
            1.0 - self.lr * self.wd,
            self.beta1,
            1.0 - self.beta1,
            self.beta2,
            1.0 - self.beta2,
            (1.0 - self.beta2.powi(t)).sqrt(),
            self.lr / (1.0 - self.beta1.powi(t)),
            self.eps,
        ]
    }
}

/// Adam's running averages for each parameter, in parameter order.
#[derive(Debug)]
pub struct AdamState {
    /// First moments, shaped like the parameters.
    pub exp_avg: Vec<Tensor>,
    /// Second moments, shaped like the parameters.
    pub exp_avg_sq: Vec<Tensor>,
    /// Steps taken so far.
    pub step: u64,
}

impl AdamState {
    /// Zero state for `params`.
    pub fn new(params: &Params) -> Self {
        AdamState {
            exp_avg: params.iter().map(|p| p.tensor.zeros_like()).collect(),
            exp_avg_sq: params.iter().map(|p| p.tensor.zeros_like()).collect(),
            step: 0,
        }
    }

    /// Moves and casts the moments to their parameters' device and element type, where a caller
    /// changed those of the parameters since.
    pub fn align(&mut self, params: &Params) {
        for (p, (m, v)) in params.iter().zip(self.exp_avg.iter_mut().zip(&mut self.exp_avg_sq)) {
            let (device, kind) = (p.tensor.device(), p.tensor.kind());
            if m.device() != device || m.kind() != kind {
                *m = m.to_device(device).to_kind(kind);
            }
            if v.device() != device || v.kind() != kind {
                *v = v.to_device(device).to_kind(kind);
            }
        }
    }

    /// A deep copy (for `lr_find`'s restore).
    pub fn snapshot(&self) -> AdamState {
        AdamState {
            exp_avg: self.exp_avg.iter().map(Tensor::copy).collect(),
            exp_avg_sq: self.exp_avg_sq.iter().map(Tensor::copy).collect(),
            step: self.step,
        }
    }

    /// One AdamW step over `params` from their `.grad()`, in libtorch's order of operations:
    /// `p ← p(1 − lr·wd)` (where the parameter decays), moments, then
    /// `p ← p − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + ε)`.
    pub fn step_tensors(&mut self, params: &Params, hyper: AdamHyper) {
        let [decay, b1, one_b1, b2, one_b2, bc2_sqrt, step_size, eps] = hyper.scalars();
        tch::no_grad(|| {
            for ((param, m), v) in params.iter().zip(&mut self.exp_avg).zip(&mut self.exp_avg_sq) {
                let g = param.tensor.grad();
                let mut p = param.tensor.shallow_clone();
                if param.decay {
                    let _ = p.g_mul_scalar_(decay as f64);
                }
                if !g.defined() {
                    continue;
                }
                let _ = m.g_mul_scalar_(b1 as f64).g_add_(&(&g * one_b1 as f64));
                let _ = v.g_mul_scalar_(b2 as f64).g_add_(&(&g * &g * one_b2 as f64));
                let denom = v.sqrt() / bc2_sqrt as f64 + eps as f64;
                let _ = p.g_sub_(&(&*m / denom * step_size as f64));
            }
        });
    }
}
