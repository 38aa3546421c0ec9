//! The `Learner`: owns the data, the model, its parameters and optimizer state, and fits with one
//! plain loop that the schedules, `lr_find` and the recorder plug into.
pub mod fast;
pub mod lr_find;
pub mod optim;
pub mod persist;
pub mod recorder;
pub mod schedule;

use std::path::PathBuf;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tch::{nn, Device, Kind, Tensor};

use crate::data::databunch::{CollabDataBunch, Encoded};
use crate::error::{Error, Result};
use crate::model::init::InitRng;
use crate::model::{CollabModel, DotBiasConfig, EmbeddingDotBias, EmbeddingNN, EmbeddingNNConfig};
use crate::progress;
use fast::{DotTables, Scratch};
use optim::{AdamHyper, AdamState};
use recorder::{EpochStats, Recorder, SmoothLoss};
use schedule::OneCycle;

/// Which model `collab_learner` builds.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// `EmbeddingDotBias` (the lesson's model).
    DotBias(DotBiasConfig),
    /// `EmbeddingNN` (`use_nn=True`).
    Nn(EmbeddingNNConfig),
}

/// How training steps are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainMode {
    /// `Exact` where it applies (EmbeddingDotBias on the CPU), else `Autograd`.
    #[default]
    Auto,
    /// Hand-written forward/backward and one AdamW pass per table: fastai's math, fast.
    Exact,
    /// libtorch autograd and AdamW in tensor ops: any model, any device; the reference.
    Autograd,
    /// Like `Exact`, but AdamW updates only the rows in the batch. Much faster, slightly worse
    /// validation loss: it is not fastai's semantics, so it is never chosen automatically.
    Lazy,
}

impl std::str::FromStr for TrainMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(TrainMode::Auto),
            "exact" => Ok(TrainMode::Exact),
            "autograd" => Ok(TrainMode::Autograd),
            "lazy" => Ok(TrainMode::Lazy),
            _ => Err(Error::InvalidConfig(format!("unknown mode {s:?}; use auto, exact, autograd or lazy"))),
        }
    }
}

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
    /// Device for the model; `None` means `Device::cuda_if_available()`.
    pub device: Option<Device>,
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
            device: None,
        }
    }
}

