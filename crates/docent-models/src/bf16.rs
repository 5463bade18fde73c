//! Matrix products in bfloat16 on CPUs with AVX512-BF16 (AMD Zen 4 and later, Intel Cooper
//! Lake / Sapphire Rapids and later).
//!
//! `vdpbf16ps` multiplies pairs of bf16 numbers and accumulates into f32 lanes at twice the
//! rate of f32 fused multiply-adds. Weights are rounded to bf16 and packed once, at load;
//! activations are rounded to bf16 as each product starts; sums stay in f32. On
//! all-MiniLM-L6-v2 this changes embeddings by a cosine distance below 1e-4 (checked by
//! `tests/parity.rs` against sentence-transformers' f32 vectors).
//!
//! Layout: the packed weights hold, for each panel of [`NR`] output columns and each pair of
//! input positions `(2k, 2k+1)`, one `u32` per column with the two bf16 values (even position
//! in the low half): exactly one 512-bit operand of `vdpbf16ps` per 16 columns. A row of
//! activations is packed the same way, so one 32-bit broadcast feeds a whole panel.
//!
//! This is the crate's only hand-written SIMD (with the AMX variant in [`amx`]); it needs `unsafe` for raw-pointer loads and
//! stores and for calling `#[target_feature]` functions, each guarded by checks stated at the
//! call.
#![allow(unsafe_code)]

use rayon::prelude::*;

use crate::kernels::Parallelism;

/// Output columns per panel: four 16-lane registers.
const NR: usize = 64;
/// Rows per micro-kernel call: 6 rows × 4 registers = 24 accumulators of the 32 registers.
const MR: usize = 6;
/// Rows per cache block: the block's packed activations and one weight panel stay in L2.
const MC: usize = 96;

/// Whether this CPU can run the bf16 kernels.
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// f32 → bf16 bits, rounding to nearest even (inputs are finite).
#[inline(always)]
fn bf16(x: f32) -> u32 {
    let b = x.to_bits();
    b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16
}

/// A linear layer's `[n, k]` weight matrix (PyTorch layout), rounded to bf16 and packed into
/// panels of [`NR`] columns.
pub(crate) struct PackedWeights {
    n: usize,
    k: usize,
    /// Pairs of input positions: `k` rounded up to even, halved.
    kp: usize,
    /// `panels × kp × NR`.
    data: Vec<u32>,
}

impl PackedWeights {
    /// Packs `w` (`n` rows of `k`).
    pub(crate) fn pack(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k);
        let kp = k.div_ceil(2);
        let panels = n.div_ceil(NR);
        let mut data = vec![0u32; panels * kp * NR];
        for (p, panel) in data.chunks_exact_mut(kp * NR).enumerate() {
            for (kk, lanes) in panel.chunks_exact_mut(NR).enumerate() {
                for (j, lane) in lanes.iter_mut().enumerate() {
                    let col = p * NR + j;
                    if col < n {
                        let row = &w[col * k..][..k];
                        let lo = row[2 * kk];
                        let hi = row.get(2 * kk + 1).copied().unwrap_or(0.0);
                        *lane = bf16(lo) | (bf16(hi) << 16);
                    }
                }
            }
        }
        Self { n, k, kp, data }
    }

    /// Output columns.
    pub(crate) fn n(&self) -> usize {
        self.n
    }
}

/// Packs rows of activations (`m × k`) into bf16 pairs (`m × kp`).
fn pack_rows(a: &[f32], k: usize, kp: usize, out: &mut [u32]) {
    for (row, dst) in a.chunks_exact(k).zip(out.chunks_exact_mut(kp)) {
        let (pairs, rest) = row.split_at(k & !1);
        for (d, p) in dst.iter_mut().zip(pairs.chunks_exact(2)) {
            *d = bf16(p[0]) | (bf16(p[1]) << 16);
        }
        if let Some(&last) = rest.first() {
            dst[kp - 1] = bf16(last);
        }
    }
}

