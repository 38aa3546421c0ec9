//! Regression metrics over predictions and targets, accumulated in f64.

/// Mean squared error.
pub fn mse(preds: &[f32], targets: &[f32]) -> f64 {
    preds.iter().zip(targets).map(|(p, t)| (*p as f64 - *t as f64).powi(2)).sum::<f64>() / preds.len().max(1) as f64
}

/// Root mean squared error (the true RMSE over all rows, not a mean of per-batch RMSEs).
pub fn rmse(preds: &[f32], targets: &[f32]) -> f64 {
    mse(preds, targets).sqrt()
}

/// Mean absolute error.
pub fn mae(preds: &[f32], targets: &[f32]) -> f64 {
    preds.iter().zip(targets).map(|(p, t)| (*p as f64 - *t as f64).abs()).sum::<f64>() / preds.len().max(1) as f64
}
