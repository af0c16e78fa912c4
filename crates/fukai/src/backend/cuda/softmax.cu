// Row-wise kernels, one block per row, reductions over a fixed 256-lane tree (a port of
// softmax.wgsl). Softmax rows are the (outer, inner) lines of a contiguous [outer, r, inner]
// view. md: 0 outer, 1 r, 2 inner, 3 log (1 = log-softmax), 4 x offset, 5 second input offset,
// 6 label smoothing (f32 bits), 7 1 / valid rows (f32 bits).

#define ARGS const u32* __restrict__ md, const float* x, const float* g, const i32* tgt, float* y, float* rowv

__device__ float tree_max(float* red, float v, u32 lid) {
    red[lid] = v;
    for (u32 s = WG / 2u; s > 0u; s /= 2u) {
        __syncthreads();
        if (lid < s) red[lid] = max_nan(red[lid], red[lid + s]);
    }
    __syncthreads();
    float r = red[0];
    __syncthreads();
    return r;
}

__device__ float tree_sum(float* red, float v, u32 lid) {
    red[lid] = v;
    for (u32 s = WG / 2u; s > 0u; s /= 2u) {
        __syncthreads();
        if (lid < s) red[lid] = red[lid] + red[lid + s];
    }
    __syncthreads();
    float r = red[0];
    __syncthreads();
    return r;
}

__device__ __forceinline__ float neg_inf() { return as_f(0xff800000u); }

__device__ __forceinline__ u32 idx(const u32* md, u32 row, u32 k) {
    u32 inner = md[2];
    return (row / inner) * md[1] * inner + k * inner + row % inner;
}

extern "C" __global__ void softmax_fwd(ARGS) {
    __shared__ float red[WG];
    u32 row = GROUP_INDEX;
    u32 lid = threadIdx.x;
    if (row >= md[0] * md[2]) return;
    u32 r = md[1];
    u32 xo = md[4];
    float m = neg_inf();
    for (u32 k = lid; k < r; k += WG) m = max_nan(m, x[xo + idx(md, row, k)]);
    m = tree_max(red, m, lid);
    float s = 0.0f;
    for (u32 k = lid; k < r; k += WG) s = s + expf(x[xo + idx(md, row, k)] - m);
    s = tree_sum(red, s, lid);
    float ls = logf(s);
    for (u32 k = lid; k < r; k += WG) {
        float v = x[xo + idx(md, row, k)] - m;
        if (md[3] == 1u) y[idx(md, row, k)] = v - ls; else y[idx(md, row, k)] = expf(v) / s;
    }
}

// x holds the forward output (contiguous), g the upstream gradient (offset md[5]).
extern "C" __global__ void softmax_bwd(ARGS) {
    __shared__ float red[WG];
    u32 row = GROUP_INDEX;
    u32 lid = threadIdx.x;
    if (row >= md[0] * md[2]) return;
    u32 r = md[1];
    u32 xo = md[4];
    u32 go = md[5];
    float s = 0.0f;
    for (u32 k = lid; k < r; k += WG) {
        u32 i = idx(md, row, k);
        if (md[3] == 1u) s = s + g[go + i]; else s = s + g[go + i] * x[xo + i];
    }
    s = tree_sum(red, s, lid);
    for (u32 k = lid; k < r; k += WG) {
        u32 i = idx(md, row, k);
        if (md[3] == 1u) {
            y[i] = g[go + i] - expf(x[xo + i]) * s;
        } else {
            y[i] = x[xo + i] * (g[go + i] - s);
        }
    }
}

// Cross-entropy of logits [n, c] (inner = 1) against targets (-1: ignored row): writes the
// probabilities to y and each row's loss to rowv (0 for ignored rows).
extern "C" __global__ void ce_fwd(ARGS) {
    __shared__ float red[WG];
    u32 row = GROUP_INDEX;
    u32 lid = threadIdx.x;
    if (row >= md[0]) return;
    u32 c = md[1];
    u32 xo = md[4] + row * c;
    float m = neg_inf();
    for (u32 k = lid; k < c; k += WG) m = max_nan(m, x[xo + k]);
    m = tree_max(red, m, lid);
    float s = 0.0f;
    float sx = 0.0f;
    for (u32 k = lid; k < c; k += WG) {
        float v = x[xo + k] - m;
        s = s + expf(v);
        sx = sx + v;
    }
    s = tree_sum(red, s, lid);
    sx = tree_sum(red, sx, lid);
    float inv = 1.0f / s;
    for (u32 k = lid; k < c; k += WG) y[row * c + k] = expf(x[xo + k] - m) * inv;
    if (lid == 0u) {
        i32 t = tgt[row];
        if (t < 0) {
            rowv[row] = 0.0f;
        } else {
            float eps = as_f(md[6]);
            rowv[row] = logf(s) - (1.0f - eps) * (x[xo + (u32)t] - m) - eps * (sx / (float)c);
        }
    }
}

// The gradient from the saved probabilities (x) and the upstream scalar g[md[5]].
extern "C" __global__ void ce_bwd(ARGS) {
    u32 i = THREAD_INDEX;
    u32 c = md[1];
    if (i >= md[0] * c) return;
    u32 row = i / c;
    u32 k = i % c;
    i32 t = tgt[row];
    if (t < 0) { y[i] = 0.0f; return; }
    float eps = as_f(md[6]);
    float scale = g[md[5]] * as_f(md[7]);
    float v = x[i];
    if ((u32)t == k) v = v - (1.0f - eps);
    y[i] = (v - eps / (float)c) * scale;
}
