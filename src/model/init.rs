//! fastai's initialisations and sizing rules.
use tch::{nn, Kind, Tensor};

/// An embedding table `[n, nf]` initialised as fastai does: `0.01 · fmod(N(0, 1), 2)`, values in
/// (−0.02, 0.02). Registered as `name.weight`, so saved weights read like fastai's state dict.
pub fn embedding(path: &nn::Path, name: &str, n: usize, nf: usize) -> Tensor {
    let init = tch::no_grad(|| Tensor::randn([n as i64, nf as i64], (Kind::Float, path.device())).fmod(2.0) * 0.01);
    (path / name).var_copy("weight", &init)
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
