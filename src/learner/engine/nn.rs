//! The exact path for `EmbeddingNN` on the CPU: fastai's dense AdamW semantics, at the cost of the
//! rows a batch touches for the embedding tables (which hold nearly all the parameters). The
//! batch's embedding rows are caught up in closed form ([`CatchUp`]) and copied into two small
//! tensors; libtorch's autograd runs the network on them, so their gradients come back compact,
//! one row per touched user or item; AdamW then updates those rows and the network's (small)
//! layers in Rust loops. Results are the autograd path's up to rounding.
use tch::Tensor;

use super::catchup::CatchUp;
use super::exact::{catch_up_sides, last_steps, CatchUpRows, RowMark};
use super::tables::{adamw, halves, parts, Scratch, Side, SideRule, Tables};
use super::{Engine, Live};
use crate::error::Result;
use crate::model::CollabModel;

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
    last: [[Vec<RowMark>; 2]; 2],
    layers: Vec<Layer>,
}

fn floats(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(&t.contiguous().view([-1]))?)
}

impl NnExact {
    /// An engine starting from the learner's state, for a fit whose schedule `catchup` follows.
    pub fn new(live: &Live<'_>, catchup: CatchUp) -> Result<Self> {
        let side = |j: usize| Side::load(&parts(&[EMBEDS[j]], live.params, live.opt)?);
        let tables = Tables::new([side(0)?, side(1)?], live.data)?;
        let layers = live
            .params
            .iter()
            .enumerate()
            .filter(|(_, p)| !EMBEDS.contains(&p.name.as_str()))
            .map(|(index, p)| {
                let p_values = floats(&p.tensor)?;
                Ok(Layer {
                    index,
                    decay: p.decay,
                    g: vec![0.0; p_values.len()],
                    p: p_values,
                    m: floats(&live.opt.exp_avg[index])?,
                    v: floats(&live.opt.exp_avg_sq[index])?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let last = last_steps(&tables.sides);
        Ok(NnExact { scratch: Scratch::new(&tables), tables, catchup, last, layers })
    }
}

/// The rows of a side's table that a batch touched, as a leaf tensor `[rows, w]` that collects
/// their gradients, and the index of each rating's row in it.
fn batch_rows(snap: &[f32], of_rating: &[u32], w: usize) -> (Tensor, Tensor) {
    let rows = Tensor::from_slice(snap).view([(snap.len() / w) as i64, w as i64]).set_requires_grad(true);
    let index: Vec<i64> = of_rating.iter().map(|&s| s as i64).collect();
    (rows, Tensor::from_slice(&index))
}

impl Engine for NnExact {
    fn step(&mut self, live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        let CollabModel::Nn(model) = live.model else { unreachable!("built for EmbeddingNN only") };
        let NnExact { tables, scratch, catchup, last, layers } = self;
        let [[mut r00, mut r01], [mut r10, mut r11]] = CatchUpRows::all(catchup, last, k);
        tables.open(batch, scratch, None, [[&mut r00, &mut r01], [&mut r10, &mut r11]]);
        let [t0, t1] = scratch.touched();
        let [us, is] = &tables.sides;
        let (u_rows, u_index) = batch_rows(&t0.params_of(us), t0.of_rating(), us.w);
        let (i_rows, i_index) = batch_rows(&t1.params_of(is), t1.of_rating(), is.w);
        let y: Vec<f32> = scratch.batch().iter().map(|r| r.2).collect();
        live.params.zero_grad();
        let out = model.forward_embedded(&u_rows.index_select(0, &u_index), &i_rows.index_select(0, &i_index), true);
        let loss = out.mse_loss(&Tensor::from_slice(&y), tch::Reduction::Mean);
        loss.backward();
        let grads = [&u_rows, &i_rows].map(|t| floats(&t.grad()).expect("f32 gradients"));
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
            let tensor = live.params.tensor(layer.index);
            let n = layer.g.len();
            tensor.grad().f_copy_data(&mut layer.g, n).expect("f32 gradient");
            adamw(&mut layer.p, &mut layer.m, &mut layer.v, &layer.g, if layer.decay { scalars } else { &no_decay });
            tch::no_grad(|| tensor.shallow_clone().copy_(&Tensor::from_slice(&layer.p).view(tensor.size().as_slice())));
        }
        scratch.clear();
        loss.double_value(&[])
    }

    fn sync(&mut self, live: &mut Live<'_>, k: usize) -> Result<()> {
        catch_up_sides(&mut self.catchup, &mut self.last, &mut self.tables.sides, k);
        for (j, side) in self.tables.sides.iter().enumerate() {
            side.store(&parts(&[EMBEDS[j]], live.params, live.opt)?)?;
        }
        for layer in &self.layers {
            for (t, values) in
                [(&live.opt.exp_avg[layer.index], &layer.m), (&live.opt.exp_avg_sq[layer.index], &layer.v)]
            {
                tch::no_grad(|| t.shallow_clone().f_copy_(&Tensor::from_slice(values).view(t.size().as_slice())))?;
            }
        }
        Ok(())
    }
}
