//! `fastcollab compare`: fastcollab's and fastai's runs on the same rows, side by side.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;

#[derive(Args)]
pub struct CompareArgs {
    /// fastcollab's metrics.json (from `fastcollab train` or `scripts/lesson5`).
    #[arg(long)]
    ours: PathBuf,
    /// The JSON written by `scripts/fastai_reference.py`.
    #[arg(long)]
    fastai: PathBuf,
}

fn read(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

fn losses(v: &Value, key: &str) -> Vec<f64> {
    v[key].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default()
}

pub fn run(a: CompareArgs) -> Result<()> {
    let (ours, theirs) = (read(&a.ours)?, read(&a.fastai)?);
    let version = theirs["fastai_version"].as_str().unwrap_or("?");
    println!(
        "{:<7}{:>14}{:>14}{:>14}{:>14}",
        "epoch", "train (ours)", "train (fastai)", "valid (ours)", "valid (fastai)"
    );
    let (ot, ft, ov, fv) = (
        losses(&ours, "train_loss"),
        losses(&theirs, "train_loss"),
        losses(&ours, "valid_loss"),
        losses(&theirs, "valid_loss"),
    );
    let cell = |v: &[f64], i: usize| v.get(i).map_or("-".to_string(), |x| format!("{x:.6}"));
    for i in 0..ot.len().max(ft.len()) {
        println!("{i:<7}{:>14}{:>14}{:>14}{:>14}", cell(&ot, i), cell(&ft, i), cell(&ov, i), cell(&fv, i));
    }
    let (o_fit, f_fit) =
        (ours["fit_seconds"].as_f64().unwrap_or(f64::NAN), theirs["fit_seconds"].as_f64().unwrap_or(f64::NAN));
    let (o_mse, f_mse) = (ov.last().copied().unwrap_or(f64::NAN), fv.last().copied().unwrap_or(f64::NAN));
    println!("final valid MSE: fastcollab {o_mse:.6}, fastai {version} {f_mse:.6} (difference {:+.6})", o_mse - f_mse);
    println!("fit time: fastcollab {o_fit:.2}s, fastai {f_fit:.2}s ({:.1}x faster)", f_fit / o_fit);
    Ok(())
}
