//! Finding the three special bytes (`0xFF`, `0xFE`, `0xFA`) 64 bytes at a time.
//!
//! A bitmap function turns a 64-byte block into a `u64` with bit `i` set when
//! byte `i` is special. The decoder walks that bitmap with `trailing_zeros`,
//! so reaching the next special byte costs a few instructions instead of a
//! fresh `memchr3` call, whose setup dominated when specials are ~40 bytes
//! apart (random bodies have one every ~80 bytes, plus the delimiters).
//!
//! Implementations, all giving the same bitmap:
//! - [`special_mask_scalar`]: byte by byte, the reference the others are
//!   tested against (exhaustively per byte value and position, and by
//!   property tests on blocks dense in special and near-special bytes);
//! - [`special_mask_swar`]: portable, eight bytes per `u64` with exact
//!   zero-byte detection; used off x86_64;
//! - [`special_mask_sse2`]: x86_64 baseline (SSE2 is part of the target, so
//!   no detection is needed), four 16-byte compares;
//! - [`special_mask_avx2`]: two 32-byte compares, chosen at run time by
//!   [`dispatch`] when `is_x86_feature_detected!("avx2")`.
//!
//! [`dispatch`] runs the decoder's block loop (a [`Kernel`]) with the best
//! bitmap function inlined into it. For AVX2 the whole loop is compiled with
//! AVX2 enabled, so the decoder's fixed 64-byte copies become two 32-byte
//! moves as well.
//!
//! This module holds the only `unsafe` code in the crate: the SIMD intrinsics
//! and the call into the AVX2-compiled loop, each with its safety argument.

use super::{END, ESC, START};

/// Bytes per bitmap.
pub(super) const BLOCK: usize = 64;

/// A loop over blocks that takes the bitmap function as a parameter, so
/// [`dispatch`] can compile it once per instruction set.
pub(super) trait Kernel {
    /// What the loop returns.
    type Output;

    /// Runs the loop with `mask` as the bitmap function. Implementations
    /// should be `#[inline(always)]`: the loop has to be inlined into
    /// [`dispatch`]'s AVX2 function to be compiled with AVX2.
    fn run(self, mask: impl Fn(&[u8; BLOCK]) -> u64) -> Self::Output;
}

/// Runs `kernel` with the fastest bitmap function this CPU supports.
#[inline(always)]
pub(super) fn dispatch<K: Kernel>(kernel: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above), which is the
        // only requirement of `run_avx2`.
        #[allow(unsafe_code)]
        return unsafe { run_avx2(kernel) };
    }
    kernel.run(special_mask)
}

/// [`Kernel::run`] with [`special_mask_avx2`], compiled with AVX2 enabled.
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
unsafe fn run_avx2<K: Kernel>(kernel: K) -> K::Output {
    kernel.run(|block| {
        // SAFETY: only reachable through `run_avx2`, whose caller promises
        // that the CPU supports AVX2.
        unsafe { special_mask_avx2(block) }
    })
}

/// The bitmap function for CPUs without AVX2: SSE2 on x86_64, SWAR elsewhere.
#[inline(always)]
pub(super) fn special_mask(block: &[u8; BLOCK]) -> u64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        special_mask_sse2(block)
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        special_mask_swar(block)
    }
}

/// Reference implementation: one byte at a time.
#[cfg_attr(not(test), allow(dead_code))]
pub(super) fn special_mask_scalar(block: &[u8; BLOCK]) -> u64 {
    block
        .iter()
        .enumerate()
        .filter(|&(_, &b)| matches!(b, START | END | ESC))
        .fold(0, |mask, (i, _)| mask | 1 << i)
}

/// Portable SWAR version: in each 8-byte word, mark the bytes that equal
/// `0xFF` once their low bit is set (that catches `FF` and `FE`) or that
/// equal `0xFA`.
#[cfg_attr(
    all(target_arch = "x86_64", target_feature = "sse2", not(test)),
    allow(dead_code)
)]
#[inline(always)]
pub(super) fn special_mask_swar(block: &[u8; BLOCK]) -> u64 {
    const LO7: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const ONES: u64 = 0x0101_0101_0101_0101;
    /// The high bit of each byte set exactly where `x` has a zero byte.
    /// Unlike the classic `(x - 0x0101..) & !x & 0x8080..`, no borrow
    /// crosses bytes, so there are no false positives.
    #[inline(always)]
    fn zero_bytes(x: u64) -> u64 {
        !(((x & LO7) + LO7) | x | LO7)
    }
    let mut mask = 0;
    for (i, word) in block.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(word.try_into().expect("chunks of 8"));
        let hits = zero_bytes(!(w | ONES)) | zero_bytes(w ^ (ONES * u64::from(ESC)));
        // Gather the eight high bits into the top byte: the multiplier puts
        // byte k's bit at 56 + k, and no two partial products share a bit
        // position, so nothing carries into the result.
        let byte_bits = (hits >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        mask |= byte_bits << (8 * i);
    }
    mask
}

