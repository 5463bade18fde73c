//! The numeric kernels of the forward pass: one matrix product (the `gemm` crate, the GEMM
//! candle uses on CPU), and the element-wise steps (layer norm, GELU, softmax) written so the
//! compiler vectorises them.
//!
//! The element-wise loops run inside [`dispatch`], which re-compiles them for the best
//! instruction set the CPU has (AVX2/FMA, AVX-512 where enabled) at run time through `pulp`,
//! so a plain `x86-64` build still gets wide vectors. The helpers they call are
//! `#[inline(always)]` so that they are compiled in that context too.

pub(crate) use gemm::Parallelism;
use pulp::{Simd, WithSimd};

/// Runs `op` compiled for the widest SIMD instruction set available at run time. Its
/// `with_simd` must be `#[inline(always)]`, as must what it calls, so that all of it is
/// compiled with those instructions enabled.
#[inline(always)]
fn dispatch<Op: WithSimd>(op: Op) -> Op::Output {
    pulp::Arch::new().dispatch(op)
}

/// A read-only strided matrix view into a slice: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

/// A writable matrix view; its elements must not overlap (checked).
pub(crate) struct MatMut<'a> {
    pub data: &'a mut [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> MatRef<'a> {
    /// A row-major `rows × cols` matrix with row stride `rs`.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    fn check(&self, what: &str) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(last < self.data.len(), "{what} view is out of bounds");
        }
    }
}

impl<'a> MatMut<'a> {
    /// A row-major `rows × cols` matrix with row stride `rs`.
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize, rs: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(last < self.data.len(), "destination view is out of bounds");
            // Distinct (i, j) must address distinct elements, or parallel writes would race.
            let disjoint = (self.cs >= 1 && self.rs >= self.cols * self.cs)
                || (self.rs >= 1 && self.cs >= self.rows * self.rs)
                || (self.rows == 1 && self.cs >= 1)
                || (self.cols == 1 && self.rs >= 1);
            assert!(disjoint, "destination view overlaps itself");
        }
    }
}

/// `dst = (accumulate ? dst : 0) + scale · lhs · rhs`.
///
/// # Panics
/// If the shapes disagree, a view reaches past its slice, or `dst` overlaps itself.
#[allow(unsafe_code)]
pub(crate) fn matmul(
    dst: MatMut<'_>,
    accumulate: bool,
    lhs: MatRef<'_>,
    rhs: MatRef<'_>,
    scale: f32,
    par: Parallelism,
) {
    assert_eq!(lhs.cols, rhs.rows, "inner dimensions differ");
    assert_eq!(dst.rows, lhs.rows, "row counts differ");
    assert_eq!(dst.cols, rhs.cols, "column counts differ");
    dst.check();
    lhs.check("left");
    rhs.check("right");
    let (m, n, k) = (dst.rows, dst.cols, lhs.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst.data[i * dst.rs + j * dst.cs] = 0.0;
                }
            }
        }
        return;
    }
    let isz = |v: usize| isize::try_from(v).expect("stride fits isize");
    // SAFETY: every view was checked above to stay inside its slice for all indices
    // (i < rows, j < cols) with the given non-negative strides, so gemm reads and writes only
    // in bounds. `dst` is an exclusive borrow, so it cannot alias `lhs` or `rhs`, and its
    // elements are pairwise distinct (checked), so gemm's parallel writes never collide.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            isz(dst.cs),
            isz(dst.rs),
            accumulate,
            lhs.data.as_ptr(),
            isz(lhs.cs),
            isz(lhs.rs),
            rhs.data.as_ptr(),
            isz(rhs.cs),
            isz(rhs.rs),
            1.0,
            scale,
            false,
            false,
            false,
            par,
        );
    }
}

const LANES: usize = 16;

/// Sum with independent lanes, so the loop vectorises without reassociation licence.
#[inline(always)]
pub(crate) fn sum(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for &x in rest {
        s += x;
    }
    s
}

