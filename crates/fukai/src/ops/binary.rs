//! Two-input arithmetic with NumPy broadcasting. Gradients are reduced back to each input's
//! shape with `sum_to_shape`.

use super::broadcast::zip_map;
use super::float::{check_float_on, check_same_dtype, wrap, Float};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::tensor::{broadcast_shapes, Tensor};

/// A two-input elementwise function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a · b
    Mul,
    /// a / b
    Div,
    /// max(a, b)
    Maximum,
    /// min(a, b)
    Minimum,
    /// a^b
    Pow,
}

impl Binary {
    fn name(self) -> &'static str {
        match self {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
            Binary::Maximum => "maximum",
            Binary::Minimum => "minimum",
            Binary::Pow => "pow",
        }
    }
    fn eval<T: Float>(self, a: &Tensor, b: &Tensor, shape: &[usize]) -> Vec<T> {
        match self {
            Binary::Add => zip_map(a, b, shape, |x: T, y: T| x + y),
            Binary::Sub => zip_map(a, b, shape, |x: T, y: T| x - y),
            Binary::Mul => zip_map(a, b, shape, |x: T, y: T| x * y),
            Binary::Div => zip_map(a, b, shape, |x: T, y: T| x / y),
            Binary::Maximum => zip_map(a, b, shape, |x: T, y: T| x.max_nan(y)),
            Binary::Minimum => zip_map(a, b, shape, |x: T, y: T| x.min_nan(y)),
            Binary::Pow => zip_map(a, b, shape, |x: T, y: T| x.powf(y)),
        }
    }
}

impl Tensor {
    /// Applies a [`Binary`] function with broadcasting (differentiable in both inputs).
    pub fn binary(&self, rhs: &Tensor, op: Binary) -> Result<Tensor> {
        let name = op.name();
        check_float_on(name, self)?;
        check_same_dtype(name, self, rhs)?;
        let shape = broadcast_shapes(name, self.shape(), rhs.shape())?;
        let (storage, layout) = if crate::tensor::on_gpu(&[self, rhs]) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            {
                crate::backend::gpu::elementwise::binary(op as u32, self, rhs, &shape)?
            }
            #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
            unreachable!()
        } else {
            float_dispatch!(self.dtype(), T => wrap(op.eval::<T>(self, rhs, &shape), &shape))
        };
        // Plain handles, not detached copies: cheap (no allocation), and backward runs under
        // no_grad so holding graph-carrying inputs records nothing new.
        let (a, b) = (self.clone(), rhs.clone());
        let out_saved =
            (op == Binary::Pow).then(|| Tensor::from_parts(storage.clone(), layout.clone()));
        Ok(Tensor::op_result(
            name,
            storage,
            layout,
            &[self, rhs],
            move || {
                Box::new(move |g, needs| {
                    let (ga, gb) = binary_grads(op, &a, &b, out_saved.as_ref(), g, needs)?;
                    Ok(vec![
                        ga.map(|t| t.sum_to_shape(a.shape())).transpose()?,
                        gb.map(|t| t.sum_to_shape(b.shape())).transpose()?,
                    ])
                })
            },
        ))
    }

    /// a + b (broadcasting).
    ///
    /// ```
    /// use fukai::{DType, Tensor};
    /// let m = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    /// let row = Tensor::from_vec(vec![10.0f32, 20.0, 30.0], &[3])?;
    /// // Broadcasting as in PyTorch: the row is added to every row.
    /// assert_eq!(m.add(&row)?.to_vec::<f32>()?, [11.0, 22.0, 33.0, 14.0, 25.0, 36.0]);
    /// assert!(m.add(&Tensor::zeros(&[2], DType::F32)?).is_err());
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn add(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, Binary::Add)
    }
    /// a - b (broadcasting).
    ///
    /// ```
    /// use fukai::Tensor;
    /// let a = Tensor::from_vec(vec![5.0f32, 7.0], &[2])?;
    /// let b = Tensor::from_vec(vec![1.0f32, 2.0], &[2])?;
    /// assert_eq!(a.sub(&b)?.to_vec::<f32>()?, [4.0, 5.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn sub(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, Binary::Sub)
    }
    /// a · b elementwise (broadcasting).
    ///
    /// ```
    /// use fukai::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
    /// let col = Tensor::from_vec(vec![10.0f32, 100.0], &[2, 1])?;
    /// assert_eq!(a.mul(&col)?.to_vec::<f32>()?, [10.0, 20.0, 300.0, 400.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn mul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, Binary::Mul)
    }
    /// a / b elementwise (broadcasting).
    ///
    /// ```
    /// use fukai::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 9.0], &[2])?;
    /// let b = Tensor::from_vec(vec![4.0f32, 3.0], &[2])?;
    /// assert_eq!(a.div(&b)?.to_vec::<f32>()?, [0.25, 3.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn div(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, Binary::Div)
    }
    /// Elementwise maximum; ties split the gradient evenly, as PyTorch does.
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, Binary::Maximum)
    }
    /// Elementwise minimum; ties split the gradient evenly.
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, Binary::Minimum)
    }
    /// a^b elementwise (broadcasting).
    pub fn pow(&self, rhs: &Tensor) -> Result<Tensor> {
        self.binary(rhs, Binary::Pow)
    }

    /// Sums a broadcast gradient back down to `shape` (the inverse of broadcasting).
    pub fn sum_to_shape(&self, shape: &[usize]) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        // `shape` must broadcast to ours: no more dims, each equal or 1.
        let extra = self.rank().checked_sub(shape.len());
        if extra.is_none_or(|e| {
            shape
                .iter()
                .zip(&self.shape()[e..])
                .any(|(&s, &d)| s != d && s != 1)
        }) {
            bail!(
                "sum_to_shape",
                "cannot reduce a gradient of shape {:?} to shape {shape:?}",
                self.shape()
            );
        }
        let extra = self.rank() - shape.len();
        let mut dims: Vec<usize> = (0..extra).collect();
        for (i, &d) in shape.iter().enumerate() {
            if d == 1 && self.shape()[extra + i] != 1 {
                dims.push(extra + i);
            }
        }
        self.sum_dims(&dims, true)?.reshape(shape)
    }
}

