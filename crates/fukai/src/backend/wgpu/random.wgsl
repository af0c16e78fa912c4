// Dropout from the CPU's Philox 4x32-10 stream: element i reads lane i % 4 of block
// start + i / 4 (keyed by the seed), so masks are identical on every device. Integer math only.
// md: 0 n, 1 rank, 2/3 seed (lo, hi), 4/5 first block (lo, hi), 6 keep threshold,
//     7 drop everything, 8 scale (f32 bits), view of x from 9.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> keep: array<f32>;

// (high, low) words of a · b, from 16-bit limbs (WGSL has no 64-bit integers).
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xffffu;
    let a1 = a >> 16u;
    let b0 = b & 0xffffu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
    let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = ctr;
    var k = key;
    for (var r = 0u; r < 10u; r = r + 1u) {
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

@compute @workgroup_size(256)
fn dropout(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    let q = i / 4u;
    let lo = md[4] + q;
    let hi = md[5] + select(0u, 1u, lo < q);
    let b = philox(vec4<u32>(lo, hi, 0u, 0u), vec2<u32>(md[2], md[3]));
    var draw: u32;
    switch i % 4u {
        case 0u: { draw = b.x; }
        case 1u: { draw = b.y; }
        case 2u: { draw = b.z; }
        default: { draw = b.w; }
    }
    var m = 0.0;
    if md[7] == 0u && draw >= md[6] { m = bitcast<f32>(md[8]); }
    keep[i] = m;
    out[i] = x[view_offset(i, md[1], 9u)] * m;
}