/// SSE2 version: per 16 bytes, `(v | 1) == 0xFF` or `v == 0xFA`, and
/// `movemask` collects one bit per byte.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
#[inline(always)]
pub(super) fn special_mask_sse2(block: &[u8; BLOCK]) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut mask = 0;
    for (i, lane) in block.chunks_exact(16).enumerate() {
        // SAFETY: the `cfg` above means SSE2 is enabled for the whole target,
        // so the intrinsics are available. `lane` is exactly 16 readable
        // bytes (`chunks_exact(16)`), which is what `_mm_loadu_si128` reads,
        // and the `loadu` form has no alignment requirement.
        let bits = unsafe {
            let v = _mm_loadu_si128(lane.as_ptr().cast::<__m128i>());
            let ff_fe = _mm_cmpeq_epi8(_mm_or_si128(v, _mm_set1_epi8(1)), _mm_set1_epi8(-1));
            let fa = _mm_cmpeq_epi8(v, _mm_set1_epi8(ESC as i8));
            _mm_movemask_epi8(_mm_or_si128(ff_fe, fa))
        };
        // `movemask` sets only the low 16 bits of its `i32`.
        mask |= u64::from(bits as u16) << (16 * i);
    }
    mask
}

/// AVX2 version of [`special_mask_sse2`]: two 32-byte halves.
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(unsafe_code)]
#[inline]
pub(super) unsafe fn special_mask_avx2(block: &[u8; BLOCK]) -> u64 {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_or_si256,
        _mm256_set1_epi8,
    };
    let mut mask = 0;
    for (i, half) in block.chunks_exact(32).enumerate() {
        // SAFETY: AVX2 is the caller's promise. `half` is exactly 32
        // readable bytes (`chunks_exact(32)`), which is what the unaligned
        // load reads.
        let bits = unsafe {
            let v = _mm256_loadu_si256(half.as_ptr().cast::<__m256i>());
            let ones = _mm256_set1_epi8(1);
            let ff_fe = _mm256_cmpeq_epi8(_mm256_or_si256(v, ones), _mm256_set1_epi8(-1));
            let fa = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(ESC as i8));
            _mm256_movemask_epi8(_mm256_or_si256(ff_fe, fa))
        };
        mask |= u64::from(bits as u32) << (32 * i);
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every fast implementation this machine can run, with its name.
    fn fast_masks(block: &[u8; BLOCK]) -> Vec<(&'static str, u64)> {
        #[allow(unused_mut)]
        let mut got = vec![
            ("special_mask", special_mask(block)),
            ("swar", special_mask_swar(block)),
        ];
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        got.push(("sse2", special_mask_sse2(block)));
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support was checked just above.
            #[allow(unsafe_code)]
            got.push(("avx2", unsafe { special_mask_avx2(block) }));
        }
        struct Probe<'a>(&'a [u8; BLOCK]);
        impl Kernel for Probe<'_> {
            type Output = u64;
            fn run(self, mask: impl Fn(&[u8; BLOCK]) -> u64) -> u64 {
                mask(self.0)
            }
        }
        got.push(("dispatch", dispatch(Probe(block))));
        got
    }

    fn check(block: &[u8; BLOCK]) -> Result<(), String> {
        let want = special_mask_scalar(block);
        for (name, got) in fast_masks(block) {
            if got != want {
                return Err(format!(
                    "{name}: {got:#x}, scalar {want:#x}, block {block:02x?}"
                ));
            }
        }
        Ok(())
    }

    #[test]
    fn every_byte_value_at_every_position() {
        for fill in [0x00, 0xFA, 0xFB, 0xFE, 0xFF] {
            for pos in 0..BLOCK {
                for b in 0..=255u8 {
                    let mut block = [fill; BLOCK];
                    block[pos] = b;
                    let want = special_mask_scalar(&block);
                    assert_eq!(want >> pos & 1 == 1, matches!(b, 0xFF | 0xFE | 0xFA));
                    check(&block).unwrap();
                }
            }
        }
    }

    /// Bytes at and around the special ones, so neighbours like `F9`/`FB`/`FD`
    /// and long runs of specials are common.
    fn near_special() -> impl Strategy<Value = u8> {
        prop_oneof![
            2 => any::<u8>(),
            3 => prop::sample::select(vec![0xFFu8, 0xFE, 0xFA]),
            1 => 0xF8u8..=0xFF,
            1 => prop::sample::select(vec![0x00u8, 0x01, 0x04, 0x05, 0x7F, 0x80]),
        ]
    }

    proptest! {
        #[test]
        fn fast_masks_match_scalar(bytes in prop::collection::vec(near_special(), BLOCK)) {
            let block: [u8; BLOCK] = bytes.try_into().unwrap();
            prop_assert_eq!(check(&block), Ok(()));
        }

        #[test]
        fn fast_masks_match_scalar_on_uniform_bytes(bytes in prop::collection::vec(any::<u8>(), BLOCK)) {
            let block: [u8; BLOCK] = bytes.try_into().unwrap();
            prop_assert_eq!(check(&block), Ok(()));
        }
    }
}
