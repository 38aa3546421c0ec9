//! Fold-in: a user's row (factors and bias, or embedding) fitted to their ratings with everything
//! else frozen, through the model's own prediction function (y_range's sigmoid included) and
//! fastai's optimizer: AdamW with the training's weight decay, β2 and ε, a one-cycle schedule,
//! full batch over the user's ratings, from zeros (a new user) or from the user's current row.
//! Deterministic: no randomness anywhere.
use tch::{Kind, Tensor};

use crate::learner::optim::AdamHyper;
use crate::learner::schedule::OneCycle;
use crate::model::CollabModel;

/// How fold-in optimises. The defaults (25 steps, peak lr 0.02) had the lowest mean cold-start RMSE
/// over k on `u1.base` alone (`examples/fold_in.rs`; no test file read): few steps are the
/// regularisation that keeps a user with few ratings near the population.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoldIn {
    /// Full-batch AdamW steps.
    pub steps: usize,
    /// Peak learning rate of the one-cycle schedule.
    pub lr: f64,
    /// Decoupled weight decay (the training's).
    pub wd: f64,
    /// Adam's β2 (the training's).
    pub beta2: f64,
    /// Adam's ε (the training's).
    pub eps: f64,
}

impl FoldIn {
    /// The default steps and learning rate with the training's `wd`, `beta2` and `eps`.
    pub fn with_training(wd: f64, beta2: f64, eps: f64) -> Self {
        FoldIn { steps: 25, lr: 0.02, wd, beta2, eps }
    }
}

/// A user's row computed by fold-in: for EmbeddingDotBias the factors then the bias, for
/// EmbeddingNN the embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldedUser {
    /// The row.
    pub row: Vec<f32>,
}

/// The item rows `items` of `model` as flat f32 rows: factors and bias (dot) or embedding (NN).
fn item_rows(model: &CollabModel, items: &[u32]) -> (Vec<f32>, usize) {
    let idx = Tensor::from_slice(&items.iter().map(|&i| i as i64).collect::<Vec<_>>());
    tch::no_grad(|| {
        let rows = match model {
            CollabModel::DotBias(m) => {
                Tensor::cat(&[m.i_weight.index_select(0, &idx), m.i_bias.index_select(0, &idx)], 1)
            }
            CollabModel::Nn(m) => m.i_embed.index_select(0, &idx),
        };
        let w = rows.size()[1] as usize;
        (Vec::<f32>::try_from(rows.to_kind(Kind::Float).contiguous().view([-1])).unwrap_or_default(), w)
    })
}

/// The current row of user `u` (factors and bias, or embedding).
pub fn user_row(model: &CollabModel, u: u32) -> Vec<f32> {
    tch::no_grad(|| {
        let row = match model {
            CollabModel::DotBias(m) => Tensor::cat(&[m.u_weight.get(u as i64), m.u_bias.get(u as i64)], 0),
            CollabModel::Nn(m) => m.u_embed.get(u as i64),
        };
        Vec::<f32>::try_from(row.to_kind(Kind::Float)).unwrap_or_default()
    })
}

