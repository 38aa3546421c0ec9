//! Learning-rate and momentum schedules as pure functions of the iteration.
use std::f64::consts::PI;

/// Cosine interpolation from `start` (p = 0) to `end` (p = 1).
pub fn cos_anneal(start: f64, end: f64, p: f64) -> f64 {
    end + (start - end) * (1.0 + (PI * p).cos()) / 2.0
}

/// fastai v1's one-cycle policy: cosine warm-up of the learning rate from `lr_max / div` to
/// `lr_max` over `pct_start` of the iterations, then cosine annealing to `lr_max / div_final`;
/// momentum (Adam's β1) moves the opposite way between `moms.0` and `moms.1`.
#[derive(Debug, Clone, PartialEq)]
pub struct OneCycle {
    /// Peak learning rate.
    pub lr_max: f64,
    /// Start learning rate is `lr_max / div`.
    pub div: f64,
    /// Final learning rate is `lr_max / div_final`.
    pub div_final: f64,
    /// Share of iterations spent warming up.
    pub pct_start: f64,
    /// Momentum at the ends and at the peak of the cycle.
    pub moms: (f64, f64),
}

impl OneCycle {
    /// fastai v1's defaults around `lr_max`: div 25, div_final 25·10⁴, pct_start 0.3, moms (0.95, 0.85).
    pub fn new(lr_max: f64) -> Self {
        OneCycle { lr_max, div: 25.0, div_final: 25e4, pct_start: 0.3, moms: (0.95, 0.85) }
    }

    /// Refuses settings that cannot make a schedule, naming the setting and its value: a peak rate
    /// that is negative or not finite, divisors that are not positive, `pct_start` outside [0, 1],
    /// momentums outside [0, 1).
    pub fn check(&self) -> crate::error::Result<()> {
        let bad = |what: &str, need: &str, got: String| {
            Err(crate::error::Error::InvalidConfig(format!("one-cycle {what} must be {need}, got {got}")))
        };
        let finite = |x: f64| x.is_finite();
        if !(finite(self.lr_max) && self.lr_max >= 0.0) {
            return bad("lr_max (--lr)", "finite and ≥ 0", self.lr_max.to_string());
        }
        if !(finite(self.div) && self.div > 0.0 && finite(self.div_final) && self.div_final > 0.0) {
            return bad("div and div_final", "finite and > 0", format!("{} and {}", self.div, self.div_final));
        }
        if !(0.0..=1.0).contains(&self.pct_start) {
            return bad("pct_start", "in [0, 1]", self.pct_start.to_string());
        }
        let (m0, m1) = self.moms;
        if !((0.0..1.0).contains(&m0) && (0.0..1.0).contains(&m1)) {
            return bad("moms", "in [0, 1)", format!("({m0}, {m1})"));
        }
        Ok(())
    }

    /// `(lr, mom)` for batch `i` of `n` with fastai v1's integer phases: `a1 = int(n · pct_start)`
    /// warm-up batches (batch `a1` has exactly `lr_max`), the rest annealing; the final value
    /// `lr_max / div_final` would be batch `n`, which never runs.
    pub fn at(&self, i: usize, n: usize) -> (f64, f64) {
        let a1 = (n as f64 * self.pct_start) as usize;
        let a2 = n - a1;
        let (lo, hi) = (self.moms.1, self.moms.0);
        if i <= a1 && a1 > 0 {
            let p = i as f64 / a1 as f64;
            (cos_anneal(self.lr_max / self.div, self.lr_max, p), cos_anneal(hi, lo, p))
        } else {
            let p = (i - a1) as f64 / a2 as f64;
            (cos_anneal(self.lr_max, self.lr_max / self.div_final, p), cos_anneal(lo, hi, p))
        }
    }
}

/// The learning rate of batch `k` of an `lr_find` sweep: `start · (end / start)^(k / num_it)`.
pub fn exp_sweep(start: f64, end: f64, k: usize, num_it: usize) -> f64 {
    start * (end / start).powf(k as f64 / num_it as f64)
}
