//! EmbeddingNN's layers after the embeddings, trained in Rust: one batch's forward pass, mean
//! squared error and backward pass as plain loops and matrix products, with no autograd graph. A
//! libtorch graph of these few small layers costs about a dozen dispatched operations each way
//! per batch, several times the arithmetic they do at the lesson's batch of 64. The formulas are
//! libtorch's (BatchNorm's batch statistics, running updates and backward included), so results
//! are the autograd path's up to rounding. Dropout applies the masks the model's own stream draws
//! ([`DropoutRng`]), in the order libtorch's graph draws them, so both apply the same masks.
use crate::kernels::sigmoid;
use crate::model::init::DropoutRng;
use crate::model::LayerSpec;

/// The layers of one `EmbeddingNN`, with BatchNorm's running statistics and what a batch's
/// backward pass needs from its forward pass.
pub(crate) struct Mlp {
    emb_drop: f64,
    specs: Vec<LayerSpec>,
    y_range: Option<(f32, f32)>,
    /// Per layer, the position of its first parameter in the parameter list (weight, then bias).
    first_param: Vec<usize>,
    /// Per BatchNorm layer, in order: running mean and running variance.
    pub stats: Vec<(Vec<f32>, Vec<f32>)>,
    /// Per layer, its input in the last forward pass (`[n, features]`, row-major).
    inputs: Vec<Vec<f32>>,
    /// Per BatchNorm layer, the last batch's mean and `1/sqrt(var + eps)`.
    batch_stats: Vec<(Vec<f32>, Vec<f32>)>,
    /// The last batch's dropout mask on the embeddings (empty without).
    emb_mask: Vec<f32>,
    /// Per layer, the last batch's dropout mask (empty but for dropout layers).
    masks: Vec<Vec<f32>>,
}

impl Mlp {
    /// The layers `specs` between an embedding dropout of `emb_drop` and an output range, with
    /// BatchNorm's running statistics `stats` (one pair per BatchNorm layer, in order).
    pub fn new(
        emb_drop: f64,
        specs: Vec<LayerSpec>,
        y_range: Option<(f64, f64)>,
        stats: Vec<(Vec<f32>, Vec<f32>)>,
    ) -> Mlp {
        let mut first_param = Vec::with_capacity(specs.len());
        let mut at = 0;
        for spec in &specs {
            first_param.push(at);
            at += match *spec {
                LayerSpec::Linear { bias, .. } => 1 + bias as usize,
                LayerSpec::BatchNorm { .. } => 2,
                LayerSpec::Relu | LayerSpec::Dropout(_) => 0,
            };
        }
        let n_bn = specs.iter().filter(|s| matches!(s, LayerSpec::BatchNorm { .. })).count();
        assert_eq!(stats.len(), n_bn, "running statistics for each BatchNorm layer");
        Mlp {
            emb_drop,
            inputs: vec![Vec::new(); specs.len()],
            batch_stats: vec![(Vec::new(), Vec::new()); n_bn],
            y_range: y_range.map(|(lo, hi)| (lo as f32, hi as f32)),
            emb_mask: Vec::new(),
            masks: vec![Vec::new(); specs.len()],
            first_param,
            specs,
            stats,
        }
    }

    /// One training batch: `x` (`[n, d]`, the joined embedding rows) and targets `y` (`n`) through
    /// the layers with parameters `params` (in [`crate::model::EmbeddingNN::layer_params`]'s order),
    /// BatchNorm in training mode (its running statistics updated) and dropout's masks drawn from
    /// `dropout`; each parameter's gradient of the batch's mean squared error into `grads`. Returns
    /// the mean squared error and its gradient with respect to `x`.
    pub fn train_step(
        &mut self,
        x: Vec<f32>,
        y: &[f32],
        params: &[&[f32]],
        grads: &mut [&mut Vec<f32>],
        dropout: &DropoutRng,
    ) -> (f32, Vec<f32>) {
        let n = y.len();
        let out = self.forward(x, n, params, dropout);
        let (loss, mut d) = self.loss(&out, y);
        let mut bn = self.batch_stats.len();
        for (l, spec) in self.specs.iter().enumerate().rev() {
            let (input, p) = (&self.inputs[l], self.first_param[l]);
            d = match *spec {
                LayerSpec::Linear { n_in, n_out, bias } => {
                    matmul(&d, true, input, false, n_out, n, n_in, grads[p]);
                    if bias {
                        column_sums(&d, n_out, &mut grads[p + 1][..]);
                    }
                    let mut dx = vec![0.0; n * n_in];
                    matmul(&d, false, params[p], false, n, n_out, n_in, &mut dx);
                    dx
                }
                LayerSpec::Relu => d.iter().zip(input).map(|(&d, &x)| if x > 0.0 { d } else { 0.0 }).collect(),
                LayerSpec::BatchNorm { n: c, .. } => {
                    bn -= 1;
                    let (mean, invstd) = &self.batch_stats[bn];
                    let (d_gamma, d_beta) = grads[p..].split_at_mut(1);
                    batch_norm_backward(input, &d, mean, invstd, params[p], c, d_gamma[0], d_beta[0])
                }
                LayerSpec::Dropout(p) if p > 0.0 => times(&d, &self.masks[l]),
                LayerSpec::Dropout(_) => d,
            };
        }
        if self.emb_drop > 0.0 {
            d = times(&d, &self.emb_mask);
        }
        (loss, d)
    }