#[inline(always)]
fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    let mut m = acc.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for &x in rest {
        m = m.max(x);
    }
    m
}

/// `x = LayerNorm(x + residual)` over one row, in place. `residual` may be empty (no add).
#[inline(always)]
fn add_layer_norm_row(x: &mut [f32], residual: &[f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = x.len();
    if !residual.is_empty() {
        for (v, r) in x.iter_mut().zip(residual) {
            *v += *r;
        }
    }
    let mean = sum(x) / n as f32;
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            let d = c[i] - mean;
            acc[i] += d * d;
        }
    }
    let mut ss: f32 = acc.iter().sum();
    for &v in rest {
        ss += (v - mean) * (v - mean);
    }
    let inv = 1.0 / (ss / n as f32 + eps).sqrt();
    for ((v, g), b) in x.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * inv * *g + *b;
    }
}

/// `e^x` for `x` in about [-87, 88] (Cephes' single-precision polynomial, ~2 ulp), written
/// without branches so it vectorises.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest by adding and removing 1.5·2²³: no call to `floor`, so it vectorises
    // with any instruction set. While `t` is in that range its bits count in units of one, so
    // they also give n as an integer without a (scalarised, saturating) float-to-int cast.
    const ROUND: f32 = 12_582_912.0;
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // n is in [-126, 127] after the clamp, so the biased exponent n + 127 is a normal one.
    let biased = t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127);
    let scale = f32::from_bits(biased << 23);
    y * scale
}

/// Softmax of one row, in place.
#[inline(always)]
fn softmax_row(x: &mut [f32]) {
    let m = max(x);
    // Exponentiate and sum in one pass, with independent lanes.
    let mut acc = [0.0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            c[i] = exp(c[i] - m);
            acc[i] += c[i];
        }
    }
    let mut total: f32 = acc.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp(*v - m);
        total += *v;
    }
    let inv = 1.0 / total;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// The error function, as a rational approximation on [-4, 4] (the one Eigen and XLA use for
/// `f32`; beyond ±4, erf is ±1 in single precision). Branch-free so it vectorises.
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 + -2.101_024e-6;
    p = p * x2 + -5.692_506_4e-5;
    p = p * x2 + -7.349_906e-4;
    p = p * x2 + -2.954_6e-3;
    p = p * x2 + -1.609_603_3e-2;
    p *= x;
    let mut q = -1.456_607_2e-5f32;
    q = q * x2 + -2.133_740_6e-4;
    q = q * x2 + -1.682_827e-3;
    q = q * x2 + -7.373_329e-3;
    q = q * x2 + -1.426_474e-2;
    p / q
}

/// Exact (erf) GELU, in place: `x · Φ(x)`, as BERT's `hidden_act = "gelu"`.
pub(crate) fn gelu(xs: &mut [f32]) {
    struct Op<'a>(&'a mut [f32]);
    impl WithSimd for Op<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, _: S) {
            for v in self.0.iter_mut() {
                let x = *v;
                *v = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
    }
    dispatch(Op(xs));
}

/// Softmax of each `width`-long row of `rows`, in place.
pub(crate) fn softmax_rows(rows: &mut [f32], width: usize) {
    struct Op<'a>(&'a mut [f32], usize);
    impl WithSimd for Op<'_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, _: S) {
            for row in self.0.chunks_exact_mut(self.1) {
                softmax_row(row);
            }
        }
    }
    dispatch(Op(rows, width));
}

/// A layer norm's parameters.
pub(crate) struct NormParams<'a> {
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub eps: f32,
}

