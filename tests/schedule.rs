//! One-cycle schedule values, the lr_find sweep, loss smoothing and lr suggestions.
use fastcollab::learner::lr_find::{gradient, min_grad_lr, valley_lr};
use fastcollab::learner::recorder::{Recorder, SmoothLoss};
use fastcollab::learner::schedule::exp_sweep;
use fastcollab::OneCycle;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1e-30)
}

#[test]
fn one_cycle_matches_fastai_v1_at_start_peak_and_end() {
    let c = OneCycle::new(5e-3);
    let n = 1406 * 5; // the lesson: 1406 batches per epoch, 5 epochs
    let (lr0, mom0) = c.at(0, n);
    assert!(close(lr0, 2e-4) && close(mom0, 0.95));
    let (lr_peak, mom_peak) = c.at(2109, n);
    assert!(close(lr_peak, 5e-3) && close(mom_peak, 0.85));
    let (lr_mid, _) = c.at(1054, n);
    assert!((lr_mid - 2.598e-3).abs() < 1e-6, "{lr_mid}");
    let (lr_last, mom_last) = c.at(n - 1, n);
    assert!((lr_last - 2.05e-8).abs() < 1e-10, "{lr_last}");
    assert!((mom_last - 0.95).abs() < 1e-6);
    // The final value, lr_max / 25e4, would be batch n.
    assert!(close(c.at(n, n).0, 5e-3 / 25e4));
}

/// Settings that cannot make a schedule are refused with the setting and its value (the generic
/// check of every step's rate would report the first step's `lr_max / div` instead).
#[test]
fn one_cycle_refuses_impossible_settings_by_name() {
    assert!(OneCycle::new(5e-3).check().is_ok() && OneCycle::new(0.0).check().is_ok());
    let refused = |c: OneCycle, expected: &str| {
        let msg = c.check().unwrap_err().to_string();
        assert!(msg.contains(expected), "{msg}");
    };
    refused(OneCycle::new(-1.0), "lr_max (--lr) must be finite and ≥ 0, got -1");
    refused(OneCycle::new(f64::INFINITY), "got inf");
    refused(OneCycle { div: 0.0, ..OneCycle::new(5e-3) }, "div and div_final must be finite and > 0, got 0 and");
    refused(OneCycle { pct_start: 1.5, ..OneCycle::new(5e-3) }, "pct_start must be in [0, 1], got 1.5");
    refused(OneCycle { moms: (1.0, 0.85), ..OneCycle::new(5e-3) }, "moms must be in [0, 1), got (1, 0.85)");
}

#[test]
fn lr_find_sweep_is_exponential() {
    assert!(close(exp_sweep(1e-7, 10.0, 0, 100), 1e-7));
    assert!(close(exp_sweep(1e-7, 10.0, 50, 100), 1e-3));
    assert!((exp_sweep(1e-7, 10.0, 99, 100) - 8.318).abs() < 1e-3);
}

#[test]
fn smoothed_loss_is_debiased_ema() {
    let mut s = SmoothLoss::default();
    assert!(close(s.add(2.0), 2.0), "debiasing makes the first value exact");
    let v = s.add(1.0);
    let expected = (0.98 * 0.02 * 2.0 + 0.02 * 1.0) / (1.0 - 0.98f64.powi(2));
    assert!(close(v, expected));
}

#[test]
fn epoch_table_is_fastprogress_layout() {
    assert_eq!(Recorder::header(), "epoch     train_loss  valid_loss  time");
    let row = |train_loss, valid, seconds| {
        let valid_loss = Some(valid);
        Recorder::row(&fastcollab::learner::recorder::EpochStats { epoch: 0, train_loss, valid_loss, seconds })
    };
    assert_eq!(row(0.9239, 0.946068, 6.2), "0         0.923900    0.946068    00:06");
    // Losses wider than their column stay apart.
    assert_eq!(row(65339.617873, 64624.360623, 0.2), "0         65339.617873 64624.360623 00:00");
}

#[test]
fn suggestion_rules_on_synthetic_curves() {
    assert_eq!(gradient(&[1.0, 2.0, 4.0, 7.0]), vec![1.0, 1.5, 2.5, 3.0]);
    // A loss that is flat, falls steepest at index 60, bottoms out at 80, then explodes.
    let lrs: Vec<f64> = (0..100).map(|k| exp_sweep(1e-7, 10.0, k, 100)).collect();
    let losses: Vec<f64> = (0..100)
        .map(|k| {
            let x = k as f64;
            if k < 80 {
                2.0 - 1.0 / (1.0 + (-(x - 60.0) / 4.0).exp())
            } else {
                1.0 + (x - 80.0).powi(2) * 0.01
            }
        })
        .collect();
    assert_eq!(min_grad_lr(&lrs, &losses, 10, 5), Some(lrs[60]));
    // valley: longest decreasing run is 10..=80 → start 10? (lds counts from 0 of the slice)
    let v = valley_lr(&lrs, &losses).unwrap();
    let idx = lrs.iter().position(|&l| l == v).unwrap();
    assert!((40..=60).contains(&idx), "valley at {idx}");
    assert_eq!(min_grad_lr(&lrs[..12], &losses[..12], 10, 5), None, "too few points");
}