/// Fits a user row to `ratings` of `items` (item rows of `model`), starting from `start` (zeros
/// when `None`).
pub fn fold_in_rows(
    model: &CollabModel,
    items: &[u32],
    ratings: &[f32],
    start: Option<Vec<f32>>,
    cfg: &FoldIn,
) -> FoldedUser {
    let (rows, w) = item_rows(model, items);
    let mut p = start.unwrap_or_else(|| {
        vec![
            0.0;
            match model {
                CollabModel::DotBias(_) => w,
                CollabModel::Nn(m) => m.u_embed.size()[1] as usize,
            }
        ]
    });
    if items.is_empty() {
        return FoldedUser { row: p };
    }
    let (mut m, mut v, mut g) = (vec![0.0f32; p.len()], vec![0.0f32; p.len()], vec![0.0f32; p.len()]);
    let cycle = OneCycle::new(cfg.lr);
    let n = ratings.len() as f32;
    for step in 0..cfg.steps {
        g.iter_mut().for_each(|x| *x = 0.0);
        match model {
            CollabModel::DotBias(dot) => {
                let nf = w - 1;
                for (row, &y) in rows.chunks_exact(w).zip(ratings) {
                    let res: f32 = p[..nf].iter().zip(&row[..nf]).map(|(a, b)| a * b).sum::<f32>() + p[nf] + row[nf];
                    let (pred, dpred) = match dot.y_range {
                        Some((lo, hi)) => {
                            let sig = 1.0 / (1.0 + (-res).exp());
                            let span = (hi - lo) as f32;
                            (sig * span + lo as f32, sig * (1.0 - sig) * span)
                        }
                        None => (res, 1.0),
                    };
                    let d = 2.0 / n * (pred - y) * dpred;
                    for (gf, x) in g[..nf].iter_mut().zip(&row[..nf]) {
                        *gf += d * x;
                    }
                    g[nf] += d;
                }
            }
            CollabModel::Nn(nn) => nn_gradient(nn, &p, &rows, w, ratings, &mut g),
        }
        let (lr, mom) = cycle.at(step, cfg.steps);
        let hyper = AdamHyper { lr, beta1: mom, beta2: cfg.beta2, eps: cfg.eps, wd: cfg.wd, step: step as u64 + 1 };
        crate::learner::engine::tables::adamw(&mut p, &mut m, &mut v, &g, &hyper.scalars());
    }
    FoldedUser { row: p }
}

/// The gradient of the mean squared error with respect to the user embedding `p`, the network
/// in eval mode and frozen.
fn nn_gradient(nn: &crate::model::EmbeddingNN, p: &[f32], rows: &[f32], w: usize, ratings: &[f32], g: &mut [f32]) {
    let k = ratings.len() as i64;
    let u = Tensor::from_slice(p).view([1, -1]).set_requires_grad(true);
    let items = Tensor::from_slice(rows).view([k, w as i64]);
    let out = nn.forward_embedded(&u.expand([k, -1], false), &items, false);
    let loss = out.mse_loss(&Tensor::from_slice(ratings), tch::Reduction::Mean);
    loss.backward();
    let grad = Vec::<f32>::try_from(u.grad().view([-1])).unwrap_or_default();
    g.copy_from_slice(&grad);
}

/// Predictions of a folded user for `items`, through the same operations as the model's forward.
pub fn predict_folded(model: &CollabModel, user: &FoldedUser, items: &[u32]) -> Vec<f32> {
    let idx = Tensor::from_slice(&items.iter().map(|&i| i as i64).collect::<Vec<_>>());
    let k = items.len() as i64;
    let out = tch::no_grad(|| match model {
        CollabModel::DotBias(m) => {
            let nf = m.n_factors() as i64;
            let row = Tensor::from_slice(&user.row);
            let (u, bu) = (row.narrow(0, 0, nf).view([1, nf]), row.narrow(0, nf, 1));
            let i = Tensor::embedding(&m.i_weight, &idx, -1, false, false);
            let bi = Tensor::embedding(&m.i_bias, &idx, -1, false, false).squeeze_dim(1);
            let res = (u.expand([k, nf], false) * i).sum_dim_intlist(1, false, None) + bu + bi;
            match m.y_range {
                Some(range) => crate::model::init::sigmoid_range(&res, range),
                None => res,
            }
        }
        CollabModel::Nn(m) => {
            let u = Tensor::from_slice(&user.row).view([1, -1]).expand([k, -1], false);
            m.forward_embedded(&u, &Tensor::embedding(&m.i_embed, &idx, -1, false, false), false)
        }
    });
    Vec::<f32>::try_from(out.to_kind(Kind::Float)).unwrap_or_default()
}