    /// The forward pass in training mode, keeping each layer's input; returns the last layer's
    /// output (`n` scores).
    fn forward(&mut self, x: Vec<f32>, n: usize, params: &[&[f32]], dropout: &DropoutRng) -> Vec<f32> {
        let mut a = x;
        if self.emb_drop > 0.0 {
            self.emb_mask = dropout.mask(a.len(), self.emb_drop);
            a = times(&a, &self.emb_mask);
        }
        let mut bn = 0;
        for (l, spec) in self.specs.iter().enumerate() {
            self.inputs[l] = a;
            let (input, p) = (&self.inputs[l], self.first_param[l]);
            a = match *spec {
                LayerSpec::Linear { n_in, n_out, bias } => {
                    let mut out = vec![0.0; n * n_out];
                    matmul(input, false, params[p], true, n, n_in, n_out, &mut out);
                    if bias {
                        for row in out.chunks_exact_mut(n_out) {
                            row.iter_mut().zip(params[p + 1]).for_each(|(o, b)| *o += b);
                        }
                    }
                    out
                }
                // NaN passes, as in libtorch (a diverging fit must show in the loss).
                LayerSpec::Relu => input.iter().map(|&x| if x < 0.0 { 0.0 } else { x }).collect(),
                LayerSpec::BatchNorm { n: c, momentum, eps } => {
                    let (running, batch) = (&mut self.stats[bn], &mut self.batch_stats[bn]);
                    bn += 1;
                    let (gamma, beta) = (params[p], params[p + 1]);
                    batch_norm_train(input, c, gamma, beta, momentum as f32, eps as f32, running, batch)
                }
                LayerSpec::Dropout(p) if p > 0.0 => {
                    self.masks[l] = dropout.mask(input.len(), p);
                    times(input, &self.masks[l])
                }
                LayerSpec::Dropout(_) => input.clone(),
            };
        }
        a
    }

    /// The mean squared error of the scores `z` through the output range against `y`, and its
    /// gradient with respect to `z`.
    fn loss(&self, z: &[f32], y: &[f32]) -> (f32, Vec<f32>) {
        let norm = 2.0 / y.len() as f32;
        let mut sum = 0.0f32;
        let d = z
            .iter()
            .zip(y)
            .map(|(&z, &y)| match self.y_range {
                Some((lo, hi)) => {
                    let s = sigmoid(z);
                    let err = s * (hi - lo) + lo - y;
                    sum += err * err;
                    norm * err * (hi - lo) * (1.0 - s) * s
                }
                None => {
                    let err = z - y;
                    sum += err * err;
                    norm * err
                }
            })
            .collect();
        (sum / y.len() as f32, d)
    }
}

/// `c = A·B` with `A` `[m, k]` and `B` `[k, n]`, each stored row-major as itself or, when
/// `*_t`, as its transpose; `c` row-major `[m, n]` (overwritten).
#[allow(clippy::too_many_arguments)]
fn matmul(a: &[f32], a_t: bool, b: &[f32], b_t: bool, m: usize, k: usize, n: usize, c: &mut [f32]) {
    assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n, "matrix shapes");
    let (rsa, csa) = if a_t { (1, m) } else { (k, 1) };
    let (rsb, csb) = if b_t { (1, k) } else { (n, 1) };
    // SAFETY: with the lengths asserted above, every element the strides address lies inside its
    // slice, and `c` (mutably borrowed) overlaps neither input.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// `a` times `mask`, element by element (a dropout's forward and backward alike).
