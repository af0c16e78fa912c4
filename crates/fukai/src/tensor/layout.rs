//! Shape, strides and offset: how a tensor's logical indices map onto its storage. Views change
//! only the layout, never the memory.

use crate::bail;
use crate::error::Result;

/// Row-major strides of a contiguous tensor of `shape`.
pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for (s, &d) in strides.iter_mut().zip(shape).rev() {
        *s = acc;
        acc *= d;
    }
    strides
}

/// NumPy broadcasting of two shapes; the error names `op` and both shapes.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => bail!(
                op,
                "shapes {a:?} and {b:?} cannot be broadcast (dim {i}: {da} vs {db})"
            ),
        };
    }
    Ok(out)
}

/// Number of elements of `shape`, or an error naming `op` when the count overflows `usize`.
pub fn checked_numel(op: &'static str, shape: &[usize]) -> Result<usize> {
    match shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
        Some(n) => Ok(n),
        None => bail!(op, "shape {shape:?}: the element count overflows usize"),
    }
}

/// Like [`normalize_dim`], for ops that index into the dim and so need at least one.
pub(crate) fn normalize_dim_nonscalar(
    op: &'static str,
    dim: isize,
    shape: &[usize],
) -> Result<usize> {
    if shape.is_empty() {
        bail!(
            op,
            "needs a tensor with at least 1 dim, found a 0-dim tensor (shape [])"
        );
    }
    normalize_dim(op, dim, shape.len())
}

/// Resolves a possibly negative dim against `rank`.
pub fn normalize_dim(op: &'static str, dim: isize, rank: usize) -> Result<usize> {
    // A scalar accepts dim 0 / -1, as in PyTorch.
    let r = rank.max(1) as isize;
    let d = if dim < 0 { dim + r } else { dim };
    if d < 0 || d >= r {
        bail!(op, "dim {dim} out of range for a tensor of rank {rank}");
    }
    Ok(d as usize)
}

/// How logical indices map onto storage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

impl Layout {
    /// A contiguous layout of `shape` at offset 0.
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout {
            strides: contiguous_strides(shape),
            shape: shape.to_vec(),
            offset: 0,
        }
    }
    /// A layout from raw parts (callers guarantee it stays inside the storage).
    pub fn new(shape: Vec<usize>, strides: Vec<usize>, offset: usize) -> Self {
        Layout {
            shape,
            strides,
            offset,
        }
    }
    /// The dims.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Element strides per dim.
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    /// Index of the first element in storage.
    pub fn offset(&self) -> usize {
        self.offset
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// True when elements are laid out row-major without gaps (size-1 dims ignored).
    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1;
        for (&d, &s) in self.shape.iter().zip(&self.strides).rev() {
            if d != 1 && s != acc {
                return false;
            }
            acc *= d;
        }
        true
    }
    /// The storage range `[offset, offset + numel)` when contiguous.
    pub fn contiguous_range(&self) -> Option<std::ops::Range<usize>> {
        self.is_contiguous()
            .then(|| self.offset..self.offset + self.numel())
    }
    /// Storage indices of all elements in row-major logical order.
    pub fn indices(&self) -> StridedIndex<'_> {
        StridedIndex::new(&self.shape, &self.strides, self.offset)
    }
    /// The elements this layout addresses in `s`, in row-major logical order. Rows are copied
    /// with a tight loop (a slice copy when the last dim is dense, a fill when it is
    /// broadcast); only the outer dims walk the odometer.
    pub fn gather<T: Copy>(&self, s: &[T]) -> Vec<T> {
        if let Some(r) = self.contiguous_range() {
            return s[r].to_vec();
        }
        let n = self.numel();
        if n == 0 {
            return Vec::new();
        }
        if self.strides.iter().all(|&st| st == 0) {
            return vec![s[self.offset]; n];
        }
        let rank = self.shape.len();
        let (w, st) = (self.shape[rank - 1], self.strides[rank - 1]);
        let rows = Layout::new(
            self.shape[..rank - 1].to_vec(),
            self.strides[..rank - 1].to_vec(),
            self.offset,
        );
        let mut out = Vec::with_capacity(n);
        for start in rows.indices() {
            match st {
                0 => out.extend(std::iter::repeat_n(s[start], w)),
                1 => out.extend_from_slice(&s[start..start + w]),
                _ => out.extend((0..w).map(|j| s[start + j * st])),
            }
        }
        out
    }
    /// The layout seen through broadcasting to `shape` (stride 0 on expanded dims).
    pub fn broadcast_to(&self, op: &'static str, shape: &[usize]) -> Result<Layout> {
        if shape.len() < self.shape.len() {
            bail!(op, "cannot broadcast shape {:?} to {:?}", self.shape, shape);
        }
        let extra = shape.len() - self.shape.len();
        let mut strides = vec![0; shape.len()];
        for i in 0..shape.len() {
            if i < extra {
                continue;
            }
            let (d, s) = (self.shape[i - extra], self.strides[i - extra]);
            strides[i] = if d == shape[i] {
                s
            } else if d == 1 {
                0
            } else {
                bail!(op, "cannot broadcast shape {:?} to {:?}", self.shape, shape)
            };
        }
        Ok(Layout::new(shape.to_vec(), strides, self.offset))
    }
}

/// Iterator over storage indices in row-major logical order. The innermost dim is walked with a
/// plain add, the odometer only runs once per row.
#[derive(Clone)]
pub struct StridedIndex<'a> {
    shape: &'a [usize],
    strides: &'a [usize],
    pos: Vec<usize>,
    next: usize,
    remaining: usize,
}

impl<'a> StridedIndex<'a> {
    fn new(shape: &'a [usize], strides: &'a [usize], offset: usize) -> Self {
        StridedIndex {
            shape,
            strides,
            pos: vec![0; shape.len()],
            next: offset,
            remaining: shape.iter().product(),
        }
    }
}

impl Iterator for StridedIndex<'_> {
    type Item = usize;
    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let cur = self.next;
        if self.remaining > 0 {
            let mut d = self.shape.len();
            while d > 0 {
                d -= 1;
                self.pos[d] += 1;
                self.next += self.strides[d];
                if self.pos[d] < self.shape[d] {
                    break;
                }
                self.next -= self.strides[d] * self.shape[d];
                self.pos[d] = 0;
            }
        }
        Some(cur)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for StridedIndex<'_> {}
