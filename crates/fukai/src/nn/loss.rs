//! Loss functions (mean reduction, as PyTorch's default). Cross-entropy has a fused kernel;
//! [`cross_entropy_composite`] is the same math from primitive ops, kept as its reference.

use crate::bail;
use crate::error::Result;
use crate::float_dispatch;
use crate::ops::float::{check_same_dtype, with_contig, wrap, Float};
use crate::ops::{map, map2};
use crate::tensor::{DType, Tensor, WithDType};

/// Options of [`cross_entropy_with`].
///
/// ```
/// use fukai::nn::loss::{cross_entropy_with, CrossEntropyOpts};
/// use fukai::{DType, Tensor};
/// let logits = Tensor::zeros(&[3, 4], DType::F32)?;
/// let target = Tensor::from_vec(vec![1i64, -100, 2], &[3])?;
/// let opts = CrossEntropyOpts { ignore_index: Some(-100), ..CrossEntropyOpts::default() };
/// // Uniform logits: the loss is ln 4 over the two rows that count.
/// let loss = cross_entropy_with(&logits, &target, opts)?.item()?;
/// assert!((loss - 4f64.ln()).abs() < 1e-6);
/// # Ok::<(), fukai::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CrossEntropyOpts {
    /// Mixes the one-hot target with the uniform distribution (0 = off).
    pub label_smoothing: f64,
    /// Rows whose target equals this are skipped (PyTorch's default is -100).
    pub ignore_index: Option<i64>,
}

fn targets(op: &'static str, logits: &Tensor, t: &Tensor, ignore: Option<i64>) -> Result<Vec<i64>> {
    if logits.rank() != 2 {
        bail!(op, "logits must be [N, C], found {:?}", logits.shape());
    }
    let (n, c) = (logits.shape()[0], logits.shape()[1]);
    if t.shape() != [n] {
        bail!(
            op,
            "targets must be [{n}] class indices, found shape {:?}",
            t.shape()
        );
    }
    let v: Vec<i64> = match t.dtype() {
        DType::I64 => t.to_vec()?,
        DType::U32 => t.to_vec::<u32>()?.into_iter().map(i64::from).collect(),
        other => bail!(
            op,
            "targets must be i64 or u32 class indices, found {other}"
        ),
    };
    for (i, &y) in v.iter().enumerate() {
        if Some(y) != ignore && (y < 0 || y as usize >= c) {
            bail!(op, "target {y} at row {i} is outside 0..{c}");
        }
    }
    Ok(v)
}

/// Mean cross-entropy of `logits [N, C]` against class indices `[N]`.
///
/// ```
/// use fukai::{DType, Tensor};
/// let logits = Tensor::from_vec(vec![0.0f32, 0.0, 0.0, 0.0], &[2, 2])?.with_grad()?;
/// let target = Tensor::from_vec(vec![0i64, 1], &[2])?;
/// let loss = fukai::nn::loss::cross_entropy(&logits, &target)?;
/// assert!((loss.item()? - 2f64.ln()).abs() < 1e-6);
/// loss.backward()?;
/// // d loss / d logits = (softmax - one_hot) / N.
/// assert_eq!(logits.grad().unwrap().to_vec::<f32>()?, [-0.25, 0.25, 0.25, -0.25]);
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn cross_entropy(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    cross_entropy_with(logits, target, CrossEntropyOpts::default())
}

