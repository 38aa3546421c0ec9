//! Two row loops of the sparse paths for rows of at most 16 floats (up to 15 factors and a bias),
//! a row as one masked AVX-512 vector: the exact path's catch-up, and AdamW (the lazy path's too).
//! [`elementwise`](super::lanes::elementwise) does a row of 11 as a group of eight and an
//! overlapping group of four: two square roots and two divisions where one does. Per element these
//! are the same IEEE operations in the same order as the loops for any width (no fused
//! multiply-add), so the results are the same bits (tests: AdamW's below, the catch-up's in
//! `exact.rs`).
//!
//! Measured on the synthetic 25M set at 10 factors (5-epoch exact fits, alternating): the catch-up
//! alone, 4.73–5.08 s against 5.33–5.91 s before (six each); perf put the catch-up at 2.4 s
//! against 3.1 s of a fit, and AdamW at 0.83–0.86 s against 0.88–0.98 s.
use std::arch::x86_64::*;

use super::catchup::{CatchUp, RowGap};
use super::tables::Half;
use crate::kernels::AHEAD;

/// Whether rows of `w` floats go through this module's loops on this CPU.
#[inline(always)]
pub(crate) fn fits(w: usize) -> bool {
    w <= 16 && std::arch::is_x86_feature_detected!("avx512f")
}

/// The lanes that hold a row of `w` floats.
#[inline(always)]
fn lanes(w: usize) -> __mmask16 {
    assert!(w <= 16, "a row of {w} floats is wider than a vector");
    ((1u32 << w) - 1) as __mmask16
}

/// The exact path's catch-up before step `k` for rows of at most 16 floats: each row `rows[j]`
/// brought from step `gaps[j].k0` up to step `k − 1` and marked as standing at step `k`. Rows with
/// an element near ε take [`CatchUp::apply_gap`]'s road. Rows are prefetched 32 ahead: the loop
/// is shorter than the any-width one, and 5-epoch 25M fits took 4.53–4.62 s against 4.67–4.94 s
/// at 16 ahead (three each; 24 ahead 4.49–4.66 s, 48 and 64 ahead 4.62–4.78 s).
#[target_feature(enable = "avx512f")]
pub(crate) fn catch_up_prepared(c: &CatchUp, half: &mut Half, rows: &[u32], gaps: &[RowGap], k: usize) {
    assert_eq!(rows.len(), gaps.len(), "the exact path's batches are prepared with their rows' gaps");
    let lanes = lanes(half.w);
    let below = if k > 1 { _mm512_set1_ps(c.stepwise_below(k - 1)) } else { _mm512_setzero_ps() };
    let (zero, one) = (_mm512_setzero_ps(), _mm512_set1_ps(1.0));
    for (j, (&row, g)) in rows.iter().zip(gaps).enumerate() {
        if let Some(&ahead) = rows.get(j + 2 * AHEAD) {
            half.prefetch(ahead as usize);
        }
        let row = row as usize;
        debug_assert_eq!(half.mark(row), g.k0, "row {row} stands where its order says");
        if (g.k0 as usize) + 1 < k {
            let (p, m, v) = half.state(row);
            // SAFETY: `p`, `m` and `v` hold `w` floats each, and the masked loads read no lane past
            // `w` (masked-off lanes are not accessed).
            let [pv, mv, vv] = [&*p, &*m, &*v].map(|x| unsafe { _mm512_maskz_loadu_ps(lanes, x.as_ptr()) });
            // `m != 0 && v < below` on some element, as `apply_gap` decides.
            let moving = _mm512_mask_cmp_ps_mask::<_CMP_NEQ_UQ>(lanes, mv, zero);
            if _mm512_mask_cmp_ps_mask::<_CMP_LT_OQ>(moving, vv, below) != 0 {
                c.apply_gap(&g.gap, g.k0 as usize, k - 1, p, m, v);
            } else {
                // `series`: `p·decay − m·ix·(w0 − ix·(w1 − ix·(w2 − ix·w3)))`, `ix = 1/sqrt(v)` (0 where
                // `v` is not positive).
                let gap = &g.gap;
                let ix = _mm512_div_ps(one, _mm512_sqrt_ps(vv));
                let ix = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(vv, zero), ix);
                let [w0, w1, w2, w3] = gap.w.map(|x| _mm512_set1_ps(x));
                let t = _mm512_sub_ps(w2, _mm512_mul_ps(ix, w3));
                let t = _mm512_sub_ps(w1, _mm512_mul_ps(ix, t));
                let t = _mm512_sub_ps(w0, _mm512_mul_ps(ix, t));
                let decayed = _mm512_mul_ps(pv, _mm512_set1_ps(gap.decay));
                let pv = _mm512_sub_ps(decayed, _mm512_mul_ps(_mm512_mul_ps(mv, ix), t));
                let mv = _mm512_mul_ps(mv, _mm512_set1_ps(gap.m_scale));
                let vv = _mm512_mul_ps(vv, _mm512_set1_ps(gap.v_scale));
                // SAFETY: as the loads, the stores write no lane past `w`.
                unsafe {
                    _mm512_mask_storeu_ps(p.as_mut_ptr(), lanes, pv);
                    _mm512_mask_storeu_ps(m.as_mut_ptr(), lanes, mv);
                    _mm512_mask_storeu_ps(v.as_mut_ptr(), lanes, vv);
                }
            }
        }
        half.set_mark(row, k);
    }
}

