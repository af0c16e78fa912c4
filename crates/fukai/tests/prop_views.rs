//! Property tests for broadcasting and views. Every view is checked against an independent
//! oracle: a dense row-major array transformed by plain index arithmetic, never through fukai's
//! own layouts.

use fukai::tensor::broadcast_shapes;
use fukai::Tensor;
use proptest::prelude::*;

/// A dense row-major n-d array: the reference every view is compared with.
#[derive(Clone, Debug)]
struct Dense {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// Every multi-index of `shape` in row-major order.
fn multi_indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0; shape.len()];
    for _ in 0..n {
        out.push(idx.clone());
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

impl Dense {
    /// Values 0, 1, 2, ... (exact in f32), so any misplaced element shows.
    fn iota(shape: &[usize]) -> Dense {
        let n: usize = shape.iter().product();
        Dense {
            shape: shape.to_vec(),
            data: (0..n).map(|i| i as f32).collect(),
        }
    }
    fn from_fn(shape: &[usize], f: impl Fn(&[usize]) -> f32) -> Dense {
        Dense {
            shape: shape.to_vec(),
            data: multi_indices(shape).iter().map(|i| f(i)).collect(),
        }
    }
    fn at(&self, idx: &[usize]) -> f32 {
        assert_eq!(idx.len(), self.shape.len());
        let mut flat = 0;
        for (&i, &d) in idx.iter().zip(&self.shape) {
            assert!(i < d);
            flat = flat * d + i;
        }
        self.data[flat]
    }
    fn tensor(&self) -> Tensor {
        Tensor::from_vec(self.data.clone(), &self.shape).unwrap()
    }
    fn reshape(&self, shape: &[usize]) -> Dense {
        Dense {
            shape: shape.to_vec(),
            data: self.data.clone(),
        }
    }
    fn permute(&self, perm: &[usize]) -> Dense {
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        Dense::from_fn(&shape, |idx| {
            let mut src = vec![0; idx.len()];
            for (i, &p) in perm.iter().enumerate() {
                src[p] = idx[i];
            }
            self.at(&src)
        })
    }
    fn narrow(&self, dim: usize, start: usize, len: usize) -> Dense {
        let mut shape = self.shape.clone();
        shape[dim] = len;
        Dense::from_fn(&shape, |idx| {
            let mut src = idx.to_vec();
            src[dim] += start;
            self.at(&src)
        })
    }
    /// NumPy broadcasting read: leading dims dropped, size-1 dims pinned to index 0.
    fn expand(&self, shape: &[usize]) -> Dense {
        let extra = shape.len() - self.shape.len();
        Dense::from_fn(shape, |idx| {
            let src: Vec<usize> = self
                .shape
                .iter()
                .enumerate()
                .map(|(i, &d)| if d == 1 { 0 } else { idx[extra + i] })
                .collect();
            self.at(&src)
        })
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_vec::<f32>().unwrap()
}

/// A view must read exactly the oracle's elements, in order, and agree with its own
/// contiguous copy.
fn assert_same(t: &Tensor, want: &Dense) {
    assert_eq!(t.shape(), want.shape.as_slice());
    assert_eq!(values(t), want.data, "shape {:?}", want.shape);
    let c = t.contiguous().unwrap();
    assert!(c.is_contiguous());
    assert_eq!(values(&c), want.data);
}

/// NumPy's rule, written independently of fukai: aligned from the right, two dims are
/// compatible when equal or when one of them is 1.
fn numpy_broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let pad = |s: &[usize]| -> Vec<usize> {
        let mut v = vec![1; n - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (a, b) = (pad(a), pad(b));
    a.iter()
        .zip(&b)
        .map(|(&x, &y)| match (x, y) {
            _ if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

fn shape_strategy(max_rank: usize, max_dim: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..=max_dim, 0..=max_rank)
}

/// An output shape plus two input shapes that broadcast to it: each input is a suffix of the
/// output with some dims replaced by 1.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>, Vec<usize>)> {
    prop::collection::vec(1usize..=4, 0..=4).prop_flat_map(|out| {
        let r = out.len();
        (
            Just(out),
            0..=r,
            0..=r,
            prop::collection::vec(any::<bool>(), r),
            prop::collection::vec(any::<bool>(), r),
        )
            .prop_map(|(out, ra, rb, ones_a, ones_b)| {
                let make = |rank: usize, ones: &[bool]| -> Vec<usize> {
                    (out.len() - rank..out.len())
                        .map(|i| if ones[i] { 1 } else { out[i] })
                        .collect()
                };
                let (a, b) = (make(ra, &ones_a), make(rb, &ones_b));
                (out, a, b)
            })
    })
}

/// A permutation of `0..n`.
fn perm_of(n: usize) -> impl Strategy<Value = Vec<usize>> {
    Just((0..n).collect::<Vec<usize>>()).prop_shuffle()
}

/// `dense` materialized as a tensor that is *not* contiguous when `strided` (stored permuted
/// and viewed back through `perm`), so kernels see real strides.
fn as_tensor(dense: &Dense, perm: &[usize], strided: bool) -> Tensor {
    if !strided || dense.shape.len() < 2 {
        return dense.tensor();
    }
    // Store the data under the inverse permutation, then view it through `perm`.
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    let stored = dense.permute(&inv);
    let t = stored.tensor().permute(&perm_isize(perm)).unwrap();
    assert_eq!(values(&t), dense.data);
    t
}

fn perm_isize(p: &[usize]) -> Vec<isize> {
    p.iter().map(|&x| x as isize).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn broadcast_shapes_matches_numpy(a in shape_strategy(4, 3), b in shape_strategy(4, 3)) {
        let ab = broadcast_shapes("add", &a, &b);
        let ba = broadcast_shapes("add", &b, &a);
        match numpy_broadcast(&a, &b) {
            Some(want) => {
                prop_assert_eq!(ab.unwrap(), want.clone());
                prop_assert_eq!(ba.unwrap(), want);
            }
            None => {
                let msg = ab.unwrap_err().to_string();
                prop_assert!(msg.starts_with("add:"), "{}", msg);
                prop_assert!(msg.contains(&format!("{a:?}")) && msg.contains(&format!("{b:?}")), "{}", msg);
                prop_assert!(ba.is_err());
            }
        }
    }

    #[test]
    fn add_broadcasts_like_expand_then_contiguous(
        (out, sa, sb) in broadcast_pair(),
        pa in perm_of(4),
        pb in perm_of(4),
        strided in any::<(bool, bool)>(),
    ) {
        let da = Dense::iota(&sa);
        // Distinct magnitudes so a + b still tells which elements met.
        let db = Dense::from_fn(&sb, |i| 1000.0 * (1.0 + Dense::iota(&sb).at(i)));
        let keep = |p: &[usize], r: usize| -> Vec<usize> { p.iter().copied().filter(|&x| x < r).collect() };
        let a = as_tensor(&da, &keep(&pa, sa.len()), strided.0);
        let b = as_tensor(&db, &keep(&pb, sb.len()), strided.1);

        // expand is a view over the same memory; its contiguous copy is the oracle.
        let (ea, eb) = (da.expand(&out), db.expand(&out));
        let xa = a.expand(&out).unwrap();
        prop_assert!(xa.shares_storage(&a));
        assert_same(&xa, &ea);
        let xb = b.expand(&out).unwrap();
        prop_assert!(xb.shares_storage(&b));
        assert_same(&xb, &eb);

        // a + b has the broadcast of the two shapes (which may be smaller than `out`).
        let bc = numpy_broadcast(&sa, &sb).unwrap();
        let (ea, eb) = (da.expand(&bc), db.expand(&bc));
        let want: Vec<f32> = ea.data.iter().zip(&eb.data).map(|(x, y)| x + y).collect();
        let sum = a.add(&b).unwrap();
        prop_assert_eq!(sum.shape(), bc.as_slice());
        prop_assert_eq!(values(&sum), want.clone());
        prop_assert_eq!(values(&b.add(&a).unwrap()), want.clone());
        // And the same as adding the explicit contiguous expansions.
        let explicit = a.expand(&bc).unwrap().contiguous().unwrap().add(&b.expand(&bc).unwrap().contiguous().unwrap()).unwrap();
        prop_assert_eq!(values(&explicit), want);
    }

    #[test]
    fn permute_then_inverse_is_identity(shape in prop::collection::vec(1usize..=4, 0..=5), seed in any::<u64>()) {
        let d = Dense::iota(&shape);
        let t = d.tensor();
        let mut perm: Vec<usize> = (0..shape.len()).collect();
        // Fisher-Yates from the seed: a uniform permutation of this rank.
        let mut s = seed;
        for i in (1..perm.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (s >> 33) as usize % (i + 1));
        }
        let mut inv = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inv[p] = i;
        }
        let p = t.permute(&perm_isize(&perm)).unwrap();
        prop_assert!(p.shares_storage(&t));
        assert_same(&p, &d.permute(&perm));
        let back = p.permute(&perm_isize(&inv)).unwrap();
        prop_assert!(back.shares_storage(&t));
        prop_assert_eq!(back.shape(), t.shape());
        prop_assert_eq!(back.strides(), t.strides());
        prop_assert_eq!(back.layout().offset(), t.layout().offset());
        prop_assert!(back.is_contiguous());
        prop_assert_eq!(values(&back), d.data);
    }

    /// A random chain of views applied to a tensor and to the oracle side by side. After every
    /// step the elements match, memory is still shared unless the op had to copy, and the
    /// contiguous copy reads the same.
    #[test]
    fn view_chains_match_index_arithmetic(
        shape in prop::collection::vec(1usize..=4, 1..=4),
        steps in prop::collection::vec((0u8..9, any::<u64>(), any::<u64>()), 1..=6),
    ) {
        let mut dense = Dense::iota(&shape);
        let source = dense.tensor();
        let mut t = source.clone();
        let mut shared = true;
        for (kind, x, y) in steps {
            let rank = dense.shape.len();
            let pick = |v: u64, n: usize| (v % n.max(1) as u64) as usize;
            let before_contiguous = t.is_contiguous();
            let (next, nd, always_view) = match kind {
                // reshape into a random factorization (a view exactly when contiguous).
                0 => {
                    let n: usize = dense.shape.iter().product();
                    let mut rest = n;
                    let mut new = Vec::new();
                    let mut s = x;
                    while rest > 1 && new.len() < 4 {
                        let divs: Vec<usize> = (1..=rest).filter(|&d| rest.is_multiple_of(d)).collect();
                        let d = divs[pick(s, divs.len())];
                        s = s.rotate_left(7) ^ y;
                        new.push(d);
                        rest /= d;
                    }
                    if rest > 1 || n == 0 {
                        new.push(rest);
                    }
                    (t.reshape(&new).unwrap(), dense.reshape(&new), before_contiguous)
                }
                1 if rank > 0 => {
                    let (a, b) = (pick(x, rank), pick(y, rank));
                    let mut perm: Vec<usize> = (0..rank).collect();
                    perm.swap(a, b);
                    // Negative dims count from the end.
                    (t.transpose(a as isize - rank as isize, b as isize).unwrap(), dense.permute(&perm), true)
                }
                2 if rank > 0 => {
                    let mut perm: Vec<usize> = (0..rank).collect();
                    perm.rotate_left(pick(x, rank));
                    (t.permute(&perm_isize(&perm)).unwrap(), dense.permute(&perm), true)
                }
                3 if rank > 0 => {
                    let d = pick(x, rank);
                    let size = dense.shape[d];
                    let start = pick(y, size + 1);
                    let len = pick(y >> 20, size - start + 1);
                    (t.narrow(d as isize, start, len).unwrap(), dense.narrow(d, start, len), true)
                }
                4 => {
                    // Expand size-1 dims and add a leading dim.
                    let mut out = vec![1 + pick(x, 3)];
                    out.extend(dense.shape.iter().enumerate().map(|(i, &d)| if d == 1 { 1 + pick(y >> i, 3) } else { d }));
                    (t.expand(&out).unwrap(), dense.expand(&out), true)
                }
                5 => {
                    let d = pick(x, rank + 1);
                    let mut s = dense.shape.clone();
                    s.insert(d, 1);
                    (t.unsqueeze(d as isize).unwrap(), dense.reshape(&s), true)
                }
                6 if dense.shape.contains(&1) => {
                    let ones: Vec<usize> = (0..rank).filter(|&i| dense.shape[i] == 1).collect();
                    let d = ones[pick(x, ones.len())];
                    let mut s = dense.shape.clone();
                    s.remove(d);
                    (t.squeeze(d as isize).unwrap(), dense.reshape(&s), true)
                }
                7 if rank > 0 => {
                    let a = pick(x, rank);
                    let b = a + pick(y, rank - a);
                    let mut s = dense.shape[..a].to_vec();
                    s.push(dense.shape[a..=b].iter().product());
                    s.extend_from_slice(&dense.shape[b + 1..]);
                    (t.flatten(a as isize, b as isize).unwrap(), dense.reshape(&s), before_contiguous)
                }
                8 => {
                    let c = t.contiguous().unwrap();
                    // contiguous() copies exactly when it has to.
                    prop_assert_eq!(c.shares_storage(&t), before_contiguous);
                    (c, dense.clone(), before_contiguous)
                }
                _ => continue,
            };
            // Transpose, permute, narrow, expand, (un)squeeze are always views; reshape and
            // flatten are views whenever the input is contiguous.
            if always_view {
                prop_assert!(next.shares_storage(&t), "op {} copied", kind);
            }
            if !next.shares_storage(&t) {
                prop_assert!(next.is_contiguous(), "a copy must be contiguous");
                shared = false;
            }
            t = next;
            dense = nd;
            assert_same(&t, &dense);
            prop_assert_eq!(t.shares_storage(&source), shared);
        }
    }

    #[test]
    fn squeeze_unsqueeze_roundtrip_on_strided_views(shape in prop::collection::vec(1usize..=4, 2..=4), dim in 0usize..5) {
        let d = Dense::iota(&shape);
        let t = d.tensor().t().unwrap();
        let dt = {
            let mut perm: Vec<usize> = (0..shape.len()).collect();
            let r = perm.len();
            perm.swap(r - 2, r - 1);
            d.permute(&perm)
        };
        let dim = dim % (t.rank() + 1);
        let u = t.unsqueeze(dim as isize).unwrap();
        prop_assert!(u.shares_storage(&t));
        let mut s = dt.shape.clone();
        s.insert(dim, 1);
        assert_same(&u, &dt.reshape(&s));
        let back = u.squeeze(dim as isize).unwrap();
        prop_assert!(back.shares_storage(&t));
        assert_same(&back, &dt);
    }
}
