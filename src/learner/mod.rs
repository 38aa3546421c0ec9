//! The `Learner`: owns the data, the model, its parameters and optimizer state, and fits with one
//! plain loop that the schedules, `lr_find` and the recorder plug into. How a step is computed is
//! an engine's business (the private `learner::engine`): the loop only asks it to step and to
//! synchronise.
pub mod device;
pub(crate) mod engine;
pub mod lr_find;
pub mod optim;
pub mod params;
pub mod persist;
pub mod recorder;
pub mod schedule;

use std::ops::ControlFlow;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Tensor};

use crate::data::databunch::{CollabDataBunch, Encoded, EpochOrders};
use crate::error::{Error, Result};
use crate::model::init::InitRng;
use crate::model::{CollabModel, DotBiasConfig, EmbeddingDotBias, EmbeddingNN, EmbeddingNNConfig};
use crate::progress;
pub use device::DeviceChoice;
use engine::{Live, Plan};
use optim::AdamState;
use params::Params;
use recorder::{EpochStats, Metrics, Recorder, SmoothLoss};
use schedule::OneCycle;

/// Which model `collab_learner` builds.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// `EmbeddingDotBias` (the lesson's model).
    DotBias(DotBiasConfig),
    /// `EmbeddingNN` (`use_nn=True`).
    Nn(EmbeddingNNConfig),
}

impl ModelConfig {
    /// The output range of the model.
    pub fn y_range(&self) -> Option<(f64, f64)> {
        match self {
            ModelConfig::DotBias(c) => c.y_range,
            ModelConfig::Nn(c) => c.y_range,
        }
    }

    /// The same model with output range `y_range`.
    pub fn with_y_range(mut self, y_range: Option<(f64, f64)>) -> Self {
        match &mut self {
            ModelConfig::DotBias(c) => c.y_range = y_range,
            ModelConfig::Nn(c) => c.y_range = y_range,
        }
        self
    }
}

/// How training steps are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TrainMode {
    /// `exact` where it applies (either model, f32 on the CPU), else `autograd`.
    #[default]
    Auto,
    /// fastai's dense AdamW semantics at sparse cost: embedding rows a batch does not touch are
    /// brought up to date in closed form when next read. Same results as `dense` (EmbeddingNN:
    /// `autograd`), up to rounding.
    Exact,
    /// fastai's math as written: AdamW over every row at every step, in Rust loops
    /// (EmbeddingDotBias). The reference.
    Dense,
    /// libtorch autograd and AdamW in tensor ops: any model, any device.
    Autograd,
    /// AdamW updates only the rows in the batch (EmbeddingDotBias). Not fastai's semantics
    /// (slightly worse validation loss), so it is never chosen automatically.
    Lazy,
}

impl TrainMode {
    /// The mode's name on the command line and in `metrics.json`.
    pub fn name(self) -> &'static str {
        match self {
            TrainMode::Auto => "auto",
            TrainMode::Exact => "exact",
            TrainMode::Dense => "dense",
            TrainMode::Autograd => "autograd",
            TrainMode::Lazy => "lazy",
        }
    }
}

/// Batches into an epoch after which the next epoch's order starts being drawn (or half the
/// epoch, when shorter): by then the helper that prepares batches has filled its queue, so the
/// thread that draws the order no longer takes the second core from it when it matters most. From
/// the epoch's start, the lesson's fits waited about 1 ms per epoch for their first batches.
const DRAW_NEXT_AFTER: usize = 64;

/// Everything `collab_learner` needs besides the data.
#[derive(Debug, Clone, PartialEq)]
pub struct CollabLearnerConfig {
    /// The model and its shape.
    pub model: ModelConfig,
    /// Decoupled weight decay (fastai's default 0.01; the lesson uses 0.1).
    pub wd: f64,
    /// Adam's β2 (fastai: 0.99).
    pub beta2: f64,
    /// Adam's ε (fastai v1: 1e-8).
    pub eps: f64,
    /// How steps are computed.
    pub mode: TrainMode,
    /// Seed of the model's initialisation; `None` uses the data's seed.
    pub seed: Option<u64>,
    /// Folder under which `models/` is written.
    pub path: PathBuf,
    /// Where the model lives.
    pub device: DeviceChoice,
}

