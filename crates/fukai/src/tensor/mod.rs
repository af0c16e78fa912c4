//! The n-dimensional tensor: a cheap handle to shared storage, a layout, and (when it takes part
//! in autodiff) a link to the operation that produced it.

mod alloc_limit;
mod creation;
mod device;
mod dtype;
mod layout;
mod quantized;
mod storage;
mod transfer;

pub use alloc_limit::with_alloc_limit;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub(crate) use device::list_names as device_names;
pub use device::{devices, Device, DeviceInfo, MemoryStats};
pub use dtype::{DType, WithDType};
pub(crate) use layout::normalize_dim_nonscalar;
pub use layout::{
    broadcast_shapes, checked_numel, contiguous_strides, normalize_dim, Layout, StridedIndex,
};
pub(crate) use storage::match_storage;
pub use storage::{CpuStorage, Storage, StorageSlice};
pub(crate) use transfer::{check_same_device, on_gpu};

use crate::autograd::Node;
use crate::bail;
use crate::error::Result;
use parking_lot::Mutex;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A unique id per tensor handle, used to key gradients during backward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(u64);

impl TensorId {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        TensorId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

pub(crate) struct Inner {
    pub(crate) id: TensorId,
    pub(crate) storage: Arc<Storage>,
    pub(crate) layout: Layout,
    pub(crate) requires_grad: AtomicBool,
    /// False for tensors produced by a recorded op; their gradient is not kept.
    pub(crate) is_leaf: bool,
    pub(crate) grad: Mutex<Option<Tensor>>,
    /// The op that produced this tensor; taken (freeing saved tensors) by backward.
    pub(crate) node: Mutex<Option<Node>>,
}

/// An n-dimensional array with optional gradient tracking. Cloning is cheap (a reference count).
///
/// ```
/// use fukai::{DType, Tensor};
/// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
/// let b = a.clone(); // another handle to the same data, not a copy
/// assert!(a.shares_storage(&b));
/// assert_eq!((a.shape(), a.dtype(), a.numel()), (&[2, 2][..], DType::F32, 4));
/// assert_eq!(format!("{a:?}"), "Tensor[[2, 2], f32, [1.0, 2.0, 3.0, 4.0]]");
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Inner>);

impl Tensor {
    /// Wraps storage with a layout; a leaf with no gradient tracking.
    pub(crate) fn from_parts(storage: Arc<Storage>, layout: Layout) -> Tensor {
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            storage,
            layout,
            requires_grad: AtomicBool::new(false),
            is_leaf: true,
            grad: Mutex::new(None),
            node: Mutex::new(None),
        }))
    }
    /// A contiguous tensor owning `data`.
    pub(crate) fn from_storage(data: CpuStorage, shape: &[usize]) -> Tensor {
        debug_assert_eq!(data.len(), shape.iter().product::<usize>());
        Tensor::from_parts(Arc::new(Storage::new(data)), Layout::contiguous(shape))
    }
    /// A result of a recorded op (not a leaf).
    pub(crate) fn from_op(storage: Arc<Storage>, layout: Layout, node: Option<Node>) -> Tensor {
        let tracked = node.is_some();
        Tensor(Arc::new(Inner {
            id: TensorId::new(),
            storage,
            layout,
            requires_grad: AtomicBool::new(tracked),
            is_leaf: !tracked,
            grad: Mutex::new(None),
            node: Mutex::new(node),
        }))
    }

    /// This handle's id.
    pub fn id(&self) -> TensorId {
        self.0.id
    }
    /// The dims.
    pub fn shape(&self) -> &[usize] {
        self.0.layout.shape()
    }
    /// Size of one dim (negative counts from the end).
    pub fn dim(&self, dim: isize) -> Result<usize> {
        let d = normalize_dim("dim", dim, self.rank())?;
        Ok(self.shape().get(d).copied().unwrap_or(1))
    }
    /// Number of dims.
    pub fn rank(&self) -> usize {
        self.shape().len()
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.0.storage.dtype()
    }
    /// Device.
    pub fn device(&self) -> Device {
        self.0.storage.device()
    }
    /// Shape, strides and offset.
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }
    /// Element strides.
    pub fn strides(&self) -> &[usize] {
        self.0.layout.strides()
    }
    /// True when the elements are row-major without gaps.
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }
    pub(crate) fn storage(&self) -> &Arc<Storage> {
        &self.0.storage
    }
    /// True when two tensors share memory.
    pub fn shares_storage(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    // ---- autograd state ----

    /// Whether gradients flow to (or through) this tensor.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }
    /// Marks a leaf as a parameter whose gradient backward should compute. Returns `self` so it
    /// chains: `Tensor::randn(..)?.with_grad()`.
    pub fn set_requires_grad(&self, on: bool) -> Result<&Tensor> {
        if !self.0.is_leaf {
            bail!(
                "set_requires_grad",
                "only leaf tensors can change requires_grad; use detach() first"
            );
        }
        if on && !self.dtype().is_compute_float() {
            bail!(
                "set_requires_grad",
                "gradients need f32 or f64, found {}",
                self.dtype()
            );
        }
        self.0.requires_grad.store(on, Ordering::Relaxed);
        Ok(self)
    }
    /// Consuming form of [`Tensor::set_requires_grad`]`(true)`.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let w = Tensor::from_vec(vec![2.0f32, 3.0], &[2])?.with_grad()?;
    /// w.square()?.sum_all()?.backward()?;
    /// assert_eq!(w.grad().unwrap().to_vec::<f32>()?, [4.0, 6.0]); // d/dw Σw² = 2w
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn with_grad(self) -> Result<Tensor> {
        self.set_requires_grad(true)?;
        Ok(self)
    }
    /// True unless produced by a recorded op.
    pub fn is_leaf(&self) -> bool {
        self.0.is_leaf
    }
    /// The accumulated gradient of a leaf, if backward reached it.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let w = Tensor::ones(&[2], DType::F32)?.with_grad()?;
    /// assert!(w.grad().is_none());
    /// // Gradients accumulate over backward calls until cleared, as in PyTorch.
    /// w.sum_all()?.backward()?;
    /// w.sum_all()?.backward()?;
    /// assert_eq!(w.grad().unwrap().to_vec::<f32>()?, [2.0, 2.0]);
    /// w.zero_grad();
    /// assert!(w.grad().is_none());
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.lock().clone()
    }
    /// Replaces the stored gradient (used by optimizers and gradient clipping).
    pub fn set_grad(&self, g: Option<Tensor>) {
        *self.0.grad.lock() = g;
    }
    /// Clears the stored gradient.
    pub fn zero_grad(&self) {
        self.set_grad(None);
    }
    /// A new leaf sharing this tensor's memory, cut from the graph.
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let w = Tensor::ones(&[2], DType::F32)?.with_grad()?;
    /// let y = w.mul_scalar(3.0)?;
    /// assert!(y.requires_grad());
    /// let frozen = y.detach();
    /// assert!(!frozen.requires_grad() && frozen.shares_storage(&y));
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn detach(&self) -> Tensor {
        Tensor::from_parts(self.0.storage.clone(), self.0.layout.clone())
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tensor[{:?}, {}", self.shape(), self.dtype())?;
        if self.requires_grad() {
            write!(f, ", requires_grad")?;
        }
        if self.numel() <= 16 {
            if let Ok(v) = self.to_vec_f64() {
                write!(f, ", {v:?}")?;
            }
        }
        write!(f, "]")
    }
}
