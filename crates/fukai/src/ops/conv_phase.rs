//! Column matrices of strided convolutions through phase-split planes. With stride `(sh, sw)`,
//! input row `iy` belongs to phase `iy % sh` and column `ix` to phase `ix % sw`; split into its
//! `sh * sw` phase planes, a plane is read by every tap at stride 1. When a phase plane is as
//! wide as the output, a tap's rows then lie end to end in one phase plane, and each column row
//! moves as one contiguous copy (im2col) or add (col2im) instead of short strided runs, which
//! the compiler leaves scalar: a 4x4 kernel at stride 2 unfolded at 0.7 ns an element that way.

use super::conv_kernel::{taps, zero_pad_columns, ConvGeom, Tap};
use super::float::Float;

/// The phase split of a strided convolution's input planes, when its taps can read them as
/// spans: every phase plane the same size (the strides divide the plane) and as wide as the
/// output.
pub(super) struct Phases {
    sh: usize,
    sw: usize,
    /// Rows and columns of one phase plane.
    ph: usize,
    pw: usize,
}

impl Phases {
    pub(super) fn of(g: &ConvGeom) -> Option<Self> {
        let [_, sh, sw] = g.stride;
        let fits =
            sh * sw > 1 && g.h.is_multiple_of(sh) && g.w.is_multiple_of(sw) && g.w / sw == g.ow;
        fits.then(|| Phases {
            sh,
            sw,
            ph: g.h / sh,
            pw: g.w / sw,
        })
    }

    /// Where tap `t`'s span starts in the split plane, as for a stride-1 tap in `span`: the
    /// phase plane of its first read, then that read's row and column within it.
    #[inline(always)]
    fn start(&self, t: &Tap) -> usize {
        let (iy, ix) = (t.y.2, t.x.2);
        let phase = (iy % self.sh) * self.sw + ix % self.sw;
        (phase * self.ph + iy / self.sh) * self.pw + ix / self.sw
    }

    /// `plane` [H, W] as its phase planes [sh, sw, H/sh, W/sw] in `split`.
    #[inline(always)]
    fn split<T: Float>(&self, plane: &[T], split: &mut [T]) {
        let (len, pw) = (self.ph * self.pw, self.pw);
        // Input rows in order: phase row r of each row phase py, no division per row (a
        // plane's rows are a few dozen elements, so per-row overhead counts).
        let mut rows = plane.chunks_exact(pw * self.sw);
        for r in 0..self.ph {
            for py in 0..self.sh {
                let row = rows.next().expect("a plane holds ph * sh rows");
                let phases = &mut split[py * self.sw * len..][..self.sw * len];
                if self.sw == 2 {
                    // Pairs, which the compiler turns into vector shuffles; `step_by` stays
                    // scalar.
                    let (even, odd) = phases.split_at_mut(len);
                    let (even, odd) = (&mut even[r * pw..][..pw], &mut odd[r * pw..][..pw]);
                    for ((e, o), p) in even.iter_mut().zip(odd).zip(row.chunks_exact(2)) {
                        *e = p[0];
                        *o = p[1];
                    }
                    continue;
                }
                for px in 0..self.sw {
                    let to = &mut phases[px * len + r * pw..][..pw];
                    for (d, s) in to.iter_mut().zip(row[px..].iter().step_by(self.sw)) {
                        *d = *s;
                    }
                }
            }
        }
    }

    /// Adds the phase planes in `split` back onto `plane` [H, W].
    #[inline(always)]
    fn merge_add<T: Float>(&self, split: &[T], plane: &mut [T]) {
        let (len, pw) = (self.ph * self.pw, self.pw);
        let mut rows = plane.chunks_exact_mut(pw * self.sw);
        for r in 0..self.ph {
            for py in 0..self.sh {
                let row = rows.next().expect("a plane holds ph * sh rows");
                let phases = &split[py * self.sw * len..][..self.sw * len];
                if self.sw == 2 {
                    let (even, odd) = (&phases[r * pw..][..pw], &phases[len + r * pw..][..pw]);
                    for ((p, e), o) in row.chunks_exact_mut(2).zip(even).zip(odd) {
                        p[0] += *e;
                        p[1] += *o;
                    }
                    continue;
                }
                for px in 0..self.sw {
                    let from = &phases[px * len + r * pw..][..pw];
                    for (d, s) in row[px..].iter_mut().step_by(self.sw).zip(from) {
                        *d += *s;
                    }
                }
            }
        }
    }

    /// Length of a column row's span: from its first valid output to its last, padding
    /// columns between rows included.
    #[inline(always)]
    fn span_len(g: &ConvGeom, t: &Tap) -> (usize, usize) {
        let ((ylo, yhi, _), (xlo, xhi, _)) = (t.y, t.x);
        (ylo * g.ow + xlo, (yhi - ylo - 1) * g.ow + (xhi - xlo))
    }

    /// im2col through the split: unfolds input plane `iz` of one sample `x` [C, D, H, W] into
    /// `col` [C*kh*kw, OH*OW], zeros where padding is read.
    #[inline(always)]
    pub(super) fn im2col<T: Float>(&self, g: &ConvGeom, x: &[T], iz: usize, col: &mut [T]) {
        let (ohw, dhw, hw) = (g.ohw(), g.dhw(), g.hw());
        let mut split = vec![T::ZERO; hw];
        let mut channel = usize::MAX;
        for t in taps(g) {
            let dst = &mut col[t.row * ohw..(t.row + 1) * ohw];
            if t.is_empty() {
                dst.fill(T::ZERO);
                continue;
            }
            if t.c != channel {
                channel = t.c;
                let at = t.c * dhw + iz * hw;
                self.split(&x[at..at + hw], &mut split);
            }
            let (d0, len) = Self::span_len(g, &t);
            let s0 = self.start(&t);
            dst[..d0].fill(T::ZERO);
            dst[d0..d0 + len].copy_from_slice(&split[s0..s0 + len]);
            dst[d0 + len..].fill(T::ZERO);
            zero_pad_columns(g, &t, dst);
        }
    }

    /// col2im through the split: adds `col` [C*kh*kw, OH*OW] onto input plane `iz` of one
    /// sample's input gradient `dx` [C, D, H, W]. A channel's taps are summed in the split
    /// first (in tap order, from zero), then added to `dx`. `col` is scratch afterwards.
    #[inline(always)]
    pub(super) fn col2im<T: Float>(&self, g: &ConvGeom, col: &mut [T], iz: usize, dx: &mut [T]) {
        let (ohw, dhw, hw) = (g.ohw(), g.dhw(), g.hw());
        let mut split = vec![T::ZERO; hw];
        let khw = g.kh * g.kw;
        let mut all = taps(g);
        for c in 0..g.c {
            split.fill(T::ZERO);
            for t in all.by_ref().take(khw) {
                if t.is_empty() {
                    continue;
                }
                let src = &mut col[t.row * ohw..(t.row + 1) * ohw];
                // Padding entries would land on neighbouring pixels; zero them so they add
                // nothing.
                zero_pad_columns(g, &t, src);
                let (d0, len) = Self::span_len(g, &t);
                let s0 = self.start(&t);
                for (d, s) in split[s0..s0 + len].iter_mut().zip(&src[d0..d0 + len]) {
                    *d += *s;
                }
            }
            let at = c * dhw + iz * hw;
            self.merge_add(&split, &mut dx[at..at + hw]);
        }
    }
}