impl Default for CollabLearnerConfig {
    fn default() -> Self {
        CollabLearnerConfig {
            model: ModelConfig::DotBias(DotBiasConfig::default()),
            wd: 0.01,
            beta2: 0.99,
            eps: 1e-8,
            mode: TrainMode::Auto,
            seed: None,
            path: PathBuf::from("."),
            device: DeviceChoice::Auto,
        }
    }
}

impl CollabLearnerConfig {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        match &self.model {
            ModelConfig::DotBias(c) if c.n_factors == 0 => return bad("n_factors must be at least 1".into()),
            ModelConfig::Nn(c) if c.layers.contains(&0) => return bad("layer widths must be at least 1".into()),
            ModelConfig::Nn(c) if !c.ps.iter().chain([&c.emb_drop]).all(|p| (0.0..1.0).contains(p)) => {
                return bad(format!("dropout probabilities must be in [0, 1): emb_drop {}, ps {:?}", c.emb_drop, c.ps))
            }
            _ => {}
        }
        if let Some((lo, hi)) = self.model.y_range().filter(|(lo, hi)| !(lo < hi && lo.is_finite() && hi.is_finite())) {
            return bad(format!("y_range ({lo}, {hi}) must be finite with low < high"));
        }
        if !(self.wd >= 0.0 && self.wd.is_finite() && (0.0..1.0).contains(&self.beta2) && self.eps > 0.0) {
            return bad(format!(
                "need wd ≥ 0, 0 ≤ beta2 (sqr_mom) < 1, eps > 0 (got {}, {}, {})",
                self.wd, self.beta2, self.eps
            ));
        }
        Ok(())
    }
}

/// Data, model, optimizer state and recorder, with fastai's training methods.
pub struct Learner {
    /// The ratings and vocabularies.
    pub data: CollabDataBunch,
    /// The model (its tensors live in `vs`).
    pub model: CollabModel,
    /// All model variables, named like fastai's state dict (`u_weight.weight`, …).
    pub vs: nn::VarStore,
    /// What the last fit recorded.
    pub recorder: Recorder,
    /// Print the epoch table while fitting.
    pub verbose: bool,
    cfg: CollabLearnerConfig,
    params: Params,
    opt: AdamState,
    mom: f64,
    rng: ChaCha8Rng,
    fits: Vec<FitRecord>,
}

/// One completed fit, for the record exported models keep.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FitRecord {
    /// `one_cycle`, `constant` or `custom`.
    pub schedule: String,
    /// Epochs.
    pub epochs: usize,
    /// Peak (one cycle) or constant learning rate; `None` for a custom schedule.
    pub lr: Option<f64>,
}

/// Everything training changes, for `lr_find` and for undoing a diverged fit.
struct Snapshot {
    vars: Vec<(String, Tensor)>,
    opt: AdamState,
    rng: ChaCha8Rng,
    dropout: Option<u64>,
    mom: f64,
}

/// What the loop reports to a hook after each batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchEnd {
    /// The smoothed training loss after it.
    pub smooth_loss: f64,
}

