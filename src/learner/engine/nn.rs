//! The exact path for `EmbeddingNN` on the CPU: fastai's dense AdamW semantics, at the cost of the
//! rows a batch touches for the embedding tables (which hold nearly all the parameters). The
//! batch's embedding rows are caught up in closed form ([`CatchUp`]) and copied, user and item side
//! by side for each rating, into one small matrix; the layers after them run forward and backward
//! in Rust ([`Mlp`], dropout included), and the gradient of each rating's row is summed per touched user or item in batch order; AdamW then updates those rows
//! and the network's (small) layers in Rust loops. Results are the autograd path's up to rounding.
use std::ops::RangeInclusive;
use std::sync::Arc;

use super::catchup::CatchUp;
use super::exact::{catch_up_sides, CatchUpRows};
use super::feed::Touched;
use super::mlp::Mlp;
use super::tables::{adamw, floats, halves, parts, write, Scratch, Side, SideRule, Tables};
use super::{Engine, Live};
use crate::error::{Error, Result};
use crate::model::{CollabModel, EmbeddingNN};

/// The embedding tables' names, users then items.
const EMBEDS: [&str; 2] = ["embeds.0.weight", "embeds.1.weight"];

/// One of the network's other parameters, its Adam moments and scratch for its gradient.
struct Layer {
    index: usize,
    decay: bool,
    p: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
    g: Vec<f32>,
}

/// Exact sparse AdamW for EmbeddingNN's embeddings, Rust AdamW for its layers.
pub(crate) struct NnExact {
    tables: Tables,
    scratch: Scratch,
    catchup: CatchUp,
    layers: Vec<Layer>,
    /// The layers in Rust.
    mlp: Mlp,
}

