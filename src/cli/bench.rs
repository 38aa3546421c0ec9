//! `fastcollab bench`: the training paths timed in one run on ml-100k, or at scale on synthetic data.
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use fastcollab::evaluate::bench::{self, LessonBench, LessonReport, ScaleBench, ScaleReport};
use fastcollab::{DeviceChoice, TrainMode};

#[derive(Args)]
pub struct BenchArgs {
    /// The ml-100k folder (default: the untar_data cache).
    #[arg(long, conflicts_with = "scale")]
    data: Option<PathBuf>,
    /// Benchmark a synthetic MovieLens-25M-shaped dataset with this many ratings instead.
    #[arg(long)]
    scale: Option<usize>,
    /// Epochs for --scale.
    #[arg(long, default_value_t = 5, requires = "scale")]
    epochs: usize,
    /// Factors of the model for --scale (the defaults of --n-factors, --wd, --lr and --sqr-mom were
    /// chosen on an independent synthetic set, `--seed 7`: see the README).
    #[arg(long, default_value_t = 10, requires = "scale")]
    n_factors: usize,
    /// Weight decay for --scale.
    #[arg(long, default_value_t = 0.001, requires = "scale", allow_negative_numbers = true)]
    wd: f64,
    /// Peak learning rate for --scale.
    #[arg(long, default_value_t = 3e-3, requires = "scale", allow_negative_numbers = true)]
    lr: f64,
    /// One-cycle momentums (β1 at the ends and at the peak) for --scale.
    #[arg(long, value_delimiter = ',', default_values_t = [0.95, 0.85], requires = "scale", allow_hyphen_values = true)]
    moms: Vec<f64>,
    /// Adam's β2 (fastai's `sqr_mom`) for --scale.
    #[arg(long, default_value_t = 0.99999, requires = "scale", allow_negative_numbers = true)]
    sqr_mom: f64,
    /// Adam's ε for --scale.
    #[arg(long, default_value_t = 1e-8, requires = "scale", allow_negative_numbers = true)]
    eps: f64,
    /// Seed of the synthetic dataset for --scale (its planted factors, ratings and split).
    #[arg(long, default_value_t = 42, requires = "scale")]
    seed: u64,
    /// The path trained fully for --scale: `exact` (fastai's semantics) or `lazy`.
    #[arg(long, value_enum, default_value = "exact", requires = "scale")]
    mode: TrainMode,
    /// Python with fastai installed, to time fastai on the same rows (default: `python3` if it
    /// can import fastai; `none` skips).
    #[arg(long, conflicts_with = "scale")]
    fastai_python: Option<String>,
    /// Also time EmbeddingNN (layers [100, 50], the lesson's settings) through its exact path, and
    /// through fastai when it is available.
    #[arg(long, conflicts_with = "scale")]
    nn: bool,
    /// Device of the autograd row (the exact, dense and lazy paths are CPU kernels): `auto`, `cpu`,
    /// `cuda` or `cuda:N`.
    #[arg(long, default_value = "auto", conflicts_with = "scale")]
    device: DeviceChoice,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(a: BenchArgs) -> Result<()> {
    // Checked before the runs, so a bad --json fails in a second, not after minutes of measuring.
    if let Some(path) = &a.json {
        super::check_writable_file(path).with_context(|| format!("--json {}", path.display()))?;
    }
    let json = match a.scale {
        Some(n_ratings) => {
            let [lo, hi] = a.moms[..] else { bail!("--moms takes two momentums, e.g. 0.95,0.85") };
            let (seed, epochs, mode) = (a.seed, a.epochs, a.mode);
            let (lr, wd, n_factors, sqr_mom, eps) = (a.lr, a.wd, a.n_factors, a.sqr_mom, a.eps);
            let cfg = ScaleBench { n_ratings, seed, epochs, mode, lr, wd, n_factors, moms: [lo, hi], sqr_mom, eps };
            println!(
                "{} path, {epochs} epochs; the dense path is timed after each epoch (the table's times include it)",
                mode.name()
            );
            let report = bench::scale(&cfg)?;
            print_scale(&report);
            serde_json::to_string_pretty(&report)?
        }
        None => {
            let cfg = LessonBench { fastai_python: a.fastai_python, device: a.device, nn: a.nn };
            let report = bench::lesson(&super::ml100k(a.data)?, &cfg)?;
            print_lesson(&report);
            serde_json::to_string_pretty(&report)?
        }
    };
    if let Some(path) = a.json {
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn print_lesson(r: &LessonReport) {
    let slowest = r.variants.values().map(|v| v.fit_seconds).fold(0.0, f64::max);
    println!("fit_one_cycle(5, 5e-3), bs 64, ml-100k lesson split (seed 42)");
    println!("{:<10}{:>10}{:>12}{:>16}", "variant", "fit_s", "valid_mse", "x vs slowest");
    for (name, v) in &r.variants {
        println!("{name:<10}{:>10.3}{:>12.6}{:>15.1}x", v.fit_seconds, v.valid_mse, slowest / v.fit_seconds);
    }
    for (name, v) in r.variants.iter().filter(|(_, v)| !v.runs.is_empty()) {
        let runs: Vec<String> = v.runs.iter().map(|s| format!("{s:.3}")).collect();
        println!("{name}: the mean of {} fits spread through the run: {}", v.runs.len(), runs.join(", "));
    }
    for note in &r.notes {
        println!("({note})");
    }
    let (rec, fold) = (&r.recommend, &r.fold_in);
    println!("recommend: top 10 for all {} users in {:.2}s", rec.n_users, rec.all_users_top10_seconds);
    println!(
        "fold-in: {} users from {} ratings each, {:.3} ms on average, {:.3} ms at most",
        fold.n, fold.k, fold.mean_ms, fold.max_ms
    );
    println!("libtorch intra-op threads: {}; load average: {}", r.threads, r.loadavg);
}

fn print_scale(r: &ScaleReport) {
    println!(
        "synthetic: {} ratings, {} users, {} items, noise floor {:.4}; generated in {:.1}s",
        r.n_ratings, r.n_users, r.n_items, r.noise_floor, r.load_seconds
    );
    for (name, fit) in &r.trained {
        println!(
            "{name} path, bs {}: {} epochs in {:.1}s ({:.1}s per epoch), valid MSE {:.4} (noise floor {:.4}, ratio {:.3})",
            r.bs,
            r.epochs,
            fit.fit_seconds,
            fit.seconds_per_epoch,
            fit.valid_mse,
            r.noise_floor,
            fit.valid_mse / r.noise_floor
        );
        let windows: Vec<String> = r.dense.windows.iter().map(|s| format!("{s:.1}")).collect();
        println!(
            "dense path, bs {}: {:.1}s per epoch (estimated from {} steps; windows between epochs: {}s): {:.1}x the \
             {name} path",
            r.bs,
            r.dense.seconds_per_epoch_estimated,
            r.dense.from_steps,
            windows.join(", "),
            r.dense.seconds_per_epoch_estimated / fit.seconds_per_epoch
        );
    }
    println!(
        "CPU during the fit: {:.1}s this process ({:.1}s in the kernel, {} page faults; training thread {:.1}s, \
         batch helper {:.1}s), {:.1}s other processes, {:.1}s stolen by the hypervisor",
        r.cpu.process_seconds,
        r.cpu.kernel_seconds,
        r.cpu.page_faults,
        r.cpu.training_thread_seconds,
        r.cpu.helper_seconds,
        r.cpu.others_seconds,
        r.cpu.steal_seconds
    );
    println!("recommend: top 10 for all {} users in {:.2}s", r.recommend.n_users, r.recommend.all_users_top10_seconds);
    println!(
        "peak memory {:.0} MiB (training and recommending); threads {}; load average {}",
        r.peak_mib, r.threads, r.loadavg
    );
}
