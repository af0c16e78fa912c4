// Elementwise kernels over strided views: copy, binary with broadcasting, unary and its
// backward, comparisons, casts, where. md[0] = n, md[1] = rank, md[2] = op code, md[3], md[4] =
// scalar parameters (f32 bits); views follow from md[5], each 1 + 2·rank words.

@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read> c: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

fn fa(i: u32) -> f32 { return bitcast<f32>(a[i]); }
fn fb(i: u32) -> f32 { return bitcast<f32>(b[i]); }

fn view(k: u32) -> u32 { return 5u + k * (1u + 2u * md[1]); }

@compute @workgroup_size(256)
fn copy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    out[i] = a[view_offset(i, md[1], view(0u))];
}

fn binary_op(op: u32, x: f32, y: f32) -> f32 {
    switch op {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        case 3u: { return x / y; }
        case 4u: { return max_nan(x, y); }
        case 5u: { return min_nan(x, y); }
        default: { return pow_f(x, y); }
    }
}

// x^y with the C library's answers for negative x with integral y and for x = 0.
fn pow_f(x: f32, y: f32) -> f32 {
    if y == 0.0 { return 1.0; }
    if x == 0.0 {
        if y > 0.0 { return 0.0; }
        return bitcast<f32>(0x7f800000u);
    }
    let m = pow(abs(x), y);
    if x < 0.0 {
        if y != floor(y) { return bitcast<f32>(0x7fc00000u); }
        if (i32(y) & 1) == 1 { return -m; }
    }
    return m;
}

@compute @workgroup_size(256)
fn binary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    let x = fa(view_offset(i, md[1], view(0u)));
    let y = fb(view_offset(i, md[1], view(1u)));
    out[i] = bitcast<u32>(binary_op(md[2], x, y));
}

fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }

// erfc(x) for x >= 0 (Numerical Recipes' Chebyshev fit, 1.2e-7 relative).
fn erfc_pos(x: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * x);
    let p = -x * x - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
        t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
        t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp(p);
}

fn normal_cdf(x: f32) -> f32 {
    let tail = 0.5 * erfc_pos(abs(x) * 0.70710678118654752);
    if x < 0.0 { return tail; }
    return 1.0 - tail;
}

fn tanh_f(x: f32) -> f32 {
    // tanh from exp of a non-positive argument: no overflow for large |x|.
    let e = exp(-2.0 * abs(x));
    let t = (1.0 - e) / (1.0 + e);
    if x < 0.0 { return -t; }
    return t;
}

fn unary_op(op: u32, x: f32, p: f32, q: f32) -> f32 {
    switch op {
        case 0u: { return -x; }
        case 1u: { return exp(x); }
        case 2u: { return log(x); }
        case 3u: { return sqrt(x); }
        case 4u: { return 1.0 / sqrt(x); }
        case 5u: { return abs(x); }
        case 6u: { return tanh_f(x); }
        case 7u: { return sigmoid(x); }
        case 8u: { if x <= 0.0 { return 0.0; } return x; }
        case 9u: { return x * normal_cdf(x); }
        case 10u: {
            let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
            return 0.5 * x * (1.0 + tanh_f(u));
        }
        case 11u: { return x * sigmoid(x); }
        case 12u: { return sin(x); }
        case 13u: { return cos(x); }
        case 14u: { return x * x; }
        case 15u: { return 1.0 / x; }
        case 16u: { return pow_f(x, p); }
        case 17u: { return x * p + q; }
        case 18u: {
            if is_nan(x) { return x; }
            if x < p { return p; }
            if x > q { return q; }
            return x;
        }
        default: { if x > 0.0 { return x; } return x * p; }
    }
}

// s is the saved input or output (whichever the CPU's backward uses), g the upstream gradient.
fn unary_grad(op: u32, s: f32, g: f32, p: f32, q: f32) -> f32 {
    switch op {
        case 0u: { return -g; }
        case 1u: { return g * s; }
        case 2u: { return g / s; }
        case 3u: { return g * 0.5 / s; }
        case 4u: { return g * -0.5 * s * s * s; }
        case 5u: { if s > 0.0 { return g; } if s < 0.0 { return -g; } return 0.0; }
        case 6u: { return g * (1.0 - s * s); }
        case 7u: { return g * s * (1.0 - s); }
        case 8u: { if s > 0.0 { return g; } return 0.0; }
        case 9u: {
            let pdf = 0.3989422804014327 * exp(-0.5 * s * s);
            return g * (normal_cdf(s) + s * pdf);
        }
        case 10u: {
            let x3 = s * s * s;
            let t = tanh_f(0.7978845608028654 * (s + 0.044715 * x3));
            let dt = 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * s * s);
            return g * (0.5 * (1.0 + t) + 0.5 * s * (1.0 - t * t) * dt);
        }
        case 11u: { let sg = sigmoid(s); return g * sg * (1.0 + s * (1.0 - sg)); }
        case 12u: { return g * cos(s); }
        case 13u: { return -g * sin(s); }
        case 14u: { return 2.0 * s * g; }
        case 15u: { return -g * s * s; }
        case 16u: { if p == 0.0 { return 0.0; } return g * p * pow_f(s, p - 1.0); }
        case 17u: { return g * p; }
        case 18u: {
            if is_nan(s) || (s >= p && s <= q) { return g; }
            return 0.0;
        }
        default: { if s > 0.0 { return g; } return g * p; }
    }
}