/// Gradients of `op` at (a, b) for upstream `g`, before reduction to the input shapes.
fn binary_grads(
    op: Binary,
    a: &Tensor,
    b: &Tensor,
    out: Option<&Tensor>,
    g: &Tensor,
    needs: &[bool],
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let (na, nb) = (needs[0], needs[1]);
    let when =
        |need: bool, f: &dyn Fn() -> Result<Tensor>| if need { f().map(Some) } else { Ok(None) };
    match op {
        Binary::Add => Ok((na.then(|| g.clone()), nb.then(|| g.clone()))),
        Binary::Sub => Ok((na.then(|| g.clone()), when(nb, &|| g.neg())?)),
        Binary::Mul => Ok((when(na, &|| g.mul(b))?, when(nb, &|| g.mul(a))?)),
        Binary::Div => Ok((
            when(na, &|| g.div(b))?,
            when(nb, &|| g.mul(a)?.div(&b.square()?)?.neg())?,
        )),
        Binary::Maximum | Binary::Minimum => {
            // Weight 1 to the winner, 1/2 each on ties.
            let (wa, wb) = if op == Binary::Maximum {
                (a.gt(b)?, b.gt(a)?)
            } else {
                (a.lt(b)?, b.lt(a)?)
            };
            let tie = a.eq(b)?.to_dtype(g.dtype())?.mul_scalar(0.5)?;
            Ok((
                when(na, &|| g.mul(&wa.to_dtype(g.dtype())?.add(&tie)?))?,
                when(nb, &|| g.mul(&wb.to_dtype(g.dtype())?.add(&tie)?))?,
            ))
        }
        Binary::Pow => {
            let out = out.expect("pow saves its output");
            Ok((
                // d/da is 0 where b == 0 (instead of 0·0^-1 = NaN at a == 0), as in PyTorch.
                when(na, &|| {
                    let b_zero = b.eq(&Tensor::scalar(0.0, b.dtype()))?;
                    g.mul(b)?
                        .mul(&a.pow(&b.add_scalar(-1.0)?)?)?
                        .masked_fill(&b_zero, 0.0)
                })?,
                // PyTorch's convention: d/db is 0 where a == 0 (instead of 0·ln 0 = NaN).
                when(nb, &|| {
                    let zero = a.eq(&Tensor::scalar(0.0, a.dtype()))?;
                    let ln = a.log()?.masked_fill(&zero, 0.0)?;
                    g.mul(out)?.mul(&ln)
                })?,
            ))
        }
    }
}