/// `c += a · wᵀ`: `a` is `m × k` row-major, `c` is `m × n` row-major.
///
/// # Panics
/// If the CPU lacks AVX512-BF16 (check [`available`] first) or the shapes disagree.
pub(crate) fn matmul_acc(c: &mut [f32], a: &[f32], m: usize, w: &PackedWeights, par: Parallelism) {
    assert!(available(), "the CPU lacks AVX512-BF16");
    let (n, k, kp) = (w.n, w.k, w.kp);
    assert_eq!(a.len(), m * k, "activations have the wrong size");
    assert_eq!(c.len(), m * n, "output has the wrong size");
    if m == 0 || n == 0 {
        return;
    }
    if amx::usable(kp) {
        amx::matmul_acc(c, a, m, w, par);
        return;
    }
    let block = |(c, a): (&mut [f32], &[f32])| {
        let rows = c.len() / n;
        let mut packed = vec![0u32; rows * kp];
        pack_rows(a, k, kp, &mut packed);
        for (p, panel) in w.data.chunks_exact(kp * NR).enumerate() {
            let col0 = p * NR;
            let cols = NR.min(n - col0);
            let mut r = 0;
            while r < rows {
                let mr = MR.min(rows - r);
                let a_tile = &packed[r * kp..(r + mr) * kp];
                let c_tile = &mut c[r * n + col0..(r + mr - 1) * n + col0 + cols];
                tile(mr, a_tile, kp, panel, c_tile, n, cols);
                r += mr;
            }
        }
    };
    match par {
        Parallelism::None => c.chunks_mut(MC * n).zip(a.chunks(MC * k)).for_each(block),
        _ => c
            .par_chunks_mut(MC * n)
            .zip(a.par_chunks(MC * k))
            .for_each(block),
    }
}

/// One `mr × cols` tile of `c` (row stride `c_rs`) += `mr` packed rows × one panel.
#[inline(always)]
fn tile(mr: usize, a: &[u32], kp: usize, panel: &[u32], c: &mut [f32], c_rs: usize, cols: usize) {
    // The instructions (a cached flag), and everything the kernel touches: `mr` rows of `kp`
    // pairs, a whole panel, and `mr` rows of `cols` outputs at stride `c_rs`.
    assert!(available(), "the CPU lacks AVX512-BF16");
    assert!((1..=MR).contains(&mr) && (1..=NR).contains(&cols) && cols <= c_rs);
    assert!(a.len() >= mr * kp);
    assert!(panel.len() >= kp * NR);
    assert!(c.len() >= (mr - 1) * c_rs + cols);
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has AVX512F and AVX512-BF16, and the bounds above cover every element
    // `kernel` reads or writes (checked just above).
    unsafe {
        match mr {
            6 => x86::kernel::<6>(a.as_ptr(), kp, panel.as_ptr(), c.as_mut_ptr(), c_rs, cols),
            5 => x86::kernel::<5>(a.as_ptr(), kp, panel.as_ptr(), c.as_mut_ptr(), c_rs, cols),
            4 => x86::kernel::<4>(a.as_ptr(), kp, panel.as_ptr(), c.as_mut_ptr(), c_rs, cols),
            3 => x86::kernel::<3>(a.as_ptr(), kp, panel.as_ptr(), c.as_mut_ptr(), c_rs, cols),
            2 => x86::kernel::<2>(a.as_ptr(), kp, panel.as_ptr(), c.as_mut_ptr(), c_rs, cols),
            _ => x86::kernel::<1>(a.as_ptr(), kp, panel.as_ptr(), c.as_mut_ptr(), c_rs, cols),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, kp, panel, c, c_rs, cols);
        unreachable!("bf16 kernels exist only on x86_64");
    }
}

/// The same products on Intel AMX tiles (Sapphire Rapids and later): `tdpbf16ps` multiplies a
/// 16 × 32 bf16 tile by a 32 × 16 one into 16 × 16 f32 sums, about eight times the work of
/// `vdpbf16ps` per cycle. The packed weights are already in the layout AMX wants for its
/// second operand (pairs of inputs interleaved per column), so a weight tile is 16 rows of a
/// panel read at the panel's stride; activations are packed into blocks of 16 rows (padded
/// with zero rows). Used when the CPU has AMX-BF16, the kernel lets the process use the tile
/// registers, and the inner dimension is a multiple of 32 (all of MiniLM's are); set
/// `DOCENT_EMBED_AMX=off` to measure without it.
mod amx {
    use std::sync::OnceLock;

    use rayon::prelude::*;

    use super::{NR, PackedWeights, Parallelism, pack_rows};