@compute @workgroup_size(256)
fn unary(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    let x = fa(view_offset(i, md[1], view(0u)));
    out[i] = bitcast<u32>(unary_op(md[2], x, bitcast<f32>(md[3]), bitcast<f32>(md[4])));
}

@compute @workgroup_size(256)
fn unary_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    let s = fa(view_offset(i, md[1], view(0u)));
    let g = fb(view_offset(i, md[1], view(1u)));
    out[i] = bitcast<u32>(unary_grad(md[2], s, g, bitcast<f32>(md[3]), bitcast<f32>(md[4])));
}

// md[3]: element kind of the operands: 0 f32, 1 u32, 2 i32.
fn cmp_op(op: u32, kind: u32, x: u32, y: u32) -> bool {
    var lt: bool;
    var eq: bool;
    if kind == 0u {
        lt = bitcast<f32>(x) < bitcast<f32>(y);
        eq = bitcast<f32>(x) == bitcast<f32>(y);
        // NaN compares false, except "not equal".
        if is_nan(bitcast<f32>(x)) || is_nan(bitcast<f32>(y)) { return op == 1u; }
    } else if kind == 1u {
        lt = x < y;
        eq = x == y;
    } else {
        lt = bitcast<i32>(x) < bitcast<i32>(y);
        eq = x == y;
    }
    switch op {
        case 0u: { return eq; }
        case 1u: { return !eq; }
        case 2u: { return lt; }
        case 3u: { return lt || eq; }
        case 4u: { return !(lt || eq); }
        default: { return !lt; }
    }
}

@compute @workgroup_size(256)
fn compare(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    let x = a[view_offset(i, md[1], view(0u))];
    let y = b[view_offset(i, md[1], view(1u))];
    out[i] = select(0u, 1u, cmp_op(md[2], md[3], x, y));
}

// md[2]: from kind (0 f32, 1 u32, 2 i32, 3 u8), md[3]: to kind.
@compute @workgroup_size(256)
fn convert(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    let w = a[view_offset(i, md[1], view(0u))];
    let src_kind = md[2];
    let dst_kind = md[3];
    var r: u32;
    if src_kind == 0u {
        let x = bitcast<f32>(w);
        if dst_kind == 1u { r = u32(max(x, 0.0)); }
        else if dst_kind == 2u { r = bitcast<u32>(i32(x)); }
        else { r = u32(max(x, 0.0)) & 0xffu; }
    } else {
        var x: f32;
        if src_kind == 2u { x = f32(bitcast<i32>(w)); } else { x = f32(w); }
        if dst_kind == 0u { r = bitcast<u32>(x); }
        else if dst_kind == 3u { r = w & 0xffu; }
        else { r = w; }
    }
    out[i] = r;
}

// cond (u32 words, non-zero picks a) in binding 3.
@compute @workgroup_size(256)
fn where_cond(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    let k = c[view_offset(i, md[1], view(2u))];
    if k != 0u {
        out[i] = a[view_offset(i, md[1], view(0u))];
    } else {
        out[i] = b[view_offset(i, md[1], view(1u))];
    }
}

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    out[i] = md[3];
}

// index_select: out has the input's shape with dim md[2] replaced by the index's length; the
// index (i32 words) is binding 2 from offset md[3]. The input view (offset, then size and
// stride per dim, sizes those of the output) starts at md[5].
@compute @workgroup_size(256)
fn select_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    let rank = md[1];
    var rem = i;
    var off = md[5];
    for (var d = i32(rank) - 1; d >= 0; d = d - 1) {
        let size = md[6u + 2u * u32(d)];
        let stride = md[7u + 2u * u32(d)];
        var coord = rem % size;
        if u32(d) == md[2] { coord = b[md[3] + coord]; }
        off = off + coord * stride;
        rem = rem / size;
    }
    out[i] = a[off];
}

// Writes the contiguous a (from offset md[3]) into the positions of out described by the view
// at md[5]: how `cat` places each part.
@compute @workgroup_size(256)
fn place(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    out[view_offset(i, md[1], view(0u))] = a[md[3] + i];
}

// out[i] = a[md[3] + b[i]]: elements at host-checked positions of a contiguous source (gather).
@compute @workgroup_size(256)
fn take(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    out[i] = a[md[3] + b[i]];
}

// The inverse: out[p] = sum of a[md[3] + c[k]] for k in b[p]..b[p+1], the sources that land on
// position p in their original order (a scatter-add with no atomics).
@compute @workgroup_size(256)
fn put_add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let p = thread_index(wg, nwg, lid);
    if p >= md[0] { return; }
    var s = 0.0;
    for (var k = b[p]; k < b[p + 1u]; k = k + 1u) {
        s = s + bitcast<f32>(a[md[3] + c[k]]);
    }
    out[p] = bitcast<u32>(s);
}
