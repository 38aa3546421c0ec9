//! fastai's initialisations and sizing rules.
use std::sync::{Mutex, MutexGuard};

use tch::{nn, Device, Kind, Tensor};

static TORCH_RNG: Mutex<()> = Mutex::new(());

/// The random numbers a model is initialised from: libtorch's CPU generator after
/// `manual_seed(seed)`, the stream PyTorch's `torch.manual_seed(seed); torch.randn(…)` gives, so
/// the same seed gives the same weights on every device. It holds a process-wide lock while it
/// lives, so learners built on several threads at once cannot disturb each other's stream.
pub struct InitRng {
    _lock: MutexGuard<'static, ()>,
}

impl InitRng {
    /// Seeds libtorch's generator with `seed` and takes the initialisation lock.
    pub fn new(seed: u64) -> Self {
        let lock = TORCH_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tch::manual_seed(seed as i64);
        InitRng { _lock: lock }
    }

    fn randn(&mut self, shape: [usize; 2]) -> Tensor {
        Tensor::randn([shape[0] as i64, shape[1] as i64], (Kind::Float, Device::Cpu))
    }

    fn uniform(&mut self, shape: [usize; 2], bound: f64) -> Tensor {
        Tensor::empty([shape[0] as i64, shape[1] as i64], (Kind::Float, Device::Cpu)).uniform_(-bound, bound)
    }
}

/// An embedding table `[n, nf]` initialised as fastai does: `0.01 · fmod(N(0, 1), 2)`, values in
/// (−0.02, 0.02). Registered as `name.weight`, so saved weights read like fastai's state dict.
pub fn embedding(path: &nn::Path, name: &str, n: usize, nf: usize, rng: &mut InitRng) -> Tensor {
    let init = tch::no_grad(|| rng.randn([n, nf]).fmod(2.0) * 0.01);
    (path / name).var_copy("weight", &init.to(path.device()))
}

/// A linear layer with PyTorch's default initialisation, weight then bias, both U(±1/sqrt(n_in)).
pub fn linear(path: nn::Path, n_in: usize, n_out: usize, bias: bool, rng: &mut InitRng) -> nn::Linear {
    let bound = 1.0 / (n_in as f64).sqrt();
    let ws = tch::no_grad(|| rng.uniform([n_out, n_in], bound));
    let bs = bias.then(|| tch::no_grad(|| rng.uniform([1, n_out], bound).view([n_out as i64])));
    nn::Linear {
        ws: path.var_copy("weight", &ws.to(path.device())),
        bs: bs.map(|b| path.var_copy("bias", &b.to(path.device()))),
    }
}

/// fastai's embedding width for a vocabulary of `n_cat` rows: `min(600, round(1.6 · n_cat^0.56))`.
pub fn emb_sz_rule(n_cat: usize) -> usize {
    600.min((1.6 * (n_cat as f64).powf(0.56)).round() as usize)
}

/// `lo + (hi − lo) · sigmoid(x)`: squashes predictions into `y_range`.
pub fn sigmoid_range(x: &Tensor, (lo, hi): (f64, f64)) -> Tensor {
    x.sigmoid() * (hi - lo) + lo
}

#[cfg(test)]
mod tests {
    #[test]
    fn emb_sz_rule_matches_fastai() {
        assert_eq!([944, 1654, 1665, 101].map(super::emb_sz_rule), [74, 102, 102, 21]);
    }
}