/// Cross-entropy with label smoothing and ignore_index, fused: one pass computes the loss and
/// keeps softmax for a one-pass backward.
///
/// ```
/// use fukai::nn::loss::{cross_entropy, cross_entropy_with, CrossEntropyOpts};
/// use fukai::Tensor;
/// let logits = Tensor::from_vec(vec![10.0f32, 0.0], &[1, 2])?;
/// let target = Tensor::from_vec(vec![0i64], &[1])?;
/// assert!(cross_entropy(&logits, &target)?.item()? < 1e-4);
/// // Smoothing 0.2 also charges 0.2 x the mean of -log p over all classes: about 0.2 * 10 / 2.
/// let opts = CrossEntropyOpts { label_smoothing: 0.2, ..CrossEntropyOpts::default() };
/// assert!((cross_entropy_with(&logits, &target, opts)?.item()? - 1.0).abs() < 1e-3);
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn cross_entropy_with(
    logits: &Tensor,
    target: &Tensor,
    opts: CrossEntropyOpts,
) -> Result<Tensor> {
    crate::ops::float::check_float_on("cross_entropy", logits)?;
    let eps = opts.label_smoothing;
    if !(0.0..=1.0).contains(&eps) {
        bail!(
            "cross_entropy",
            "label_smoothing must be in [0, 1], found {eps}"
        );
    }
    let y = targets("cross_entropy", logits, target, opts.ignore_index)?;
    let (n, c) = (logits.shape()[0], logits.shape()[1]);
    let valid: Vec<bool> = y.iter().map(|&t| Some(t) != opts.ignore_index).collect();
    let n_valid = valid.iter().filter(|&&v| v).count();
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if crate::tensor::on_gpu(&[logits]) {
        let marked: Vec<i64> = y
            .iter()
            .zip(&valid)
            .map(|(&t, &v)| if v { t } else { -1 })
            .collect();
        let kernels = crate::backend::gpu::softmax::cross_entropy;
        let (rows, probs, tgt) = kernels(logits, &marked, eps)?;
        let inv = 1.0 / n_valid as f64;
        let loss = rows.sum_all()?.mul_scalar(inv)?;
        return Ok(Tensor::op_result(
            "cross_entropy",
            loss.storage().clone(),
            loss.layout().clone(),
            &[logits],
            move || {
                Box::new(move |g, _| {
                    let back = crate::backend::gpu::softmax::cross_entropy_backward;
                    Ok(vec![Some(back(&probs, &tgt, g, eps, inv)?)])
                })
            },
        ));
    }
    logits.cpu_only("cross_entropy")?;
    let (storage, layout, probs) = float_dispatch!(logits.dtype(), T => {
        let (loss, probs) = with_contig::<T, _>(logits, |x| {
            let mut probs = vec![T::ZERO; n * c];
            let mut total = 0.0f64;
            for i in 0..n {
                let row = &x[i * c..(i + 1) * c];
                let m = row.iter().fold(T::NEG_INF, |a, &b| a.max_nan(b));
                let mut s = T::ZERO;
                for (p, &v) in probs[i * c..(i + 1) * c].iter_mut().zip(row) {
                    *p = (v - m).exp();
                    s += *p;
                }
                let inv = T::ONE / s;
                probs[i * c..(i + 1) * c].iter_mut().for_each(|p| *p *= inv);
                if valid[i] {
                    // Shifted logits x - m throughout, as log_softmax: ln s + m would round to
                    // m's precision for large logits.
                    let ls = s.ln().to_f64();
                    let shifted = |v: T| (v - m).to_f64();
                    let mean_x = row.iter().map(|&v| shifted(v)).sum::<f64>() / c as f64;
                    total += ls - (1.0 - eps) * shifted(row[y[i] as usize]) - eps * mean_x;
                }
            }
            (total / n_valid as f64, probs)
        });
        let (s, l) = wrap(vec![T::c(loss)], &[]);
        (s, l, crate::tensor::Tensor::from_vec(probs, &[n, c])?)
    });
    Ok(Tensor::op_result(
        "cross_entropy",
        storage,
        layout,
        &[logits],
        move || {
            Box::new(move |g, _| {
                let scale = g.item()? / n_valid as f64;
                let grad = float_dispatch!(probs.dtype(), T => {
                    let mut d = probs.to_vec::<T>()?;
                    for i in 0..n {
                        let row = &mut d[i * c..(i + 1) * c];
                        if !valid[i] {
                            row.iter_mut().for_each(|v| *v = T::ZERO);
                            continue;
                        }
                        row[y[i] as usize] -= T::c(1.0 - eps);
                        for v in row.iter_mut() {
                            *v = (*v - T::c(eps / c as f64)) * T::c(scale);
                        }
                    }
                    Tensor::from_vec(d, &[n, c])?
                });
                Ok(vec![Some(grad)])
            })
        },
    ))
}