    /// Rows of a tile.
    const ROWS: usize = 16;
    /// Input pairs (u32) per tile row: 64 bytes, 32 bf16 values.
    const PAIRS: usize = 16;

    /// Whether AMX is available and allowed, checked once per process.
    fn available() -> bool {
        static AVAILABLE: OnceLock<bool> = OnceLock::new();
        *AVAILABLE.get_or_init(|| {
            let off = std::env::var("DOCENT_EMBED_AMX").is_ok_and(|v| v == "off" || v == "0");
            !off && super::available() && request()
        })
    }

    /// Whether the AMX path runs for an inner dimension of `kp` pairs.
    pub(super) fn usable(kp: usize) -> bool {
        kp.is_multiple_of(PAIRS) && available()
    }

    /// Checks CPUID for AMX-TILE and AMX-BF16 and asks Linux for the tile data state (which a
    /// process must request before its first tile instruction).
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    fn request() -> bool {
        // CPUID leaf 7 exists on every CPU with AVX512 (checked by the caller).
        let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
        let (tile, bf16) = (leaf7.edx & (1 << 24) != 0, leaf7.edx & (1 << 22) != 0);
        if !(tile && bf16) {
            return false;
        }
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: arch_prctl with these arguments only changes the process's permission to
        // use the AMX register state; it reads and writes no memory of ours.
        let r = unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            )
        };
        if r != 0 {
            tracing::debug!("the kernel refused AMX tile state; using AVX512-BF16");
        }
        r == 0
    }

    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    fn request() -> bool {
        false
    }

    /// Rows per block: one block's packed activations stay in L2 while every weight panel
    /// streams past them once, so the weights are read from memory once per block (a batch of
    /// queries is usually a single block).
    const MC: usize = 256;

    /// [`super::matmul_acc`] on AMX tiles. Needs [`usable`]. Blocks of rows go to different
    /// threads; a single block (few rows) splits its panels between threads instead.
    pub(super) fn matmul_acc(
        c: &mut [f32],
        a: &[f32],
        m: usize,
        w: &PackedWeights,
        par: Parallelism,
    ) {
        let (n, k) = (w.n, w.k);
        let parallel = !matches!(par, Parallelism::None);
        if parallel && m > MC {
            c.par_chunks_mut(MC * n)
                .zip(a.par_chunks(MC * k))
                .for_each(|(c, a)| block(c, a, w, false));
        } else {
            c.chunks_mut(MC * n)
                .zip(a.chunks(MC * k))
                .for_each(|(c, a)| block(c, a, w, parallel));
        }
    }

    /// `c += a · wᵀ` for one block of rows; with `parallel`, the panels are shared out over
    /// the current rayon pool.
    fn block(c: &mut [f32], a: &[f32], w: &PackedWeights, parallel: bool) {
        let (n, k, kp) = (w.n, w.k, w.kp);
        let rows = c.len() / n;
        assert!(usable(kp) && rows > 0);
        assert!(c.len() == rows * n && a.len() == rows * k);
        let padded = rows.div_ceil(ROWS) * ROWS;
        let mut packed = vec![0u32; padded * kp];
        pack_rows(a, k, kp, &mut packed[..rows * kp]);
        let panels: Vec<&[u32]> = w.data.chunks_exact(kp * NR).collect();
        let add = |p: usize, sums: &[f32], c: &mut [f32]| {
            let col0 = p * NR;
            let cols = NR.min(n - col0);
            for (row, sums) in c.chunks_exact_mut(n).zip(sums.chunks_exact(NR)) {
                for (o, s) in row[col0..col0 + cols].iter_mut().zip(sums) {
                    *o += s;
                }
            }
        };
        if parallel && panels.len() > 1 {
            let sums: Vec<Vec<f32>> = panels
                .par_iter()
                .map(|panel| {
                    let mut out = vec![0f32; padded * NR];
                    panel_product(&packed, kp, panel, &mut out);
                    out
                })
                .collect();
            for (p, sums) in sums.iter().enumerate() {
                add(p, sums, c);
            }
        } else {
            let mut out = vec![0f32; padded * NR];
            for (p, panel) in panels.iter().enumerate() {
                panel_product(&packed, kp, panel, &mut out);
                add(p, &out, c);
            }
        }
    }

    /// `out` (`padded` × NR) = the packed rows (`padded` × `kp` pairs) × one panel.
    fn panel_product(packed: &[u32], kp: usize, panel: &[u32], out: &mut [f32]) {
        let padded = packed.len() / kp;
        assert!(kp.is_multiple_of(PAIRS) && kp > 0 && padded.is_multiple_of(ROWS));
        assert!(panel.len() == kp * NR && out.len() == padded * NR);
        assert!(available());
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AMX is available and permitted (checked above). Every tile load reads 16
        // rows of 64 bytes: activation tiles at rows r..r+16 of `packed` (`padded` rows, a
        // multiple of 16, of kp pairs, kp a multiple of 16, so columns kc·16..kc·16+16
        // exist), weight tiles at rows kc·16..kc·16+16 of the panel (kp × NR) and columns
        // g·16..g·16+16 (g < 4 = NR / 16); stores write 16 rows of NR floats at rows
        // r..r+16 of `out` (`padded` × NR). The configuration is loaded on this thread
        // first and released after.
        unsafe {
            x86::configure();
            for r in (0..padded).step_by(ROWS) {
                x86::row_panel(
                    packed.as_ptr().add(r * kp),
                    kp,
                    panel.as_ptr(),
                    out.as_mut_ptr().add(r * NR),
                );
            }
            x86::release();
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use std::arch::asm;

        use super::{NR, PAIRS, ROWS};

        /// The tile configuration: palette 1, eight tiles of 16 rows × 64 bytes.
        #[repr(C, align(64))]
        struct Config([u8; 64]);

        /// Loads the tile configuration on this thread.
        ///
        /// # Safety
        /// AMX must be available and permitted.
        pub(super) unsafe fn configure() {
            let mut cfg = Config([0; 64]);
            cfg.0[0] = 1;
            for t in 0..8 {
                cfg.0[16 + 2 * t] = 64;
                cfg.0[48 + t] = ROWS as u8;
            }
            // SAFETY: `cfg` is a valid 64-byte configuration (caller: AMX is usable).
            unsafe { asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly)) };
        }

        /// Releases the tile state on this thread.
        ///
        /// # Safety
        /// As [`configure`].
        pub(super) unsafe fn release() {
            // SAFETY: caller: AMX is usable.
            unsafe { asm!("tilerelease", options(nostack, nomem)) };
        }

        /// 16 rows × one panel (NR = 64 columns, four tiles): `out` (16 rows at a stride of
        /// NR floats) = Σ over the `kp` pairs of `a` (16 rows at a stride of `kp` pairs) ×
        /// `panel` (`kp` rows of NR pairs).
        ///
        /// # Safety
        /// [`configure`] ran on this thread; `kp` is a positive multiple of 16; `a` is valid
        /// for 16 × `kp` reads, `panel` for `kp` × NR, `out` for 16 × NR writes.
        pub(super) unsafe fn row_panel(a: *const u32, kp: usize, panel: *const u32, out: *mut f32) {
            const _: () = assert!(NR == 4 * 16 && PAIRS == 16);
            // SAFETY: per the contract above; tmm0-3 hold the sums of the four column
            // groups, tmm4 the activations, tmm5-7 the weights.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    "2:",
                    "tileloadd tmm4, [{a} + {astride}*1]",
                    "tileloadd tmm5, [{b} + {bstride}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm5",
                    "tileloadd tmm6, [{b} + {bstride}*1 + 64]",
                    "tdpbf16ps tmm1, tmm4, tmm6",
                    "tileloadd tmm7, [{b} + {bstride}*1 + 128]",
                    "tdpbf16ps tmm2, tmm4, tmm7",
                    "tileloadd tmm5, [{b} + {bstride}*1 + 192]",
                    "tdpbf16ps tmm3, tmm4, tmm5",
                    "add {a}, 64",
                    "add {b}, {bstep}",
                    "dec {steps}",
                    "jnz 2b",
                    "tilestored [{out} + {ostride}*1], tmm0",
                    "tilestored [{out} + {ostride}*1 + 64], tmm1",
                    "tilestored [{out} + {ostride}*1 + 128], tmm2",
                    "tilestored [{out} + {ostride}*1 + 192], tmm3",
                    a = inout(reg) a => _,
                    b = inout(reg) panel => _,
                    steps = inout(reg) kp / PAIRS => _,
                    out = in(reg) out,
                    astride = in(reg) kp * 4,
                    bstride = in(reg) NR * 4,
                    bstep = in(reg) PAIRS * NR * 4,
                    ostride = in(reg) NR * 4,
                    options(nostack),
                );
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::NR;

    /// `c[i][j] += Σ_kk a[i][kk] · panel[kk][j]` for `i < R`, `j < cols`, where each `u32`
    /// holds two bf16 values.
    ///
    /// # Safety
    /// The CPU must have AVX512F and AVX512-BF16; `a` must be valid for `R · kp` reads,
    /// `panel` for `kp · NR`, and `c` for reads and writes at `i · c_rs + j`, `i < R`,
    /// `j < cols ≤ NR`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    pub(super) unsafe fn kernel<const R: usize>(
        a: *const u32,
        kp: usize,
        panel: *const u32,
        c: *mut f32,
        c_rs: usize,
        cols: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); 4]; R];
        for kk in 0..kp {
            // SAFETY: kk < kp, so the four 16-lane loads stay inside the panel's row kk.
            let b: [__m512bh; 4] = unsafe {
                let row = panel.add(kk * NR);
                [
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(row.cast())),
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                        row.add(16).cast(),
                    )),
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                        row.add(32).cast(),
                    )),
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                        row.add(48).cast(),
                    )),
                ]
            };
            for (i, acc) in acc.iter_mut().enumerate() {
                // SAFETY: i < R and kk < kp.
                let pair = unsafe { a.add(i * kp + kk).read() };
                let av = _mm512_set1_epi32(pair as i32);
                // SAFETY: same size, any bit pattern is a valid value of either type.
                let av = unsafe { std::mem::transmute::<__m512i, __m512bh>(av) };
                for q in 0..4 {
                    acc[q] = _mm512_dpbf16_ps(acc[q], av, b[q]);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            for (q, v) in acc.iter().enumerate() {
                let start = q * 16;
                if start >= cols {
                    break;
                }
                let lanes = (cols - start).min(16);
                let mask: __mmask16 = if lanes == 16 {
                    0xFFFF
                } else {
                    (1u16 << lanes) - 1
                };
                // SAFETY: i < R and start + lanes <= cols, inside the caller's bounds; masked
                // lanes are neither read nor written.
                unsafe {
                    let p = c.add(i * c_rs + start);
                    let old = _mm512_maskz_loadu_ps(mask, p);
                    _mm512_mask_storeu_ps(p, mask, _mm512_add_ps(old, *v));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_to_bf16() {
        assert_eq!(bf16(1.0), 0x3F80);
        assert_eq!(bf16(-2.0), 0xC000);
        // 1 + 2⁻⁸ lies halfway between two bf16 values: ties go to even (1.0).
        assert_eq!(bf16(1.0 + 1.0 / 256.0), 0x3F80);
        assert_eq!(bf16(1.0 + 3.0 / 256.0), 0x3F82);
    }

    #[test]
    fn matches_an_f32_product_within_bf16_precision() {
        if !available() {
            eprintln!("skipped: this CPU lacks AVX512-BF16");
            return;
        }
        // Odd sizes: partial panels, partial row tiles, an odd inner dimension, many blocks.
        // (k a multiple of 32 takes the AMX path where the CPU has it.)
        for (m, n, k) in [
            (1, 1, 1),
            (7, 70, 33),
            (200, 130, 64),
            (13, 64, 384),
            (40, 1152, 384),
            (17, 384, 1536),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 5 % 11) as f32 - 5.0) / 4.0)
                .collect();
            let packed = PackedWeights::pack(&w, n, k);
            for par in [Parallelism::None, Parallelism::Rayon(2)] {
                let mut c = vec![1.0f32; m * n];
                matmul_acc(&mut c, &a, m, &packed, par);
                for i in 0..m {
                    for j in 0..n {
                        let want: f32 =
                            1.0 + (0..k).map(|x| a[i * k + x] * w[j * k + x]).sum::<f32>();
                        // These inputs are exact in bf16, so only summation order differs.
                        assert!(
                            (c[i * n + j] - want).abs() < 1e-3,
                            "({m},{n},{k}) [{i},{j}]: {} vs {want}",
                            c[i * n + j]
                        );
                    }
                }
            }
        }
    }
}
