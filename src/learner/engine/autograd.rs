//! The autograd path: libtorch's forward and backward and AdamW in tensor ops, for any model on
//! any device (EmbeddingNN always, EmbeddingDotBias on a GPU or when asked for). It trains the
//! learner's tensors in place.
use super::{Engine, Live};
use crate::error::Result;
use crate::learner::batch_tensors;

/// Autograd and the reference AdamW over the learner's own tensors.
pub(crate) struct Autograd;

impl Engine for Autograd {
    fn step(&mut self, live: &mut Live<'_>, batch: &[u32], k: usize) -> f64 {
        let (users, items, y) = batch_tensors(live.data, batch, live.params.device());
        live.params.zero_grad();
        let pred = live.model.forward_t(&users, &items, true);
        // The targets in the parameters' kind: libtorch 2.11's MSE backward refuses f64
        // predictions against f32 targets (2.13 promotes them).
        let loss = pred.mse_loss(&y.to_kind(pred.kind()), tch::Reduction::Mean);
        loss.backward();
        live.opt.step_tensors(live.params, live.plan.hyper(k));
        loss.double_value(&[])
    }

    fn sync(&mut self, _live: &mut Live<'_>, _k: usize) -> Result<()> {
        Ok(())
    }
}
