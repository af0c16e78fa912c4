//! Elementwise functions of one tensor, each with its derivative next to it. Backward runs one
//! fused pass over (saved value, upstream gradient) instead of a chain of tensor ops.

use super::float::{check_float_on, with_contig, wrap, Float};
use crate::error::Result;
use crate::float_dispatch;
use crate::parallel::build_uninit;
use crate::tensor::Tensor;

/// A one-input elementwise function.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// -x
    Neg,
    /// e^x
    Exp,
    /// ln x
    Log,
    /// √x
    Sqrt,
    /// 1/√x
    Rsqrt,
    /// |x|
    Abs,
    /// tanh x
    Tanh,
    /// 1/(1+e^-x)
    Sigmoid,
    /// max(x, 0)
    Relu,
    /// x·Φ(x) (exact, erf form)
    Gelu,
    /// GELU's tanh approximation
    GeluTanh,
    /// x·sigmoid(x)
    Silu,
    /// sin x
    Sin,
    /// cos x
    Cos,
    /// x²
    Square,
    /// 1/x
    Recip,
    /// x^p
    Powf(f64),
    /// a·x + b
    Affine(f64, f64),
    /// min(max(x, lo), hi)
    Clamp(f64, f64),
    /// x if x > 0 else slope·x
    LeakyRelu(f64),
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

#[inline(always)]
fn sigmoid<T: Float>(x: T) -> T {
    T::ONE / (T::ONE + (-x).exp())
}

/// Φ(x) as `erfc(|x|/√2)/2` or its complement: exact in relative terms in the negative tail,
/// where `(1 + erf(x/√2))/2` is all rounding error (GELU(-6) came out -0 in f32, not -5.9e-9).
#[inline(always)]
fn normal_cdf<T: Float>(x: T) -> T {
    let tail = T::c(0.5) * (x.abs() * T::c(FRAC_1_SQRT_2)).fast_erfc();
    if x < T::ZERO {
        tail
    } else {
        T::ONE - tail
    }
}

#[inline(always)]
fn gelu<T: Float>(x: T) -> T {
    x * normal_cdf(x)
}

