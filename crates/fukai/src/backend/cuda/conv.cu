// Convolution as matrix products over columns (a port of conv.wgsl): im2col gathers the input
// into columns laid out [groups, cin/groups · kh · kw, N, OH · OW]; col2im gathers column
// gradients back into the input, each input element summing its kernel taps in a fixed order
// (no atomics). md: 0 N, 1 C, 2 H, 3 W, 4 groups, 5 kh, 6 kw, 7/8 stride, 9/10 padding,
// 11/12 dilation, 13 OH, 14 OW, 15 input offset.

extern "C" __global__ void im2col(const u32* __restrict__ md, const float* src, float* dst) {
    u32 N = md[0], C = md[1], H = md[2], W = md[3], G = md[4];
    u32 kh = md[5], kw = md[6];
    u32 L = md[13] * md[14];
    u32 cg = C / G;
    u32 kg = cg * kh * kw;
    u32 i = THREAD_INDEX;
    if (i >= G * kg * N * L) return;
    u32 l = i % L;
    u32 n = (i / L) % N;
    u32 k = (i / (L * N)) % kg;
    u32 g = i / (L * N * kg);
    u32 kx = k % kw;
    u32 ky = (k / kw) % kh;
    u32 c = g * cg + k / (kh * kw);
    u32 oy = l / md[14];
    u32 ox = l % md[14];
    i32 y = (i32)(oy * md[7] + ky * md[11]) - (i32)md[9];
    i32 x = (i32)(ox * md[8] + kx * md[12]) - (i32)md[10];
    float v = 0.0f;
    if (y >= 0 && y < (i32)H && x >= 0 && x < (i32)W) {
        v = src[md[15] + ((n * C + c) * H + (u32)y) * W + (u32)x];
    }
    dst[i] = v;
}

extern "C" __global__ void col2im(const u32* __restrict__ md, const float* src, float* dst) {
    u32 N = md[0], C = md[1], H = md[2], W = md[3], G = md[4];
    u32 kh = md[5], kw = md[6];
    u32 OH = md[13], OW = md[14];
    u32 L = OH * OW;
    u32 cg = C / G;
    u32 kg = cg * kh * kw;
    u32 i = THREAD_INDEX;
    if (i >= N * C * H * W) return;
    u32 x = i % W;
    u32 y = (i / W) % H;
    u32 c = (i / (W * H)) % C;
    u32 n = i / (W * H * C);
    u32 g = c / cg;
    u32 ci = c % cg;
    float acc = 0.0f;
    for (u32 ky = 0u; ky < kh; ky++) {
        i32 ty = (i32)(y + md[9]) - (i32)(ky * md[11]);
        if (ty < 0 || ty % (i32)md[7] != 0) continue;
        u32 oy = (u32)ty / md[7];
        if (oy >= OH) continue;
        for (u32 kx = 0u; kx < kw; kx++) {
            i32 tx = (i32)(x + md[10]) - (i32)(kx * md[12]);
            if (tx < 0 || tx % (i32)md[8] != 0) continue;
            u32 ox = (u32)tx / md[8];
            if (ox >= OW) continue;
            u32 k = (ci * kh + ky) * kw + kx;
            acc = acc + src[md[15] + ((g * kg + k) * N + n) * L + oy * OW + ox];
        }
    }
    dst[i] = acc;
}
