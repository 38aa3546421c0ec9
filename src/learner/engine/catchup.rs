//! Closed-form AdamW catch-up: what any number of zero-gradient AdamW steps do to a row.
//!
//! For a row that a batch does not touch, the gradient is exactly zero, so each AdamW step is a
//! fixed recurrence driven by per-step scalars shared by every row:
//! `p ← p·(1 − lr·wd)`, `m ← β1·m`, `v ← β2·v`, `p ← p − lr/bc1 · m / (sqrt(v)/sbc2 + ε)`.
//! Over a gap of steps `k0+1..=k1`, with `x = sqrt(v0)`, the update terms expand as
//! `1/(x' + q) = Σ_j (−q)^j / x'^(j+1)`, each term separable into a per-step scalar times a power
//! of `1/x`, so the whole gap is
//! `p1 = A·p0 − (m0/x)·Σ_j (−1/x)^j · W_j(k0, k1)` with `A` the product of the decays and
//! `W_j` sums of per-step scalars. Those sums come from prefix tables of the fit's schedule, in
//! blocks built as the fit reaches them: relative to a reference step every `d` steps (so that
//! differences of prefix sums never cancel by more than a factor 10⁶) and extending `h` steps
//! beyond it (after `h` steps of decay, momentum has
//! moved the weights by less than 10⁻¹² of its first step, so the rest of the gap is pure decay).
//! Elements whose `sqrt(v)` is within 100·ε·sqrt(1 − β2^t) at the gap's start, where the series
//! would converge slowly, are summed step by step instead: each step's update is a closed-form
//! function of the element's moments at the gap's start, so the steps are independent terms
//! (a vectorised sum), not a chain of dense steps.
use super::super::optim::AdamHyper;
use super::lanes::elementwise;
use crate::kernels::{prefetch, Level};
use std::collections::VecDeque;
use std::sync::OnceLock;

/// Terms of the ε series (measured relative error of the toy in `../shared/reference`: 9.5e-13).
pub(crate) const TERMS: usize = 4;
/// Elements with `sqrt(v) < STEPWISE_BELOW · ε · sqrt(1 − β2^t)` at a gap's start (`t` the gap's last
/// step) are summed step by step: the series' ratio, `ε·sqrt(1 − β2^t) / sqrt(v)` at step `t`,
/// would exceed 1/STEPWISE_BELOW.
const STEPWISE_BELOW: f64 = 100.0;
/// Neglected momentum after the horizon, relative to its first step.
const TAIL: f64 = 1e-12;
/// Largest tolerated cancellation factor in a difference of prefix sums.
const CANCEL: f64 = 1e6;
/// Above this ε the schedule is left to the dense path.
const MAX_EPS: f64 = 1e-7;
/// Past this many f64 entries in the blocks alive at once, the schedule is left to the dense path.
const MAX_WINDOW: usize = 32 << 20;
/// Past this many steps in a fit (about 210 bytes of tables each, and up to as much again for the
/// near-ε tables of the blocks that need them), the schedule is left to the dense path.
const MAX_STEPS: usize = 10_000_000;

/// The optimizer's hyper-parameters for a whole fit: `(lr, β1)` of each step and the constants.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// `(lr, β1)` of local steps 1, 2, … (index 0 is step 1).
    pub lr_mom: Vec<(f64, f64)>,
    /// Adam's step count before the fit's first step (bias corrections continue from it).
    pub steps_before: u64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Decoupled weight decay.
    pub wd: f64,
    /// Batch size.
    pub bs: usize,
}

impl Plan {
    /// The hyper-parameters of local step `k` (1-based).
    pub fn hyper(&self, k: usize) -> AdamHyper {
        let (lr, beta1) = self.lr_mom[k - 1];
        AdamHyper { lr, beta1, beta2: self.beta2, eps: self.eps, wd: self.wd, step: self.steps_before + k as u64 }
    }
}

/// What a gap of zero-gradient steps does to a row, as scalars shared by all its elements.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Gap {
    /// Product of the weight decays.
    pub decay: f32,
    /// Product of β1.
    pub m_scale: f32,
    /// β2 to the gap's length.
    pub v_scale: f32,
    /// The series sums `W_j`.
    pub w: [f32; TERMS],
}