impl NnExact {
    /// An engine starting from the learner's state, for a fit whose schedule `catchup` follows.
    pub fn new(live: &Live<'_>, catchup: CatchUp) -> Result<Self> {
        let side = |j: usize| Side::load(&parts(&[EMBEDS[j]], live.params, live.opt)?, true);
        let tables = Tables::new([side(0)?, side(1)?], live.data)?;
        let CollabModel::Nn(model) = live.model else { unreachable!("built for EmbeddingNN only") };
        let layers = model
            .layer_params()
            .iter()
            .map(|(name, tensor)| {
                let index = live.params.index(name)?;
                let p = floats(tensor)?;
                Ok(Layer {
                    index,
                    decay: live.params.get(index).decay,
                    g: vec![0.0; p.len()],
                    p,
                    m: floats(&live.opt.exp_avg[index])?,
                    v: floats(&live.opt.exp_avg_sq[index])?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if layers.len() + EMBEDS.len() != live.params.len() {
            return Err(Error::InvalidConfig(format!(
                "EmbeddingNN has {} parameters, its layers and embeddings {}",
                live.params.len(),
                layers.len() + EMBEDS.len()
            )));
        }
        let (emb_drop, specs, y_range) = model.layer_specs();
        let stats =
            model.batch_norm_stats().iter().map(|(m, v)| Ok((floats(m)?, floats(v)?))).collect::<Result<_>>()?;
        let mlp = Mlp::new(emb_drop, specs, y_range, stats);
        let scratch = Scratch::new(&tables, false, Some(catchup.clone()));
        Ok(NnExact { scratch, tables, catchup, layers, mlp })
    }
}

/// The batch's user and item embedding rows side by side, one row per rating (`[bs, wu + wi]`).
fn joined_rows(sides: &[Side; 2], batch: &[(u32, u32, f32)]) -> Vec<f32> {
    let [us, is] = sides;
    let mut x = Vec::with_capacity(batch.len() * (us.w + is.w));
    for &(u, i, _) in batch {
        x.extend_from_slice(us.params(u as usize));
        x.extend_from_slice(is.params(i as usize));
    }
    x
}

/// The batch `x` (joined embedding rows) with targets `y` through `model`'s layers in Rust (its
/// dropout masks from its stream): the mean squared error and its gradient with respect to `x`;
/// each layer's gradient in its `g`.
fn through_mlp(mlp: &mut Mlp, x: Vec<f32>, y: &[f32], layers: &mut [Layer], model: &EmbeddingNN) -> (f64, Vec<f32>) {
    let (params, mut grads): (Vec<&[f32]>, Vec<&mut Vec<f32>>) = layers
        .iter_mut()
        .map(|l| {
            let Layer { p, g, .. } = l;
            (&p[..], g)
        })
        .unzip();
    let (loss, dx) = mlp.train_step(x, y, &params, &mut grads, model.dropout_rng());
    (loss as f64, dx)
}

/// One side's columns of the joined gradient `g` (`w` from column `from`, of `width`), summed per
/// touched row in batch order (as autograd's backward of a row look-up sums them): one row of
/// `w` per slot of `touched`.
fn per_slot(g: &[f32], touched: &Touched, from: usize, w: usize, width: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; touched.rows.len() * w];
    for (k, &slot) in touched.of_rating().iter().enumerate() {
        let row = &g[k * width + from..k * width + from + w];
        for (o, x) in out[slot as usize * w..(slot as usize + 1) * w].iter_mut().zip(row) {
            *o += x;
        }
    }
    out
}

impl Engine for NnExact {
    fn step(&mut self, live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        let CollabModel::Nn(model) = live.model else { unreachable!("built for EmbeddingNN only") };
        let NnExact { tables, scratch, catchup, layers, mlp } = self;
        let [mut r00, mut r01, mut r10, mut r11] = [CatchUpRows::new(catchup, k); 4];
        tables.open(batch, scratch, None, [[&mut r00, &mut r01], [&mut r10, &mut r11]]);
        let prepared = scratch.prepared();
        let [t0, t1] = &prepared.touched;
        let x = joined_rows(&tables.sides, &prepared.batch);
        let y: Vec<f32> = prepared.batch.iter().map(|r| r.2).collect();
        let (wu, wi) = (tables.sides[0].w, tables.sides[1].w);
        let (loss, g) = through_mlp(mlp, x, &y, layers, model);
        let grads = [per_slot(&g, t0, 0, wu, wu + wi), per_slot(&g, t1, wu, wi, wu + wi)];
        let [[u0, u1], [i0, i1]] = halves(&mut tables.sides);
        r00.update(u0, t0, &grads[0]);
        r01.update(u1, t0, &grads[0]);
        r10.update(i0, t1, &grads[1]);
        r11.update(i1, t1, &grads[1]);
        let scalars = catchup.scalars(k);
        let no_decay = {
            let mut s = *scalars;
            s[0] = 1.0;
            s
        };
        for layer in layers.iter_mut() {
            adamw(&mut layer.p, &mut layer.m, &mut layer.v, &layer.g, if layer.decay { scalars } else { &no_decay });
        }
        loss
    }

    fn epoch(&mut self, order: &Arc<Vec<u32>>, bs: usize, steps: RangeInclusive<usize>) {
        self.scratch.epoch(order, bs, steps);
    }

    fn sync(&mut self, live: &mut Live<'_>, k: usize) -> Result<()> {
        catch_up_sides(&mut self.catchup, &mut self.tables.sides, &mut self.scratch, k);
        for (j, side) in self.tables.sides.iter().enumerate() {
            side.store(&parts(&[EMBEDS[j]], live.params, live.opt)?)?;
        }
        for layer in &self.layers {
            for (t, values) in [
                (live.params.tensor(layer.index), &layer.p),
                (&live.opt.exp_avg[layer.index], &layer.m),
                (&live.opt.exp_avg_sq[layer.index], &layer.v),
            ] {
                write(t, values)?;
            }
        }
        if let CollabModel::Nn(model) = live.model {
            for ((mean, var), (m, v)) in model.batch_norm_stats().iter().zip(&self.mlp.stats) {
                write(mean, m)?;
                write(var, v)?;
            }
        }
        Ok(())
    }
}
