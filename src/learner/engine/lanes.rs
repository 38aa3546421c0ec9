//! Elementwise loops over a row in whole vectors only.
//!
//! A row rarely holds a multiple of eight floats (40 factors and a bias: 41; 10 and a bias: 11).
//! A plain loop does the last few elements one at a time, and a scalar square root or division
//! costs as much as one on four lanes: on a row of 11 the tail was three of the four square roots
//! the optimizer takes per row. Here the tail is done in groups of four, the last one overlapping the group before.
//! The overlapped elements are computed twice from the same original values, so they get the same
//! bits, and every element's result is exactly what the plain loop computes.

/// Replaces each element `e` of the `M` slices of `state` by `f(state at e, read at e)`, where
/// `read` are `K` slices read alongside (all at least as long as `state[0]`): groups of sixteen
/// elements (one AVX-512 vector), then of eight, then of four; when the length is not a multiple
/// of four (and at least four), the last group of four overlaps the one before: it is read before
/// any other group is written, and written last.
#[inline(always)]
pub(crate) fn elementwise<const M: usize, const K: usize>(
    state: [&mut [f32]; M],
    read: [&[f32]; K],
    f: impl Fn([f32; M], [f32; K]) -> [f32; M],
) {
    let n = state[0].len();
    let mut state = state.map(|s| &mut s[..n]);
    let read = read.map(|s| &s[..n]);
    if n < 4 {
        for e in 0..n {
            let out = f(std::array::from_fn(|j| state[j][e]), std::array::from_fn(|j| read[j][e]));
            for (s, x) in state.iter_mut().zip(out) {
                s[e] = x;
            }
        }
        return;
    }
    let tail = (!n.is_multiple_of(4)).then(|| (n - 4, group::<M, K, 4>(&state, &read, n - 4, &f)));
    let sixteens = n - n % 16;
    for at in (0..sixteens).step_by(16) {
        let out = group::<M, K, 16>(&state, &read, at, &f);
        put(&mut state, at, &out);
    }
    let eights = n - n % 8;
    if eights > sixteens {
        let out = group::<M, K, 8>(&state, &read, sixteens, &f);
        put(&mut state, sixteens, &out);
    }
    if n - eights >= 4 {
        let out = group::<M, K, 4>(&state, &read, eights, &f);
        put(&mut state, eights, &out);
    }
    if let Some((at, out)) = tail {
        put(&mut state, at, &out);
    }
}

/// `f` on the `L` elements from `at`, per slice.
#[inline(always)]
fn group<const M: usize, const K: usize, const L: usize>(
    state: &[&mut [f32]; M],
    read: &[&[f32]; K],
    at: usize,
    f: &impl Fn([f32; M], [f32; K]) -> [f32; M],
) -> [[f32; L]; M] {
    let s: [&[f32; L]; M] = std::array::from_fn(|j| state[j][at..at + L].try_into().unwrap());
    let r: [&[f32; L]; K] = std::array::from_fn(|j| read[j][at..at + L].try_into().unwrap());
    let mut out = [[0.0; L]; M];
    for l in 0..L {
        let y = f(std::array::from_fn(|j| s[j][l]), std::array::from_fn(|j| r[j][l]));
        for (o, y) in out.iter_mut().zip(y) {
            o[l] = y;
        }
    }
    out
}

/// Writes a group computed by [`group`] back.
#[inline(always)]
fn put<const M: usize, const L: usize>(state: &mut [&mut [f32]; M], at: usize, out: &[[f32; L]; M]) {
    for (s, o) in state.iter_mut().zip(out) {
        s[at..at + L].copy_from_slice(o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_is_computed_once_from_its_own_values_at_any_length() {
        for n in 0..70 {
            let mut a: Vec<f32> = (0..n).map(|e| e as f32).collect();
            let mut b: Vec<f32> = (0..n).map(|e| 100.0 + e as f32).collect();
            let g: Vec<f32> = (0..n).map(|e| 0.5 * e as f32).collect();
            elementwise([&mut a, &mut b], [&g], |[x, y], [g]| [x + 1.0, y * 2.0 + g]);
            for e in 0..n {
                assert_eq!(a[e], e as f32 + 1.0, "n {n}, element {e}");
                assert_eq!(b[e], (100.0 + e as f32) * 2.0 + 0.5 * e as f32, "n {n}, element {e}");
            }
        }
    }
}