/// A touched row's catch-up before a step: the step it stands at, and the gap from there to the
/// step before (the default when there is none: the row is up to date).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct RowGap {
    /// The step the row was last brought up to date with.
    pub k0: u32,
    /// The gap from `k0` to the step before the one about to be taken.
    pub gap: Gap,
}

/// Prefix tables of one fit's schedule, from which any gap is composed in O(1). The per-step tables
/// cover the whole fit; the blocks of prefix sums are built as the fit reaches them and dropped once
/// no gap can read them ([`CatchUp::advance`]), so a long fit (millions of small batches) needs the
/// same few blocks as a short one. A clone serves a thread that computes gaps ahead.
#[derive(Clone)]
pub(crate) struct CatchUp {
    d: usize,
    h: usize,
    eps: f64,
    plan: Plan,
    /// Prefix sums of ln(1 − lr·wd).
    log_a: Vec<f64>,
    /// β2^n for every gap length n.
    b2_pow: Vec<f64>,
    /// Per step, what a gap starting there needs when it ends within the horizon (one cache line
    /// per step; `lo` is filled when the step's block is built).
    at: Vec<AtStep>,
    /// Per step, what a gap starting there needs when it ends past the horizon (one cache line per
    /// step, filled when the step's block is built).
    far: Vec<FarStep>,
    /// Per step `u`: `step = lr/bc1` and `sbc2 = sqrt(1 − β2^t)`.
    step: Vec<f64>,
    sbc2: Vec<f64>,
    /// The blocks alive, from block number `first` on: from its reference step `r` on, the prefix
    /// sums `P_j`, then `Π β1` over `r+1..`.
    blocks: VecDeque<Vec<[f64; TERMS + 1]>>,
    first: usize,
    /// Per block, what the step-by-step sum of an element near ε reads, built on first use.
    near: Vec<OnceLock<NearBlock>>,
    /// Whether `AtStep::a` holds `Π (1 − lr·wd)` (it cannot underflow), so a gap's decay is a ratio.
    decay_prefix: bool,
    scalars: Vec<[f32; 8]>,
}

/// Per step `u` of a block (reference `r`), the terms of an element's update near ε: with
/// `A(u) = Π (1 − lr·wd)` and `B(u) = Π β1` over `r+1..=u`, step `u` of a gap from `k0` moves
/// `p_end` by `m0 · A(end)/B(k0) · step(u)·B(u)/A(u) / (sqrt(v0)/β2^((k0−r)/2) · β2^((u−r)/2)/sbc2(u) + ε)`.
#[derive(Clone)]
struct NearBlock {
    /// `A(u)`.
    decay: Vec<f64>,
    /// `step(u)·B(u)/A(u)`, with `step = lr/bc1`.
    weight: Vec<f64>,
    /// `β2^((u−r)/2)/sbc2(u)`.
    scale: Vec<f64>,
}

/// The per-step table of [`CatchUp`] for a gap starting at step `k` and ending within the horizon:
/// all that such a catch-up reads at random, in one cache line (prefetched ahead of the row).
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct AtStep {
    /// Relative to the block's reference `r`: `A(r,k) / Γ_0(r,k)` and `β2^((k−r)/2)`, so that
    /// `W_j(k, k1) = A(k,k1) · e · q^j · (P_j[k1] − P_j[k])`.
    e: f64,
    q: f64,
    /// `Π (1 − lr·wd)` over steps `1..=k` (when `decay_prefix`).
    a: f64,
    /// The block's prefix sums and `Π β1` at `k` (the gap's start, read from `blocks` in advance).
    lo: [f64; TERMS + 1],
}

/// The per-step table of [`CatchUp`] for a gap starting at step `k` and ending past the horizon
/// `h`, in one cache line: such a gap is its first `h` steps, decayed to its end.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct FarStep {
    /// `Π (1 − lr·wd)` over steps `1..=k` and `1..=k + h` (when `decay_prefix`).
    a: f64,
    a_h: f64,
    /// `W_j(k, k + h)`.
    full: [f64; TERMS],
}

