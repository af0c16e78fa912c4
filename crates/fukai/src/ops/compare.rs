//! Comparisons (giving u8 masks of 0/1), `where_cond` and `masked_fill`.

use super::broadcast::zip_map;
use super::float::{check_float_on, check_same_dtype, wrap, Float};
use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::tensor::{broadcast_shapes, CpuStorage, DType, StorageSlice, Tensor};

#[derive(Clone, Copy)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

fn cmp_kernel<T: StorageSlice + PartialOrd>(
    a: &Tensor,
    b: &Tensor,
    shape: &[usize],
    c: Cmp,
) -> Vec<u8> {
    match c {
        Cmp::Eq => zip_map(a, b, shape, |x: T, y: T| (x == y) as u8),
        Cmp::Ne => zip_map(a, b, shape, |x: T, y: T| (x != y) as u8),
        Cmp::Lt => zip_map(a, b, shape, |x: T, y: T| (x < y) as u8),
        Cmp::Le => zip_map(a, b, shape, |x: T, y: T| (x <= y) as u8),
        Cmp::Gt => zip_map(a, b, shape, |x: T, y: T| (x > y) as u8),
        Cmp::Ge => zip_map(a, b, shape, |x: T, y: T| (x >= y) as u8),
    }
}

impl Tensor {
    fn compare(&self, rhs: &Tensor, c: Cmp, name: &'static str) -> Result<Tensor> {
        check_same_dtype(name, self, rhs)?;
        let shape = broadcast_shapes(name, self.shape(), rhs.shape())?;
        if crate::tensor::on_gpu(&[self, rhs]) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            return crate::backend::gpu::elementwise::compare(c as u32, self, rhs, &shape);
        }
        let out = match self.dtype() {
            DType::F32 => cmp_kernel::<f32>(self, rhs, &shape, c),
            DType::F64 => cmp_kernel::<f64>(self, rhs, &shape, c),
            DType::BF16 => cmp_kernel::<half::bf16>(self, rhs, &shape, c),
            DType::F16 => cmp_kernel::<half::f16>(self, rhs, &shape, c),
            DType::I64 => cmp_kernel::<i64>(self, rhs, &shape, c),
            DType::U32 => cmp_kernel::<u32>(self, rhs, &shape, c),
            DType::U8 => cmp_kernel::<u8>(self, rhs, &shape, c),
        };
        Ok(Tensor::from_storage(CpuStorage::U8(out), &shape))
    }
    /// Elementwise `a == b` as a u8 mask.
    ///
    /// ```
    /// use fukai::Tensor;
    /// let pred = Tensor::from_vec(vec![1i64, 0, 2, 2], &[4])?;
    /// let target = Tensor::from_vec(vec![1i64, 1, 2, 0], &[4])?;
    /// // Accuracy: the mean of a u8 mask.
    /// let hits = pred.eq(&target)?;
    /// assert_eq!(hits.to_vec::<u8>()?, [1, 0, 1, 0]);
    /// assert_eq!(hits.to_dtype(fukai::DType::F32)?.mean_all()?.item()?, 0.5);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, Cmp::Eq, "eq")
    }
    /// Elementwise `a != b` as a u8 mask.
    pub fn ne(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, Cmp::Ne, "ne")
    }
    /// Elementwise `a < b` as a u8 mask.
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, Cmp::Lt, "lt")
    }
    /// Elementwise `a <= b` as a u8 mask.
    pub fn le(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, Cmp::Le, "le")
    }
    /// Elementwise `a > b` as a u8 mask.
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, Cmp::Gt, "gt")
    }
    /// Elementwise `a >= b` as a u8 mask.
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        self.compare(rhs, Cmp::Ge, "ge")
    }
    /// Compares against a scalar (converted to this dtype): `x.gt_scalar(0.0)`.
    pub fn cmp_scalar(&self, op: &str, v: f64) -> Result<Tensor> {
        let s = Tensor::scalar(v, self.dtype());
        match op {
            "eq" => self.eq(&s),
            "ne" => self.ne(&s),
            "lt" => self.lt(&s),
            "le" => self.le(&s),
            "gt" => self.gt(&s),
            "ge" => self.ge(&s),
            _ => bail!(
                "cmp_scalar",
                "unknown comparison {op:?}; expected eq, ne, lt, le, gt or ge"
            ),
        }
    }

    /// Picks `a` where `cond` is non-zero, else `b` (all three broadcast together).
    /// Called on the condition: `mask.where_cond(&a, &b)`.
    pub fn where_cond(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        if self.dtype() != DType::U8 {
            bail!(
                "where_cond",
                "condition must be a u8 mask, found {}",
                self.dtype()
            );
        }
        check_float_on("where_cond", a)?;
        check_same_dtype("where_cond", a, b)?;
        crate::tensor::check_same_device("where_cond", self, a)?;
        crate::tensor::check_same_device("where_cond", self, b)?;
        let shape = broadcast_shapes("where_cond", self.shape(), a.shape())?;
        let shape = broadcast_shapes("where_cond", &shape, b.shape())?;
        // The mask backward reads: the device condition itself, or the broadcast host copy.
        let (storage, layout, mask) = if crate::tensor::on_gpu(&[self, a, b]) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            {
                let (s, l) = crate::backend::gpu::elementwise::where_cond(self, a, b, &shape)?;
                (s, l, self.clone())
            }
            #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
            unreachable!()
        } else {
            let cond = self.layout().broadcast_to("where_cond", &shape)?;
            let cond: Vec<u8> = {
                let d = self.storage().read();
                let s = u8::slice(&d).expect("checked u8");
                cond.indices().map(|i| s[i]).collect()
            };
            let (s, l) = float_dispatch!(a.dtype(), T => {
                let picked = pick::<T>(&cond, a, b, &shape)?;
                wrap(picked, &shape)
            });
            (s, l, Tensor::from_storage(CpuStorage::U8(cond), &shape))
        };
        let (sa, sb) = (a.shape().to_vec(), b.shape().to_vec());
        Ok(Tensor::op_result(
            "where_cond",
            storage,
            layout,
            &[a, b],
            move || {
                Box::new(move |g, needs| {
                    let zero = Tensor::scalar(0.0, g.dtype());
                    let ga = if needs[0] {
                        Some(mask.where_cond(g, &zero)?.sum_to_shape(&sa)?)
                    } else {
                        None
                    };
                    let gb = if needs[1] {
                        Some(mask.where_cond(&zero, g)?.sum_to_shape(&sb)?)
                    } else {
                        None
                    };
                    Ok(vec![ga, gb])
                })
            },
        ))
    }

    /// Replaces elements where `mask` is non-zero with `value` (differentiable in `self`).
    pub fn masked_fill(&self, mask: &Tensor, value: f64) -> Result<Tensor> {
        if mask.dtype() != DType::U8 {
            bail!("masked_fill", "mask must be u8, found {}", mask.dtype());
        }
        broadcast_shapes("masked_fill", self.shape(), mask.shape())?;
        mask.where_cond(&Tensor::scalar(value, self.dtype()), self)
    }
}

fn pick<T: Float>(cond: &[u8], a: &Tensor, b: &Tensor, shape: &[usize]) -> Result<Vec<T>> {
    let la = a.layout().broadcast_to("where_cond", shape)?;
    let lb = b.layout().broadcast_to("where_cond", shape)?;
    let (da, db) = (a.storage().read(), b.storage().read());
    let (sa, sb) = (T::slice(&da).expect("dtype"), T::slice(&db).expect("dtype"));
    Ok(cond
        .iter()
        .zip(la.indices().zip(lb.indices()))
        .map(|(&c, (ia, ib))| if c != 0 { sa[ia] } else { sb[ib] })
        .collect())
}
