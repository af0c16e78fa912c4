//! Type-erased memory behind tensors. One `Storage` may back many tensors (views); writes happen
//! only through explicit in-place calls (optimizer updates), never during graph building.

use super::{DType, Device, WithDType};
use crate::quant::QMatrix;
use half::{bf16, f16};
use parking_lot::{Mutex, RwLock};
use std::any::Any;
use std::sync::{Arc, OnceLock};

/// Host buffers, one variant per [`DType`].
#[derive(Clone, Debug)]
pub enum CpuStorage {
    /// f32 data.
    F32(Vec<f32>),
    /// f64 data.
    F64(Vec<f64>),
    /// bf16 data.
    BF16(Vec<bf16>),
    /// f16 data.
    F16(Vec<f16>),
    /// i64 data.
    I64(Vec<i64>),
    /// u32 data.
    U32(Vec<u32>),
    /// u8 data.
    U8(Vec<u8>),
}

/// Applies `$body` to the inner Vec of any variant, binding it as `$v`.
macro_rules! match_storage {
    ($s:expr, $v:ident => $body:expr) => {
        match $s {
            CpuStorage::F32($v) => $body,
            CpuStorage::F64($v) => $body,
            CpuStorage::BF16($v) => $body,
            CpuStorage::F16($v) => $body,
            CpuStorage::I64($v) => $body,
            CpuStorage::U32($v) => $body,
            CpuStorage::U8($v) => $body,
        }
    };
}
pub(crate) use match_storage;

impl CpuStorage {
    /// The runtime dtype of this buffer.
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::U32(_) => DType::U32,
            CpuStorage::U8(_) => DType::U8,
        }
    }
    /// Number of elements.
    pub fn len(&self) -> usize {
        match_storage!(self, v => v.len())
    }
    /// True when it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// A zero-filled buffer.
    pub fn zeros(dtype: DType, n: usize) -> Self {
        match dtype {
            DType::F32 => CpuStorage::F32(vec![0.0; n]),
            DType::F64 => CpuStorage::F64(vec![0.0; n]),
            DType::BF16 => CpuStorage::BF16(vec![bf16::ZERO; n]),
            DType::F16 => CpuStorage::F16(vec![f16::ZERO; n]),
            DType::I64 => CpuStorage::I64(vec![0; n]),
            DType::U32 => CpuStorage::U32(vec![0; n]),
            DType::U8 => CpuStorage::U8(vec![0; n]),
        }
    }
    /// A buffer of `n` copies of `v` (converted like `as`).
    pub fn full(dtype: DType, n: usize, v: f64) -> Self {
        fn rep<T: WithDType>(n: usize, v: f64) -> Vec<T> {
            vec![T::from_f64(v); n]
        }
        match dtype {
            DType::F32 => CpuStorage::F32(rep(n, v)),
            DType::F64 => CpuStorage::F64(rep(n, v)),
            DType::BF16 => CpuStorage::BF16(rep(n, v)),
            DType::F16 => CpuStorage::F16(rep(n, v)),
            DType::I64 => CpuStorage::I64(rep(n, v)),
            DType::U32 => CpuStorage::U32(rep(n, v)),
            DType::U8 => CpuStorage::U8(rep(n, v)),
        }
    }
    /// Converts every element of `src` (read through `idx`) to `dtype`.
    pub fn convert_gather(&self, idx: impl Iterator<Item = usize> + Clone, dtype: DType) -> Self {
        fn conv<S: WithDType, D: WithDType>(src: &[S], idx: impl Iterator<Item = usize>) -> Vec<D> {
            idx.map(|i| D::from_f64(src[i].to_f64())).collect()
        }
        macro_rules! to {
            ($src:expr) => {
                match dtype {
                    DType::F32 => CpuStorage::F32(conv($src, idx)),
                    DType::F64 => CpuStorage::F64(conv($src, idx)),
                    DType::BF16 => CpuStorage::BF16(conv($src, idx)),
                    DType::F16 => CpuStorage::F16(conv($src, idx)),
                    DType::I64 => CpuStorage::I64(conv($src, idx)),
                    DType::U32 => CpuStorage::U32(conv($src, idx)),
                    DType::U8 => CpuStorage::U8(conv($src, idx)),
                }
            };
        }
        match_storage!(self, v => to!(v))
    }
    /// Copies the elements at `idx` (same dtype).
    pub fn gather(&self, idx: impl Iterator<Item = usize>) -> Self {
        match self {
            CpuStorage::F32(v) => CpuStorage::F32(idx.map(|i| v[i]).collect()),
            CpuStorage::F64(v) => CpuStorage::F64(idx.map(|i| v[i]).collect()),
            CpuStorage::BF16(v) => CpuStorage::BF16(idx.map(|i| v[i]).collect()),
            CpuStorage::F16(v) => CpuStorage::F16(idx.map(|i| v[i]).collect()),
            CpuStorage::I64(v) => CpuStorage::I64(idx.map(|i| v[i]).collect()),
            CpuStorage::U32(v) => CpuStorage::U32(idx.map(|i| v[i]).collect()),
            CpuStorage::U8(v) => CpuStorage::U8(idx.map(|i| v[i]).collect()),
        }
    }
}