/// `row = LayerNorm(row + residual_row)` for each row of `x` (`residual` empty: no add).
pub(crate) fn add_layer_norm_rows(x: &mut [f32], residual: &[f32], p: &NormParams<'_>) {
    struct Op<'a, 'b>(&'a mut [f32], &'a [f32], &'a NormParams<'b>);
    impl WithSimd for Op<'_, '_> {
        type Output = ();
        #[inline(always)]
        fn with_simd<S: Simd>(self, _: S) {
            let Op(x, residual, p) = self;
            let width = p.gamma.len();
            if residual.is_empty() {
                for row in x.chunks_exact_mut(width) {
                    add_layer_norm_row(row, &[], p.gamma, p.beta, p.eps);
                }
            } else {
                for (row, r) in x.chunks_exact_mut(width).zip(residual.chunks_exact(width)) {
                    add_layer_norm_row(row, r, p.gamma, p.beta, p.eps);
                }
            }
        }
    }
    assert!(residual.is_empty() || residual.len() == x.len());
    dispatch(Op(x, residual, p));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its series / continued fraction in f64, as an independent reference.
    fn erf64(x: f64) -> f64 {
        // Abramowitz–Stegun 7.1.26 is too coarse here; integrate exp(-t²) with Simpson's rule.
        let n = 20_000;
        let h = x / n as f64;
        let f = |t: f64| (-t * t).exp();
        let mut s = f(0.0) + f(x);
        for i in 1..n {
            let t = i as f64 * h;
            s += if i % 2 == 1 { 4.0 } else { 2.0 } * f(t);
        }
        s * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_matches_a_reference() {
        let mut worst = 0.0f64;
        for i in -600..=600 {
            let x = i as f64 / 100.0;
            let got = erf(x as f32) as f64;
            worst = worst.max((got - erf64(x)).abs());
        }
        assert!(worst < 1e-6, "max erf error {worst}");
    }

    #[test]
    fn exp_matches_std() {
        let mut worst = 0.0f32;
        for i in -8000..=8000 {
            let x = i as f32 / 100.0;
            let want = x.exp();
            let rel = ((exp(x) - want) / want).abs();
            worst = worst.max(rel);
        }
        assert!(worst < 1e-6, "max relative exp error {worst}");
    }

    #[test]
    fn softmax_and_layer_norm() {
        let mut row: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let want: Vec<f32> = {
            let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
            let s: f32 = e.iter().sum();
            e.iter().map(|v| v / s).collect()
        };
        softmax_rows(&mut row, 37);
        for (a, b) in row.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6);
        }

        let mut x: Vec<f32> = (0..40).map(|i| i as f32).collect();
        let r = vec![1.0f32; 40];
        let g = vec![2.0f32; 40];
        let b = vec![0.5f32; 40];
        let p = NormParams {
            gamma: &g,
            beta: &b,
            eps: 1e-12,
        };
        add_layer_norm_rows(&mut x, &r, &p);
        let mean: f32 = x.iter().sum::<f32>() / 40.0;
        let var: f32 = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 40.0;
        assert!((mean - 0.5).abs() < 1e-4, "{mean}");
        assert!((var - 4.0).abs() < 1e-3, "{var}");
    }

    #[test]
    fn matmul_with_strides_and_accumulation() {
        // lhs 2×3, rhs given as the transpose view of a 4×3 matrix.
        let lhs = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let rhs_t = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let mut dst = vec![10.0f32; 8];
        matmul(
            MatMut::rows(&mut dst, 2, 4, 4),
            true,
            MatRef::rows(&lhs, 2, 3, 3),
            MatRef::rows(&rhs_t, 4, 3, 3).t(),
            2.0,
            Parallelism::None,
        );
        assert_eq!(dst, [12.0, 14.0, 16.0, 22.0, 18.0, 20.0, 22.0, 40.0]);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn matmul_rejects_views_past_the_slice() {
        let a = [0.0f32; 4];
        let mut d = [0.0f32; 4];
        matmul(
            MatMut::rows(&mut d, 2, 2, 2),
            false,
            MatRef::rows(&a, 2, 3, 2),
            MatRef::rows(&a, 3, 2, 1),
            1.0,
            Parallelism::None,
        );
    }
}
