// Row-wise kernels, one workgroup per row, reductions over a fixed 256-lane tree.
// Softmax rows are the (outer, inner) lines of a contiguous [outer, r, inner] view.
// md: 0 outer, 1 r, 2 inner, 3 log (1 = log-softmax), 4 x offset, 5 second input offset,
//     6 label smoothing (f32 bits), 7 1 / valid rows (f32 bits).

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> tgt: array<i32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> rowv: array<f32>;

var<workgroup> red: array<f32, 256>;

fn tree_max(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        workgroupBarrier();
        if lid < s { red[lid] = max_nan(red[lid], red[lid + s]); }
    }
    workgroupBarrier();
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn tree_sum(v: f32, lid: u32) -> f32 {
    red[lid] = v;
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        workgroupBarrier();
        if lid < s { red[lid] = red[lid] + red[lid + s]; }
    }
    workgroupBarrier();
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn neg_inf() -> f32 { return bitcast<f32>(0xff800000u); }

fn idx(row: u32, k: u32) -> u32 {
    let inner = md[2];
    return (row / inner) * md[1] * inner + k * inner + row % inner;
}

@compute @workgroup_size(256)
fn softmax_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wg, nwg);
    if row >= md[0] * md[2] { return; }
    let r = md[1];
    let xo = md[4];
    var m = neg_inf();
    for (var k = lid; k < r; k = k + WG) { m = max_nan(m, x[xo + idx(row, k)]); }
    m = tree_max(m, lid);
    var s = 0.0;
    for (var k = lid; k < r; k = k + WG) { s = s + exp(x[xo + idx(row, k)] - m); }
    s = tree_sum(s, lid);
    let ls = log(s);
    for (var k = lid; k < r; k = k + WG) {
        let v = x[xo + idx(row, k)] - m;
        if md[3] == 1u { y[idx(row, k)] = v - ls; } else { y[idx(row, k)] = exp(v) / s; }
    }
}

// x holds the forward output (contiguous), g the upstream gradient (offset md[5]).
@compute @workgroup_size(256)
fn softmax_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wg, nwg);
    if row >= md[0] * md[2] { return; }
    let r = md[1];
    let xo = md[4];
    let go = md[5];
    var s = 0.0;
    for (var k = lid; k < r; k = k + WG) {
        let i = idx(row, k);
        if md[3] == 1u { s = s + g[go + i]; } else { s = s + g[go + i] * x[xo + i]; }
    }
    s = tree_sum(s, lid);
    for (var k = lid; k < r; k = k + WG) {
        let i = idx(row, k);
        if md[3] == 1u {
            y[i] = g[go + i] - exp(x[xo + i]) * s;
        } else {
            y[i] = x[xo + i] * (g[go + i] - s);
        }
    }
}

// Cross-entropy of logits [n, c] (inner = 1) against targets (-1: ignored row): writes the
// probabilities to y and each row's loss to rowv (0 for ignored rows).
@compute @workgroup_size(256)
fn ce_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = group_index(wg, nwg);
    if row >= md[0] { return; }
    let c = md[1];
    let xo = md[4] + row * c;
    var m = neg_inf();
    for (var k = lid; k < c; k = k + WG) { m = max_nan(m, x[xo + k]); }
    m = tree_max(m, lid);
    var s = 0.0;
    var sx = 0.0;
    for (var k = lid; k < c; k = k + WG) {
        let v = x[xo + k] - m;
        s = s + exp(v);
        sx = sx + v;
    }
    s = tree_sum(s, lid);
    sx = tree_sum(sx, lid);
    let inv = 1.0 / s;
    for (var k = lid; k < c; k = k + WG) { y[row * c + k] = exp(x[xo + k] - m) * inv; }
    if lid == 0u {
        let t = tgt[row];
        if t < 0 {
            rowv[row] = 0.0;
        } else {
            let eps = bitcast<f32>(md[6]);
            rowv[row] = log(s) - (1.0 - eps) * (x[xo + u32(t)] - m) - eps * (sx / f32(c));
        }
    }
}

// The gradient from the saved probabilities (x) and the upstream scalar g[md[5]].
@compute @workgroup_size(256)
fn ce_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    let c = md[1];
    if i >= md[0] * c { return; }
    let row = i / c;
    let k = i % c;
    let t = tgt[row];
    if t < 0 { y[i] = 0.0; return; }
    let eps = bitcast<f32>(md[6]);
    let scale = g[md[5]] * bitcast<f32>(md[7]);
    var v = x[i];
    if u32(t) == k { v = v - (1.0 - eps); }
    y[i] = (v - eps / f32(c)) * scale;
}