/// Typed access to a [`CpuStorage`] variant.
pub trait StorageSlice: WithDType {
    /// The slice if `s` holds this type.
    fn slice(s: &CpuStorage) -> Option<&[Self]>;
    /// The mutable slice if `s` holds this type.
    fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]>;
    /// Wraps a Vec of this type.
    fn wrap(v: Vec<Self>) -> CpuStorage;
}

macro_rules! storage_slice {
    ($t:ty, $var:ident) => {
        impl StorageSlice for $t {
            #[inline]
            fn slice(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$var(v) => Some(v),
                    _ => None,
                }
            }
            #[inline]
            fn slice_mut(s: &mut CpuStorage) -> Option<&mut [Self]> {
                match s {
                    CpuStorage::$var(v) => Some(v),
                    _ => None,
                }
            }
            #[inline]
            fn wrap(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$var(v)
            }
        }
    };
}
storage_slice!(f32, F32);
storage_slice!(f64, F64);
storage_slice!(bf16, BF16);
storage_slice!(f16, F16);
storage_slice!(i64, I64);
storage_slice!(u32, U32);
storage_slice!(u8, U8);

/// Memory on a device, shared by every view of it. The memory can move to another device in
/// place ([`crate::Tensor::move_to`]), so a model's parameters change device under the handles
/// that optimizers and modules already hold.
#[derive(Debug)]
pub struct Storage {
    dtype: DType,
    data: RwLock<Data>,
    /// Copies of the memory laid out for kernels, at most one of each type (`linear_panels`'
    /// weight panels, a weight's transpose for gemm), made on first use and dropped whenever
    /// the memory is written or replaced, so none goes stale.
    derived: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
}

#[derive(Debug)]
enum Data {
    Cpu(CpuStorage),
    /// GGML blocks standing for an f32 matrix: `linear` and `embedding` compute on the blocks;
    /// any other reader gets the dequantized values, made once on first use.
    Quant(QMatrix, OnceLock<CpuStorage>),
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    Gpu(std::sync::Arc<crate::backend::gpu::GpuBuf>),
}

fn dequantized(q: &QMatrix) -> CpuStorage {
    CpuStorage::F32(q.to_f32())
}

/// Read access to host memory.
pub type HostRead<'a> = parking_lot::MappedRwLockReadGuard<'a, CpuStorage>;
/// Write access to host memory.
pub type HostWrite<'a> = parking_lot::MappedRwLockWriteGuard<'a, CpuStorage>;