/// Builds a learner for `data` (fastai's `collab_learner`).
pub fn collab_learner(data: CollabDataBunch, cfg: &CollabLearnerConfig) -> Result<Learner> {
    cfg.validate()?;
    crate::threads::init()?;
    if let Some((lo, hi)) = cfg.model.y_range() {
        // A rating a little outside y_range is only unreachable; one further out than the range is
        // wide is a data error (a timestamp in the rating column, 1e30…) that would wreck training.
        let span = hi - lo;
        let far = |r: &&f32| !((lo - span..=hi + span).contains(&(**r as f64)));
        if let Some((row, r)) = data.train.ratings.iter().enumerate().find(|(_, r)| far(r)) {
            let n = data.train.ratings.iter().filter(far).count();
            return Err(Error::InvalidConfig(format!(
                "{n} training rating(s) lie far outside y_range ({lo}, {hi}), e.g. {r} (training row {row}); \
                 the model can never come near them: fix the data or widen y_range"
            )));
        }
    }
    let device = cfg.device.resolve()?;
    let vs = nn::VarStore::new(device);
    let mut rng = InitRng::new(cfg.seed.unwrap_or(data.seed));
    let (n_users, n_items) = (data.n_users(), data.n_items());
    let model = match &cfg.model {
        ModelConfig::DotBias(c) => {
            CollabModel::DotBias(EmbeddingDotBias::new(&vs.root(), n_users, n_items, c, &mut rng))
        }
        ModelConfig::Nn(c) => CollabModel::Nn(EmbeddingNN::new(&vs.root(), n_users, n_items, c, &mut rng)),
    };
    drop(rng);
    check_batch_norm_bs(&model, data.bs)?;
    let params = Params::new(&vs, model.no_decay());
    engine::resolve(cfg.mode, &model, &params)?;
    let opt = AdamState::new(&params);
    let rng = ChaCha8Rng::seed_from_u64(data.seed.wrapping_add(0x5eed));
    Ok(Learner {
        data,
        model,
        vs,
        recorder: Recorder::default(),
        verbose: true,
        cfg: cfg.clone(),
        params,
        opt,
        mom: 0.9,
        rng,
        fits: Vec::new(),
    })
}

/// Refuses training batches of one rating for an EmbeddingNN with BatchNorm, whose batch
/// statistics need two (checked when the learner is built and at each fit, as `data.bs` can change).
fn check_batch_norm_bs(model: &CollabModel, bs: usize) -> Result<()> {
    match model {
        CollabModel::Nn(m) if bs < 2 && !m.batch_norm_stats().is_empty() => Err(Error::InvalidConfig(format!(
            "EmbeddingNN's BatchNorm needs training batches of at least 2 ratings (bs is {bs}): raise bs, or \
             build the model without BatchNorm (`use_bn: false`)"
        ))),
        _ => Ok(()),
    }
}

/// The tensors of `rows` of `data` on `device`: users and items (int64) and ratings (f32).
pub(crate) fn batch_tensors(data: &Encoded, rows: &[u32], device: Device) -> (Tensor, Tensor, Tensor) {
    let users: Vec<i64> = rows.iter().map(|&r| data.users[r as usize] as i64).collect();
    let items: Vec<i64> = rows.iter().map(|&r| data.items[r as usize] as i64).collect();
    let y: Vec<f32> = rows.iter().map(|&r| data.ratings[r as usize]).collect();
    (Tensor::from_slice(&users).to(device), Tensor::from_slice(&items).to(device), Tensor::from_slice(&y).to(device))
}

impl Learner {
    /// The training mode the next fit uses (never `Auto`): it depends on the model and on where
    /// and in which precision its parameters are now.
    pub fn mode(&self) -> TrainMode {
        engine::resolve(self.cfg.mode, &self.model, &self.params).unwrap_or(TrainMode::Autograd)
    }

    /// The device the model lives on.
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The configuration the learner was built with.
    pub fn config(&self) -> &CollabLearnerConfig {
        &self.cfg
    }

    /// Folder where `save`/`load` keep models: `path/models`.
    pub fn model_dir(&self) -> PathBuf {
        self.cfg.path.join("models")
    }

    /// The optimizer's parameters by name, with their weight-decay flags.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// What the last fit measured and how it ran, as `metrics.json` holds it.
    pub fn metrics(&self) -> Metrics {
        let epochs = &self.recorder.epochs;
        Metrics {
            train_loss: epochs.iter().map(|e| e.train_loss).collect(),
            valid_loss: epochs.iter().map(|e| e.valid_loss).collect(),
            epoch_seconds: epochs.iter().map(|e| e.seconds).collect(),
            fit_seconds: self.recorder.fit_seconds,
            n_users: self.data.n_users(),
            n_items: self.data.n_items(),
            seed: self.data.seed,
            split: self.data.provenance.split.clone(),
            sqr_mom: self.cfg.beta2,
            mode: self.recorder.mode.unwrap_or_else(|| self.mode()).name().into(),
            device: format!("{:?}", self.device()).to_lowercase(),
            threads: crate::threads::current(),
            lr_suggestions: None,
        }
    }

