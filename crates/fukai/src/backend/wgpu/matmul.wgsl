// C[b] = A[b] · B[b] (+ bias per column) over strided operands, C contiguous [batch, M, N].
// A 128×128 tile per workgroup of 16×16 threads, each owning an 8×8 block of outputs (rows
// ty*4.. and 64+ty*4.., columns tx*4.. and 64+tx*4..), K in steps of 8 through workgroup memory
// read as vec4s. The next K step's global loads are issued before the current one is computed,
// so their latency hides behind the arithmetic. Accumulators are named vec4 variables, not a
// private array: drivers keep dynamically indexed private arrays in slow local memory when they
// do not unroll the loops around them. Every output sums k = 0, 1, … in order: no split-K, no
// atomics, so results depend only on the data.
//
// md: 0 batch1, 1 batch2, 2 M, 3 N, 4 K,
//     5 A offset, 6/7 A batch strides, 8 A row stride, 9 A k stride,
//     10 B offset, 11/12 B batch strides, 13 B k stride, 14 B col stride, 15 has bias, 16 bias offset.

@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

const TM: u32 = 128u;
const TN: u32 = 128u;
const TK: u32 = 8u;

var<workgroup> As: array<vec4<f32>, 256>; // [TK][TM / 4]
var<workgroup> Bs: array<vec4<f32>, 256>; // [TK][TN / 4]

// Element e (0..1024) of the A tile at k0: row e / 8, k e % 8 (k runs fastest, so row-major A
// is read in 32-byte runs).
fn load_a(a_base: u32, m0: u32, k0: u32, e: u32) -> f32 {
    let r = m0 + e / TK;
    let k = k0 + e % TK;
    if r < md[2] && k < md[4] {
        return A[a_base + r * md[8] + k * md[9]];
    }
    return 0.0;
}

// Element e of the B tile at k0: k e / 128, column e % 128.
fn load_b(b_base: u32, n0: u32, k0: u32, e: u32) -> f32 {
    let k = k0 + e / TN;
    let c = n0 + e % TN;
    if k < md[4] && c < md[3] {
        return B[b_base + k * md[13] + c * md[14]];
    }
    return 0.0;
}

fn store_a(e: u32, v: f32) {
    let r = e / TK;
    As[(e % TK) * 32u + r / 4u][r % 4u] = v;
}

fn store_b(e: u32, v: f32) {
    let c = e % TN;
    Bs[(e / TN) * 32u + c / 4u][c % 4u] = v;
}

// Row r, columns c..c+4 of the output, plus the bias, inside the bounds.
fn store4(c_base: u32, r: u32, c: u32, v: vec4<f32>) {
    let M = md[2];
    let N = md[3];
    if r >= M { return; }
    for (var j = 0u; j < 4u; j = j + 1u) {
        if c + j < N {
            var x = v[j];
            if md[15] != 0u { x = x + bias[md[16] + c + j]; }
            C[c_base + r * N + c + j] = x;
        }
    }
}

