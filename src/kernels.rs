//! Numeric loops shared by the training engines, the models' CPU predictions and inference: one
//! fixed order of IEEE operations (no fused multiply-add), so they give the same bits on every CPU,
//! with or without AVX2 or AVX-512.

/// Declares `fn $name`, which runs the `#[inline(always)]` function `$imp` compiled for the widest
/// vectors the CPU has: AVX-512 (16 floats at a time in `elementwise` loops), else AVX2 (8), else
/// the baseline (4). The arithmetic is the same IEEE operations in the same order (no fused
/// multiply-add), so the results are the same bits whichever runs. AVX-512 pays where square roots
/// and divisions bound a loop: on this project's AMD EPYC (Zen 5) machines one on 16 lanes issues
/// as fast as one on 8, and the lesson's exact fits (rows of 51) took 0.039–0.040 s against
/// 0.043 s with AVX2 (medians of 20 fits, three sets each, alternating).
macro_rules! vectorized {
    ($(#[$doc:meta])* fn $name:ident => $imp:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        $(#[$doc])*
        #[inline(always)]
        pub(crate) fn $name($($arg: $ty),*) $(-> $ret)? {
            $crate::kernels::vectorized!(@on "avx512f" avx512 => $imp($($arg: $ty),*) $(-> $ret)?);
            $crate::kernels::vectorized!(@on "avx2" avx2 => $imp($($arg: $ty),*) $(-> $ret)?);
            $imp($($arg),*)
        }
    };
    // Returns `$imp` compiled for `$feature` (as `fn $wide`) when the CPU has it.
    (@on $feature:tt $wide:ident => $imp:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)?) => {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!($feature) {
            #[target_feature(enable = $feature)]
            unsafe fn $wide($($arg: $ty),*) $(-> $ret)? {
                $imp($($arg),*)
            }
            // SAFETY: the CPU has the feature the function is compiled for.
            return unsafe { $wide($($arg),*) };
        }
    };
}
pub(crate) use vectorized;

/// `Σ a[f]·b[f]` in eight interleaved partial sums, added pairwise (a fixed order: the same bits on
/// every CPU).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
        acc[l] += x * y;
    }
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// The logistic function `1 / (1 + e^−x)`, as fastai's `sigmoid_range` applies it to a score.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// fastai's `sigmoid_range` of a score when there is a `y_range`, else the score itself.
#[inline(always)]
pub(crate) fn sigmoid_range(x: f32, y_range: Option<(f32, f32)>) -> f32 {
    match y_range {
        Some((lo, hi)) => sigmoid(x) * (hi - lo) + lo,
        None => x,
    }
}

/// `EmbeddingDotBias`'s prediction from a user's and an item's factors and biases: the dot
/// product plus both biases, through `sigmoid_range` when there is a `y_range`. Training engines
/// and the model predict through this one function, so their predictions are the same bits.
#[inline(always)]
pub(crate) fn dot_bias_score(u: &[f32], i: &[f32], u_bias: f32, i_bias: f32, y_range: Option<(f32, f32)>) -> f32 {
    sigmoid_range(dot(u, i) + u_bias + i_bias, y_range)
}

/// How many ratings (or rows) ahead the loops prefetch. 16 rather than 8: at 25M ratings and 10
/// factors a row's catch-up takes about 27 ns and its lines come from memory, so 8 rows ahead
/// left the loop waiting on them (`bench --scale 25000000`, alternating: 8.4–8.9 s of steps
/// against 9.2–10.4 s); the lesson (tables in cache) and 40 factors measured the same either way.
pub(crate) const AHEAD: usize = 16;

/// The cache level a prefetch brings its lines into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// The first level: for tables that the outer caches hold, so a prefetched line is at hand.
    L1,
    /// The second level: for tables larger than the caches, whose lines mostly come from memory.
    L2,
    /// Lines read once, from memory: the non-temporal hint, so that they displace as little as
    /// possible of the tables that the outer caches hold.
    Once,
}

/// Hints the CPU to fetch `len` elements of `data` from `start` into cache at `level` (beyond the
/// first level, every cache line they overlap: see [`line_span`]).
#[inline(always)]
pub(crate) fn prefetch<T>(data: &[T], start: usize, len: usize, level: Level) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_NTA, _MM_HINT_T0, _MM_HINT_T1};
        let base = data.as_ptr() as *const i8;
        let (mut at, end) = line_span(data, start, len, level);
        while at < end {
            // SAFETY: prefetching is only a hint, and the address lies inside `data`.
            unsafe {
                match level {
                    Level::L1 => _mm_prefetch::<_MM_HINT_T0>(base.add(at)),
                    Level::L2 => _mm_prefetch::<_MM_HINT_T1>(base.add(at)),
                    Level::Once => _mm_prefetch::<_MM_HINT_NTA>(base.add(at)),
                }
            };
            at += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, start, len, level);
}

/// The bytes of `data` to prefetch for its elements `start..start + len` (those inside `data`), one
/// offset every 64 bytes from the first. Beyond the first level ([`Level::L2`], [`Level::Once`])
/// the span starts at the beginning of the element's cache line, so that those offsets hit every
/// line the elements overlap: counted from the element itself, a row of 40 factors and a bias (492
/// bytes, 8 or 9 lines) lost its ninth line in 10 rows of 16, and 5-epoch fits of the synthetic 25M
/// set at 40 factors ran 4% faster once it was fetched too (alternating runs, 14.9–15.5 s against
/// 15.2–16.1 s). For the first level (tables the outer caches hold) it starts at the element, as
/// before: the lesson's fits were about 4% slower with every line fetched (alternating runs of 40
/// fits each, medians 0.044 s against 0.046 s), so a row's last line is left to the hardware there.
#[inline(always)]
fn line_span<T>(data: &[T], start: usize, len: usize, level: Level) -> (usize, usize) {
    let size = std::mem::size_of::<T>();
    let end = (start + len).min(data.len()) * size;
    let first = start * size;
    match level {
        Level::L1 => (first, end),
        Level::L2 | Level::Once => (first.saturating_sub((data.as_ptr() as usize + first) % 64), end),
    }
}

#[cfg(test)]
mod tests {
    use super::{line_span, Level};

    /// Every line that a stretch overlaps gets one offset (for prefetches beyond the first level),
    /// each inside the data, whatever the stretch's alignment.
    #[test]
    fn prefetches_reach_every_line_of_a_stretch() {
        let data = vec![0.0f32; 400];
        for (skip, level) in (0..16).flat_map(|skip| [(skip, Level::L2), (skip, Level::Once)]) {
            let data = &data[skip..];
            let line = |byte: usize| (data.as_ptr() as usize + byte) / 64;
            for (start, len) in [(0, 1), (3, 30), (7, 33), (10, 123), (21, 123), (300, 200)] {
                let (first, end) = line_span(data, start, len, level);
                let offsets: Vec<usize> = (first..end).step_by(64).collect();
                let mut want: Vec<usize> = (start..(start + len).min(data.len())).map(|e| line(4 * e)).collect();
                want.dedup();
                let got: Vec<usize> = offsets.iter().map(|&b| line(b)).collect();
                assert!(offsets.iter().all(|&b| b < 4 * data.len()), "{level:?}, skip {skip}, {start}+{len}");
                assert_eq!(got, want, "{level:?}, skip {skip}, {start}+{len}");
            }
        }
    }
}
