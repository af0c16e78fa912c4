// Operand conversion for cuBLAS's bf16 products (CUDA only: wgpu has no bf16 path). md[0] =
// values, md[1] = the first value's word offset in `a`. Each thread packs two values into one
// word, the lower address in the low half, as the CPU's `half::bf16` would store them.

// f32 bits to bf16 bits: round to nearest, ties to even; a NaN stays a quiet NaN (the rounding
// add could carry a NaN's payload into infinity).
__device__ __forceinline__ u32 bf16_bits(u32 x) {
    if ((x & 0x7fffffffu) > 0x7f800000u) return (x >> 16) | 0x40u;
    return (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
}

extern "C" __global__ void to_bf16(const u32* __restrict__ md, const u32* a, u32* out) {
    u32 i = THREAD_INDEX;
    u32 n = md[0];
    u32 first = 2u * i;
    if (first >= n) return;
    u32 lo = bf16_bits(a[md[1] + first]);
    u32 hi = first + 1u < n ? bf16_bits(a[md[1] + first + 1u]) : 0u;
    out[i] = lo | (hi << 16);
}