    /// `fit_one_cycle(n_epochs, lr_max)` with fastai v1's defaults.
    pub fn fit_one_cycle(&mut self, n_epochs: usize, lr_max: f64) -> Result<()> {
        self.fit_one_cycle_with(n_epochs, &OneCycle::new(lr_max))
    }

    /// One-cycle training with an explicit policy.
    pub fn fit_one_cycle_with(&mut self, n_epochs: usize, cycle: &OneCycle) -> Result<()> {
        cycle.check()?;
        let n = n_epochs * self.data.n_train_batches();
        let record = FitRecord { schedule: "one_cycle".into(), epochs: n_epochs, lr: Some(cycle.lr_max) };
        self.fit_recorded(n_epochs, |i| cycle.at(i, n), record)
    }

    /// `fit(n_epochs, lr)`: constant learning rate; momentum stays where the last fit left it.
    pub fn fit(&mut self, n_epochs: usize, lr: f64) -> Result<()> {
        let mom = self.mom;
        let record = FitRecord { schedule: "constant".into(), epochs: n_epochs, lr: Some(lr) };
        self.fit_recorded(n_epochs, |_| (lr, mom), record)
    }

    /// The fits this learner completed, oldest first.
    pub fn fits(&self) -> &[FitRecord] {
        &self.fits
    }

    /// The training loop: `schedule(i)` gives `(lr, mom)` for global batch `i`. A fit whose loss
    /// becomes NaN or infinite stops at once with [`Error::Diverged`] and leaves the learner as it
    /// was before the fit.
    pub fn fit_with(&mut self, n_epochs: usize, schedule: impl Fn(usize) -> (f64, f64)) -> Result<()> {
        self.fit_recorded(n_epochs, schedule, FitRecord { schedule: "custom".into(), epochs: n_epochs, lr: None })
    }

    /// [`Learner::fit_with`], recording `record` once the fit succeeded.
    fn fit_recorded(
        &mut self,
        n_epochs: usize,
        schedule: impl Fn(usize) -> (f64, f64),
        record: FitRecord,
    ) -> Result<()> {
        let n_steps = n_epochs * self.data.n_train_batches();
        self.run(n_epochs, n_steps, schedule, true, |_| ControlFlow::Continue(()))?;
        self.fits.push(record);
        Ok(())
    }

    /// The one loop behind `fit_with` and `lr_find`: at most `n_steps` batches over `n_epochs`
    /// epochs; `hook` sees every batch and may stop the fit; `validate` runs the validation set
    /// after each epoch and prints the epoch table (when `verbose`).
    pub(crate) fn run(
        &mut self,
        n_epochs: usize,
        n_steps: usize,
        schedule: impl Fn(usize) -> (f64, f64),
        validate: bool,
        hook: impl FnMut(BatchEnd) -> ControlFlow<()>,
    ) -> Result<()> {
        // The training ratings are lent to the fit, which may share them with a helper thread
        // (the engine's batches are prepared ahead), and put back when it ends, even by a panic:
        // no copy of them is made.
        let train = Arc::new(std::mem::take(&mut self.data.train));
        let fit = catch_unwind(AssertUnwindSafe(|| self.run_on(&train, n_epochs, n_steps, schedule, validate, hook)));
        // Every engine and helper thread is gone by now, and with them their handles on `train`.
        debug_assert_eq!(Arc::strong_count(&train), 1, "the training ratings are still shared after the fit");
        self.data.train = Arc::try_unwrap(train).unwrap_or_else(|shared| (*shared).clone());
        fit.unwrap_or_else(|panic| resume_unwind(panic))
    }

