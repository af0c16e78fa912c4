// Elementwise kernels over strided views (a port of elementwise.wgsl): copy, binary with
// broadcasting, unary and its backward, comparisons, casts, where. md[0] = n, md[1] = rank,
// md[2] = op code, md[3], md[4] = scalar parameters (f32 bits); views follow from md[5], each
// 1 + 2·rank words. Buffers: a, b, c read, out written.

#define ARGS const u32* __restrict__ md, const u32* a, const u32* b, const u32* c, u32* out

__device__ __forceinline__ u32 view(const u32* md, u32 k) { return 5u + k * (1u + 2u * md[1]); }

extern "C" __global__ void copy(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    out[i] = a[view_offset(md, i, md[1], view(md, 0u))];
}

// x^y with the C library's answers for negative x with integral y and for x = 0.
__device__ float pow_f(float x, float y) {
    if (y == 0.0f) return 1.0f;
    if (x == 0.0f) {
        if (y > 0.0f) return 0.0f;
        return as_f(0x7f800000u);
    }
    float m = powf(fabsf(x), y);
    if (x < 0.0f) {
        if (y != floorf(y)) return as_f(0x7fc00000u);
        if (((i32)y & 1) == 1) return -m;
    }
    return m;
}

__device__ float binary_op(u32 op, float x, float y) {
    switch (op) {
        case 0u: return x + y;
        case 1u: return x - y;
        case 2u: return x * y;
        case 3u: return x / y;
        case 4u: return max_nan(x, y);
        case 5u: return min_nan(x, y);
        default: return pow_f(x, y);
    }
}

extern "C" __global__ void binary(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    float x = as_f(a[view_offset(md, i, md[1], view(md, 0u))]);
    float y = as_f(b[view_offset(md, i, md[1], view(md, 1u))]);
    out[i] = as_u(binary_op(md[2], x, y));
}

__device__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// erfc(x) for x >= 0 (Numerical Recipes' Chebyshev fit, 1.2e-7 relative).
__device__ float erfc_pos(float x) {
    float t = 1.0f / (1.0f + 0.5f * x);
    float p = -x * x - 1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f +
        t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f +
        t * (-0.82215223f + t * 0.17087277f))))))));
    return t * expf(p);
}

__device__ float normal_cdf(float x) {
    float tail = 0.5f * erfc_pos(fabsf(x) * 0.70710678118654752f);
    if (x < 0.0f) return tail;
    return 1.0f - tail;
}

__device__ float tanh_f(float x) {
    // tanh from exp of a non-positive argument: no overflow for large |x|.
    float e = expf(-2.0f * fabsf(x));
    float t = (1.0f - e) / (1.0f + e);
    if (x < 0.0f) return -t;
    return t;
}

__device__ float unary_op(u32 op, float x, float p, float q) {
    switch (op) {
        case 0u: return -x;
        case 1u: return expf(x);
        case 2u: return logf(x);
        case 3u: return sqrtf(x);
        case 4u: return 1.0f / sqrtf(x);
        case 5u: return fabsf(x);
        case 6u: return tanh_f(x);
        case 7u: return sigmoid(x);
        case 8u: if (x <= 0.0f) return 0.0f; return x;
        case 9u: return x * normal_cdf(x);
        case 10u: {
            float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
            return 0.5f * x * (1.0f + tanh_f(u));
        }
        case 11u: return x * sigmoid(x);
        case 12u: return sinf(x);
        case 13u: return cosf(x);
        case 14u: return x * x;
        case 15u: return 1.0f / x;
        case 16u: return pow_f(x, p);
        case 17u: return x * p + q;
        case 18u:
            if (is_nan(x)) return x;
            if (x < p) return p;
            if (x > q) return q;
            return x;
        default: if (x > 0.0f) return x; return x * p;
    }
}

// s is the saved input or output (whichever the CPU's backward uses), g the upstream gradient.
__device__ float unary_grad(u32 op, float s, float g, float p, float q) {
    switch (op) {
        case 0u: return -g;
        case 1u: return g * s;
        case 2u: return g / s;
        case 3u: return g * 0.5f / s;
        case 4u: return g * -0.5f * s * s * s;
        case 5u: if (s > 0.0f) return g; if (s < 0.0f) return -g; return 0.0f;
        case 6u: return g * (1.0f - s * s);
        case 7u: return g * s * (1.0f - s);
        case 8u: if (s > 0.0f) return g; return 0.0f;
        case 9u: {
            float pdf = 0.3989422804014327f * expf(-0.5f * s * s);
            return g * (normal_cdf(s) + s * pdf);
        }
        case 10u: {
            float x3 = s * s * s;
            float t = tanh_f(0.7978845608028654f * (s + 0.044715f * x3));
            float dt = 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * s * s);
            return g * (0.5f * (1.0f + t) + 0.5f * s * (1.0f - t * t) * dt);
        }
        case 11u: { float sg = sigmoid(s); return g * sg * (1.0f + s * (1.0f - sg)); }
        case 12u: return g * cosf(s);
        case 13u: return -g * sinf(s);
        case 14u: return 2.0f * s * g;
        case 15u: return -g * s * s;
        case 16u: if (p == 0.0f) return 0.0f; return g * p * pow_f(s, p - 1.0f);
        case 17u: return g * p;
        case 18u:
            if (is_nan(s) || (s >= p && s <= q)) return g;
            return 0.0f;
        default: if (s > 0.0f) return g; return g * p;
    }
}