impl CollabLearnerConfig {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        let y_range = match &self.model {
            ModelConfig::DotBias(c) if c.n_factors == 0 => return bad("n_factors must be at least 1".into()),
            ModelConfig::Nn(c) if c.layers.contains(&0) => return bad("layer widths must be at least 1".into()),
            ModelConfig::DotBias(c) => c.y_range,
            ModelConfig::Nn(c) => c.y_range,
        };
        if let Some((lo, hi)) = y_range.filter(|(lo, hi)| lo >= hi) {
            return bad(format!("y_range ({lo}, {hi}) must have low < high"));
        }
        if !(self.wd >= 0.0 && (0.0..1.0).contains(&self.beta2) && self.eps > 0.0) {
            return bad(format!("need wd ≥ 0, 0 ≤ beta2 < 1, eps > 0 (got {}, {}, {})", self.wd, self.beta2, self.eps));
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
    mode: TrainMode,
    params: Vec<Tensor>,
    opt: AdamState,
    mom: f64,
    rng: ChaCha8Rng,
    scratch: Option<Scratch>,
    memory: Option<fast::Memory>,
    decayed: Vec<bool>,
}

struct Snapshot {
    vars: Vec<(String, Tensor)>,
    opt: AdamState,
    rng: ChaCha8Rng,
    mom: f64,
}

/// Builds a learner for `data` (fastai's `collab_learner`).
pub fn collab_learner(data: CollabDataBunch, cfg: &CollabLearnerConfig) -> Result<Learner> {
    cfg.validate()?;
    crate::threads::init();
    let device = cfg.device.unwrap_or_else(Device::cuda_if_available);
    let vs = nn::VarStore::new(device);
    let mut rng = InitRng::new(cfg.seed.unwrap_or(data.seed));
    let (n_users, n_items) = (data.n_users(), data.n_items());
    let model = match &cfg.model {
        ModelConfig::DotBias(c) => {
            CollabModel::DotBias(EmbeddingDotBias::new(&vs.root(), n_users, n_items, c, &mut rng))
        }
        ModelConfig::Nn(c) => CollabModel::Nn(EmbeddingNN::new(&vs.root(), n_users, n_items, c, &mut rng)),
    };
    let fast_ok = matches!(model, CollabModel::DotBias(_)) && device == Device::Cpu;
    let mode = match cfg.mode {
        TrainMode::Auto if fast_ok => TrainMode::Exact,
        TrainMode::Auto => TrainMode::Autograd,
        m @ (TrainMode::Exact | TrainMode::Lazy) if !fast_ok => {
            return Err(Error::InvalidConfig(format!("{m:?} mode needs EmbeddingDotBias on the CPU; use autograd")))
        }
        m => m,
    };
    let params = vs.trainable_variables();
    let exempt: Vec<*mut std::ffi::c_void> = match &model {
        CollabModel::Nn(m) => m.no_decay().iter().map(|t| t.data_ptr()).collect(),
        CollabModel::DotBias(_) => Vec::new(),
    };
    let decayed = params.iter().map(|p| !exempt.contains(&p.data_ptr())).collect();
    let scratch = matches!(mode, TrainMode::Exact | TrainMode::Lazy).then(|| {
        Scratch::new(
            params.iter().map(|p| p.numel()).collect::<Vec<_>>().try_into().unwrap_or([0; 4]),
            n_users,
            n_items,
        )
    });
    let opt = AdamState::new(&params);
    let rng = ChaCha8Rng::seed_from_u64(data.seed.wrapping_add(0x5eed));
    Ok(Learner {
        data,
        model,
        vs,
        recorder: Recorder::default(),
        verbose: true,
        cfg: cfg.clone(),
        mode,
        params,
        opt,
        mom: 0.9,
        rng,
        scratch,
        memory: None,
        decayed,
    })
}

impl Learner {
    /// The training mode in use (never `Auto`).
    pub fn mode(&self) -> TrainMode {
        self.mode
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

    /// What the last fit measured, as the keys of `metrics.json`: `train_loss`, `valid_loss` and
    /// `epoch_seconds` (one per epoch), `fit_seconds`, `n_users`, `n_items` (`#na#` included),
    /// `seed`, `mode`, `threads`.
    pub fn metrics(&self) -> serde_json::Map<String, serde_json::Value> {
        let epochs = &self.recorder.epochs;
        let json = serde_json::json!({
            "train_loss": epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>(),
            "valid_loss": epochs.iter().map(|e| e.valid_loss).collect::<Vec<_>>(),
            "epoch_seconds": epochs.iter().map(|e| e.seconds).collect::<Vec<_>>(),
            "fit_seconds": self.recorder.fit_seconds,
            "n_users": self.data.n_users(),
            "n_items": self.data.n_items(),
            "seed": self.data.seed,
            "mode": format!("{:?}", self.mode).to_lowercase(),
            "threads": crate::threads::current(),
        });
        match json {
            serde_json::Value::Object(map) => map,
            _ => unreachable!("a JSON object literal"),
        }
    }

    /// `fit_one_cycle(n_epochs, lr_max)` with fastai v1's defaults.
    pub fn fit_one_cycle(&mut self, n_epochs: usize, lr_max: f64) -> Result<()> {
        self.fit_one_cycle_with(n_epochs, &OneCycle::new(lr_max))
    }

    /// One-cycle training with an explicit policy.
    pub fn fit_one_cycle_with(&mut self, n_epochs: usize, cycle: &OneCycle) -> Result<()> {
        let n = n_epochs * self.data.n_train_batches();
        self.fit_with(n_epochs, |i| cycle.at(i, n))
    }

    /// `fit(n_epochs, lr)`: constant learning rate; momentum stays where the last fit left it.
    pub fn fit(&mut self, n_epochs: usize, lr: f64) -> Result<()> {
        let mom = self.mom;
        self.fit_with(n_epochs, |_| (lr, mom))
    }

    /// The training loop: `schedule(i)` gives `(lr, mom)` for global batch `i`.
    pub fn fit_with(&mut self, n_epochs: usize, schedule: impl Fn(usize) -> (f64, f64)) -> Result<()> {
        let n_batches = self.data.n_train_batches();
        if n_batches == 0 {
            return Err(Error::InvalidConfig(format!(
                "{} training rows make no batch of {}",
                self.data.train.len(),
                self.data.bs
            )));
        }
        fast::flush_denormals();
        self.recorder = Recorder::default();
        let mut smooth = SmoothLoss::default();
        if self.verbose {
            println!("{}", Recorder::header());
        }
        let fit_start = Instant::now();
        for epoch in 0..n_epochs {
            let start = Instant::now();
            let order = self.data.shuffled(&mut self.rng);
            let bar = progress::batch_bar(n_batches as u64, &format!("Epoch {}/{n_epochs} :", epoch + 1));
            let mut train_loss = f64::NAN;
            for (b, batch) in order.chunks_exact(self.data.bs).enumerate() {
                let (lr, mom) = schedule(epoch * n_batches + b);
                let loss = self.train_step(batch, lr, mom);
                train_loss = smooth.add(loss);
                self.recorder.lrs.push(lr);
                self.recorder.moms.push(mom);
                self.recorder.losses.push(train_loss);
                if b % 64 == 0 {
                    bar.set_position(b as u64);
                    bar.set_message(format!("{train_loss:.4}"));
                }
            }
            bar.finish_and_clear();
            let stats =
                EpochStats { epoch, train_loss, valid_loss: self.validate(), seconds: start.elapsed().as_secs_f64() };
            if self.verbose {
                println!("{}", Recorder::row(&stats));
            }
            self.recorder.epochs.push(stats);
        }
        self.recorder.fit_seconds = fit_start.elapsed().as_secs_f64();
        Ok(())
    }

    /// One optimizer step on the training rows `batch`; returns the batch's mean loss.
    fn train_step(&mut self, batch: &[u32], lr: f64, mom: f64) -> f64 {
        self.mom = mom;
        self.opt.step += 1;
        let hyper = AdamHyper {
            lr,
            beta1: mom,
            beta2: self.cfg.beta2,
            eps: self.cfg.eps,
            wd: self.cfg.wd,
            step: self.opt.step,
        };
        match (&self.model, self.scratch.as_mut(), self.mode) {
            (CollabModel::DotBias(m), Some(scratch), TrainMode::Exact | TrainMode::Lazy) => {
                // SAFETY: the eight tensors are distinct, contiguous f32 CPU tensors owned by this
                // learner, and libtorch does not touch them while these views live.
                let (params, opt) = (&self.params, &self.opt);
                let memory =
                    *self.memory.get_or_insert_with(|| fast::Memory::of(params, &opt.exp_avg, &opt.exp_avg_sq));
                unsafe {
                    let (tables, mut ms, mut vs) = memory.views();
                    let mut tables = DotTables { tables, nf: m.n_factors() };
                    let loss = fast::forward_backward(&tables, &self.data.train, batch, m.y_range, scratch);
                    fast::step(&mut tables, &mut ms, &mut vs, scratch, hyper, self.mode == TrainMode::Lazy);
                    loss as f64
                }
            }
            _ => {
                let (users, items, y) = self.batch_tensors(&self.data.train, batch);
                for p in &mut self.params {
                    p.zero_grad();
                }
                let loss = self.model.forward_t(&users, &items, true).mse_loss(&y, tch::Reduction::Mean);
                loss.backward();
                self.opt.step_tensors(&self.params, &self.decayed, hyper);
                loss.double_value(&[])
            }
        }
    }

    fn batch_tensors(&self, data: &Encoded, rows: &[u32]) -> (Tensor, Tensor, Tensor) {
        let d = self.device();
        let users: Vec<i64> = rows.iter().map(|&r| data.users[r as usize] as i64).collect();
        let items: Vec<i64> = rows.iter().map(|&r| data.items[r as usize] as i64).collect();
        let y: Vec<f32> = rows.iter().map(|&r| data.ratings[r as usize]).collect();
        (Tensor::from_slice(&users).to(d), Tensor::from_slice(&items).to(d), Tensor::from_slice(&y).to(d))
    }

    /// Predictions for every rating in `data`, in eval mode.
    pub fn predict_encoded(&self, data: &Encoded) -> Vec<f32> {
        let mut out = Vec::with_capacity(data.len());
        tch::no_grad(|| {
            let rows: Vec<u32> = (0..data.len() as u32).collect();
            for chunk in rows.chunks(4096) {
                let (users, items, _) = self.batch_tensors(data, chunk);
                let preds = self.model.forward_t(&users, &items, false).to_kind(Kind::Float).to(Device::Cpu);
                out.extend(Vec::<f32>::try_from(&preds).expect("float predictions"));
            }
        });
        out
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
        Snapshot { vars, opt: self.opt.snapshot(), rng: self.rng.clone(), mom: self.mom }
    }

    fn restore(&mut self, Snapshot { vars, opt, rng, mom }: Snapshot) {
        let live = self.vs.variables();
        tch::no_grad(|| {
            for (name, saved) in &vars {
                live[name].shallow_clone().copy_(saved);
            }
        });
        self.opt = opt;
        self.memory = None;
        self.rng = rng;
        self.mom = mom;
    }
}