impl Unary {
    fn name(self) -> &'static str {
        match self {
            Unary::Neg => "neg",
            Unary::Exp => "exp",
            Unary::Log => "log",
            Unary::Sqrt => "sqrt",
            Unary::Rsqrt => "rsqrt",
            Unary::Abs => "abs",
            Unary::Tanh => "tanh",
            Unary::Sigmoid => "sigmoid",
            Unary::Relu => "relu",
            Unary::Gelu => "gelu",
            Unary::GeluTanh => "gelu_tanh",
            Unary::Silu => "silu",
            Unary::Sin => "sin",
            Unary::Cos => "cos",
            Unary::Square => "square",
            Unary::Recip => "recip",
            Unary::Powf(_) => "powf",
            Unary::Affine(..) => "affine",
            Unary::Clamp(..) => "clamp",
            Unary::LeakyRelu(_) => "leaky_relu",
        }
    }

    /// The op's code in the device kernels (its position in this enum) and parameters.
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    fn code(self) -> (u32, f64, f64) {
        let params = match self {
            Unary::Powf(p) | Unary::LeakyRelu(p) => (p, 0.0),
            Unary::Affine(a, b) | Unary::Clamp(a, b) => (a, b),
            _ => (0.0, 0.0),
        };
        let code = [
            Unary::Neg,
            Unary::Exp,
            Unary::Log,
            Unary::Sqrt,
            Unary::Rsqrt,
            Unary::Abs,
            Unary::Tanh,
            Unary::Sigmoid,
            Unary::Relu,
            Unary::Gelu,
            Unary::GeluTanh,
            Unary::Silu,
            Unary::Sin,
            Unary::Cos,
            Unary::Square,
            Unary::Recip,
        ]
        .iter()
        .position(|&u| u == self)
        .unwrap_or(match self {
            Unary::Powf(_) => 16,
            Unary::Affine(..) => 17,
            Unary::Clamp(..) => 18,
            _ => 19,
        });
        (code as u32, params.0, params.1)
    }

    /// Whether backward needs the output (true) or the input (false).
    fn saves_output(self) -> bool {
        matches!(
            self,
            Unary::Exp
                | Unary::Sqrt
                | Unary::Rsqrt
                | Unary::Tanh
                | Unary::Sigmoid
                | Unary::Relu
                | Unary::Recip
        )
    }

    fn forward<T: Float>(self, x: &[T]) -> Vec<T> {
        match self {
            Unary::Neg => map(
                x,
                #[inline(always)]
                |x| -x,
            ),
            Unary::Exp => map(
                x,
                #[inline(always)]
                |x| x.exp(),
            ),
            Unary::Log => map(
                x,
                #[inline(always)]
                |x| x.ln(),
            ),
            Unary::Sqrt => map(
                x,
                #[inline(always)]
                |x| x.sqrt(),
            ),
            Unary::Rsqrt => map(
                x,
                #[inline(always)]
                |x| T::ONE / x.sqrt(),
            ),
            Unary::Abs => map(
                x,
                #[inline(always)]
                |x| x.abs(),
            ),
            Unary::Tanh => map(
                x,
                #[inline(always)]
                |x| x.tanh(),
            ),
            Unary::Sigmoid => map(x, sigmoid),
            Unary::Relu => map(
                x,
                // Written so NaN passes through, as in PyTorch: a NaN must not become a silent 0.
                #[inline(always)]
                |x| if x <= T::ZERO { T::ZERO } else { x },
            ),
            Unary::Gelu => map(x, gelu),
            Unary::GeluTanh => map(
                x,
                #[inline(always)]
                |x| {
                    let u = T::c(SQRT_2_OVER_PI) * (x + T::c(0.044715) * x * x * x);
                    T::c(0.5) * x * (T::ONE + u.tanh())
                },
            ),
            Unary::Silu => map(
                x,
                #[inline(always)]
                |x| x * sigmoid(x),
            ),
            Unary::Sin => map(
                x,
                #[inline(always)]
                |x| x.sin(),
            ),
            Unary::Cos => map(
                x,
                #[inline(always)]
                |x| x.cos(),
            ),
            Unary::Square => map(
                x,
                #[inline(always)]
                |x| x * x,
            ),
            Unary::Recip => map(
                x,
                #[inline(always)]
                |x| T::ONE / x,
            ),
            Unary::Powf(p) => {
                let p = T::c(p);
                map(
                    x,
                    #[inline(always)]
                    |x| x.powf(p),
                )
            }
            Unary::Affine(a, b) => {
                let (a, b) = (T::c(a), T::c(b));
                map(
                    x,
                    #[inline(always)]
                    |x| x * a + b,
                )
            }
            Unary::Clamp(lo, hi) => {
                let (lo, hi) = (T::c(lo), T::c(hi));
                map(
                    x,
                    #[inline(always)]
                    |x| {
                        if x.is_nan() {
                            x
                        } else if x < lo {
                            lo
                        } else if x > hi {
                            hi
                        } else {
                            x
                        }
                    },
                )
            }
            Unary::LeakyRelu(s) => {
                let s = T::c(s);
                map(
                    x,
                    #[inline(always)]
                    |x| if x > T::ZERO { x } else { x * s },
                )
            }
        }
    }

    /// d(loss)/dx from the saved value `s` (input or output, see `saves_output`) and `g`.
    fn backward<T: Float>(self, s: &[T], g: &[T]) -> Vec<T> {
        match self {
            Unary::Neg => map2(
                s,
                g,
                #[inline(always)]
                |_, g| -g,
            ),
            Unary::Exp => map2(
                s,
                g,
                #[inline(always)]
                |y, g| g * y,
            ),
            Unary::Log => map2(
                s,
                g,
                #[inline(always)]
                |x, g| g / x,
            ),
            Unary::Sqrt => map2(
                s,
                g,
                #[inline(always)]
                |y, g| g * T::c(0.5) / y,
            ),
            Unary::Rsqrt => map2(
                s,
                g,
                #[inline(always)]
                |y, g| g * T::c(-0.5) * y * y * y,
            ),
            Unary::Abs => map2(
                s,
                g,
                #[inline(always)]
                |x, g| {
                    if x > T::ZERO {
                        g
                    } else if x < T::ZERO {
                        -g
                    } else {
                        T::ZERO
                    }
                },
            ),
            Unary::Tanh => map2(
                s,
                g,
                #[inline(always)]
                |y, g| g * (T::ONE - y * y),
            ),
            Unary::Sigmoid => map2(
                s,
                g,
                #[inline(always)]
                |y, g| g * y * (T::ONE - y),
            ),
            Unary::Relu => map2(
                s,
                g,
                #[inline(always)]
                |y, g| if y > T::ZERO { g } else { T::ZERO },
            ),
            Unary::Gelu => map2(
                s,
                g,
                #[inline(always)]
                |x, g| {
                    let pdf = T::c(INV_SQRT_2PI) * (T::c(-0.5) * x * x).fast_exp();
                    g * (normal_cdf(x) + x * pdf)
                },
            ),
            Unary::GeluTanh => map2(
                s,
                g,
                #[inline(always)]
                |x, g| {
                    let x3 = x * x * x;
                    let t = (T::c(SQRT_2_OVER_PI) * (x + T::c(0.044715) * x3)).tanh();
                    let dt = T::c(SQRT_2_OVER_PI) * (T::ONE + T::c(3.0 * 0.044715) * x * x);
                    g * (T::c(0.5) * (T::ONE + t) + T::c(0.5) * x * (T::ONE - t * t) * dt)
                },
            ),
            Unary::Silu => map2(
                s,
                g,
                #[inline(always)]
                |x, g| {
                    let sg = sigmoid(x);
                    g * sg * (T::ONE + x * (T::ONE - sg))
                },
            ),
            Unary::Sin => map2(
                s,
                g,
                #[inline(always)]
                |x, g| g * x.cos(),
            ),
            Unary::Cos => map2(
                s,
                g,
                #[inline(always)]
                |x, g| -g * x.sin(),
            ),
            Unary::Square => map2(
                s,
                g,
                #[inline(always)]
                |x, g| T::c(2.0) * x * g,
            ),
            Unary::Recip => map2(
                s,
                g,
                #[inline(always)]
                |y, g| -g * y * y,
            ),
            // x^0 is constant: gradient 0 even at x = 0 (where p·x^-1 would give 0·inf = NaN).
            Unary::Powf(0.0) => map2(
                s,
                g,
                #[inline(always)]
                |_, _| T::ZERO,
            ),
            Unary::Powf(p) => {
                let (p, pm1) = (T::c(p), T::c(p - 1.0));
                map2(
                    s,
                    g,
                    #[inline(always)]
                    |x, g| g * p * x.powf(pm1),
                )
            }
            Unary::Affine(a, _) => {
                let a = T::c(a);
                map2(
                    s,
                    g,
                    #[inline(always)]
                    |_, g| g * a,
                )
            }
            Unary::Clamp(lo, hi) => {
                let (lo, hi) = (T::c(lo), T::c(hi));
                map2(
                    s,
                    g,
                    #[inline(always)]
                    // Strictly inside only: PyTorch (2.x) gives 0 at x == lo and x == hi.
                    |x, g| if x > lo && x < hi { g } else { T::ZERO },
                )
            }
            Unary::LeakyRelu(sl) => {
                let sl = T::c(sl);
                map2(
                    s,
                    g,
                    #[inline(always)]
                    |x, g| if x > T::ZERO { g } else { g * sl },
                )
            }
        }
    }
}