impl CatchUp {
    /// Builds the per-step tables for `plan` (the blocks follow as the fit advances), or `None` when
    /// its schedule falls outside what the closed form handles accurately or is longer than
    /// `MAX_STEPS` (then the dense path, with the same semantics, is used).
    pub fn new(plan: &Plan) -> Option<CatchUp> {
        let n = plan.lr_mom.len();
        let (b2, eps, wd) = (plan.beta2, plan.eps, plan.wd);
        let sane = |x: f64| x.is_finite();
        if !(b2 > 0.0 && b2 < 1.0 && eps > 0.0 && sane(eps) && wd >= 0.0 && sane(wd)) {
            return None;
        }
        // With a large ε most elements sit within STEPWISE_BELOW·ε and would be summed step by step
        // (measured with ε = 1e-5 on `bench --scale`: 3.2 s an epoch against the dense path's 2.4 s
        // at 5M ratings, 46 against 64 s at 25M).
        if eps > MAX_EPS {
            return None;
        }
        if plan.lr_mom.iter().any(|&(lr, b1)| !(lr >= 0.0 && lr * wd < 1.0 && b1 > 0.0 && b1 < 1.0 && sane(lr))) {
            return None;
        }
        let ln_b2 = b2.ln();
        let b1_max = plan.lr_mom.iter().map(|p| p.1).fold(0.0, f64::max);
        let b1_min = plan.lr_mom.iter().map(|p| p.1).fold(1.0, f64::min);
        // Every term of the series must shrink along a gap, the slowest being the last.
        let slowest = b1_max / b2.powf(TERMS as f64 / 2.0);
        if slowest >= 1.0 {
            return None;
        }
        let rho = b1_max / b2.sqrt();
        let h = ((TAIL * (1.0 - rho)).ln() / rho.ln()).ceil().max(1.0) as usize;
        let gamma_min = b1_min / b2.sqrt();
        let d = ((1.0 / CANCEL).ln() / gamma_min.ln()).floor().clamp(1.0, h as f64) as usize;
        // Blocks alive at once: those whose gaps of up to `h` steps can still end at the current step.
        if n > MAX_STEPS || ((d + h) / d + 3) * (d + h + 1) * (TERMS + 1) > MAX_WINDOW {
            return None;
        }
        let mut log_a = vec![0.0; n + 1];
        let mut log_b = vec![0.0; n + 1];
        let (mut step, mut sbc2) = (vec![0.0f64; n + 1], vec![0.0f64; n + 1]);
        let mut scalars = Vec::with_capacity(n);
        for k in 1..=n {
            let hp = plan.hyper(k);
            log_a[k] = log_a[k - 1] + (1.0 - hp.lr * wd).ln();
            log_b[k] = log_b[k - 1] + hp.beta1.ln();
            // `sqrt(1 − β2^t)` and `lr/(1 − β1^t)`, as the dense step computes them.
            let all @ [.., sbc2_k, step_k, _] = hp.scalars_f64();
            (sbc2[k], step[k]) = (sbc2_k, step_k);
            scalars.push(all.map(|x| x as f32));
        }
        // Γ_j(r, u) = Π β1 / β2^((j+1)/2) over r+1..=u, in logs.
        let log_gamma =
            |j: usize, r: usize, u: usize| (log_b[u] - log_b[r]) - (j as f64 + 1.0) / 2.0 * (u - r) as f64 * ln_b2;
        let b2_pow = (0..=n).map(|k| (k as f64 * ln_b2).exp()).collect();
        let decay_prefix = log_a[n] > -600.0;
        let at: Vec<AtStep> = (0..=n)
            .map(|k| {
                let r = k / d * d;
                AtStep {
                    e: (log_a[k] - log_a[r] - log_gamma(0, r, k)).exp(),
                    q: ((k - r) as f64 * ln_b2 / 2.0).exp(),
                    a: if decay_prefix { log_a[k].exp() } else { f64::NAN },
                    lo: [0.0; TERMS + 1],
                }
            })
            .collect();
        let far = vec![FarStep::default(); n + 1];
        let near = (0..=n / d).map(|_| OnceLock::new()).collect();
        let (blocks, plan) = (VecDeque::new(), plan.clone());
        Some(CatchUp {
            d,
            h,
            eps,
            plan,
            log_a,
            b2_pow,
            at,
            far,
            step,
            sbc2,
            blocks,
            first: 0,
            near,
            scalars,
            decay_prefix,
        })
    }

