//! `Recorder`: what happened during training, per batch and per epoch, and the epoch table.
use std::fmt::Write as _;

use super::lr_find::LrSuggestions;
use super::TrainMode;

/// fastai's smoothed loss: an exponential moving average (β = 0.98) with debiasing.
#[derive(Debug, Clone, Default)]
pub struct SmoothLoss {
    mov: f64,
    n: i32,
}

impl SmoothLoss {
    /// Adds a batch loss and returns the smoothed value `mov_n / (1 − β^n)`.
    pub fn add(&mut self, loss: f64) -> f64 {
        const BETA: f64 = 0.98;
        self.n += 1;
        self.mov = BETA * self.mov + (1.0 - BETA) * loss;
        self.mov / (1.0 - BETA.powi(self.n))
    }
}

/// One row of the epoch table.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochStats {
    /// 0-based epoch number within the fit.
    pub epoch: usize,
    /// Smoothed training loss after the epoch's last batch.
    pub train_loss: f64,
    /// Exact validation MSE, `None` without validation rows.
    pub valid_loss: Option<f64>,
    /// Wall time of the epoch (training and validation).
    pub seconds: f64,
}

/// Per-batch learning rates, momentums and losses, and per-epoch results of the last fit.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    /// Learning rate used by each batch.
    pub lrs: Vec<f64>,
    /// Momentum (β1) used by each batch.
    pub moms: Vec<f64>,
    /// Smoothed training loss after each batch.
    pub losses: Vec<f64>,
    /// Per-epoch results.
    pub epochs: Vec<EpochStats>,
    /// Wall time of the whole fit.
    pub fit_seconds: f64,
    /// The path that computed the fit's steps: the one asked for, except where the exact path's
    /// closed form cannot follow the schedule and the dense path (same semantics) stands in.
    pub mode: Option<TrainMode>,
}

impl Recorder {
    /// Cumulative batch count at the end of each epoch (x positions of the validation losses).
    pub fn nb_batches(&self) -> Vec<usize> {
        let per_epoch = self.lrs.len() / self.epochs.len().max(1);
        (1..=self.epochs.len()).map(|e| e * per_epoch).collect()
    }

    /// The epoch table's header, as fastprogress prints it on a console.
    pub fn header() -> String {
        let mut s = String::new();
        for name in ["epoch", "train_loss", "valid_loss", "time"] {
            let _ = write!(s, "{name:<8}  ");
        }
        s.trim_end().to_string()
    }

    /// One row of the epoch table (6 decimals, time as mm:ss).
    pub fn row(e: &EpochStats) -> String {
        let valid = e.valid_loss.map_or("#na#".to_string(), |v| format!("{v:.6}"));
        let secs = e.seconds.round() as u64;
        let cells =
            [e.epoch.to_string(), format!("{:.6}", e.train_loss), valid, format!("{:02}:{:02}", secs / 60, secs % 60)];
        let mut s = String::new();
        // A cell as wide as its column (a loss of 100000 or more) still gets a space after it.
        for (cell, width) in cells.iter().zip([10, 12, 12, 10]) {
            let _ = write!(s, "{cell:<w$} ", w = width - 1);
        }
        s.trim_end().to_string()
    }
}

/// What a fit measured and how it ran: the keys of `metrics.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Metrics {
    /// Smoothed training loss after each epoch.
    pub train_loss: Vec<f64>,
    /// Exact validation MSE of each epoch (`null` without validation rows).
    pub valid_loss: Vec<Option<f64>>,
    /// Wall time of each epoch (training and validation).
    pub epoch_seconds: Vec<f64>,
    /// The whole fit, building its engine included.
    pub fit_seconds: f64,
    /// User embedding rows, `#na#` included.
    pub n_users: usize,
    /// Item embedding rows, `#na#` included.
    pub n_items: usize,
    /// Seed of the split, the shuffles and the initialisation.
    pub seed: u64,
    /// How the validation rows were chosen (`fastai-v1`, `seeded`, or the files given).
    pub split: String,
    /// Adam's β2 (fastai's name).
    pub sqr_mom: f64,
    /// The training path (`exact`, `dense`, `autograd`, `lazy`) that computed the last fit: `exact`
    /// asked for is `dense` (or `autograd` for EmbeddingNN) where its closed form cannot follow
    /// the schedule.
    pub mode: String,
    /// Where the model trained (`cpu`, `cuda(0)`).
    pub device: String,
    /// libtorch intra-op threads.
    pub threads: i32,
    /// The suggestions of an `lr_find` before the fit, when the caller adds them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_suggestions: Option<LrSuggestions>,
}
