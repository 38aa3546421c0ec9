//! `lr_find`: an exponential learning-rate sweep that leaves the learner exactly as it was.
use std::fmt;
use std::ops::ControlFlow;

use super::schedule::exp_sweep;
use super::Learner;
use crate::error::{Error, Result};

/// Settings of the sweep (fastai's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct LrFindConfig {
    /// First learning rate.
    pub start_lr: f64,
    /// Learning rate the sweep would reach after `num_it` batches.
    pub end_lr: f64,
    /// Number of batches.
    pub num_it: usize,
    /// Stop once the smoothed loss exceeds 4× its minimum or is NaN.
    pub stop_div: bool,
}

impl Default for LrFindConfig {
    fn default() -> Self {
        LrFindConfig { start_lr: 1e-7, end_lr: 10.0, num_it: 100, stop_div: true }
    }
}

/// The sweep's learning rates and smoothed losses, and the suggested learning rates.
#[derive(Debug, Clone, PartialEq)]
pub struct LrFind {
    /// Learning rate of each batch.
    pub lrs: Vec<f64>,
    /// Smoothed loss after each batch.
    pub losses: Vec<f64>,
    /// fastai v1's suggestion: the steepest descent (minimum numerical gradient) after trimming
    /// `skip_start` 10 and `skip_end` 5 points.
    pub min_grad_lr: Option<f64>,
    /// fastai v1's other printed suggestion: the learning rate of the minimum loss, divided by 10.
    pub min_loss_lr: Option<f64>,
    /// fastai v2's `valley` suggestion.
    pub valley_lr: Option<f64>,
}

/// The three suggestions, as `metrics.json`'s `lr_suggestions`: `v1` (the steepest descent),
/// `min_loss_div10` and `valley` (fastai v2); `null` where the sweep was too short.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LrSuggestions {
    /// fastai v1's suggestion ([`LrFind::min_grad_lr`]).
    pub v1: Option<f64>,
    /// The minimum loss's learning rate over 10 ([`LrFind::min_loss_lr`]).
    pub min_loss_div10: Option<f64>,
    /// fastai v2's `valley` ([`LrFind::valley_lr`]).
    pub valley: Option<f64>,
}

impl LrFind {
    /// The suggested learning rates.
    pub fn suggestions(&self) -> LrSuggestions {
        LrSuggestions { v1: self.min_grad_lr, min_loss_div10: self.min_loss_lr, valley: self.valley_lr }
    }
}

/// What fastai prints after `lr_find` (v1's two hints, and v2's valley).
impl fmt::Display for LrFind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lr = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.2E}"));
        writeln!(f, "LR Finder is complete ({} batches).", self.lrs.len())?;
        writeln!(f, "Min numerical gradient: {}", lr(self.min_grad_lr))?;
        writeln!(f, "Min loss divided by 10: {}", lr(self.min_loss_lr))?;
        write!(f, "Valley (fastai v2): {}", lr(self.valley_lr))
    }
}