    /// [`Learner::run`] on the training ratings `train` (lent from the data bunch).
    fn run_on(
        &mut self,
        train: &Arc<Encoded>,
        n_epochs: usize,
        n_steps: usize,
        schedule: impl Fn(usize) -> (f64, f64),
        validate: bool,
        mut hook: impl FnMut(BatchEnd) -> ControlFlow<()>,
    ) -> Result<()> {
        let n_batches = train.len() / self.data.bs;
        if n_batches == 0 {
            return Err(Error::InvalidConfig(format!(
                "{} training rows make no batch of {}",
                train.len(),
                self.data.bs
            )));
        }
        check_batch_norm_bs(&self.model, self.data.bs)?;
        let lr_mom: Vec<(f64, f64)> = (0..n_steps).map(&schedule).collect();
        if let Some((lr, mom)) =
            lr_mom.iter().find(|(lr, mom)| !(lr.is_finite() && *lr >= 0.0 && (0.0..1.0).contains(mom)))
        {
            return Err(Error::InvalidConfig(format!(
                "the schedule asks for lr {lr} and momentum {mom}; need a finite lr ≥ 0 and 0 ≤ momentum < 1"
            )));
        }
        let plan = Plan {
            lr_mom,
            steps_before: self.opt.step,
            beta2: self.cfg.beta2,
            eps: self.cfg.eps,
            wd: self.cfg.wd,
            bs: self.data.bs,
        };
        let mode = engine::resolve(self.cfg.mode, &self.model, &self.params)?;
        self.opt.align(&self.params);
        let before = self.snapshot();
        let _flush = engine::tables::FlushDenormals::new();
        // The engine's view of the learner, built afresh at each call (disjoint borrows of fields).
        macro_rules! live {
            () => {
                Live { model: &self.model, params: &self.params, opt: &mut self.opt, data: train, plan: &plan }
            };
        }
        // A fit's time includes building its engine; the first epoch's order is drawn meanwhile.
        let fit_start = Instant::now();
        let mut orders = EpochOrders::new(train.len(), &self.rng);
        let (mut engine, path) = engine::build(mode, &live!())?;
        if path != mode && self.verbose {
            eprintln!("the exact path's closed form cannot follow this schedule; training through {}", path.name());
        }
        self.recorder = Recorder { mode: Some(path), ..Recorder::default() };
        if self.verbose && validate {
            println!("{}", Recorder::header());
        }
        let mut smooth = SmoothLoss::default();
        let mut k = 0;
        let mut stopped = false;
        for epoch in 0..n_epochs {
            let start = Instant::now();
            // The batch at which the next epoch's order starts being drawn, when one follows.
            let draw_next =
                (epoch + 1 < n_epochs && k + n_batches < n_steps).then_some(DRAW_NEXT_AFTER.min(n_batches / 2));
            let order = Arc::new(orders.next(&mut self.rng));
            engine.epoch(&order, self.data.bs, k + 1..=(k + n_batches).min(n_steps));
            let bar = progress::batch_bar(n_batches as u64, &format!("Epoch {}/{n_epochs} :", epoch + 1));
            let mut train_loss = f64::NAN;
            for (b, batch) in order.chunks_exact(self.data.bs).enumerate() {
                if k == n_steps || stopped {
                    break;
                }
                if draw_next == Some(b) {
                    orders.draw_ahead(&self.rng);
                }
                let (lr, mom) = plan.lr_mom[k];
                k += 1;
                let loss = engine.step(&mut live!(), batch, k);
                self.mom = mom;
                train_loss = smooth.add(loss);
                self.recorder.lrs.push(lr);
                self.recorder.moms.push(mom);
                self.recorder.losses.push(train_loss);
                if b % 64 == 0 {
                    bar.set_position(b as u64);
                    bar.set_message(format!("{train_loss:.4}"));
                }
                stopped = hook(BatchEnd { smooth_loss: train_loss }).is_break();
                if !stopped && !loss.is_finite() {
                    bar.finish_and_clear();
                    self.restore(before);
                    return Err(Error::Diverged { epoch, batch: b, lr, loss });
                }
            }
            bar.finish_and_clear();
            orders.recycle(order);
            // The tensors are written at the end of the fit; between epochs an engine with state
            // of its own validates from it (the same bits), and the others write it first.
            let last = stopped || k == n_steps || epoch + 1 == n_epochs;
            if last {
                engine.sync(&mut live!(), k)?;
                self.opt.step = plan.steps_before + k as u64;
            }
            if stopped || k == n_steps && !validate {
                break;
            }
            if validate {
                let valid = &self.data.valid;
                let predicted =
                    if last || valid.is_empty() { None } else { engine.predict(k, &valid.users, &valid.items) };
                let valid_loss = match predicted {
                    Some(p) => Some(crate::metrics::mse(&p, &valid.ratings)),
                    None => {
                        if !last {
                            engine.sync(&mut live!(), k)?;
                        }
                        self.validate()
                    }
                };
                if valid_loss.is_some_and(|v| !v.is_finite()) {
                    self.restore(before);
                    return Err(Error::Diverged { epoch, batch: n_batches, lr: plan.lr_mom[k - 1].0, loss: f64::NAN });
                }
                let stats = EpochStats { epoch, train_loss, valid_loss, seconds: start.elapsed().as_secs_f64() };
                if self.verbose {
                    println!("{}", Recorder::row(&stats));
                }
                self.recorder.epochs.push(stats);
            }
        }
        self.recorder.fit_seconds = fit_start.elapsed().as_secs_f64();
        Ok(())
    }

