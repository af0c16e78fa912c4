// Dropout from the CPU's Philox 4x32-10 stream (a port of random.wgsl): element i reads lane
// i % 4 of block start + i / 4 (keyed by the seed), so masks are identical on every device.
// Integer math only. md: 0 n, 1 rank, 2/3 seed (lo, hi), 4/5 first block (lo, hi), 6 keep
// threshold, 7 drop everything, 8 scale (f32 bits), view of x from 9.

__device__ uint4 philox(uint4 c, uint2 k) {
    for (u32 r = 0u; r < 10u; r++) {
        u32 hi0 = __umulhi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
        u32 hi1 = __umulhi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
        c = make_uint4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
        k.x += 0x9E3779B9u;
        k.y += 0xBB67AE85u;
    }
    return c;
}

extern "C" __global__ void dropout(const u32* __restrict__ md, const float* x, float* out, float* keep) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    u32 q = i / 4u;
    u32 lo = md[4] + q;
    u32 hi = md[5] + (lo < q ? 1u : 0u);
    uint4 b = philox(make_uint4(lo, hi, 0u, 0u), make_uint2(md[2], md[3]));
    u32 draw;
    switch (i % 4u) {
        case 0u: draw = b.x; break;
        case 1u: draw = b.y; break;
        case 2u: draw = b.z; break;
        default: draw = b.w; break;
    }
    float m = 0.0f;
    if (md[7] == 0u && draw >= md[6]) m = as_f(md[8]);
    keep[i] = m;
    out[i] = x[view_offset(md, i, md[1], 9u)] * m;
}
