//! Unique, on the host: its outputs' sizes depend on the values, and fukai has no such op.

use super::super::attr::Node;
use super::misc::{host, make};
use super::util::axis;
use crate::error::Result;
use crate::{DType, Tensor};
use std::cmp::Ordering;

pub fn run(node: &Node) -> Option<Result<Vec<Tensor>>> {
    match node.op_type() {
        "Unique" => Some(unique(node)),
        _ => None,
    }
}

/// Orders like numpy's sort: by value, NaN last (and equal to NaN, as `np.unique` groups them).
fn cmp(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b)
        .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
}

fn unique(node: &Node) -> Result<Vec<Tensor>> {
    let x = node.input(0)?;
    let h = host(node, x)?;
    // Without `axis` the input is flattened and the unique elements are scalars; with it they
    // are the slices along that axis, compared element by element.
    let (outer, len, inner, ax) = match node.opt_i("axis")? {
        None => (1, h.v.len(), 1, None),
        Some(a) => {
            let a = axis(node, a, h.shape.len())?;
            (
                h.shape[..a].iter().product::<usize>(),
                h.shape[a],
                h.shape[a + 1..].iter().product::<usize>(),
                Some(a),
            )
        }
    };
    let v = h.v.as_slice();
    let slice = |i: usize| {
        (0..outer).flat_map(move |o| (0..inner).map(move |k| v[(o * len + i) * inner + k]))
    };
    let key_cmp = |&i: &usize, &j: &usize| {
        slice(i)
            .zip(slice(j))
            .map(|(a, b)| cmp(a, b))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    };
    // A stable sort keeps the first occurrence first within each run of equal slices.
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(key_cmp);
    // Groups as (first occurrence, members), in sorted order.
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    for &i in &order {
        match groups.last_mut() {
            Some((first, members)) if key_cmp(first, &i).is_eq() => members.push(i),
            _ => groups.push((i, vec![i])),
        }
    }
    if node.i("sorted", 1)? == 0 {
        groups.sort_by_key(|g| g.0);
    }
    let n = groups.len();
    let mut y = Vec::with_capacity(outer * n * inner);
    for o in 0..outer {
        for (first, _) in &groups {
            y.extend((0..inner).map(|k| h.v[(o * len + first) * inner + k]));
        }
    }
    let y_shape = match ax {
        None => vec![n],
        Some(a) => {
            let mut s = h.shape.clone();
            s[a] = n;
            s
        }
    };
    let mut inverse = vec![0.0; len];
    for (g, (_, members)) in groups.iter().enumerate() {
        for &m in members {
            inverse[m] = g as f64;
        }
    }
    let indices: Vec<f64> = groups.iter().map(|g| g.0 as f64).collect();
    let counts: Vec<f64> = groups.iter().map(|g| g.1.len() as f64).collect();
    Ok(vec![
        make(node, y, &y_shape, x.dtype())?,
        make(node, indices, &[n], DType::I64)?,
        make(node, inverse, &[len], DType::I64)?,
        make(node, counts, &[n], DType::I64)?,
    ])
}