pub(crate) fn map<T: Float>(x: &[T], f: impl Fn(T) -> T + Sync + Send) -> Vec<T> {
    let chunk = crate::parallel::elementwise_piece(x.len());
    // SAFETY: each piece is written whole (zipped with its equally long input).
    unsafe {
        build_uninit(x.len(), chunk, |i, o| {
            let src = &x[i * chunk..i * chunk + o.len()];
            crate::simd::run(
                #[inline(always)]
                || {
                    for (o, &v) in o.iter_mut().zip(src) {
                        o.write(f(v));
                    }
                },
            )
        })
    }
}

pub(crate) fn map2<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync + Send) -> Vec<T> {
    assert_eq!(a.len(), b.len(), "map2: operands of different lengths");
    let chunk = crate::parallel::elementwise_piece(a.len());
    // SAFETY: each piece is written whole (zipped with its equally long inputs).
    unsafe {
        build_uninit(a.len(), chunk, |i, o| {
            let r = i * chunk..i * chunk + o.len();
            crate::simd::run(
                #[inline(always)]
                || {
                    for ((o, &x), &y) in o.iter_mut().zip(&a[r.clone()]).zip(&b[r]) {
                        o.write(f(x, y));
                    }
                },
            )
        })
    }
}

impl Tensor {
    /// Applies a [`Unary`] function elementwise (differentiable).
    pub fn unary(&self, op: Unary) -> Result<Tensor> {
        check_float_on(op.name(), self)?;
        let dtype = self.dtype();
        let (storage, layout) = if crate::tensor::on_gpu(&[self]) {
            #[cfg(any(feature = "wgpu", feature = "cuda"))]
            {
                let (code, p, q) = op.code();
                crate::backend::gpu::elementwise::unary(code, p, q, self)?
            }
            #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
            unreachable!()
        } else {
            float_dispatch!(dtype, T => {
                let out = with_contig::<T, _>(self, |x| op.forward(x));
                wrap(out, self.shape())
            })
        };
        let saved = if op.saves_output() {
            Tensor::from_parts(storage.clone(), layout.clone())
        } else {
            self.clone()
        };
        Ok(Tensor::op_result(
            op.name(),
            storage,
            layout,
            &[self],
            move || {
                Box::new(move |g, _| {
                    #[cfg(any(feature = "wgpu", feature = "cuda"))]
                    if crate::tensor::on_gpu(&[&saved, g]) {
                        let (code, p, q) = op.code();
                        let gx = crate::backend::gpu::elementwise::unary_backward(
                            code, p, q, &saved, g,
                        )?;
                        return Ok(vec![Some(gx)]);
                    }
                    let (st, ly) = float_dispatch!(saved.dtype(), T => {
                        let out = with_contig::<T, _>(&saved, |s| with_contig::<T, _>(g, |g| op.backward(s, g)));
                        wrap(out, saved.shape())
                    });
                    Ok(vec![Some(Tensor::from_parts(st, ly))])
                })
            },
        ))
    }

