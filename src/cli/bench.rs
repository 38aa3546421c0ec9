//! `fastcollab bench`: the training paths timed in one run on ml-100k, or at scale on synthetic data.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use fastcollab::data::synthetic::{generate, SyntheticConfig};
use fastcollab::infer::rank::top_n;
use fastcollab::infer::{fold_in_rows, FoldIn, Seen};
use fastcollab::recipe::{Recipe, Run};
use fastcollab::{
    collab_learner, CollabConfig, CollabDataBunch, CollabLearnerConfig, DeviceChoice, DotBiasConfig, EmbeddingNNConfig,
    ModelConfig, MovieLens100k, OneCycle, TrainMode,
};
use serde_json::{json, Map, Value};

#[derive(Args)]
pub struct BenchArgs {
    /// The ml-100k folder (default: the untar_data cache).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Benchmark a synthetic MovieLens-25M-shaped dataset with this many ratings instead.
    #[arg(long)]
    scale: Option<usize>,
    /// Epochs for --scale.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// Factors of the model for --scale (the defaults of --n-factors, --wd, --lr and --sqr-mom were
    /// chosen on an independent synthetic set, `--seed 7`: see the README).
    #[arg(long, default_value_t = 10)]
    n_factors: usize,
    /// Weight decay for --scale.
    #[arg(long, default_value_t = 0.001)]
    wd: f64,
    /// Peak learning rate for --scale.
    #[arg(long, default_value_t = 3e-3)]
    lr: f64,
    /// One-cycle momentums (β1 at the ends and at the peak) for --scale.
    #[arg(long, value_delimiter = ',', default_values_t = [0.95, 0.85])]
    moms: Vec<f64>,
    /// Adam's β2 (fastai's `sqr_mom`) for --scale.
    #[arg(long, default_value_t = 0.99999)]
    sqr_mom: f64,
    /// Adam's ε for --scale.
    #[arg(long, default_value_t = 1e-8)]
    eps: f64,
    /// Seed of the synthetic dataset for --scale (its planted factors, ratings and split).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The path trained fully for --scale: `exact` (fastai's semantics) or `lazy`.
    #[arg(long, value_enum, default_value = "exact")]
    mode: TrainMode,
    /// Python with fastai installed, to time fastai on the same rows (default: `python3` if it
    /// can import fastai; `none` skips).
    #[arg(long)]
    fastai_python: Option<String>,
    /// Also time EmbeddingNN (layers [100, 50], the lesson's settings) through its exact path, and
    /// through fastai when it is available.
    #[arg(long)]
    nn: bool,
    /// Device of the autograd row (the exact, dense and lazy paths are CPU kernels): `auto`, `cpu`,
    /// `cuda` or `cuda:N`.
    #[arg(long, default_value = "auto")]
    device: DeviceChoice,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(a: BenchArgs) -> Result<()> {
    let report = match a.scale {
        Some(n) => scale(n, &a)?,
        None => lesson_paths(&super::ml100k(a.data.clone())?, a.fastai_python.as_deref(), a.device, a.nn)?,
    };
    if let Some(path) = a.json {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Peak resident memory of this process in MiB (VmHWM).
fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:")?.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// The lesson's fit through each training path (and fastai), timed in this one process.
fn lesson_paths(dir: &Path, fastai_python: Option<&str>, device: DeviceChoice, nn: bool) -> Result<Value> {
    let rating_movie = MovieLens100k::load(dir)?.rating_movie()?;
    let cfg = CollabConfig { item_name: Some("title".into()), ..Default::default() };
    let data = CollabDataBunch::from_df(&rating_movie, &cfg)?;
    let recipe = Recipe::lesson();
    let mut variants = Map::new();
    let mut extra = Map::new();
    for mode in [TrainMode::Exact, TrainMode::Dense, TrainMode::Autograd, TrainMode::Lazy] {
        let name = mode.name();
        let device = if mode == TrainMode::Autograd { device } else { DeviceChoice::Cpu };
        let run = Run { mode, device, seed: 42 };
        let mut learn = recipe.learner(data.clone(), &run, 42)?;
        learn.verbose = false;
        recipe.fit(&mut learn)?;
        let valid = learn.validate().unwrap_or(f64::NAN);
        variants.insert(name.into(), json!({ "fit_seconds": learn.recorder.fit_seconds, "valid_mse": valid }));
        if mode == TrainMode::Exact {
            extra.insert("recommend".into(), recommend_all(&learn)?);
            extra.insert("fold_in".into(), fold_in_timing(&learn, 20));
        }
    }
    if let Some(fastai) = run_fastai(dir, fastai_python, false)? {
        variants.insert("fastai".into(), fastai);
    }
    if nn {
        let model = ModelConfig::Nn(EmbeddingNNConfig { layers: vec![100, 50], ..Default::default() });
        let cfg = CollabLearnerConfig { model, wd: 0.1, device, ..Default::default() };
        let mut learn = collab_learner(data.clone(), &cfg)?;
        learn.verbose = false;
        learn.fit_one_cycle(5, 5e-3)?;
        let valid = learn.validate().unwrap_or(f64::NAN);
        let name = format!("nn_{}", learn.mode().name());
        variants.insert(name, json!({ "fit_seconds": learn.recorder.fit_seconds, "valid_mse": valid }));
        if let Some(fastai) = run_fastai(dir, fastai_python, true)? {
            variants.insert("fastai_nn".into(), fastai);
        }
    }
    let slowest = variants.values().filter_map(|v| v["fit_seconds"].as_f64()).fold(0.0, f64::max);
    println!("fit_one_cycle(5, 5e-3), bs 64, ml-100k lesson split (seed 42)");
    println!("{:<10}{:>10}{:>12}{:>16}", "variant", "fit_s", "valid_mse", "x vs slowest");
    for (name, v) in &variants {
        let (t, m) = (v["fit_seconds"].as_f64().unwrap_or(f64::NAN), v["valid_mse"].as_f64().unwrap_or(f64::NAN));
        println!("{name:<10}{t:>10.3}{m:>12.6}{:>15.1}x", slowest / t);
    }
    let threads = fastcollab::threads::current();
    println!("libtorch intra-op threads: {threads}; load average: {}", loadavg());
    let mut report = json!({ "variants": variants, "threads": threads, "loadavg": loadavg() });
    for (k, v) in extra {
        report[k] = v;
    }
    Ok(report)
}

/// Top 10 for every user of `learn`'s model, excluding what each rated in training, timed.
fn recommend_all(learn: &fastcollab::Learner) -> Result<Value> {
    let start = Instant::now();
    let seen = Seen::from_encoded(&learn.data.train, learn.data.n_users());
    let users: Vec<u32> = (1..learn.data.n_users() as u32).collect();
    let top = top_n(&learn.model, &users, 10, Some(&seen));
    let seconds = start.elapsed().as_secs_f64();
    let full = top.iter().filter(|t| t.len() == 10).count();
    println!("recommend: top 10 for all {} users in {seconds:.2}s ({full} full lists)", users.len());
    Ok(json!({ "all_users_top10_seconds": seconds, "n_users": users.len() }))
}

/// Folds in users of `learn`'s training data from `k` of their ratings, timed one by one.
fn fold_in_timing(learn: &fastcollab::Learner, k: usize) -> Value {
    let seen = Seen::from_encoded(&learn.data.train, learn.data.n_users());
    let cfg = FoldIn::with_training(learn.config().wd, learn.config().beta2, learn.config().eps);
    let mut ms = Vec::new();
    for u in (1..seen.n_users()).filter(|&u| seen.items(u).len() >= k).take(200) {
        let start = Instant::now();
        let _ = fold_in_rows(&learn.model, &seen.items(u)[..k], &seen.ratings(u)[..k], None, &cfg);
        ms.push(start.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
    let max = ms.last().copied().unwrap_or(f64::NAN);
    println!("fold-in: {} users from {k} ratings each, {mean:.3} ms on average, {max:.3} ms at most", ms.len());
    json!({ "k": k, "n": ms.len(), "mean_ms": mean, "max_ms": max })
}

/// Times fastai on the exported lesson split with `scripts/fastai_reference.py`, when a Python
/// with fastai is available.
fn run_fastai(dir: &Path, python: Option<&str>, use_nn: bool) -> Result<Option<Value>> {
    let python = python.unwrap_or("python3");
    if python == "none"
        || !Command::new(python).args(["-c", "import fastai"]).output().is_ok_and(|o| o.status.success())
    {
        println!("(fastai not found for {python}: skipping its row; pass --fastai-python PATH)");
        return Ok(None);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fastai_reference.py");
    let tmp = std::env::temp_dir().join(format!("fastcollab-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    super::export::write_split(dir, 0.1, 42, fastcollab::SplitMethod::FastaiV1, &tmp)?;
    let out = tmp.join("fastai.json");
    let mut cmd = Command::new(python);
    cmd.arg(&script).arg(&tmp).arg("--json").arg(&out).env("OMP_NUM_THREADS", "1");
    if use_nn {
        cmd.arg("--use-nn");
    }
    let status = cmd.status()?;
    if !status.success() {
        bail!("{} failed", script.display());
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    let _ = std::fs::remove_dir_all(&tmp);
    let valid = v["valid_loss"].as_array().and_then(|l| l.last()).cloned().unwrap_or(Value::Null);
    Ok(Some(json!({ "fit_seconds": v["fit_seconds"], "valid_mse": valid, "version": v["fastai_version"] })))
}

fn scale(n: usize, a: &BenchArgs) -> Result<Value> {
    let epochs = a.epochs;
    let cfg = SyntheticConfig { seed: a.seed, ..SyntheticConfig::movielens_25m(n) };
    let bs = 1024;
    let start = Instant::now();
    let data = generate(&cfg, 0.1, bs)?;
    let load_seconds = start.elapsed().as_secs_f64();
    println!(
        "synthetic: {} ratings, {} users, {} items, rank {}, noise floor {:.4}; generated in {load_seconds:.1}s",
        n,
        cfg.n_users,
        cfg.n_items,
        cfg.rank,
        cfg.noise_floor()
    );
    if data.n_train_batches() < 3 {
        bail!("--scale {n} makes {} training batches of {bs}; it needs at least 3", data.n_train_batches());
    }
    if a.moms.len() != 2 {
        bail!("--moms takes two momentums, e.g. 0.95,0.85");
    }
    if !matches!(a.mode, TrainMode::Exact | TrainMode::Lazy) {
        bail!("--scale trains --mode exact or lazy (the dense path is estimated from 100 of its steps)");
    }
    let model = ModelConfig::DotBias(DotBiasConfig { n_factors: a.n_factors, y_range: None });
    let lcfg = |mode| CollabLearnerConfig {
        model: model.clone(),
        wd: a.wd,
        beta2: a.sqr_mom,
        eps: a.eps,
        mode,
        device: DeviceChoice::Cpu,
        ..Default::default()
    };
    let mut learn = collab_learner(data.clone(), &lcfg(a.mode))?;
    learn.fit_one_cycle_with(epochs, &OneCycle { moms: (a.moms[0], a.moms[1]), ..OneCycle::new(a.lr) })?;
    let valid = learn.validate().unwrap_or(f64::NAN);
    let fit_seconds = learn.recorder.fit_seconds;
    let per_epoch = fit_seconds / epochs as f64;
    let recommend = recommend_all(&learn)?;
    drop(learn);

    // The dense path at this scale: the same tables (so the same cost per step) over the first
    // 50 and 150 batches; the difference is the time of 100 steps without the fit's setup.
    let dense_fit = |steps: usize| -> Result<f64> {
        let mut slice = data.clone();
        let k = steps * bs;
        slice.train.users.truncate(k);
        slice.train.items.truncate(k);
        slice.train.ratings.truncate(k);
        slice.valid = Default::default();
        let mut dense = collab_learner(slice, &lcfg(TrainMode::Dense))?;
        dense.verbose = false;
        dense.fit(1, 1e-3)?;
        Ok(dense.recorder.fit_seconds)
    };
    let (short, steps) = (50.min(data.n_train_batches() / 3), 100.min(data.n_train_batches() * 2 / 3));
    let (long_fit, short_fit) = (dense_fit(short + steps)?, dense_fit(short)?);
    // On small tables the difference can drown in timing noise; then the longer fit, setup
    // included, is the estimate.
    let per_step = match long_fit - short_fit {
        d if d > 0.0 => d / steps as f64,
        _ => long_fit / (short + steps) as f64,
    };
    let dense_per_epoch = per_step * data.n_train_batches() as f64;
    let peak = peak_mib();
    let name = a.mode.name();
    println!(
        "{name} path, bs {bs}: {epochs} epochs in {fit_seconds:.1}s ({per_epoch:.1}s per epoch), valid MSE {valid:.4} \
         (noise floor {:.4}, ratio {:.3})",
        cfg.noise_floor(),
        valid / cfg.noise_floor()
    );
    println!(
        "dense path, bs {bs}: {dense_per_epoch:.1}s per epoch (estimated from {steps} steps): {:.1}x the {name} path",
        dense_per_epoch / per_epoch
    );
    println!(
        "peak memory {peak:.0} MiB (training and recommending); threads {}; load average {}",
        fastcollab::threads::current(),
        loadavg()
    );
    let mut report = json!({
        "n_ratings": n, "n_users": cfg.n_users, "n_items": cfg.n_items, "noise_floor": cfg.noise_floor(),
        "load_seconds": load_seconds, "epochs": epochs, "bs": bs, "mode": name,
        "settings": {
            "lr": a.lr, "wd": a.wd, "n_factors": a.n_factors, "moms": a.moms, "sqr_mom": a.sqr_mom, "eps": a.eps
        },
        "dense": { "seconds_per_epoch_estimated": dense_per_epoch, "from_steps": steps },
        "recommend": recommend,
        "peak_mib": peak, "threads": fastcollab::threads::current(), "loadavg": loadavg(),
    });
    report[name] = json!({ "fit_seconds": fit_seconds, "seconds_per_epoch": per_epoch, "valid_mse": valid });
    Ok(report)
}
