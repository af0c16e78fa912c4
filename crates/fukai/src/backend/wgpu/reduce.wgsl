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

// One workgroup per output.
@compute @workgroup_size(256)
fn reduce_wide(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let out = group_index(wg, nwg);
    let inner = md[2];
    if out >= md[0] * inner { return; }
    let o = out / inner;
    let ii = out % inner;
    let r = md[1];
    let op = md[3];
    var acc = 0.0;
    var best = i32(-1);
    if op != 0u { acc = bitcast<f32>(0x7fc00000u); }
    for (var k = lid; k < r; k = k + WG) {
        let v = at(o, k, ii);
        if op == 0u {
            acc = acc + v;
        } else if best < 0 || better(v, i32(k), acc, best, op == 1u) {
            acc = v;
            best = i32(k);
        }
    }
    sv[lid] = acc;
    si[lid] = best;
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        workgroupBarrier();
        if lid < s {
            if op == 0u {
                sv[lid] = sv[lid] + sv[lid + s];
            } else if si[lid + s] >= 0 && (si[lid] < 0 || better(sv[lid + s], si[lid + s], sv[lid], si[lid], op == 1u)) {
                sv[lid] = sv[lid + s];
                si[lid] = si[lid + s];
            }
        }
    }
    if lid == 0u {
        vals[out] = sv[0];
        if op != 0u { idxs[out] = si[0]; }
    }
}

// One thread per output, for short reductions.
@compute @workgroup_size(256)
fn reduce_narrow(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let out = thread_index(wg, nwg, lid);
    let inner = md[2];
    if out >= md[0] * inner { return; }
    let o = out / inner;
    let ii = out % inner;
    let r = md[1];
    let op = md[3];
    var acc = 0.0;
    var best = i32(-1);
    for (var k = 0u; k < r; k = k + 1u) {
        let v = at(o, k, ii);
        if op == 0u {
            acc = acc + v;
        } else if best < 0 || better(v, i32(k), acc, best, op == 1u) {
            acc = v;
            best = i32(k);
        }
    }
    vals[out] = acc;
    if op != 0u { idxs[out] = best; }
}