fn times(a: &[f32], mask: &[f32]) -> Vec<f32> {
    a.iter().zip(mask).map(|(a, m)| a * m).collect()
}

/// Each column's sum of the row-major `[rows, cols]` matrix `d` into `out`.
fn column_sums(d: &[f32], cols: usize, out: &mut [f32]) {
    out.fill(0.0);
    for row in d.chunks_exact(cols) {
        out.iter_mut().zip(row).for_each(|(o, x)| *o += x);
    }
}

/// BatchNorm1d in training mode over `x` (`[n, c]`) as libtorch computes it: the batch's mean and
/// biased variance normalise, the running statistics move by `momentum` towards the mean and the
/// unbiased variance; keeps the mean and `1/sqrt(var + eps)` in `batch` for the backward pass.
#[allow(clippy::too_many_arguments)]
fn batch_norm_train(
    x: &[f32],
    c: usize,
    gamma: &[f32],
    beta: &[f32],
    momentum: f32,
    eps: f32,
    running: &mut (Vec<f32>, Vec<f32>),
    batch: &mut (Vec<f32>, Vec<f32>),
) -> Vec<f32> {
    let n = x.len() / c;
    let mut mean = vec![0.0f32; c];
    column_sums(x, c, &mut mean);
    mean.iter_mut().for_each(|m| *m /= n as f32);
    let mut var_sum = vec![0.0f32; c];
    for row in x.chunks_exact(c) {
        for ((s, &x), &m) in var_sum.iter_mut().zip(row).zip(&mean) {
            *s += (x - m) * (x - m);
        }
    }
    let invstd: Vec<f32> = var_sum.iter().map(|&s| 1.0 / (s / n as f32 + eps).sqrt()).collect();
    let (rm, rv) = running;
    for j in 0..c {
        rm[j] = momentum * mean[j] + (1.0 - momentum) * rm[j];
        rv[j] = momentum * (var_sum[j] / (n as f32 - 1.0)) + (1.0 - momentum) * rv[j];
    }
    let alpha: Vec<f32> = invstd.iter().zip(gamma).map(|(i, g)| i * g).collect();
    let shift: Vec<f32> = beta.iter().zip(&mean).zip(&alpha).map(|((b, m), a)| b - m * a).collect();
    let out = x.chunks_exact(c).flat_map(|row| row.iter().zip(&alpha).zip(&shift).map(|((x, a), s)| x * a + s));
    let out = out.collect();
    *batch = (mean, invstd);
    out
}