    /// Makes the tables ready for gaps ending at step `k` (a step's catch-up, or a synchronisation
    /// point): builds the blocks up to `k`'s and drops those no such gap can read any more.
    pub fn advance(&mut self, k: usize) {
        let (d, h, n) = (self.d, self.h, self.at.len() - 1);
        while self.first + self.blocks.len() <= k.min(n) / d {
            let b = self.first + self.blocks.len();
            let sums = self.block_sums(b);
            let r = b * d;
            for k0 in r..(r + d).min(n + 1) {
                self.at[k0].lo = sums[k0 - r];
                if k0 + h <= n {
                    let decay = (self.log_a[k0 + h] - self.log_a[k0]).exp();
                    let full = self.series_sums(&self.at[k0], &sums[k0 + h - r], decay);
                    self.far[k0] = FarStep { a: self.at[k0].a, a_h: self.at[k0 + h].a, full };
                }
            }
            self.blocks.push_back(sums);
        }
        // A gap from block b ending at k or later is longer than h once k > r + d + h.
        while self.blocks.len() > 1 && (self.first + 1) * d + h < k {
            self.blocks.pop_front();
            self.first += 1;
        }
    }

    /// Block `b`'s prefix sums and `Π β1`, from its reference step `r = b·d` to `r + d + h` (or
    /// the fit's end). Within a block the products are running products from its reference step
    /// (a few hundred factors near 1: no loss of precision, no exponential per entry).
    fn block_sums(&self, b: usize) -> Vec<[f64; TERMS + 1]> {
        let (plan, n, r) = (&self.plan, self.at.len() - 1, b * self.d);
        let inv_sqrt_b2 = 1.0 / plan.beta2.sqrt();
        let end = (r + self.d + self.h).min(n);
        let mut sums = vec![[0.0f64; TERMS + 1]; end - r + 1];
        sums[0][TERMS] = 1.0;
        let (mut gamma0, mut inv_a, mut inv_q) = (1.0f64, 1.0f64, 1.0f64);
        for u in r + 1..=end {
            let hp = plan.hyper(u);
            gamma0 *= hp.beta1 * inv_sqrt_b2;
            inv_a /= 1.0 - hp.lr * plan.wd;
            inv_q *= inv_sqrt_b2;
            let mut row = sums[u - r - 1];
            // Γ_j = Γ_0 · β2^(−j(u−r)/2), and g_j(u) = step·sbc2·(sbc2·ε)^j.
            let (sbc2, mut term, mut g) = (self.sbc2[u], gamma0 * inv_a, self.step[u] * self.sbc2[u]);
            for s in row[..TERMS].iter_mut() {
                *s += g * term;
                term *= inv_q;
                g *= sbc2 * self.eps;
            }
            row[TERMS] = sums[u - r - 1][TERMS] * hp.beta1;
            sums[u - r] = row;
        }
        sums
    }

    /// Block `b`'s terms for elements near ε, built on first use.
    fn near_block(&self, b: usize) -> &NearBlock {
        self.near[b].get_or_init(|| {
            let (plan, n, r) = (&self.plan, self.at.len() - 1, b * self.d);
            let inv_sqrt_b2 = 1.0 / plan.beta2.sqrt();
            let mut near = NearBlock { decay: vec![1.0], weight: vec![0.0], scale: vec![0.0] };
            let (mut b1_prod, mut inv_a, mut inv_q) = (1.0f64, 1.0f64, 1.0f64);
            for u in r + 1..=(r + self.d + self.h).min(n) {
                let hp = plan.hyper(u);
                inv_a /= 1.0 - hp.lr * plan.wd;
                inv_q *= inv_sqrt_b2;
                b1_prod *= hp.beta1;
                near.decay.push(1.0 / inv_a);
                near.weight.push(self.step[u] * b1_prod * inv_a);
                near.scale.push(1.0 / self.sbc2[u] / inv_q);
            }
            near
        })
    }

