// In-place optimizer updates, one thread per element, the same per-element arithmetic as the
// CPU's `update_chunks` closures (a port of optim.wgsl). Buffers: weights (written), gradient,
// two state buffers (written). md: 0 n, 1 weight offset, 2 gradient offset, then each
// optimizer's settings (f32 bits).

#define ARGS const u32* __restrict__ md, float* w, const float* g, float* s1, float* s2

__device__ __forceinline__ float p(const u32* md, u32 k) { return as_f(md[k]); }

// md: 3 momentum buffer in use, 4 first step, 5 nesterov, 6 lr, 7 momentum, 8 weight decay.
extern "C" __global__ void sgd(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    u32 wi = md[1] + i;
    float x = w[wi];
    float d = g[md[2] + i] + p(md, 8u) * x;
    if (md[3] == 0u) {
        w[wi] = x - p(md, 6u) * d;
        return;
    }
    float b = d;
    if (md[4] == 0u) b = p(md, 7u) * s1[i] + d;
    s1[i] = b;
    if (md[5] == 1u) w[wi] = x - p(md, 6u) * (d + p(md, 7u) * b); else w[wi] = x - p(md, 6u) * b;
}

// md: 3 decoupled, 4 step size, 5 beta1, 6 beta2, 7 eps, 8 sqrt(bias correction 2), 9 lr,
//     10 weight decay.
extern "C" __global__ void adam(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    u32 wi = md[1] + i;
    float x = w[wi];
    float gr = g[md[2] + i];
    if (md[3] == 1u) {
        x = x * (1.0f - p(md, 9u) * p(md, 10u));
    } else {
        gr = gr + p(md, 10u) * x;
    }
    float b1 = p(md, 5u);
    float b2 = p(md, 6u);
    float m = b1 * s1[i] + (1.0f - b1) * gr;
    float v = b2 * s2[i] + (1.0f - b2) * gr * gr;
    s1[i] = m;
    s2[i] = v;
    w[wi] = x - p(md, 4u) * m / (sqrtf(v) / p(md, 8u) + p(md, 7u));
}

// md: 3 momentum buffer in use, 4 lr, 5 alpha, 6 eps, 7 momentum, 8 weight decay.
extern "C" __global__ void rmsprop(ARGS) {
    u32 i = THREAD_INDEX;
    if (i >= md[0]) return;
    u32 wi = md[1] + i;
    float x = w[wi];
    float gr = g[md[2] + i] + p(md, 8u) * x;
    float a = p(md, 5u);
    float sq = a * s1[i] + (1.0f - a) * gr * gr;
    s1[i] = sq;
    float upd = gr / (sqrtf(sq) + p(md, 6u));
    if (md[3] == 0u) {
        w[wi] = x - p(md, 4u) * upd;
    } else {
        float b = p(md, 7u) * s2[i] + upd;
        s2[i] = b;
        w[wi] = x - p(md, 4u) * b;
    }
}