/// [`adamw_rows`](super::tables::adamw_rows) for rows of at most 16 floats: row `rows[j]` steps
/// with gradient row `j` of `grads`, in [`adamw`](super::tables::adamw)'s order of operations.
#[target_feature(enable = "avx512f")]
pub(crate) fn adamw_rows(half: &mut Half, rows: &[u32], grads: &[f32], k: &[f32; 8]) {
    let w = half.w;
    let lanes = lanes(w);
    assert!(grads.len() >= rows.len() * w, "a gradient row for each row");
    let [decay, b1, one_b1, b2, one_b2, bc2_sqrt, step_size, eps] = *k;
    let [decay, b1, one_b1, b2, one_b2, inv_bc2_sqrt, step_size, eps] =
        [decay, b1, one_b1, b2, one_b2, 1.0 / bc2_sqrt, step_size, eps].map(|x| _mm512_set1_ps(x));
    for (j, &row) in rows.iter().enumerate() {
        let (p, m, v) = half.state(row as usize);
        let g = &grads[j * w..(j + 1) * w];
        // SAFETY: each slice holds `w` floats; the masked loads read no lane past `w`.
        let [pv, mv, vv, g] = [&*p, &*m, &*v, g].map(|x| unsafe { _mm512_maskz_loadu_ps(lanes, x.as_ptr()) });
        let mv = _mm512_add_ps(_mm512_mul_ps(mv, b1), _mm512_mul_ps(g, one_b1));
        let vv = _mm512_add_ps(_mm512_mul_ps(vv, b2), _mm512_mul_ps(_mm512_mul_ps(g, g), one_b2));
        let denom = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vv), inv_bc2_sqrt), eps);
        let pv = _mm512_sub_ps(_mm512_mul_ps(pv, decay), _mm512_mul_ps(_mm512_div_ps(mv, denom), step_size));
        // SAFETY: as the loads, the stores write no lane past `w`.
        unsafe {
            _mm512_mask_storeu_ps(p.as_mut_ptr(), lanes, pv);
            _mm512_mask_storeu_ps(m.as_mut_ptr(), lanes, mv);
            _mm512_mask_storeu_ps(v.as_mut_ptr(), lanes, vv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tables::{adamw_impl, Side};
    use super::*;
    use tch::Tensor;

    /// A `[rows, w]` table whose values span many magnitudes (and some zeros).
    fn table(rows: usize, w: usize, seed: usize, scale: f32) -> Tensor {
        let x: Vec<f32> =
            (0..rows * w).map(|e| ((e * seed) % 19) as f32 * scale * 10f32.powi(-((e * 5 % 21) as i32))).collect();
        Tensor::from_slice(&x).view([rows as i64, w as i64])
    }

    fn bits(side: &mut Side, rows: &[u32]) -> Vec<u32> {
        let mut out = Vec::new();
        for &r in rows {
            let half = &mut side.halves[r as usize % 2];
            let (p, m, v) = half.state(r as usize);
            out.extend(p.iter().chain(&*m).chain(&*v).map(|x| x.to_bits()));
        }
        out
    }

    /// The masked AVX-512 AdamW step gives the bits of the any-width loop (built for the baseline
    /// CPU), at every width up to 16 and for moments of any size.
    #[test]
    fn narrow_adamw_steps_are_the_any_width_bits() {
        let k = [0.9999f32, 0.93, 0.07, 0.99, 0.01, 0.3, 4e-3, 1e-8];
        for w in 1..=16 {
            if !fits(w) {
                eprintln!("SKIPPED: this CPU has no AVX-512, so rows of {w} floats take the any-width loops");
                return;
            }
            let rows = 30usize;
            let (p, m, v) = (table(rows, w, 3, 0.1), table(rows, w, 7, 0.01), table(rows, w, 11, 1e-3));
            let [mut a, mut b] = [(), ()].map(|_| Side::load(&[(&p, &m, &v)], false).unwrap());
            let touched: Vec<u32> = (0..rows as u32).filter(|r| r % 3 != 1).collect();
            for parity in 0..2 {
                let mine: Vec<u32> = touched.iter().copied().filter(|&r| r as usize % 2 == parity).collect();
                let grads: Vec<f32> =
                    (0..mine.len() * w).map(|e| ((e * 13) % 17) as f32 * 10f32.powi(-((e % 9) as i32)) - 0.4).collect();
                // SAFETY: `fits` checked that the CPU has AVX-512F.
                unsafe { adamw_rows(&mut a.halves[parity], &mine, &grads, &k) };
                for (j, &r) in mine.iter().enumerate() {
                    let (p, m, v) = b.halves[parity].state(r as usize);
                    adamw_impl(p, m, v, &grads[j * w..(j + 1) * w], &k);
                }
            }
            assert_eq!(bits(&mut a, &touched), bits(&mut b, &touched), "width {w}");
        }
    }
}