/// The same loss as [`cross_entropy_with`] from primitive ops (log_softmax, gather, mean).
pub fn cross_entropy_composite(
    logits: &Tensor,
    target: &Tensor,
    opts: CrossEntropyOpts,
) -> Result<Tensor> {
    let y = targets("cross_entropy", logits, target, opts.ignore_index)?;
    let n = logits.shape()[0];
    let keep: Vec<f64> = y
        .iter()
        .map(|&t| {
            if Some(t) == opts.ignore_index {
                0.0
            } else {
                1.0
            }
        })
        .collect();
    let safe: Vec<i64> = y
        .iter()
        .map(|&t| if Some(t) == opts.ignore_index { 0 } else { t })
        .collect();
    let logp = logits.log_softmax(-1)?;
    let nll = logp
        .gather(1, &Tensor::from_vec(safe, &[n, 1])?)?
        .neg()?
        .squeeze(1)?;
    let smooth = logp.mean(&[-1], false)?.neg()?;
    let eps = opts.label_smoothing;
    let per_row = nll.mul_scalar(1.0 - eps)?.add(&smooth.mul_scalar(eps)?)?;
    let mask = Tensor::from_vec(keep.clone(), &[n])?.to_dtype(logits.dtype())?;
    let count: f64 = keep.iter().sum();
    let total = per_row.mul(&mask)?.sum_all()?;
    if count == 0.0 {
        // PyTorch: the mean over no rows is NaN, its gradient 0 (scaling by 1/0 would make
        // the gradient 0·inf = NaN too).
        return total.mul_scalar(0.0)?.add_scalar(f64::NAN);
    }
    total.mul_scalar(1.0 / count)
}

/// Negative log-likelihood of log-probabilities `[N, C]` at class indices `[N]`.
///
/// ```
/// use fukai::Tensor;
/// let log_probs = Tensor::from_vec(vec![-1.0f32, -2.0, -3.0, -4.0], &[2, 2])?;
/// let target = Tensor::from_vec(vec![1i64, 0], &[2])?;
/// assert_eq!(fukai::nn::loss::nll_loss(&log_probs, &target)?.item()?, 2.5);
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn nll_loss(log_probs: &Tensor, target: &Tensor) -> Result<Tensor> {
    let y = targets("nll_loss", log_probs, target, None)?;
    let idx = Tensor::from_vec(y, &[log_probs.shape()[0], 1])?;
    log_probs.gather(1, &idx)?.neg()?.mean_all()
}

fn same_shape(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.shape() != b.shape() {
        bail!(
            op,
            "input {:?} and target {:?} must have the same shape",
            a.shape(),
            b.shape()
        );
    }
    Ok(())
}

/// Mean squared error.
///
/// ```
/// use fukai::Tensor;
/// let pred = Tensor::from_vec(vec![1.0f32, 2.0], &[2])?;
/// let target = Tensor::from_vec(vec![1.0f32, 4.0], &[2])?;
/// assert_eq!(fukai::nn::loss::mse_loss(&pred, &target)?.item()?, 2.0);
/// assert_eq!(fukai::nn::loss::l1_loss(&pred, &target)?.item()?, 1.0);
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn mse_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape("mse_loss", pred, target)?;
    pred.sub(target)?.square()?.mean_all()
}

/// Mean absolute error.
pub fn l1_loss(pred: &Tensor, target: &Tensor) -> Result<Tensor> {
    same_shape("l1_loss", pred, target)?;
    pred.sub(target)?.abs()?.mean_all()
}

