// Max and average pools over the planes [P, H, W] of a contiguous input, with any windows
// (fixed or adaptive). Window tables: per output row and column (start, end, count), then per
// input row and column the range [lo, hi) of windows covering it; backward passes gather over
// those, in window order (no atomics).
// md: 0 planes, 1 H, 2 W, 3 OH, 4 OW, 5 input offset.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> tab: array<u32>;
@group(0) @binding(3) var<storage, read_write> idx: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

fn ywin(o: u32, f: u32) -> u32 { return tab[o * 3u + f]; }
fn xwin(o: u32, f: u32) -> u32 { return tab[md[3] * 3u + o * 3u + f]; }
fn ycover(y: u32, f: u32) -> u32 { return tab[(md[3] + md[4]) * 3u + y * 2u + f]; }
fn xcover(x: u32, f: u32) -> u32 { return tab[(md[3] + md[4]) * 3u + md[1] * 2u + x * 2u + f]; }

// Output i of [P, OH, OW]: the window's first maximum (or its first NaN) and its index in the
// plane (max), or its mean over the window's divisor (average).
fn pool_out(i: u32, take_max: bool) {
    let ohw = md[3] * md[4];
    let p = i / ohw;
    let oy = (i % ohw) / md[4];
    let ox = i % md[4];
    let base = md[5] + p * md[1] * md[2];
    var best = ywin(oy, 0u) * md[2] + xwin(ox, 0u);
    var bv = bitcast<f32>(0xff800000u);
    var s = 0.0;
    var done = false;
    for (var y = ywin(oy, 0u); y < ywin(oy, 1u) && !done; y = y + 1u) {
        for (var xx = xwin(ox, 0u); xx < xwin(ox, 1u); xx = xx + 1u) {
            let v = x[base + y * md[2] + xx];
            if !take_max {
                s = s + v;
            } else if v > bv || is_nan(v) {
                bv = v;
                best = y * md[2] + xx;
                if is_nan(v) { done = true; break; }
            }
        }
    }
    if take_max {
        idx[i] = best;
        out[i] = bv;
    } else {
        out[i] = s / f32(ywin(oy, 2u) * xwin(ox, 2u));
    }
}

@compute @workgroup_size(256)
fn max_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] * md[3] * md[4] { return; }
    pool_out(i, true);
}

@compute @workgroup_size(256)
fn avg_fwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] * md[3] * md[4] { return; }
    pool_out(i, false);
}

// The input gradient at element i of [P, H, W] from the upstream gradient x [P, OH, OW]
// (offset md[5]): the windows covering it in order, each adding its whole gradient where it
// chose this element (max) or its share (average).
fn pool_grad(i: u32, take_max: bool) -> f32 {
    let hw = md[1] * md[2];
    let p = i / hw;
    let y = (i % hw) / md[2];
    let xx = i % md[2];
    let me = y * md[2] + xx;
    let ohw = md[3] * md[4];
    var s = 0.0;
    for (var oy = ycover(y, 0u); oy < ycover(y, 1u); oy = oy + 1u) {
        for (var ox = xcover(xx, 0u); ox < xcover(xx, 1u); ox = ox + 1u) {
            let o = p * ohw + oy * md[4] + ox;
            if take_max {
                if idx[o] == me { s = s + x[md[5] + o]; }
            } else {
                s = s + x[md[5] + o] / f32(ywin(oy, 2u) * xwin(ox, 2u));
            }
        }
    }
    return s;
}

@compute @workgroup_size(256)
fn max_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] * md[1] * md[2] { return; }
    out[i] = pool_grad(i, true);
}

@compute @workgroup_size(256)
fn avg_bwd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] * md[1] * md[2] { return; }
    out[i] = pool_grad(i, false);
}