    /// -x
    pub fn neg(&self) -> Result<Tensor> {
        self.unary(Unary::Neg)
    }
    /// e^x
    ///
    /// ```
    /// use fukai::Tensor;
    /// let x = Tensor::from_vec(vec![0.0f64, 1.0], &[2])?;
    /// assert_eq!(x.exp()?.to_vec::<f64>()?, [1.0, std::f64::consts::E]);
    /// assert_eq!(x.exp()?.log()?.to_vec::<f64>()?, [0.0, 1.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn exp(&self) -> Result<Tensor> {
        self.unary(Unary::Exp)
    }
    /// Natural log.
    pub fn log(&self) -> Result<Tensor> {
        self.unary(Unary::Log)
    }
    /// √x
    pub fn sqrt(&self) -> Result<Tensor> {
        self.unary(Unary::Sqrt)
    }
    /// 1/√x
    pub fn rsqrt(&self) -> Result<Tensor> {
        self.unary(Unary::Rsqrt)
    }
    /// |x|
    pub fn abs(&self) -> Result<Tensor> {
        self.unary(Unary::Abs)
    }
    /// tanh x
    pub fn tanh(&self) -> Result<Tensor> {
        self.unary(Unary::Tanh)
    }
    /// Logistic sigmoid.
    pub fn sigmoid(&self) -> Result<Tensor> {
        self.unary(Unary::Sigmoid)
    }
    /// max(x, 0)
    ///
    /// ```
    /// use fukai::Tensor;
    /// let x = Tensor::from_vec(vec![-1.0f32, 0.0, 2.0], &[3])?.with_grad()?;
    /// let y = x.relu()?;
    /// assert_eq!(y.to_vec::<f32>()?, [0.0, 0.0, 2.0]);
    /// y.sum_all()?.backward()?;
    /// assert_eq!(x.grad().unwrap().to_vec::<f32>()?, [0.0, 0.0, 1.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn relu(&self) -> Result<Tensor> {
        self.unary(Unary::Relu)
    }
    /// Exact GELU, x·Φ(x) (PyTorch's default `approximate='none'`).
    pub fn gelu(&self) -> Result<Tensor> {
        self.unary(Unary::Gelu)
    }
    /// GELU, tanh approximation (`approximate='tanh'`).
    pub fn gelu_tanh(&self) -> Result<Tensor> {
        self.unary(Unary::GeluTanh)
    }
    /// x·sigmoid(x) (SiLU / swish).
    pub fn silu(&self) -> Result<Tensor> {
        self.unary(Unary::Silu)
    }
    /// sin x
    pub fn sin(&self) -> Result<Tensor> {
        self.unary(Unary::Sin)
    }
    /// cos x
    pub fn cos(&self) -> Result<Tensor> {
        self.unary(Unary::Cos)
    }
    /// x²
    pub fn square(&self) -> Result<Tensor> {
        self.unary(Unary::Square)
    }
    /// 1/x
    pub fn recip(&self) -> Result<Tensor> {
        self.unary(Unary::Recip)
    }
    /// x^p for a scalar exponent.
    pub fn powf(&self, p: f64) -> Result<Tensor> {
        self.unary(Unary::Powf(p))
    }
    /// a·x + b in one pass.
    pub fn affine(&self, a: f64, b: f64) -> Result<Tensor> {
        self.unary(Unary::Affine(a, b))
    }
    /// x + s
    pub fn add_scalar(&self, s: f64) -> Result<Tensor> {
        self.affine(1.0, s)
    }
    /// x · s
    ///
    /// ```
    /// use fukai::Tensor;
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], &[2])?;
    /// assert_eq!(x.mul_scalar(3.0)?.add_scalar(1.0)?.to_vec::<f32>()?, [4.0, 7.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn mul_scalar(&self, s: f64) -> Result<Tensor> {
        self.affine(s, 0.0)
    }
    /// Clamps into [lo, hi]; the gradient passes where lo < x < hi (0 at the bounds, as in
    /// PyTorch).
    ///
    /// ```
    /// use fukai::Tensor;
    /// let x = Tensor::from_vec(vec![-5.0f32, 0.5, 5.0], &[3])?;
    /// assert_eq!(x.clamp(0.0, 1.0)?.to_vec::<f32>()?, [0.0, 0.5, 1.0]);
    /// # Ok::<(), fukai::Error>(())
    /// ```
    pub fn clamp(&self, lo: f64, hi: f64) -> Result<Tensor> {
        self.unary(Unary::Clamp(lo, hi))
    }
    /// Leaky ReLU with the given negative slope.
    pub fn leaky_relu(&self, slope: f64) -> Result<Tensor> {
        self.unary(Unary::LeakyRelu(slope))
    }
}
