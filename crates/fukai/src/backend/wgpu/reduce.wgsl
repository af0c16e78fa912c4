// Reductions of a contiguous [outer, r, inner] view (element offset md[4]) over r: sum
// (md[3] = 0), max (1) or min (2) with the index of the first extreme (NaN wins). The order of
// combination depends only on r: each lane walks a fixed stride, then a fixed tree.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> vals: array<f32>;
@group(0) @binding(3) var<storage, read_write> idxs: array<i32>;

var<workgroup> sv: array<f32, 256>;
var<workgroup> si: array<i32, 256>;

// Whether (v, i) beats (w, j) for max (want_max) or min; NaN beats numbers, ties go to the
// lower index.
fn better(v: f32, i: i32, w: f32, j: i32, want_max: bool) -> bool {
    let nv = is_nan(v);
    let nw = is_nan(w);
    if nv || nw {
        if nv && nw { return i < j; }
        return nv;
    }
    if v == w { return i < j; }
    if want_max { return v > w; }
    return v < w;
}

fn at(o: u32, k: u32, inner_i: u32) -> f32 {
    let r = md[1];
    let inner = md[2];
    return x[md[4] + (o * r + k) * inner + inner_i];
}

// A running reduction: the sum, or the extreme and its index (-1 before the first element).
struct Acc {
    v: f32,
    i: i32,
}

// `a` combined with `b`, which covers later elements (for sums) or any elements (extremes).
fn merge(a: Acc, b: Acc) -> Acc {
    let op = md[3];
    if op == 0u { return Acc(a.v + b.v, -1); }
    if b.i >= 0 && (a.i < 0 || better(b.v, b.i, a.v, a.i, op == 1u)) { return b; }
    return a;
}

// Elements first, first + step, ... of output (o, ii), in order.
fn scan(o: u32, ii: u32, first: u32, step: u32) -> Acc {
    var acc = Acc(0.0, -1);
    for (var k = first; k < md[1]; k = k + step) {
        acc = merge(acc, Acc(at(o, k, ii), i32(k)));
    }
    return acc;
}

fn store(out: u32, acc: Acc) {
    vals[out] = acc.v;
    if md[3] != 0u { idxs[out] = acc.i; }
}

// One workgroup per output: lanes scan a fixed stride, then a fixed tree.
@compute @workgroup_size(256)
fn reduce_wide(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let out = group_index(wg, nwg);
    let inner = md[2];
    if out >= md[0] * inner { return; }
    let mine = scan(out / inner, out % inner, lid, WG);
    sv[lid] = mine.v;
    si[lid] = mine.i;
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        workgroupBarrier();
        if lid < s {
            let m = merge(Acc(sv[lid], si[lid]), Acc(sv[lid + s], si[lid + s]));
            sv[lid] = m.v;
            si[lid] = m.i;
        }
    }
    if lid == 0u { store(out, Acc(sv[0], si[0])); }
}

// One thread per output, for short reductions.
@compute @workgroup_size(256)
fn reduce_narrow(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let out = thread_index(wg, nwg, lid);
    let inner = md[2];
    if out >= md[0] * inner { return; }
    store(out, scan(out / inner, out % inner, 0u, 1u));
}