@compute @workgroup_size(256)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let M = md[2];
    let N = md[3];
    let K = md[4];
    let tiles_n = (N + TN - 1u) / TN;
    let tiles_m = (M + TM - 1u) / TM;
    let g = group_index(wg, nwg);
    let tile = g % (tiles_m * tiles_n);
    let bat = g / (tiles_m * tiles_n);
    if bat >= md[0] * md[1] { return; }
    let b1 = bat / md[1];
    let b2 = bat % md[1];
    let m0 = (tile / tiles_n) * TM;
    let n0 = (tile % tiles_n) * TN;
    let a_base = md[5] + b1 * md[6] + b2 * md[7];
    let b_base = md[10] + b1 * md[11] + b2 * md[12];
    let tx = lid % 16u;
    let ty = lid / 16u;

    var c0l = vec4<f32>(0.0);
    var c0h = vec4<f32>(0.0);
    var c1l = vec4<f32>(0.0);
    var c1h = vec4<f32>(0.0);
    var c2l = vec4<f32>(0.0);
    var c2h = vec4<f32>(0.0);
    var c3l = vec4<f32>(0.0);
    var c3h = vec4<f32>(0.0);
    var c4l = vec4<f32>(0.0);
    var c4h = vec4<f32>(0.0);
    var c5l = vec4<f32>(0.0);
    var c5h = vec4<f32>(0.0);
    var c6l = vec4<f32>(0.0);
    var c6h = vec4<f32>(0.0);
    var c7l = vec4<f32>(0.0);
    var c7h = vec4<f32>(0.0);

    var pa0 = load_a(a_base, m0, 0u, lid);
    var pa1 = load_a(a_base, m0, 0u, lid + 256u);
    var pa2 = load_a(a_base, m0, 0u, lid + 512u);
    var pa3 = load_a(a_base, m0, 0u, lid + 768u);
    var pb0 = load_b(b_base, n0, 0u, lid);
    var pb1 = load_b(b_base, n0, 0u, lid + 256u);
    var pb2 = load_b(b_base, n0, 0u, lid + 512u);
    var pb3 = load_b(b_base, n0, 0u, lid + 768u);

    for (var k0 = 0u; k0 < K; k0 = k0 + TK) {
        workgroupBarrier();
        store_a(lid, pa0);
        store_a(lid + 256u, pa1);
        store_a(lid + 512u, pa2);
        store_a(lid + 768u, pa3);
        store_b(lid, pb0);
        store_b(lid + 256u, pb1);
        store_b(lid + 512u, pb2);
        store_b(lid + 768u, pb3);
        workgroupBarrier();
        let k1 = k0 + TK;
        if k1 < K {
            pa0 = load_a(a_base, m0, k1, lid);
            pa1 = load_a(a_base, m0, k1, lid + 256u);
            pa2 = load_a(a_base, m0, k1, lid + 512u);
            pa3 = load_a(a_base, m0, k1, lid + 768u);
            pb0 = load_b(b_base, n0, k1, lid);
            pb1 = load_b(b_base, n0, k1, lid + 256u);
            pb2 = load_b(b_base, n0, k1, lid + 512u);
            pb3 = load_b(b_base, n0, k1, lid + 768u);
        }
        for (var kk = 0u; kk < TK; kk = kk + 1u) {
            let a_lo = As[kk * 32u + ty];
            let a_hi = As[kk * 32u + 16u + ty];
            let b_lo = Bs[kk * 32u + tx];
            let b_hi = Bs[kk * 32u + 16u + tx];
            c0l = fma(vec4<f32>(a_lo.x), b_lo, c0l);
            c0h = fma(vec4<f32>(a_lo.x), b_hi, c0h);
            c1l = fma(vec4<f32>(a_lo.y), b_lo, c1l);
            c1h = fma(vec4<f32>(a_lo.y), b_hi, c1h);
            c2l = fma(vec4<f32>(a_lo.z), b_lo, c2l);
            c2h = fma(vec4<f32>(a_lo.z), b_hi, c2h);
            c3l = fma(vec4<f32>(a_lo.w), b_lo, c3l);
            c3h = fma(vec4<f32>(a_lo.w), b_hi, c3h);
            c4l = fma(vec4<f32>(a_hi.x), b_lo, c4l);
            c4h = fma(vec4<f32>(a_hi.x), b_hi, c4h);
            c5l = fma(vec4<f32>(a_hi.y), b_lo, c5l);
            c5h = fma(vec4<f32>(a_hi.y), b_hi, c5h);
            c6l = fma(vec4<f32>(a_hi.z), b_lo, c6l);
            c6h = fma(vec4<f32>(a_hi.z), b_hi, c6h);
            c7l = fma(vec4<f32>(a_hi.w), b_lo, c7l);
            c7h = fma(vec4<f32>(a_hi.w), b_hi, c7h);
        }
    }

    let c_base = bat * M * N;
    store4(c_base, m0 + ty * 4u + 0u, n0 + tx * 4u, c0l);
    store4(c_base, m0 + ty * 4u + 0u, n0 + 64u + tx * 4u, c0h);
    store4(c_base, m0 + ty * 4u + 1u, n0 + tx * 4u, c1l);
    store4(c_base, m0 + ty * 4u + 1u, n0 + 64u + tx * 4u, c1h);
    store4(c_base, m0 + ty * 4u + 2u, n0 + tx * 4u, c2l);
    store4(c_base, m0 + ty * 4u + 2u, n0 + 64u + tx * 4u, c2h);
    store4(c_base, m0 + ty * 4u + 3u, n0 + tx * 4u, c3l);
    store4(c_base, m0 + ty * 4u + 3u, n0 + 64u + tx * 4u, c3h);
    store4(c_base, m0 + 64u + ty * 4u + 0u, n0 + tx * 4u, c4l);
    store4(c_base, m0 + 64u + ty * 4u + 0u, n0 + 64u + tx * 4u, c4h);
    store4(c_base, m0 + 64u + ty * 4u + 1u, n0 + tx * 4u, c5l);
    store4(c_base, m0 + 64u + ty * 4u + 1u, n0 + 64u + tx * 4u, c5h);
    store4(c_base, m0 + 64u + ty * 4u + 2u, n0 + tx * 4u, c6l);
    store4(c_base, m0 + 64u + ty * 4u + 2u, n0 + 64u + tx * 4u, c6h);
    store4(c_base, m0 + 64u + ty * 4u + 3u, n0 + tx * 4u, c7l);
    store4(c_base, m0 + 64u + ty * 4u + 3u, n0 + 64u + tx * 4u, c7h);
}
