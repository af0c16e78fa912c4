//! Runtime element types. Compute happens in f32 (f64 for reference checks); the half types are
//! storage formats converted on the way in and out; integers carry indices, labels and masks.

use half::{bf16, f16};
use std::fmt;

/// The element type of a tensor, chosen at runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float: the compute type.
    F32,
    /// 64-bit float: for gradient checks and reference computations.
    F64,
    /// bfloat16 storage.
    BF16,
    /// IEEE half storage.
    F16,
    /// 64-bit signed integers: indices and labels (PyTorch's `long`).
    I64,
    /// 32-bit unsigned integers: indices and token ids.
    U32,
    /// Bytes: boolean masks from comparisons (0 or 1).
    U8,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::U32 => 4,
            DType::BF16 | DType::F16 => 2,
            DType::U8 => 1,
        }
    }
    /// True for the types arithmetic kernels run on (f32, f64).
    pub fn is_compute_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
    /// True for any floating type, storage-only ones included.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::BF16 | DType::F16)
    }
    /// Lower-case name as used in safetensors and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            DType::I64 => "i64",
            DType::U32 => "u32",
            DType::U8 => "u8",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Rust type that can be stored in a tensor. Sealed: the set is [`DType`]'s.
pub trait WithDType: Copy + Send + Sync + 'static + sealed::Sealed {
    /// The runtime tag of this type.
    const DTYPE: DType;
    /// Lossy conversion from f64 (rounds/truncates like `as`).
    fn from_f64(v: f64) -> Self;
    /// Conversion to f64.
    fn to_f64(self) -> f64;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! with_dtype {
    ($t:ty, $d:ident, $from:expr, $to:expr) => {
        impl sealed::Sealed for $t {}
        impl WithDType for $t {
            const DTYPE: DType = DType::$d;
            #[inline]
            fn from_f64(v: f64) -> Self {
                $from(v)
            }
            #[inline]
            fn to_f64(self) -> f64 {
                $to(self)
            }
        }
    };
}
with_dtype!(f32, F32, |v| v as f32, |v: f32| v as f64);
with_dtype!(f64, F64, |v| v, |v| v);
with_dtype!(bf16, BF16, bf16::from_f64, bf16::to_f64);
with_dtype!(f16, F16, f16::from_f64, f16::to_f64);
with_dtype!(i64, I64, |v| v as i64, |v: i64| v as f64);
with_dtype!(u32, U32, |v| v as u32, |v: u32| v as f64);
with_dtype!(u8, U8, |v| v as u8, |v: u8| v as f64);
