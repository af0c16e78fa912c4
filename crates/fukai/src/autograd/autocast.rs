//! Thread-local mixed-precision switch (PyTorch's `torch.autocast`): under
//! [`Precision::Bf16`], matrix products and im2col convolutions round their f32 operands to
//! bf16 and accumulate in f32; every other op, the parameters and the optimizer state stay f32.
//!
//! Ops read the switch on the thread that calls them and keep what they read for their
//! backward, so a graph built under `autocast(Bf16)` differentiates in bf16 wherever
//! `backward` is called (as PyTorch's autocast backward runs in the forward's dtypes).

use crate::error::{op_err, Error, Result};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

/// The precision matrix products and convolutions compute in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Plain f32 (the default).
    #[default]
    F32,
    /// Operands rounded to bf16 (round to nearest even), products accumulated in f32, f32
    /// results.
    Bf16,
    /// f32 products on TF32 tensor cores where the device has them (CUDA: operands rounded to
    /// 10 mantissa bits inside cuBLAS, f32 sums), as PyTorch's `allow_tf32`; the CPU and wgpu
    /// have no TF32 and compute exactly as [`Precision::F32`].
    Tf32,
}

impl Precision {
    /// The name `--precision` and configs use: `"f32"` or `"bf16"`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Tf32 => "tf32",
        }
    }

    /// Whether this is the default, f32 (configs leave it out then).
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "tf32" => Ok(Precision::Tf32),
            _ => Err(op_err(
                "precision",
                format!("expected \"f32\", \"bf16\" or \"tf32\", found {s:?}"),
            )),
        }
    }
}

thread_local! {
    static PRECISION: Cell<Precision> = const { Cell::new(Precision::F32) };
}

/// The precision ops called on this thread compute in.
pub fn precision() -> Precision {
    PRECISION.with(|p| p.get())
}

/// Restores the previous precision when dropped.
#[must_use = "the previous precision returns as soon as the guard is dropped"]
pub struct AutocastGuard {
    prev: Precision,
}

/// Sets the precision of matrix products and convolutions on this thread until the returned
/// guard drops (as `with torch.autocast("cpu", dtype=torch.bfloat16):`).
///
/// ```
/// use fukai::{autocast, precision, Precision, Tensor};
/// let a = Tensor::from_vec(vec![1.0f32 + 1.0 / 256.0, 2.0], &[1, 2])?;
/// let b = Tensor::from_vec(vec![1.0f32, 1.0], &[2, 1])?;
/// assert_eq!(a.matmul(&b)?.item()?, 3.00390625); // f32: 1 + 2^-8 is kept
/// {
///     let _guard = autocast("bf16".parse::<Precision>()?);
///     assert_eq!(precision(), Precision::Bf16);
///     // bf16 keeps 8 significant bits: 1 + 2^-8 rounds to 1 (to even).
///     assert_eq!(a.matmul(&b)?.item()?, 3.0);
/// }
/// assert_eq!(precision(), Precision::F32);
/// assert!("fp8".parse::<Precision>().is_err());
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn autocast(p: Precision) -> AutocastGuard {
    let prev = PRECISION.with(|c| c.replace(p));
    AutocastGuard { prev }
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        let prev = self.prev;
        PRECISION.with(|c| c.set(prev));
    }
}