/// The backward pass of [`batch_norm_train`]: the gradient with respect to `x` from `d`, and
/// those of `gamma` and `beta` into `d_gamma` and `d_beta` (libtorch's formula).
#[allow(clippy::too_many_arguments)]
fn batch_norm_backward(
    x: &[f32],
    d: &[f32],
    mean: &[f32],
    invstd: &[f32],
    gamma: &[f32],
    c: usize,
    d_gamma: &mut [f32],
    d_beta: &mut [f32],
) -> Vec<f32> {
    let n = x.len() / c;
    column_sums(d, c, d_beta);
    let mut dotp = vec![0.0f32; c];
    for (row, drow) in x.chunks_exact(c).zip(d.chunks_exact(c)) {
        for (((p, &x), &d), &m) in dotp.iter_mut().zip(row).zip(drow).zip(mean) {
            *p += (x - m) * d;
        }
    }
    for j in 0..c {
        d_gamma[j] = dotp[j] * invstd[j];
    }
    let grad_mean: Vec<f32> = d_beta.iter().map(|s| s / n as f32).collect();
    let proj: Vec<f32> = dotp.iter().zip(invstd).map(|(p, i)| p * i * i / n as f32).collect();
    let scale: Vec<f32> = invstd.iter().zip(gamma).map(|(i, g)| i * g).collect();
    let mut dx = Vec::with_capacity(x.len());
    for (row, drow) in x.chunks_exact(c).zip(d.chunks_exact(c)) {
        for j in 0..c {
            dx.push((drow[j] - grad_mean[j] - (row[j] - mean[j]) * proj[j]) * scale[j]);
        }
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::init::InitRng;
    use crate::model::{EmbeddingNN, EmbeddingNNConfig, NnLayout};
    use tch::{nn, Device, Reduction, Tensor};

    fn floats(t: &Tensor) -> Vec<f32> {
        super::super::tables::floats(t).unwrap()
    }

    /// The largest difference between `a` and `b`, relative to the largest magnitude in `b`.
    fn worst(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(f32::MIN_POSITIVE);
        a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    /// One batch through the layers in Rust gives what libtorch's autograd gives, up to rounding:
    /// the loss, the gradients of the input and of every parameter, and BatchNorm's running
    /// statistics, in both layouts, with and without an output range, with and without dropout
    /// (both draw the same masks from the model's stream). (Measured: gradients within 6.4e-6 of
    /// their largest element; a wrong formula, or other masks, is off by order 1.)
    #[test]
    fn a_batch_matches_autograd() {
        let (n, width) = (32usize, 11usize);
        let x: Vec<f32> = (0..n * width).map(|k| ((k * 37 % 101) as f32 / 101.0 - 0.5) * 0.4).collect();
        let y: Vec<f32> = (0..n).map(|k| 1.0 + (k * 7 % 9) as f32 / 2.0).collect();
        let cases = [NnLayout::V1, NnLayout::V2].into_iter().flat_map(|layout| {
            [(Some((0.0, 5.5)), 0.0), (None, 0.0), (Some((0.0, 5.5)), 0.3)].map(|(y_range, p)| (layout, y_range, p))
        });
        for (layout, y_range, p) in cases {
            let vs = nn::VarStore::new(Device::Cpu);
            let cfg = EmbeddingNNConfig {
                emb_szs: Some((6, 5)),
                layers: vec![16, 8],
                y_range,
                layout,
                emb_drop: p / 3.0,
                ps: vec![p, p / 2.0],
                ..Default::default()
            };
            let model = EmbeddingNN::new(&vs.root(), 20, 30, &cfg, &mut InitRng::new(7));
            let params = model.layer_params();
            let values: Vec<Vec<f32>> = params.iter().map(|(_, t)| floats(t)).collect();
            let (emb_drop, specs, range) = model.layer_specs();
            let stats = model.batch_norm_stats().iter().map(|(m, v)| (floats(m), floats(v))).collect();
            assert_eq!(specs.iter().filter(|s| matches!(s, LayerSpec::Dropout(_))).count(), 2 * (p > 0.0) as usize);
            let mut mlp = Mlp::new(emb_drop, specs, range, stats);
            let mut grads: Vec<Vec<f32>> = values.iter().map(|p| vec![f32::NAN; p.len()]).collect();
            let refs: Vec<&[f32]> = values.iter().map(|p| &p[..]).collect();
            let mut out = grads.iter_mut().collect::<Vec<_>>();
            let (loss, dx) = mlp.train_step(x.clone(), &y, &refs, &mut out, model.dropout_rng());
            // libtorch's graph draws the same masks from where the stream stood.
            model.dropout_rng().rewind(0);

            let xt = Tensor::from_slice(&x).view([n as i64, width as i64]).set_requires_grad(true);
            let leaves: Vec<Tensor> = params.iter().map(|(_, t)| t.detach().copy().set_requires_grad(true)).collect();
            let want = model.forward_joined_with(&xt, &leaves, true).mse_loss(&Tensor::from_slice(&y), Reduction::Mean);
            want.backward();
            let case = format!("{layout:?}, y_range {y_range:?}, dropout {p}");
            let want_loss = want.double_value(&[]) as f32;
            assert!((loss - want_loss).abs() <= 1e-5 * want_loss, "{case}: loss {loss} vs {want_loss}");
            assert!(worst(&dx, &floats(&xt.grad())) < 1e-4, "{case}: input gradient");
            for ((name, _), (g, leaf)) in params.iter().zip(grads.iter().zip(&leaves)) {
                let err = worst(g, &floats(&leaf.grad()));
                assert!(err < 1e-4, "{case}: gradient of {name} off by {err:e}");
            }
            assert!(!mlp.stats.is_empty());
            for ((mean, var), (m, v)) in model.batch_norm_stats().iter().zip(&mlp.stats) {
                assert!(worst(m, &floats(mean)) < 1e-5 && worst(v, &floats(var)) < 1e-5, "{case}: running stats");
            }
        }
    }
}
