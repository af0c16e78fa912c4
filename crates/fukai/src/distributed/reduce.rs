//! A differentiable all-reduce: what synchronized batch norm is built from.

use super::Collective;
use crate::error::{op_err, Result};
use crate::tensor::Tensor;
use std::sync::Arc;

impl Tensor {
    /// The elementwise sum of this tensor over every rank of `group`, added in rank order in
    /// f64 (the same bits on every rank, whatever the rank count's reduction algorithm). Its
    /// gradient is the same sum of the ranks' gradients, so every rank must call backward
    /// through it. In a group of one it is the identity.
    ///
    /// ```
    /// use fukai::distributed::{Collective, Single};
    /// use fukai::Tensor;
    /// use std::sync::Arc;
    /// let g: Arc<dyn Collective> = Arc::new(Single);
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2])?.with_grad()?;
    /// let y = x.all_reduce_sum(&g)?;
    /// y.sum_all()?.backward()?;
    /// assert_eq!(y.to_vec::<f32>()?, [1.0, 2.0]);
    /// assert_eq!(x.grad().unwrap().to_vec::<f32>()?, [1.0, 1.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn all_reduce_sum(&self, group: &Arc<dyn Collective>) -> Result<Tensor> {
        let out = if group.size() == 1 {
            self.detach()
        } else {
            let mine = self.to_vec_f64()?;
            let bytes: Vec<u8> = mine.iter().flat_map(|x| x.to_le_bytes()).collect();
            let mut acc = vec![0f64; mine.len()];
            for (r, b) in group.all_gather(&bytes)?.iter().enumerate() {
                if b.len() != bytes.len() {
                    return Err(op_err(
                        "all_reduce_sum",
                        format!(
                            "rank {r} sent {} values, this rank {} (ranks disagree about the shape)",
                            b.len() / 8,
                            mine.len()
                        ),
                    ));
                }
                for (a, c) in acc.iter_mut().zip(b.chunks_exact(8)) {
                    *a += f64::from_le_bytes(c.try_into().expect("8 bytes"));
                }
            }
            Tensor::from_vec(acc, self.shape())?.to_dtype(self.dtype())?
        };
        let group = group.clone();
        Ok(Tensor::op_result(
            "all_reduce_sum",
            out.0.storage.clone(),
            out.0.layout.clone(),
            &[self],
            move || Box::new(move |g, _| Ok(vec![Some(g.all_reduce_sum(&group)?)])),
        ))
    }
}
