// C[b] = A[b] · B[b] (+ bias per column) over strided operands, C contiguous [batch, M, N].
// A 128×128 tile per workgroup, 8×8 outputs per thread, K in steps of 8 through workgroup
// memory. Every output sums k = 0, 1, … in order: no split-K, no atomics, so results depend
// only on the data.
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

var<workgroup> As: array<f32, 1024>; // [TK][TM]
var<workgroup> Bs: array<f32, 1024>; // [TK][TN]

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

    var acc: array<f32, 64>;
    for (var i = 0u; i < 64u; i = i + 1u) { acc[i] = 0.0; }

    for (var k0 = 0u; k0 < K; k0 = k0 + TK) {
        for (var q = 0u; q < 4u; q = q + 1u) {
            let e = lid + q * 256u;
            // A tile: row e / 8, k e % 8.
            let ar = e / TK;
            let ak = e % TK;
            var av = 0.0;
            if m0 + ar < M && k0 + ak < K {
                av = A[a_base + (m0 + ar) * md[8] + (k0 + ak) * md[9]];
            }
            As[ak * TM + ar] = av;
            // B tile: k e / 128, column e % 128.
            let bk = e / TN;
            let bc = e % TN;
            var bv = 0.0;
            if k0 + bk < K && n0 + bc < N {
                bv = B[b_base + (k0 + bk) * md[13] + (n0 + bc) * md[14]];
            }
            Bs[bk * TN + bc] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk = kk + 1u) {
            var a: array<f32, 8>;
            var b: array<f32, 8>;
            for (var i = 0u; i < 8u; i = i + 1u) {
                a[i] = As[kk * TM + ty + 16u * i];
                b[i] = Bs[kk * TN + tx + 16u * i];
            }
            for (var i = 0u; i < 8u; i = i + 1u) {
                for (var j = 0u; j < 8u; j = j + 1u) {
                    acc[i * 8u + j] = acc[i * 8u + j] + a[i] * b[j];
                }
            }
        }
        workgroupBarrier();
    }

    let c_base = bat * M * N;
    for (var i = 0u; i < 8u; i = i + 1u) {
        let r = m0 + ty + 16u * i;
        if r >= M { continue; }
        for (var j = 0u; j < 8u; j = j + 1u) {
            let c = n0 + tx + 16u * j;
            if c >= N { continue; }
            var v = acc[i * 8u + j];
            if md[15] != 0u { v = v + bias[md[16] + c]; }
            C[c_base + r * N + c] = v;
        }
    }
}