    /// The prefix sums and `Π β1` at `k1` of the block a gap starting at `k0` belongs to (alive
    /// while such a gap can be at most `h` steps long).
    #[inline(always)]
    fn block_at(&self, k0: usize, k1: usize) -> &[f64; TERMS + 1] {
        &self.blocks[k0 / self.d - self.first][k1 - k0 / self.d * self.d]
    }

    /// `W_j(k0, k1)` from the block sums at the gap's start (`at`) and end (`hi`), `k1 ≤ k0 + h`,
    /// for a gap whose decay is `decay`.
    #[inline(always)]
    fn series_sums(&self, at: &AtStep, hi: &[f64; TERMS + 1], decay: f64) -> [f64; TERMS] {
        let lo = &at.lo;
        let mut scale = decay * at.e;
        let mut w = [0.0f64; TERMS];
        for (j, wj) in w.iter_mut().enumerate() {
            *wj = scale * (hi[j] - lo[j]);
            scale *= at.q;
        }
        w
    }

    /// The scalars of the gap from local step `k0` to `k1` (`k0 < k1`). Inlined: returned through
    /// memory, each gap was read back before it was stored, a stall on every touched row (computing
    /// gaps fell from 17.3% to 12.7% of a 25M fit's profile, on the thread that prepares batches).
    #[inline(always)]
    pub fn gap(&self, k0: usize, k1: usize) -> Gap {
        // The decay from a step `from` whose product is `a_from` (when `decay_prefix`) to `to`.
        let decay_between = |from: usize, a_from: f64, to: usize| {
            if self.decay_prefix {
                self.at[to].a / a_from
            } else {
                (self.log_a[to] - self.log_a[from]).exp()
            }
        };
        let (decay, w, m_scale) = if k1 - k0 > self.h {
            // Past the horizon: the updates are those of the first h steps, decayed since; the
            // momentum left weighs less than 1e-12 of what it was and is dropped with them.
            let far = &self.far[k0];
            let tail = decay_between(k0 + self.h, far.a_h, k1);
            (decay_between(k0, far.a, k1), far.full.map(|x| x * tail), 0.0)
        } else {
            let (at, hi) = (&self.at[k0], self.block_at(k0, k1));
            let decay = decay_between(k0, at.a, k1);
            (decay, self.series_sums(at, hi, decay), (hi[TERMS] / at.lo[TERMS]) as f32)
        };
        Gap { decay: decay as f32, m_scale, v_scale: self.b2_pow[k1 - k0] as f32, w: w.map(|x| x as f32) }
    }

    /// Hints the CPU to fetch what [`CatchUp::gap`]`(k0, k1)` reads at random.
    #[inline(always)]
    pub fn prefetch(&self, k0: usize, k1: usize, level: Level) {
        if k1 - k0 > self.h {
            prefetch(&self.far, k0, 1, level);
        } else {
            prefetch(&self.at, k0, 1, level);
        }
        prefetch(&self.b2_pow, k1 - k0, 1, level);
    }

    /// Applies the gap `k0 → k1` to one row's parameters, first and second moments.
    #[inline(always)]
    pub fn apply(&self, k0: usize, k1: usize, p: &mut [f32], m: &mut [f32], v: &mut [f32]) {
        self.apply_gap(&self.gap(k0, k1), k0, k1, p, m, v);
    }

    /// The second moment below which an element with momentum is summed step by step, for gaps
    /// ending at step `k1`: the bias correction only grows along a gap, so its value at the end
    /// bounds it.
    #[inline(always)]
    pub fn stepwise_below(&self, k1: usize) -> f32 {
        let threshold = (STEPWISE_BELOW * self.eps) as f32 * self.scalars[k1 - 1][5];
        threshold * threshold
    }

