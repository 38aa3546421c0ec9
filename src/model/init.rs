//! fastai's initialisations and sizing rules, and the random numbers models draw: from libtorch's
//! one global generator under a lock (initial weights), or from their own stream (dropout masks).
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use tch::{nn, Device, Kind, Tensor};

/// Held by whoever seeds libtorch's global generator and draws from it: every such draw in this
/// crate happens under it, so no learner's draws land between another's seeding and its draws.
static TORCH_RNG: Mutex<()> = Mutex::new(());

/// The random numbers a model is initialised from: libtorch's CPU generator after
/// `manual_seed(seed)`, the stream PyTorch's `torch.manual_seed(seed); torch.randn(…)` gives, so
/// the same seed gives the same weights on every device. It holds a process-wide lock while it
/// lives, so learners built on several threads at once cannot disturb each other's stream.
pub struct InitRng {
    seed: u64,
    _lock: MutexGuard<'static, ()>,
}

impl InitRng {
    /// Seeds libtorch's generator with `seed` and takes the initialisation lock.
    pub fn new(seed: u64) -> Self {
        let lock = TORCH_RNG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tch::manual_seed(seed as i64);
        InitRng { seed, _lock: lock }
    }

    /// The dropout masks of a model initialised from this stream.
    pub fn dropout(&self) -> DropoutRng {
        DropoutRng { seed: self.seed, draws: AtomicU64::new(0) }
    }

    fn randn(&mut self, shape: [usize; 2]) -> Tensor {
        Tensor::randn([shape[0] as i64, shape[1] as i64], (Kind::Float, Device::Cpu))
    }

    fn uniform(&mut self, shape: [usize; 2], bound: f64) -> Tensor {
        Tensor::empty([shape[0] as i64, shape[1] as i64], (Kind::Float, Device::Cpu)).uniform_(-bound, bound)
    }
}

/// A model's own stream of dropout masks, drawn in Rust: mask `n` of the stream comes from a
/// ChaCha8 generator seeded from the model's seed and `n`, so a learner's masks follow from its
/// seed and its own draws, not from other learners built or trained meanwhile, on any thread (as
/// they would from libtorch's one global generator), and libtorch's graph and the engine's Rust
/// layers apply the very same masks.
#[derive(Debug)]
pub struct DropoutRng {
    seed: u64,
    draws: AtomicU64,
}

impl DropoutRng {
    /// The next mask of `len` elements for dropout `p` (0 < p < 1): each element 0 with
    /// probability `p`, else `1 / (1 − p)`, so the expected output is the input, as in PyTorch.
    pub fn mask(&self, len: usize, p: f64) -> Vec<f32> {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        let mut rng = ChaCha8Rng::seed_from_u64(split_mix(self.seed ^ split_mix(n)));
        // Dropped when a 32-bit draw falls below p·2³²: probability p up to 2⁻³².
        let below = (p * 4_294_967_296.0).round().clamp(0.0, u32::MAX as f64) as u32;
        let keep = (1.0 / (1.0 - p)) as f32;
        // The generator's 32-bit outputs in order (as `next_u32` gives them), a block at a time.
        let mut words = vec![0u32; len];
        rng.fill(&mut words[..]);
        words.into_iter().map(|x| if x < below { 0.0 } else { keep }).collect()
    }

    /// How many masks this stream has drawn: where it stands.
    pub fn position(&self) -> u64 {
        self.draws.load(Ordering::Relaxed)
    }

    /// Puts the stream back where [`DropoutRng::position`] said it stood, so the masks drawn next
    /// are those drawn from there before (a learner restored after `lr_find` or a failed fit).
    pub fn rewind(&self, position: u64) {
        self.draws.store(position, Ordering::Relaxed);
    }
}

/// SplitMix64's output function: nearby inputs (seeds 1, 2, 3; draws 0, 1, 2) give unrelated seeds.
fn split_mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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
    use super::*;

    #[test]
    fn emb_sz_rule_matches_fastai() {
        assert_eq!([944, 1654, 1665, 101].map(emb_sz_rule), [74, 102, 102, 21]);
    }

    /// Masks drop a share `p` of elements and scale the rest by 1/(1 − p); the stream's position
    /// alone decides a mask, so a rewound stream draws the same masks again and another seed others.
    #[test]
    fn dropout_masks_follow_their_stream() {
        let (stream, p) = (InitRng::new(5).dropout(), 0.3);
        let first = stream.mask(100_000, p);
        let dropped = first.iter().filter(|&&m| m == 0.0).count() as f64 / first.len() as f64;
        assert!((dropped - p).abs() < 0.01, "dropped {dropped}");
        assert!(first.iter().all(|&m| m == 0.0 || m == (1.0 / (1.0 - p)) as f32));
        let second = stream.mask(100_000, p);
        assert_ne!(first, second);
        assert_eq!(stream.position(), 2);
        stream.rewind(1);
        assert_eq!(stream.mask(100_000, p), second);
        assert_ne!(InitRng::new(6).dropout().mask(100_000, p), first);
    }

    /// A mask is the generator's 32-bit outputs in order, one an element, at any length (drawn a
    /// block at a time: the same outputs as one `next_u32` after another).
    #[test]
    fn a_mask_is_one_draw_an_element_in_order() {
        use rand::RngCore;
        let p = 0.2f64;
        for len in [0, 1, 7, 16, 17, 100, 12_800] {
            let stream = InitRng::new(9).dropout();
            let mut rng = ChaCha8Rng::seed_from_u64(split_mix(9 ^ split_mix(0)));
            let below = (p * 4_294_967_296.0).round() as u32;
            let want: Vec<f32> = (0..len).map(|_| if rng.next_u32() < below { 0.0 } else { 1.25 }).collect();
            assert_eq!(stream.mask(len, p), want, "len {len}");
        }
    }
}