    /// Predictions for every rating in `data`, in eval mode.
    pub fn predict_encoded(&self, data: &Encoded) -> Vec<f32> {
        self.model.predict_rows(&data.users, &data.items)
    }

    /// `(predictions, targets)` for the validation set (`valid`) or the training set.
    pub fn get_preds(&self, valid: bool) -> (Vec<f32>, Vec<f32>) {
        let data = if valid { &self.data.valid } else { &self.data.train };
        (self.predict_encoded(data), data.ratings.clone())
    }

    /// Exact mean squared error over the validation set; `None` when it is empty.
    pub fn validate(&self) -> Option<f64> {
        (!self.data.valid.is_empty())
            .then(|| crate::metrics::mse(&self.predict_encoded(&self.data.valid), &self.data.valid.ratings))
    }

    /// The predicted rating of `user` for `item`, both as named in the data (ids or titles).
    ///
    /// Unlike fastai, which maps unknown names to `#na#`, an unknown name is an error with close
    /// matches: a typo should not silently produce a generic prediction.
    pub fn predict(&self, user: &str, item: &str) -> Result<f32> {
        let u = crate::interpret::lookup(&self.data.user_vocab, user, false)?;
        let i = crate::interpret::lookup(&self.data.item_vocab, item, true)?;
        let one = Encoded { users: vec![u], items: vec![i], ratings: vec![0.0] };
        Ok(self.predict_encoded(&one)[0])
    }

    /// Everything training changes: variables (BatchNorm statistics too), optimizer, RNG, momentum.
    fn snapshot(&self) -> Snapshot {
        let vars = self.vs.variables().into_iter().map(|(n, t)| (n, t.copy())).collect();
        let dropout = self.model.dropout_rng().map(|d| d.position());
        Snapshot { vars, opt: self.opt.snapshot(), rng: self.rng.clone(), dropout, mom: self.mom }
    }

    fn restore(&mut self, Snapshot { vars, opt, rng, dropout, mom }: Snapshot) {
        let live = self.vs.variables();
        tch::no_grad(|| {
            for (name, saved) in &vars {
                live[name].shallow_clone().copy_(saved);
            }
        });
        self.opt = opt;
        self.rng = rng;
        if let (Some(stream), Some(position)) = (self.model.dropout_rng(), dropout) {
            stream.rewind(position);
        }
        self.mom = mom;
    }
}