impl Storage {
    /// Wraps a host buffer.
    pub fn new(data: CpuStorage) -> Self {
        Storage {
            dtype: data.dtype(),
            data: RwLock::new(Data::Cpu(data)),
            derived: Mutex::new(Vec::new()),
        }
    }
    /// Wraps a quantized matrix: an f32 storage of `rows · cols` elements.
    pub fn quantized(q: QMatrix) -> Self {
        Storage {
            dtype: DType::F32,
            data: RwLock::new(Data::Quant(q, OnceLock::new())),
            derived: Mutex::new(Vec::new()),
        }
    }
    /// The quantized matrix behind this storage, if it is one.
    pub fn qmatrix(&self) -> Option<QMatrix> {
        match &*self.data.read_recursive() {
            Data::Quant(q, _) => Some(q.clone()),
            _ => None,
        }
    }
    /// Wraps a GPU buffer holding elements of `dtype`.
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    pub(crate) fn gpu(buf: crate::backend::gpu::GpuBuf, dtype: DType) -> Self {
        Storage {
            dtype,
            data: RwLock::new(Data::Gpu(std::sync::Arc::new(buf))),
            derived: Mutex::new(Vec::new()),
        }
    }
    /// The device the memory lives on.
    pub fn device(&self) -> Device {
        match &*self.data.read_recursive() {
            Data::Cpu(_) | Data::Quant(..) => Device::Cpu,
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            Data::Gpu(b) => b.device(),
        }
    }
    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Elements held (by every view together).
    pub fn len(&self) -> usize {
        match &*self.data.read_recursive() {
            Data::Cpu(c) => c.len(),
            Data::Quant(q, _) => q.rows() * q.cols(),
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            Data::Gpu(b) => b.len(),
        }
    }
    /// True when it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The GPU buffer, when the memory lives on a GPU.
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    pub(crate) fn gpu_buf(&self) -> Option<std::sync::Arc<crate::backend::gpu::GpuBuf>> {
        match &*self.data.read_recursive() {
            Data::Gpu(b) => Some(b.clone()),
            Data::Cpu(_) | Data::Quant(..) => None,
        }
    }
    /// Replaces the memory with `other`'s (same dtype and length): how a tensor moves device
    /// in place.
    pub(crate) fn replace_with(&self, other: Storage) {
        debug_assert_eq!(self.dtype, other.dtype);
        let mut guard = self.data.write();
        *guard = other.data.into_inner();
        self.derived.lock().clear();
    }
    /// The copy of this host memory that `make` lays out, made once and kept until the memory
    /// is next written, beside copies of other types; `fits` tells whether the kept copy of
    /// type `T` is the one wanted (a storage can be read as more than one shape; one that does
    /// not fit is replaced). The read lock is held throughout, so no writer can change
    /// the memory between the copy and its caching. The slot's lock is not held while `make`
    /// runs: `make` may go parallel, and a pool thread waiting on it can pick up work that
    /// asks this storage for its copy again.
    pub(crate) fn derived<T: Any + Send + Sync>(
        &self,
        fits: impl Fn(&T) -> bool,
        make: impl FnOnce() -> T,
    ) -> Arc<T> {
        let _reading = self.read();
        let of_t = |d: &Arc<dyn Any + Send + Sync>| d.is::<T>();
        let kept = self.derived.lock().iter().find(|d| of_t(d)).cloned();
        if let Some(kept) = kept.and_then(|d| d.downcast::<T>().ok()) {
            if fits(&kept) {
                return kept;
            }
        }
        // Two callers may both make it; either copy is of the same memory.
        let made = Arc::new(make());
        let mut slots = self.derived.lock();
        slots.retain(|d| !of_t(d));
        slots.push(made.clone());
        made
    }
    /// Whether a derived copy is kept (tests check what is laid out and what is not).
    #[cfg(test)]
    pub(crate) fn keeps_derived(&self) -> bool {
        !self.derived.lock().is_empty()
    }
    /// Shared read access to host memory. Recursive so that an op reading the same storage
    /// twice (x * x) cannot deadlock against a waiting writer.
    ///
    /// Ops check the device before they reach a CPU kernel (`check_float`,
    /// `check_same_dtype`, `Tensor::cpu_only`); device memory here is a bug in fukai, not in
    /// the caller's data.
    pub fn read(&self) -> HostRead<'_> {
        parking_lot::RwLockReadGuard::map(self.data.read_recursive(), |d| match d {
            Data::Cpu(c) => c,
            Data::Quant(q, dense) => dense.get_or_init(|| dequantized(q)),
            #[allow(unreachable_patterns)]
            _ => panic!("internal error: a CPU kernel was handed device memory"),
        })
    }
    /// Exclusive access to host memory, for in-place updates.
    /// A quantized matrix becomes plain f32 memory first: the update would not fit its blocks.
    pub fn write(&self) -> HostWrite<'_> {
        let mut guard = self.data.write();
        // Taken under the write lock: no reader can cache a copy of the old values after this.
        self.derived.lock().clear();
        if let Data::Quant(q, dense) = &mut *guard {
            let dense = dense.take().unwrap_or_else(|| dequantized(q));
            *guard = Data::Cpu(dense);
        }
        parking_lot::RwLockWriteGuard::map(guard, |d| match d {
            Data::Cpu(c) => c,
            #[allow(unreachable_patterns)]
            _ => panic!("internal error: a CPU kernel was handed device memory"),
        })
    }
}
