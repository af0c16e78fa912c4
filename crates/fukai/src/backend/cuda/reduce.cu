// Reductions of a contiguous [outer, r, inner] view (element offset md[4]) over r (a port of
// reduce.wgsl): sum (md[3] = 0), max (1) or min (2) with the index of the first extreme (NaN
// wins). The order of combination depends only on r: each lane walks a fixed stride, then a
// fixed tree; no atomics.

#define ARGS const u32* __restrict__ md, const float* x, float* vals, i32* idxs

// Whether (v, i) beats (w, j) for max (want_max) or min; NaN beats numbers, ties go to the
// lower index.
__device__ bool better(float v, i32 i, float w, i32 j, bool want_max) {
    bool nv = is_nan(v);
    bool nw = is_nan(w);
    if (nv || nw) {
        if (nv && nw) return i < j;
        return nv;
    }
    if (v == w) return i < j;
    if (want_max) return v > w;
    return v < w;
}

// A running reduction: the sum, or the extreme and its index (-1 before the first element).
struct Acc {
    float v;
    i32 i;
};

// `a` combined with `b`, which covers later elements (for sums) or any elements (extremes).
__device__ Acc merge(const u32* md, Acc a, Acc b) {
    u32 op = md[3];
    if (op == 0u) return Acc{a.v + b.v, -1};
    if (b.i >= 0 && (a.i < 0 || better(b.v, b.i, a.v, a.i, op == 1u))) return b;
    return a;
}

// Elements first, first + step, ... of output (o, ii), in order.
__device__ Acc scan(const u32* md, const float* x, u32 o, u32 ii, u32 first, u32 step) {
    u32 r = md[1];
    u32 inner = md[2];
    Acc acc = Acc{0.0f, -1};
    for (u32 k = first; k < r; k += step) {
        acc = merge(md, acc, Acc{x[md[4] + (o * r + k) * inner + ii], (i32)k});
    }
    return acc;
}

__device__ void store(const u32* md, float* vals, i32* idxs, u32 out, Acc acc) {
    vals[out] = acc.v;
    if (md[3] != 0u) idxs[out] = acc.i;
}

// One block per output: lanes scan a fixed stride, then a fixed tree.
extern "C" __global__ void reduce_wide(ARGS) {
    __shared__ float sv[WG];
    __shared__ i32 si[WG];
    u32 out = GROUP_INDEX;
    u32 lid = threadIdx.x;
    u32 inner = md[2];
    if (out >= md[0] * inner) return;
    Acc mine = scan(md, x, out / inner, out % inner, lid, WG);
    sv[lid] = mine.v;
    si[lid] = mine.i;
    for (u32 s = WG / 2u; s > 0u; s /= 2u) {
        __syncthreads();
        if (lid < s) {
            Acc m = merge(md, Acc{sv[lid], si[lid]}, Acc{sv[lid + s], si[lid + s]});
            sv[lid] = m.v;
            si[lid] = m.i;
        }
    }
    if (lid == 0u) store(md, vals, idxs, out, Acc{sv[0], si[0]});
}

// One thread per output, for short reductions.
extern "C" __global__ void reduce_narrow(ARGS) {
    u32 out = THREAD_INDEX;
    u32 inner = md[2];
    if (out >= md[0] * inner) return;
    store(md, vals, idxs, out, scan(md, x, out / inner, out % inner, 0u, 1u));
}