impl Learner {
    /// Sweeps the learning rate exponentially over `cfg.num_it` batches (momentum and weight decay
    /// as they are) through the one training loop, stopping early once the smoothed loss exceeds
    /// 4× its minimum or is NaN (`stop_div`), then restores weights, optimizer state, momentum,
    /// the shuffling RNG, the dropout masks' stream and the recorder, so that training afterwards
    /// is exactly what it would have been without the sweep.
    pub fn lr_find(&mut self, cfg: &LrFindConfig) -> Result<LrFind> {
        if cfg.num_it < 2 || !(cfg.start_lr > 0.0 && cfg.end_lr > cfg.start_lr && cfg.end_lr.is_finite()) {
            return Err(Error::InvalidConfig(format!(
                "lr_find needs num_it ≥ 2 and 0 < start_lr < end_lr, got {cfg:?}"
            )));
        }
        let n_batches = self.data.n_train_batches();
        if n_batches == 0 {
            return Err(Error::InvalidConfig("no full training batch for lr_find".into()));
        }
        let saved = self.snapshot();
        let recorder = std::mem::take(&mut self.recorder);
        let mom = self.mom;
        let mut best = f64::INFINITY;
        let sweep = |k| (exp_sweep(cfg.start_lr, cfg.end_lr, k, cfg.num_it), mom);
        let result = self.run(cfg.num_it.div_ceil(n_batches), cfg.num_it, sweep, false, |b| {
            best = best.min(b.smooth_loss);
            let diverged = b.smooth_loss > 4.0 * best || b.smooth_loss.is_nan();
            if diverged && (cfg.stop_div || !b.smooth_loss.is_finite()) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        let (lrs, losses) = (std::mem::take(&mut self.recorder.lrs), std::mem::take(&mut self.recorder.losses));
        self.restore(saved);
        self.recorder = recorder;
        result?;
        Ok(LrFind {
            min_grad_lr: min_grad_lr(&lrs, &losses, 10, 5),
            min_loss_lr: min_loss_lr(&lrs, &losses, 10, 5),
            valley_lr: valley_lr(&lrs, &losses),
            lrs,
            losses,
        })
    }
}

/// `np.gradient`: central differences inside, one-sided at the ends.
pub fn gradient(y: &[f64]) -> Vec<f64> {
    let n = y.len();
    (0..n)
        .map(|i| match i {
            _ if n < 2 => 0.0,
            0 => y[1] - y[0],
            i if i == n - 1 => y[n - 1] - y[n - 2],
            i => (y[i + 1] - y[i - 1]) / 2.0,
        })
        .collect()
}

/// fastai v1's suggestion: the learning rate at the minimum of `np.gradient(losses)` over the
/// points left after dropping `skip_start` and `skip_end`.
pub fn min_grad_lr(lrs: &[f64], losses: &[f64], skip_start: usize, skip_end: usize) -> Option<f64> {
    let end = losses.len().checked_sub(skip_end)?;
    if end <= skip_start + 1 {
        return None;
    }
    let g = gradient(&losses[skip_start..end]);
    let i = (0..g.len()).min_by(|&a, &b| g[a].total_cmp(&g[b]))?;
    Some(lrs[skip_start + i])
}

/// fastai v1's "min loss divided by 10" over the trimmed points.
pub fn min_loss_lr(lrs: &[f64], losses: &[f64], skip_start: usize, skip_end: usize) -> Option<f64> {
    let end = losses.len().checked_sub(skip_end)?;
    let i = (skip_start..end).filter(|&i| !losses[i].is_nan()).min_by(|&a, &b| losses[a].total_cmp(&losses[b]))?;
    Some(lrs[i] / 10.0)
}

/// fastai v2's `valley`: over points `[n/10 .. n−5]` (cut at the first NaN), find the longest
/// strictly decreasing subsequence of losses and return the learning rate at
/// `start + int(s) + int(s/2)`, `s = length / 3` — about halfway down that valley.
pub fn valley_lr(lrs: &[f64], losses: &[f64]) -> Option<f64> {
    let n_all = losses.len();
    let (lo, hi) = (n_all / 10, n_all.checked_sub(5)?);
    if hi <= lo {
        return None;
    }
    let nan_at = losses[lo..hi].iter().position(|l| l.is_nan()).map_or(hi, |p| lo + p);
    let (lrs, losses) = (&lrs[lo..nan_at], &losses[lo..nan_at]);
    let n = losses.len();
    if n == 0 {
        return None;
    }
    let mut lds = vec![1usize; n];
    // fastai computes `max_start = max_end - lds[max_end]`, which is -1 for a valley that starts
    // at the first point: signed arithmetic keeps that (Python) behaviour.
    let (mut max_start, mut max_end) = (0isize, 0usize);
    for i in 1..n {
        for j in 0..i {
            if losses[i] < losses[j] && lds[i] < lds[j] + 1 {
                lds[i] = lds[j] + 1;
            }
            if lds[max_end] < lds[i] {
                max_end = i;
                max_start = max_end as isize - lds[max_end] as isize;
            }
        }
    }
    let s = (max_end as isize - max_start) as f64 / 3.0;
    let idx = max_start + s as isize + (s / 2.0) as isize;
    // A negative index counts from the end, as in Python.
    let idx = if idx < 0 { lrs.len() as isize + idx } else { idx };
    usize::try_from(idx).ok().and_then(|i| lrs.get(i)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_fastais_summary_and_keys_the_suggestions_as_metrics_json_does() {
        let lr = LrFind {
            lrs: vec![1e-6, 1e-3, 1.0],
            losses: vec![1.0, 0.5, 2.0],
            min_grad_lr: Some(1.9e-6),
            min_loss_lr: None,
            valley_lr: Some(0.011),
        };
        let text = lr.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "LR Finder is complete (3 batches).",
                "Min numerical gradient: 1.90E-6",
                "Min loss divided by 10: -",
                "Valley (fastai v2): 1.10E-2"
            ]
        );
        let json = serde_json::to_value(lr.suggestions()).unwrap();
        assert_eq!(json, serde_json::json!({ "v1": 1.9e-6, "min_loss_div10": null, "valley": 0.011 }));
    }
}
