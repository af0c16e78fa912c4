//! The element types kernels compute in (f32, f64), and shared helpers for reading tensors as
//! typed slices. Kernels are generic over [`Float`] internally; the public API is not.

use crate::bail;
use crate::error::Result;
use crate::tensor::{StorageSlice, Tensor};

/// f32 or f64: the math kernels need.
pub trait Float:
    StorageSlice
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + std::ops::AddAssign
    + std::iter::Sum
    + Default
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Negative infinity (identity of max).
    const NEG_INF: Self;
    /// From an f64 constant.
    fn c(v: f64) -> Self;
    /// e^x.
    fn exp(self) -> Self;
    /// e^x through a vectorizable polynomial for f32 (3e-7 relative; see `fastmath`), exact
    /// for f64: for hot activation loops where libm's scalar call dominates.
    fn fast_exp(self) -> Self;
    /// erfc(x) for x ≥ 0, accurate in relative terms; vectorizable for f32 (see `fastmath`),
    /// libm's for f64.
    fn fast_erfc(self) -> Self;
    /// tanh(x), vectorizable for f32 (see `fastmath`), exact for f64.
    fn fast_tanh(self) -> Self;
    /// Natural log.
    fn ln(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// x^p.
    fn powf(self, p: Self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// NaN test.
    fn is_nan(self) -> bool;
    /// Larger of two (NaN propagates).
    #[inline]
    fn max_nan(self, o: Self) -> Self {
        if self.is_nan() || self >= o {
            self
        } else {
            o
        }
    }
    /// Smaller of two (NaN propagates).
    #[inline]
    fn min_nan(self, o: Self) -> Self {
        if self.is_nan() || self <= o {
            self
        } else {
            o
        }
    }
}

macro_rules! float_impl {
    ($t:ty, $fexp:path, $ferfc:path, $ftanh:expr) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INF: Self = <$t>::NEG_INFINITY;
            #[inline(always)]
            fn c(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn fast_exp(self) -> Self {
                $fexp(self)
            }
            #[inline(always)]
            fn fast_erfc(self) -> Self {
                $ferfc(self)
            }
            #[inline(always)]
            fn fast_tanh(self) -> Self {
                $ftanh(self)
            }
            #[inline(always)]
            fn powf(self, p: Self) -> Self {
                <$t>::powf(self, p)
            }
            #[inline(always)]
            fn sin(self) -> Self {
                <$t>::sin(self)
            }
            #[inline(always)]
            fn cos(self) -> Self {
                <$t>::cos(self)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
float_impl!(
    f32,
    super::fastmath::exp,
    super::fastmath::erfc_pos,
    super::fastmath::tanh
);
float_impl!(f64, f64::exp, libm::erfc, f64::tanh);

/// Errors unless `t` has a dtype kernels compute in and lives in host memory: the check of
/// every op that has no device kernel yet.
pub fn check_float(op: &'static str, t: &Tensor) -> Result<()> {
    check_float_on(op, t)?;
    t.cpu_only(op)
}

/// Errors unless `t` has a dtype kernels compute in, on any device: the check of ops with
/// kernels for every backend.
pub fn check_float_on(op: &'static str, t: &Tensor) -> Result<()> {
    if !t.dtype().is_compute_float() {
        bail!(
            op,
            "needs an f32 or f64 tensor, found {} (convert with to_dtype)",
            t.dtype()
        );
    }
    Ok(())
}

/// Errors unless both tensors share a dtype and a device (or one is a 0-dim CPU scalar).
pub fn check_same_dtype(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() != b.dtype() {
        bail!(op, "dtype mismatch: {} vs {}", a.dtype(), b.dtype());
    }
    crate::tensor::check_same_device(op, a, b)
}

/// Runs `f` on `t`'s elements as a contiguous `&[T]` in logical order, copying only for
/// strided views. The caller has checked that `T` is `t`'s dtype.
pub fn with_contig<T: StorageSlice, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> R {
    let data = t.storage().read();
    let s = T::slice(&data).expect("caller checked dtype");
    match t.layout().contiguous_range() {
        Some(r) => f(&s[r]),
        None => {
            let v: Vec<T> = t.layout().gather(s);
            f(&v)
        }
    }
}

/// Dispatches a generic float kernel on `dtype`: `float_dispatch!(dtype, T => expr)`.
#[macro_export]
#[doc(hidden)]
macro_rules! float_dispatch {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::tensor::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::tensor::DType::F64 => {
                type $T = f64;
                $body
            }
            other => unreachable!("float kernel on {other}"),
        }
    };
}

/// Wraps a freshly computed contiguous buffer as a tensor of `shape`.
pub fn wrap<T: Float>(
    v: Vec<T>,
    shape: &[usize],
) -> (
    std::sync::Arc<crate::tensor::Storage>,
    crate::tensor::Layout,
) {
    (
        std::sync::Arc::new(crate::tensor::Storage::new(T::wrap(v))),
        crate::tensor::Layout::contiguous(shape),
    )
}

/// An uninitialized-free output buffer of `n` zeros.
pub fn zeroed<T: Float>(n: usize) -> Vec<T> {
    vec![T::ZERO; n]
}