    /// [`CatchUp::apply`] with the gap's scalars `gap` (`self.gap(k0, k1)`) already computed.
    #[inline(always)]
    pub fn apply_gap(&self, gap: &Gap, k0: usize, k1: usize, p: &mut [f32], m: &mut [f32], v: &mut [f32]) {
        let gap = *gap;
        // Elements with momentum and sqrt(v) within STEPWISE_BELOW·ε·sqrt(bc2) take the slow road
        // (rare).
        let below = self.stepwise_below(k1);
        let slow = m.iter().zip(v.iter()).fold(false, |any, (&m, &v)| any | (m != 0.0 && v < below));
        if slow {
            let near: Vec<(usize, [f32; 3])> =
                (0..p.len()).filter(|&e| m[e] != 0.0 && v[e] < below).map(|e| (e, [p[e], m[e], v[e]])).collect();
            series_row_impl(p, m, v, &gap);
            let end = k1.min(k0 + self.h);
            let tail = (self.log_a[k1] - self.log_a[end]).exp();
            for (e, [p0, m0, v0]) in near {
                p[e] = (self.near_eps(k0, end, p0 as f64, m0 as f64, v0 as f64) * tail) as f32;
            }
        } else {
            series_row_impl(p, m, v, &gap);
        }
    }

    /// One element with moments `m0`, `v0` through the zero-gradient steps `k0+1..=k1` (at most the
    /// horizon), step by step: dense AdamW's recurrence solved per step, so the steps' updates are
    /// independent terms, summed in a fixed order (the same bits on every CPU).
    #[inline(always)]
    fn near_eps(&self, k0: usize, k1: usize, p0: f64, m0: f64, v0: f64) -> f64 {
        let r = k0 / self.d * self.d;
        let block = self.near_block(k0 / self.d);
        let (from, to) = (k0 - r + 1, k1 - r + 1);
        let x = v0.sqrt() / self.at[k0].q;
        let (weight, scale) = (&block.weight[from..to], &block.scale[from..to]);
        let mut acc = [0.0f64; 4];
        let (w4, s4) = (weight.chunks_exact(4), scale.chunks_exact(4));
        let (wr, sr) = (w4.remainder(), s4.remainder());
        for (w, s) in w4.zip(s4) {
            for l in 0..4 {
                acc[l] += w[l] / (x * s[l] + self.eps);
            }
        }
        for (l, (w, s)) in wr.iter().zip(sr).enumerate() {
            acc[l] += w / (x * s + self.eps);
        }
        let sum = (acc[0] + acc[2]) + (acc[1] + acc[3]);
        let decay_end = block.decay[k1 - r];
        p0 * (decay_end / block.decay[k0 - r]) - m0 * (decay_end / self.at[k0].lo[TERMS]) * sum
    }

    /// The per-step scalars of local step `k` (1-based), as the dense step uses them.
    pub fn scalars(&self, k: usize) -> &[f32; 8] {
        &self.scalars[k - 1]
    }
}

/// A whole row through a gap by the ε series.
#[inline(always)]
fn series_row_impl(p: &mut [f32], m: &mut [f32], v: &mut [f32], gap: &Gap) {
    elementwise([p, m, v], [], |[p, m, v], []| [series(p, m, v, gap), m * gap.m_scale, v * gap.v_scale]);
}