extern "C" __global__ void unary(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    float x = as_f(a[view_offset(md, i, md[1], view(md, 0u))]);
    out[i] = as_u(unary_op(md[2], x, as_f(md[3]), as_f(md[4])));
}

extern "C" __global__ void unary_backward(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    float s = as_f(a[view_offset(md, i, md[1], view(md, 0u))]);
    float g = as_f(b[view_offset(md, i, md[1], view(md, 1u))]);
    out[i] = as_u(unary_grad(md[2], s, g, as_f(md[3]), as_f(md[4])));
}

// md[3]: element kind of the operands: 0 f32, 1 u32, 2 i32.
__device__ bool cmp_op(u32 op, u32 kind, u32 x, u32 y) {
    bool lt, eq;
    if (kind == 0u) {
        lt = as_f(x) < as_f(y);
        eq = as_f(x) == as_f(y);
        // NaN compares false, except "not equal".
        if (is_nan(as_f(x)) || is_nan(as_f(y))) return op == 1u;
    } else if (kind == 1u) {
        lt = x < y;
        eq = x == y;
    } else {
        lt = (i32)x < (i32)y;
        eq = x == y;
    }
    switch (op) {
        case 0u: return eq;
        case 1u: return !eq;
        case 2u: return lt;
        case 3u: return lt || eq;
        case 4u: return !(lt || eq);
        default: return !lt;
    }
}

extern "C" __global__ void compare(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    u32 x = a[view_offset(md, i, md[1], view(md, 0u))];
    u32 y = b[view_offset(md, i, md[1], view(md, 1u))];
    out[i] = cmp_op(md[2], md[3], x, y) ? 1u : 0u;
}

// WGSL's float-to-integer conversions saturate (NaN to 0); CUDA's casts are undefined out of
// range, so clamp first.
__device__ u32 f2u_sat(float x) {
    if (!(x > 0.0f)) return 0u;
    if (x >= 4294967040.0f) return 4294967295u;
    return (u32)x;
}
__device__ i32 f2i_sat(float x) {
    if (is_nan(x)) return 0;
    if (x <= -2147483648.0f) return (i32)0x80000000u;
    if (x >= 2147483520.0f) return 2147483647;
    return (i32)x;
}

// md[2]: from kind (0 f32, 1 u32, 2 i32, 3 u8), md[3]: to kind.
extern "C" __global__ void convert(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    u32 w = a[view_offset(md, i, md[1], view(md, 0u))];
    u32 src_kind = md[2];
    u32 dst_kind = md[3];
    u32 r;
    if (src_kind == 0u) {
        float x = as_f(w);
        if (dst_kind == 1u) r = f2u_sat(fmaxf(x, 0.0f));
        else if (dst_kind == 2u) r = (u32)f2i_sat(x);
        else r = f2u_sat(fmaxf(x, 0.0f)) & 0xffu;
    } else {
        float x;
        if (src_kind == 2u) x = (float)(i32)w; else x = (float)w;
        if (dst_kind == 0u) r = as_u(x);
        else if (dst_kind == 3u) r = w & 0xffu;
        else r = w;
    }
    out[i] = r;
}

// cond (u32 words, non-zero picks a) in c.
extern "C" __global__ void where_cond(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    u32 k = c[view_offset(md, i, md[1], view(md, 2u))];
    if (k != 0u) {
        out[i] = a[view_offset(md, i, md[1], view(md, 0u))];
    } else {
        out[i] = b[view_offset(md, i, md[1], view(md, 1u))];
    }
}

extern "C" __global__ void fill(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    out[i] = md[3];
}

// index_select: out has the input's shape with dim md[2] replaced by the index's length; the
// index (i32 words) is b from offset md[3]. The input view (offset, then size and stride per
// dim, sizes those of the output) starts at md[5].
extern "C" __global__ void select_rows(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    u32 rank = md[1];
    u32 rem = i;
    u32 off = md[5];
    for (i32 d = (i32)rank - 1; d >= 0; d--) {
        u32 size = md[6u + 2u * (u32)d];
        u32 stride = md[7u + 2u * (u32)d];
        u32 coord = rem % size;
        if ((u32)d == md[2]) coord = b[md[3] + coord];
        off += coord * stride;
        rem /= size;
    }
    out[i] = a[off];
}

// Writes the contiguous a (from offset md[3]) into the positions of out described by the view
// at md[5]: how `cat` places each part.
extern "C" __global__ void place(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    out[view_offset(md, i, md[1], view(md, 0u))] = a[md[3] + i];
}

// out[i] = a[md[3] + b[i]]: elements at host-checked positions of a contiguous source (gather).
extern "C" __global__ void take(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    out[i] = a[md[3] + b[i]];
}

// The inverse: out[p] = sum of a[md[3] + c[k]] for k in b[p]..b[p+1], the sources that land on
// position p in their original order (a scatter-add with no atomics).
extern "C" __global__ void put_add(ARGS) {
    u32 p = THREAD_INDEX;
    if (p >= md[0]) return;
    float s = 0.0f;
    for (u32 k = b[p]; k < b[p + 1u]; k++) {
        s += as_f(a[md[3] + c[k]]);
    }
    out[p] = as_u(s);
}
