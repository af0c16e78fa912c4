// Max and average pools over the planes [P, H, W] of a contiguous input, with any windows
// (fixed or adaptive), a port of pool.wgsl. Window tables: per output row and column (start,
// end, count), then per input row and column the range [lo, hi) of windows covering it;
// backward passes gather over those, in window order (no atomics).
// md: 0 planes, 1 H, 2 W, 3 OH, 4 OW, 5 input offset.

#define ARGS const u32* __restrict__ md, const float* x, const u32* tab, u32* idx, float* out

__device__ __forceinline__ u32 ywin(const u32* md, const u32* tab, u32 o, u32 f) { return tab[o * 3u + f]; }
__device__ __forceinline__ u32 xwin(const u32* md, const u32* tab, u32 o, u32 f) { return tab[md[3] * 3u + o * 3u + f]; }
__device__ __forceinline__ u32 ycover(const u32* md, const u32* tab, u32 y, u32 f) { return tab[(md[3] + md[4]) * 3u + y * 2u + f]; }
__device__ __forceinline__ u32 xcover(const u32* md, const u32* tab, u32 x, u32 f) { return tab[(md[3] + md[4]) * 3u + md[1] * 2u + x * 2u + f]; }

// Output i of [P, OH, OW]: the window's first maximum (or its first NaN) and its index in the
// plane (max), or its mean over the window's divisor (average).
__device__ void pool_out(ARGS, u32 i, bool take_max) {
    u32 ohw = md[3] * md[4];
    u32 p = i / ohw;
    u32 oy = (i % ohw) / md[4];
    u32 ox = i % md[4];
    u32 base = md[5] + p * md[1] * md[2];
    u32 best = ywin(md, tab, oy, 0u) * md[2] + xwin(md, tab, ox, 0u);
    float bv = as_f(0xff800000u);
    float s = 0.0f;
    bool done = false;
    for (u32 y = ywin(md, tab, oy, 0u); y < ywin(md, tab, oy, 1u) && !done; y++) {
        for (u32 xx = xwin(md, tab, ox, 0u); xx < xwin(md, tab, ox, 1u); xx++) {
            float v = x[base + y * md[2] + xx];
            if (!take_max) {
                s = s + v;
            } else if (v > bv || is_nan(v)) {
                bv = v;
                best = y * md[2] + xx;
                if (is_nan(v)) { done = true; break; }
            }
        }
    }
    if (take_max) {
        idx[i] = best;
        out[i] = bv;
    } else {
        out[i] = s / (float)(ywin(md, tab, oy, 2u) * xwin(md, tab, ox, 2u));
    }
}

extern "C" __global__ void max_fwd(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0] * md[3] * md[4]) return;
    pool_out(md, x, tab, idx, out, i, true);
}

extern "C" __global__ void avg_fwd(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0] * md[3] * md[4]) return;
    pool_out(md, x, tab, idx, out, i, false);
}

// The input gradient at element i of [P, H, W] from the upstream gradient x [P, OH, OW]
// (offset md[5]): the windows covering it in order, each adding its whole gradient where it
// chose this element (max) or its share (average).
__device__ float pool_grad(ARGS, u32 i, bool take_max) {
    u32 hw = md[1] * md[2];
    u32 p = i / hw;
    u32 y = (i % hw) / md[2];
    u32 xx = i % md[2];
    u32 me = y * md[2] + xx;
    u32 ohw = md[3] * md[4];
    float s = 0.0f;
    for (u32 oy = ycover(md, tab, y, 0u); oy < ycover(md, tab, y, 1u); oy++) {
        for (u32 ox = xcover(md, tab, xx, 0u); ox < xcover(md, tab, xx, 1u); ox++) {
            u32 o = p * ohw + oy * md[4] + ox;
            if (take_max) {
                if (idx[o] == me) s = s + x[md[5] + o];
            } else {
                s = s + x[md[5] + o] / (float)(ywin(md, tab, oy, 2u) * xwin(md, tab, ox, 2u));
            }
        }
    }
    return s;
}

extern "C" __global__ void max_bwd(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0] * md[1] * md[2]) return;
    out[i] = pool_grad(md, x, tab, idx, out, i, true);
}

extern "C" __global__ void avg_bwd(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0] * md[1] * md[2]) return;
    out[i] = pool_grad(md, x, tab, idx, out, i, false);
}