/// One element through a gap by the ε series (`v = 0` means no momentum either: pure decay).
#[inline(always)]
fn series(p: f32, m: f32, v: f32, gap: &Gap) -> f32 {
    let ix = 1.0 / v.sqrt();
    let ix = if v > 0.0 { ix } else { 0.0 };
    let [w0, w1, w2, w3] = gap.w;
    p * gap.decay - m * ix * (w0 - ix * (w1 - ix * (w2 - ix * w3)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense zero-gradient steps in f64, the reference for the closed form.
    fn dense(plan: &Plan, k0: usize, k1: usize, p: f64, m: f64, v: f64) -> f64 {
        let (mut p, mut m, mut v) = (p, m, v);
        for k in k0 + 1..=k1 {
            let h = plan.hyper(k);
            let t = h.step as i32;
            p *= 1.0 - h.lr * h.wd;
            m *= h.beta1;
            v *= h.beta2;
            p -= h.lr / (1.0 - h.beta1.powi(t)) * m / (v.sqrt() / (1.0 - h.beta2.powi(t)).sqrt() + h.eps);
        }
        p
    }

    fn one_cycle_plan(n: usize) -> Plan {
        let cycle = super::super::super::schedule::OneCycle::new(5e-3);
        Plan {
            lr_mom: (0..n).map(|i| cycle.at(i, n)).collect(),
            steps_before: 0,
            beta2: 0.99,
            eps: 1e-8,
            wd: 0.1,
            bs: 64,
        }
    }

    #[test]
    fn closed_form_matches_dense_steps_over_any_gap() {
        gaps_match_dense_steps(&one_cycle_plan(3000));
    }

    /// A long-memory β2 (the scale benchmark's): early bias corrections are small, so fewer
    /// elements are summed step by step and more go through the series.
    #[test]
    fn closed_form_matches_dense_steps_with_a_long_memory_beta2() {
        gaps_match_dense_steps(&Plan { beta2: 0.99999, wd: 0.001, ..one_cycle_plan(3000) });
    }

    fn gaps_match_dense_steps(plan: &Plan) {
        let n = plan.lr_mom.len();
        let gaps = [(0, 1), (5, 6), (89, 90), (17, 400), (1000, 1001), (2000, 2700), (250, n - 1), (0, n)];
        gaps_at_their_ends_match_dense_steps(plan, &gaps);
    }

    /// Applies each gap when the tables have advanced to its end (`gaps` in order of their ends, as
    /// a fit meets them) and compares with dense float64 steps.
    fn gaps_at_their_ends_match_dense_steps(plan: &Plan, gaps: &[(usize, usize)]) {
        let plan = plan.clone();
        let mut c = CatchUp::new(&plan).expect("fastai's schedule is supported");
        let (mut worst, mut of_bound) = (0.0f64, 0.0f64);
        for &(k0, k1) in gaps {
            c.advance(k1);
            for &(m, v) in &[(1e-3, 1e-6), (-2e-4, 4e-8), (1e-6, 1e-11), (3e-9, 1e-17), (1e-5, 0.0)] {
                let (mut p, mut mm, mut vv) = ([0.01f32], [m as f32], [v as f32]);
                c.apply(k0, k1, &mut p, &mut mm, &mut vv);
                let want = dense(&plan, k0, k1, 0.01, m as f32 as f64, v as f32 as f64);
                let err = (p[0] as f64 - want).abs();
                let bound = 1e-7 + 1e-5 * want.abs();
                worst = worst.max(err);
                of_bound = of_bound.max(err / bound);
                assert!(err <= bound, "gap {k0}->{k1}, m {m}, v {v}: {} vs {want}", p[0]);
            }
        }
        eprintln!("worst absolute error {worst:.3e}, at most {:.1}% of its bound", 100.0 * of_bound);
    }

    /// A fit of 600,000 small batches: its blocks are built as it goes and dropped behind it, so the
    /// tables stay small, and gaps late in the fit are as exact as early ones.
    #[test]
    fn long_fits_keep_a_window_of_blocks() {
        let plan = one_cycle_plan(600_000);
        let n = plan.lr_mom.len();
        let gaps = [(3, 10), (100_000, 100_300), (400_000, 400_001), (12, 450_000), (599_000, n - 1), (0, n)];
        gaps_at_their_ends_match_dense_steps(&plan, &gaps);
        let mut c = CatchUp::new(&plan).unwrap();
        c.advance(n);
        assert!(c.blocks.len() <= (c.d + c.h) / c.d + 3, "{} blocks alive", c.blocks.len());
    }

    #[test]
    fn schedules_the_series_cannot_handle_are_refused() {
        let mut plan = one_cycle_plan(100);
        plan.beta2 = 0.5;
        assert!(CatchUp::new(&plan).is_none());
        let mut plan = one_cycle_plan(100);
        plan.lr_mom[3].0 = f64::NAN;
        assert!(CatchUp::new(&plan).is_none());
        let mut plan = one_cycle_plan(100);
        plan.eps = 1e-5;
        assert!(CatchUp::new(&plan).is_none());
    }
}