/// Binary cross-entropy on logits, mean over all elements: `max(x,0) - x·t + log1p(e^-|x|)`
/// per element. One op with the exact gradients `sigmoid(x) - t` and `-x` (a relu/abs
/// composite has gradient 0 at x = 0 for its kinks, giving `-t` there instead of `1/2 - t`).
///
/// ```
/// use fukai::{DType, Tensor};
/// let logits = Tensor::zeros(&[4], DType::F32)?;
/// let target = Tensor::ones(&[4], DType::F32)?;
/// let loss = fukai::nn::loss::binary_cross_entropy_with_logits(&logits, &target)?.item()?;
/// assert!((loss - 2f64.ln()).abs() < 1e-6);
/// # Ok::<(), fukai::Error>(())
/// ```
pub fn binary_cross_entropy_with_logits(logits: &Tensor, target: &Tensor) -> Result<Tensor> {
    const OP: &str = "binary_cross_entropy_with_logits";
    same_shape(OP, logits, target)?;
    crate::ops::float::check_float_on(OP, logits)?;
    check_same_dtype(OP, logits, target)?;
    let n = logits.numel();
    let (x, t) = (logits.detach(), target.detach());
    if crate::tensor::on_gpu(&[logits]) {
        // max(x, 0) - x·t + ln(1 + e^-|x|) from device ops, with the fused op's gradient.
        let loss = x
            .relu()?
            .sub(&x.mul(&t)?)?
            .add(&x.abs()?.neg()?.exp()?.add_scalar(1.0)?.log()?)?
            .mean_all()?;
        return Ok(Tensor::op_result(
            OP,
            loss.storage().clone(),
            loss.layout().clone(),
            &[logits, target],
            move || {
                Box::new(move |g, needs| {
                    let s = g.mul_scalar(1.0 / n as f64)?;
                    let gx = needs[0]
                        .then(|| x.sigmoid()?.sub(&t)?.mul(&s))
                        .transpose()?;
                    let gt = needs[1].then(|| x.neg()?.mul(&s)).transpose()?;
                    Ok(vec![gx, gt])
                })
            },
        ));
    }
    logits.cpu_only(OP)?;
    let (storage, layout) = float_dispatch!(logits.dtype(), T => {
        let total = with_contig::<T, _>(&x, |x| with_contig::<T, _>(&t, |t| {
            // Pieces of a fixed size, their sums added in order: the same bits at any thread
            // count (summed on the calling thread alone, a video model's loss was 3% of its
            // two-thread step).
            let pieces = n.div_ceil(BCE_PIECE);
            crate::parallel::map_range_if(n >= crate::parallel::ELEMENTWISE_PAR_MIN, pieces, |i| {
                let r = i * BCE_PIECE..((i + 1) * BCE_PIECE).min(n);
                x[r.clone()].iter().zip(&t[r]).map(|(&x, &t)| {
                    let (x, t) = (x.to_f64(), t.to_f64());
                    // log1p: 1 + e^-|x| rounds to 1 once e^-|x| < ulp(1) / 2 (|x| > 17 in f32).
                    x.max(0.0) - x * t + (-x.abs()).exp().ln_1p()
                }).sum::<f64>()
            }).into_iter().sum::<f64>()
        }));
        wrap(vec![T::c(total / n as f64)], &[])
    });
    Ok(Tensor::op_result(
        OP,
        storage,
        layout,
        &[logits, target],
        move || {
            Box::new(move |g, needs| {
                let scale = g.item()? / n as f64;
                let shape = x.shape();
                let (gx, gt) = float_dispatch!(x.dtype(), T => {
                    let s = T::c(scale);
                    let (gx, gt) = with_contig::<T, _>(&x, |xv| with_contig::<T, _>(&t, |tv| {
                        let gx = needs[0].then(|| map2(xv, tv, |x, t| (sigmoid(x) - t) * s));
                        let gt = needs[1].then(|| map(xv, |x| -x * s));
                        (gx, gt)
                    }));
                    let tensor = |v: Option<Vec<T>>| v.map(|v| Tensor::from_vec(v, shape)).transpose();
                    (tensor(gx)?, tensor(gt)?)
                });
                Ok(vec![gx, gt])
            })
        },
    ))
}

/// Elements per piece of the loss's sum in [`binary_cross_entropy_with_logits`].
const BCE_PIECE: usize = 1 << 14;

/// 1/(1+e^-x) without overflow: e^x/(1+e^x) for negative x keeps e^-x from reaching inf.
fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}
