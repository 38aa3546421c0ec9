//! The figures behind `fastcollab bench`: the lesson's fit through every training path timed in
//! one process (and fastai's, when a Python with fastai is given), or one path at scale on a
//! synthetic MovieLens-25M-shaped dataset against the dense path's estimated epoch. Every report
//! serialises to the JSON the README documents (its keys are a contract).
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use crate::data::databunch::{CollabConfig, CollabDataBunch};
use crate::data::movielens::MovieLens100k;
use crate::data::split::SplitMethod;
use crate::data::synthetic::{generate, SyntheticConfig};
use crate::error::{Error, Result};
use crate::evaluate::cpu::{thread_seconds, CpuUse, CpuWatch};
use crate::infer::rank::top_n;
use crate::infer::{fold_in_rows, FoldIn, Seen};
use crate::learner::schedule::OneCycle;
use crate::learner::{collab_learner, CollabLearnerConfig, DeviceChoice, Learner, ModelConfig, TrainMode};
use crate::model::{DotBiasConfig, EmbeddingNNConfig};
use crate::recipe::{Recipe, Run};

/// One variant's fit: its time and final validation MSE (`version` for fastai's rows).
#[derive(Debug, Clone, Serialize)]
pub struct Fit {
    /// The whole fit, building its engine included; for a path fitted several times in a run, the
    /// mean of `runs`.
    pub fit_seconds: f64,
    /// Validation MSE after the fit.
    pub valid_mse: f64,
    /// Each fit's seconds, in the order they ran, for a path fitted several times in a run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<f64>,
    /// fastai's version, for its rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Top 10 for every user, excluding what each rated in training.
#[derive(Debug, Clone, Serialize)]
pub struct RecommendTiming {
    /// Wall time, the grouping of training ratings by user included.
    pub all_users_top10_seconds: f64,
    /// Users ranked (`#na#` excluded).
    pub n_users: usize,
}

/// Fold-ins of users from `k` of their training ratings, one at a time.
#[derive(Debug, Clone, Serialize)]
pub struct FoldInTiming {
    /// Ratings per fold-in.
    pub k: usize,
    /// Users folded in.
    pub n: usize,
    /// Mean wall time of one, in milliseconds.
    pub mean_ms: f64,
    /// The slowest one.
    pub max_ms: f64,
}

/// The lesson's `fit_one_cycle(5, 5e-3)` through each path, in one process.
#[derive(Debug, Clone, Serialize)]
pub struct LessonReport {
    /// `exact`, `dense`, `autograd`, `lazy`, and `fastai`, `nn_exact` (or `nn_autograd`),
    /// `fastai_nn` when measured.
    pub variants: BTreeMap<String, Fit>,
    /// Recommending for every user with the exact path's model.
    pub recommend: RecommendTiming,
    /// Folding in users with the exact path's model.
    pub fold_in: FoldInTiming,
    /// libtorch intra-op threads.
    pub threads: i32,
    /// The machine's load average over 1, 5 and 15 minutes, for reading the figures.
    pub loadavg: String,
    /// Why a row is missing (e.g. no fastai), for the reader.
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// What the lesson benchmark runs besides fastcollab's own paths.
#[derive(Debug, Clone, Default)]
pub struct LessonBench {
    /// Python with fastai (`None`: `python3` if it can import fastai; `"none"` skips fastai).
    pub fastai_python: Option<String>,
    /// Device of the autograd row (the other paths are CPU kernels).
    pub device: DeviceChoice,
    /// Also EmbeddingNN ([100, 50], the lesson's settings), and fastai's.
    pub nn: bool,
}

/// Times the lesson's fit through each training path on the ml-100k folder `dir`.
pub fn lesson(dir: &Path, cfg: &LessonBench) -> Result<LessonReport> {
    let ml = MovieLens100k::load(dir)?;
    let data = CollabDataBunch::from_df(
        &ml.rating_movie()?,
        &CollabConfig { item_name: Some("title".into()), ..Default::default() },
    )?;
    let recipe = Recipe::lesson();
    let python = cfg.fastai_python.as_deref().unwrap_or("python3");
    let fastai = python != "none" && has_fastai(python);
    let mut notes = Vec::new();
    if !fastai {
        notes.push(format!("fastai not found for {python}: skipping its rows; pass --fastai-python PATH"));
    }
    // The lesson's fit through `mode` on `device`, quietly.
    let lesson_fit = |mode: TrainMode, device: DeviceChoice| -> Result<Learner> {
        let mut learn = recipe.learner(data.clone(), &Run { mode, device, seed: 42 }, 42)?;
        learn.verbose = false;
        recipe.fit(&mut learn)?;
        Ok(learn)
    };
    // The fits that take seconds, each once, named by their row; the sub-second paths
    // (`SHORT_PATHS`) are fitted before each of them and after the last.
    type Long<'a> = Box<dyn Fn() -> Result<(String, Fit)> + 'a>;
    let mut long: Vec<Long<'_>> =
        vec![Box::new(|| Ok(("autograd".into(), fitted(&lesson_fit(TrainMode::Autograd, cfg.device)?))))];
    if fastai {
        long.push(Box::new(|| Ok(("fastai".into(), run_fastai(&ml, python, false)?))));
    }
    if cfg.nn {
        long.push(Box::new(|| {
            let model = ModelConfig::Nn(EmbeddingNNConfig { layers: vec![100, 50], ..Default::default() });
            let lcfg = CollabLearnerConfig { model, wd: 0.1, device: cfg.device, ..Default::default() };
            let mut learn = collab_learner(data.clone(), &lcfg)?;
            learn.verbose = false;
            learn.fit_one_cycle(5, 5e-3)?;
            Ok((format!("nn_{}", learn.mode().name()), fitted(&learn)))
        }));
        if fastai {
            long.push(Box::new(|| Ok(("fastai_nn".into(), run_fastai(&ml, python, true)?))));
        }
    }
    let mut variants = BTreeMap::new();
    let mut short: BTreeMap<&str, Vec<Fit>> = BTreeMap::new();
    let mut timings = None;
    for round in 0..=long.len() {
        for mode in SHORT_PATHS {
            let learn = lesson_fit(mode, DeviceChoice::Cpu)?;
            short.entry(mode.name()).or_default().push(fitted(&learn));
            if mode == TrainMode::Exact && timings.is_none() {
                let (recommend, seen) = recommend_all(&learn);
                timings = Some((recommend, fold_in_timing(&learn, &seen, 20)));
            }
        }
        if let Some(fit) = long.get(round) {
            let (name, fit) = fit()?;
            variants.insert(name, fit);
        }
    }
    for (name, fits) in short {
        let runs: Vec<f64> = fits.iter().map(|f| f.fit_seconds).collect();
        let mean = runs.iter().sum::<f64>() / runs.len() as f64;
        variants.insert(name.into(), Fit { fit_seconds: mean, runs, ..fits[0].clone() });
    }
    let (recommend, fold_in) = timings.expect("the exact path ran");
    Ok(LessonReport { variants, recommend, fold_in, threads: crate::threads::current(), loadavg: loadavg(), notes })
}

/// The paths whose lesson fit takes well under a second. Such a fit lands in whatever speed this
/// machine has in that fraction of a second (a shared VM's speed swings by half from one second
/// to the next), while fastai's 20–50 s average over those swings; so each is fitted before every
/// fit that takes seconds and after the last, and its row gives the mean.
const SHORT_PATHS: [TrainMode; 3] = [TrainMode::Exact, TrainMode::Dense, TrainMode::Lazy];

fn fitted(learn: &Learner) -> Fit {
    let valid_mse = learn.validate().unwrap_or(f64::NAN);
    Fit { fit_seconds: learn.recorder.fit_seconds, valid_mse, runs: Vec::new(), version: None }
}

/// Top 10 for every user of `learn`'s model, excluding what each rated in training, timed (the
/// grouping of the training ratings by user included; it is returned for reuse).
fn recommend_all(learn: &Learner) -> (RecommendTiming, Seen) {
    let start = Instant::now();
    let seen = Seen::from_encoded(&learn.data.train, learn.data.n_users());
    let users: Vec<u32> = (1..learn.data.n_users() as u32).collect();
    top_n(&learn.model, &users, 10, Some(&seen));
    (RecommendTiming { all_users_top10_seconds: start.elapsed().as_secs_f64(), n_users: users.len() }, seen)
}

/// Folds in up to 200 users of `seen` (`learn`'s training ratings) from `k` of their ratings,
/// timed one by one.
fn fold_in_timing(learn: &Learner, seen: &Seen, k: usize) -> FoldInTiming {
    let cfg = FoldIn::with_training(learn.config().wd, learn.config().beta2, learn.config().eps);
    let mut ms = Vec::new();
    for u in (1..seen.n_users()).filter(|&u| seen.items(u).len() >= k).take(200) {
        let start = Instant::now();
        fold_in_rows(&learn.model, &seen.items(u)[..k], &seen.ratings(u)[..k], None, &cfg);
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    FoldInTiming { k, n: ms.len(), mean_ms: mean, max_ms: ms.iter().copied().fold(f64::NAN, f64::max) }
}

/// Whether `python` can import fastai.
fn has_fastai(python: &str) -> bool {
    Command::new(python).args(["-c", "import fastai"]).output().is_ok_and(|o| o.status.success())
}

/// fastai's fit on the lesson's split through `scripts/fastai_reference.py` (one torch thread).
fn run_fastai(ml: &MovieLens100k, python: &str, use_nn: bool) -> Result<Fit> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fastai_reference.py");
    let tmp = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    ml.write_split(0.1, 42, SplitMethod::FastaiV1, tmp.path())?;
    let out = tmp.path().join("fastai.json");
    let mut cmd = Command::new(python);
    cmd.arg(&script).arg(tmp.path()).arg("--json").arg(&out).env("OMP_NUM_THREADS", "1");
    if use_nn {
        cmd.arg("--use-nn");
    }
    let failed = |message: String| Error::io(&script, std::io::Error::other(message));
    let status = cmd.status().map_err(|e| failed(e.to_string()))?;
    if !status.success() {
        return Err(failed(format!("{python} exited with {status}")));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| Error::io(&out, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| failed(format!("{}: {e}", out.display())))?;
    let last_valid = v["valid_loss"].as_array().and_then(|l| l.last()).and_then(|x| x.as_f64());
    Ok(Fit {
        fit_seconds: v["fit_seconds"].as_f64().unwrap_or(f64::NAN),
        valid_mse: last_valid.unwrap_or(f64::NAN),
        runs: Vec::new(),
        version: v["fastai_version"].as_str().map(str::to_string),
    })
}

/// A training path at scale: the synthetic data and the settings (chosen on an independent
/// synthetic set, `seed` 7: see the README).
#[derive(Debug, Clone, Serialize)]
pub struct ScaleBench {
    /// Ratings to generate.
    #[serde(skip)]
    pub n_ratings: usize,
    /// Seed of the synthetic dataset (planted factors, ratings and split).
    #[serde(skip)]
    pub seed: u64,
    /// Epochs of the fit.
    #[serde(skip)]
    pub epochs: usize,
    /// The path trained fully: `exact` or `lazy`.
    #[serde(skip)]
    pub mode: TrainMode,
    /// Peak learning rate of the one-cycle schedule.
    pub lr: f64,
    /// Weight decay.
    pub wd: f64,
    /// Factors of the model.
    pub n_factors: usize,
    /// One-cycle momentums (β1 at the ends and at the peak).
    pub moms: [f64; 2],
    /// Adam's β2 (fastai's `sqr_mom`).
    pub sqr_mom: f64,
    /// Adam's ε.
    pub eps: f64,
}

/// The trained path's fit at scale.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleFit {
    /// The whole fit, building its engine and validation included.
    pub fit_seconds: f64,
    /// `fit_seconds` over the epochs.
    pub seconds_per_epoch: f64,
    /// Validation MSE after the fit.
    pub valid_mse: f64,
}

/// The dense path's epoch, estimated from steps of the same tables.
#[derive(Debug, Clone, Serialize)]
pub struct DenseEstimate {
    /// One epoch's steps at the measured cost per step (all windows together).
    pub seconds_per_epoch_estimated: f64,
    /// Steps timed, over all windows.
    pub from_steps: usize,
    /// Each window's own estimate, in the order they ran: one after each epoch of the trained fit,
    /// so that a slower or faster phase of the machine weighs on both paths alike.
    pub windows: Vec<f64>,
}

/// What [`scale`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleReport {
    /// Ratings generated.
    pub n_ratings: usize,
    /// Users of the synthetic set.
    pub n_users: usize,
    /// Items of the synthetic set.
    pub n_items: usize,
    /// The best achievable MSE (the planted noise's variance).
    pub noise_floor: f64,
    /// Time to generate the data.
    pub load_seconds: f64,
    /// Epochs of the fit.
    pub epochs: usize,
    /// Batch size.
    pub bs: usize,
    /// The trained path's name.
    pub mode: String,
    /// The fit's hyper-parameters.
    pub settings: ScaleBench,
    /// The trained path's figures, under its name (`exact` or `lazy`).
    #[serde(flatten)]
    pub trained: BTreeMap<String, ScaleFit>,
    /// The dense path's estimated epoch.
    pub dense: DenseEstimate,
    /// Recommending for every user with the trained model.
    pub recommend: RecommendTiming,
    /// CPU time while the trained path's fit ran: what this process and its threads used, and
    /// what else on the machine took from the same cores.
    pub cpu: CpuUse,
    /// Peak resident memory of the process (training and recommending), in MiB.
    pub peak_mib: f64,
    /// libtorch intra-op threads.
    pub threads: i32,
    /// The machine's load average.
    pub loadavg: String,
}

/// Batch size of the scale benchmark.
const SCALE_BS: usize = 1024;

/// Steps the dense path's epoch is estimated from: at 25M ratings 2–6 s of steps (10 to 40
/// factors), long enough to average over this VM's swings in speed (from 100 steps, four runs
/// at 40 factors estimated between 198 and 338 s an epoch; from 500, six gave 135–173 s).
const DENSE_STEPS: usize = 500;

/// Dense steps before each window's timing starts (the first step faults in the tables' pages).
const DENSE_WARMUP: usize = 10;

/// Trains `cfg.mode` fully on the synthetic set and estimates the dense path's epoch from
/// `DENSE_STEPS` of its steps on the same tables, timed in windows between the fit's epochs.
pub fn scale(cfg: &ScaleBench) -> Result<ScaleReport> {
    if !matches!(cfg.mode, TrainMode::Exact | TrainMode::Lazy) {
        return Err(Error::InvalidConfig(format!(
            "the scale benchmark trains the exact or lazy path (the dense one is estimated from {DENSE_STEPS} of its \
             steps)"
        )));
    }
    let synth = SyntheticConfig { seed: cfg.seed, ..SyntheticConfig::movielens_25m(cfg.n_ratings) };
    let start = Instant::now();
    let mut data = generate(&synth, 0.1, SCALE_BS)?;
    let load_seconds = start.elapsed().as_secs_f64();
    let n_batches = data.n_train_batches();
    if n_batches < 3 || cfg.epochs == 0 {
        return Err(Error::InvalidConfig(format!(
            "{} ratings make {n_batches} training batches of {SCALE_BS} over {} epochs; the scale benchmark needs at \
             least 3 batches and 1 epoch",
            cfg.n_ratings, cfg.epochs
        )));
    }
    let lcfg = |mode| CollabLearnerConfig {
        model: ModelConfig::DotBias(DotBiasConfig { n_factors: cfg.n_factors, y_range: None }),
        wd: cfg.wd,
        beta2: cfg.sqr_mom,
        eps: cfg.eps,
        mode,
        device: DeviceChoice::Cpu,
        ..Default::default()
    };
    // The dense path on the same tables (so the same cost per step), on the first batches.
    let warmup = DENSE_WARMUP.min(n_batches / 3);
    let per_window = (DENSE_STEPS.min(n_batches * 2 / 3) / cfg.epochs).max(1);
    let mut dense_learner = {
        // The vocabularies and settings of `data` with its first training ratings only: a whole
        // copy, truncated, kept 270 MB alive through the fit at 25M ratings.
        let (train, valid) = (std::mem::take(&mut data.train), std::mem::take(&mut data.valid));
        let mut slice = data.clone();
        slice.train = train.head((warmup + per_window) * SCALE_BS);
        (data.train, data.valid) = (train, valid);
        collab_learner(slice, &lcfg(TrainMode::Dense))?
    };
    dense_learner.verbose = false;

    let mut learn = collab_learner(data, &lcfg(cfg.mode))?;
    let cycle = OneCycle { moms: (cfg.moms[0], cfg.moms[1]), ..OneCycle::new(cfg.lr) };
    let n_steps = cfg.epochs * n_batches;
    let (mut windows, mut paused, mut paused_cpu, mut failed) = (Vec::new(), 0.0, 0.0, None);
    let mut batches = 0;
    let cpu_watch = CpuWatch::start();
    learn.run(
        cfg.epochs,
        n_steps,
        |i| cycle.at(i, n_steps),
        true,
        |_| {
            batches += 1;
            if batches % n_batches != 0 {
                return ControlFlow::Continue(());
            }
            let (start, start_cpu) = (Instant::now(), thread_seconds());
            match dense_window(&mut dense_learner, warmup, per_window) {
                Ok(seconds) => windows.push(seconds),
                Err(e) => failed = Some(e),
            }
            paused += start.elapsed().as_secs_f64();
            paused_cpu += thread_seconds() - start_cpu;
            if failed.is_some() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    )?;
    let cpu = cpu_watch.finish(paused_cpu);
    if let Some(e) = failed {
        return Err(e);
    }
    drop(dense_learner);
    // The fit's time, building its engine and validation included, the dense windows left out.
    let fit_seconds = learn.recorder.fit_seconds - paused;
    let trained = ScaleFit {
        fit_seconds,
        seconds_per_epoch: fit_seconds / cfg.epochs as f64,
        valid_mse: learn.validate().unwrap_or(f64::NAN),
    };
    let (recommend, _) = recommend_all(&learn);
    drop(learn);

    let per_epoch = |seconds: f64, steps: usize| seconds / steps as f64 * n_batches as f64;
    let dense = DenseEstimate {
        seconds_per_epoch_estimated: per_epoch(windows.iter().sum(), windows.len() * per_window),
        from_steps: windows.len() * per_window,
        windows: windows.iter().map(|&s| per_epoch(s, per_window)).collect(),
    };
    Ok(ScaleReport {
        n_ratings: cfg.n_ratings,
        n_users: synth.n_users,
        n_items: synth.n_items,
        noise_floor: synth.noise_floor(),
        load_seconds,
        epochs: cfg.epochs,
        bs: SCALE_BS,
        mode: cfg.mode.name().into(),
        settings: cfg.clone(),
        trained: BTreeMap::from([(cfg.mode.name().to_string(), trained)]),
        dense,
        recommend,
        cpu,
        peak_mib: peak_mib(),
        threads: crate::threads::current(),
        loadavg: loadavg(),
    })
}

/// Times `steps` dense steps after `warmup` more: one window of the dense path's estimate (its
/// setup and first steps left out).
fn dense_window(dense: &mut Learner, warmup: usize, steps: usize) -> Result<f64> {
    let (mut batches, mut from) = (0, None);
    let mut seconds = 0.0;
    dense.run(
        1,
        warmup + steps,
        |_| (1e-3, 0.9),
        false,
        |_| {
            batches += 1;
            if batches == warmup {
                from = Some(Instant::now());
            }
            if batches == warmup + steps {
                seconds = from.map_or(0.0, |t| t.elapsed().as_secs_f64());
            }
            ControlFlow::Continue(())
        },
    )?;
    Ok(seconds)
}

/// The load average over 1, 5 and 15 minutes (empty where `/proc` has none).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Peak resident memory of this process in MiB (`VmHWM`; 0 where `/proc` has none).
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:")?.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}
