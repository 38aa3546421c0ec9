//! Training engines: one per way of computing a step (autograd, dense, exact, lazy), each behind
//! the same narrow interface. An engine lives for one fit: it is built from the learner's model,
//! parameters and optimizer state when the fit starts, and writes its state back into them when
//! the fit ends (an engine with state of its own validates from it between epochs), so between
//! fits the learner's tensors are the only state.
mod aligned;
mod autograd;
pub(crate) mod catchup;
mod dense;
mod exact;
mod feed;
mod lanes;
mod lazy;
mod mlp;
#[cfg(target_arch = "x86_64")]
mod narrow;
mod nn;
mod pair;
mod plain;
pub(crate) mod tables;

use std::ops::RangeInclusive;
use std::sync::Arc;

use tch::{Device, Kind};

use super::optim::AdamState;
use super::params::Params;
use super::TrainMode;
use crate::data::databunch::Encoded;
use crate::error::{Error, Result};
use crate::model::CollabModel;
pub(crate) use catchup::Plan;
pub(crate) use feed::HELPER_THREAD;

/// What a step may read and change besides the engine's own state.
pub(crate) struct Live<'a> {
    /// The model (its tensors are the parameters).
    pub model: &'a CollabModel,
    /// The trainable parameters by name.
    pub params: &'a Params,
    /// Adam's moments, in parameter order.
    pub opt: &'a mut AdamState,
    /// The training ratings (shared with a thread that prepares batches).
    pub data: &'a Arc<Encoded>,
    /// The fit's hyper-parameters.
    pub plan: &'a Plan,
}

/// One way of computing training steps.
pub(crate) trait Engine {
    /// One optimizer step (local step `k`, 1-based) on the training rows `batch`; returns the
    /// batch's mean loss.
    fn step(&mut self, live: &mut Live<'_>, batch: &[u32], k: usize) -> f64;
    /// An epoch starts whose local steps `steps` (at most) take `order`'s batches of `bs` in turn,
    /// so that an engine may prepare them ahead.
    fn epoch(&mut self, _order: &Arc<Vec<u32>>, _bs: usize, _steps: RangeInclusive<usize>) {}
    /// Brings every parameter up to date with step `k` and writes parameters and Adam moments into
    /// the learner's tensors.
    fn sync(&mut self, live: &mut Live<'_>, k: usize) -> Result<()>;
    /// Predicted ratings for the pairs `(users[r], items[r])` from the engine's own state brought up
    /// to date with step `k`, the same bits as the model would predict after [`Engine::sync`]; `None`
    /// for an engine that keeps no state of its own. Validating between epochs this way leaves the
    /// copy into the tensors to the end of the fit.
    fn predict(&mut self, _k: usize, _users: &[u32], _items: &[u32]) -> Option<Vec<f32>> {
        None
    }
}

/// Whether the CPU engines can train `params`: all f32 on the CPU.
pub(crate) fn on_cpu_in_f32(params: &Params) -> bool {
    params.iter().all(|p| p.tensor.device() == Device::Cpu && p.tensor.kind() == Kind::Float)
}

/// The mode `requested` resolves to for this model and its parameters as they are now: `exact`
/// for either model with f32 parameters on the CPU, `autograd` elsewhere; `dense` and `lazy`
/// exist for EmbeddingDotBias only.
pub(crate) fn resolve(requested: TrainMode, model: &CollabModel, params: &Params) -> Result<TrainMode> {
    let cpu = on_cpu_in_f32(params);
    let dot = matches!(model, CollabModel::DotBias(_));
    let refuse = |m: TrainMode, needs: &str| {
        Err(Error::Unsupported(format!(
            "{} mode needs {needs} (this model: {}, {:?} on {:?}); use autograd",
            m.name(),
            model.kind_name(),
            params.kind(),
            params.device()
        )))
    };
    match requested {
        TrainMode::Auto if cpu => Ok(TrainMode::Exact),
        TrainMode::Auto => Ok(TrainMode::Autograd),
        m @ TrainMode::Exact if !cpu => refuse(m, "f32 parameters on the CPU"),
        m @ (TrainMode::Dense | TrainMode::Lazy) if !(cpu && dot) => {
            refuse(m, "EmbeddingDotBias with f32 parameters on the CPU")
        }
        m => Ok(m),
    }
}

/// Whether the CPU engines run a step's phases on two threads ([`pair::Pair`]), each owning the
/// rows of one parity: only for large batches (six synchronisations per step cost more than they
/// save on a batch of 64: the lesson's fit took 0.163 s against 0.127 s) and when asked for
/// (`FASTCOLLAB_THREADS` ≥ 2). The results are the same bits either way.
fn parallel(bs: usize) -> bool {
    bs >= PARALLEL_FROM_BS && crate::threads::engine_threads() > 1
}

/// The smallest batch for which a step runs on two threads.
const PARALLEL_FROM_BS: usize = 256;

/// The engine for `mode` (already resolved), starting from the learner's state, and the path it
/// computes (`exact` falls back to `dense`, or to `autograd` for EmbeddingNN, where the closed form
/// cannot follow the schedule).
pub(crate) fn build(mode: TrainMode, live: &Live<'_>) -> Result<(Box<dyn Engine>, TrainMode)> {
    let tables = |marked: bool| match live.model {
        CollabModel::DotBias(m) => tables::DotTables::load(m, live.params, live.opt, live.data, marked),
        CollabModel::Nn(_) => Err(Error::Unsupported("dense and lazy modes train EmbeddingDotBias only".into())),
    };
    // EmbeddingNN's exact path catches its embeddings up with the decay every parameter has.
    let nn = matches!(live.model, CollabModel::Nn(_));
    let embeddings_decay = live.params.iter().filter(|p| p.name.starts_with("embeds.")).all(|p| p.decay);
    let par = parallel(live.plan.bs);
    Ok(match mode {
        TrainMode::Autograd | TrainMode::Auto => (Box::new(autograd::Autograd), TrainMode::Autograd),
        TrainMode::Dense => (Box::new(dense::Dense::new(tables(false)?, par)), mode),
        TrainMode::Lazy => (Box::new(lazy::Lazy::new(tables(false)?, par)), mode),
        // A schedule the closed form cannot follow accurately is trained densely: same semantics.
        TrainMode::Exact if nn => match catchup::CatchUp::new(live.plan).filter(|_| embeddings_decay) {
            Some(c) => (Box::new(nn::NnExact::new(live, c)?), mode),
            None => (Box::new(autograd::Autograd), TrainMode::Autograd),
        },
        TrainMode::Exact => match catchup::CatchUp::new(live.plan) {
            Some(c) => (Box::new(exact::Exact::new(tables(true)?, c, par)), mode),
            None => (Box::new(dense::Dense::new(tables(false)?, par)), TrainMode::Dense),
        },
    })
}
