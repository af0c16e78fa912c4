// Shared by every fukai CUDA kernel, a port of prelude.wgsl. Each kernel takes the launch's
// metadata words first (sizes, strides, op codes, scalar bits), then its buffers, all 4-byte
// words, in the order the WGSL kernel of the same name binds them. Float literals carry an f:
// an unsuffixed one would make the arithmetic double and the results differ from the CPU's.
typedef unsigned int u32;
typedef int i32;

#define WG 256u

// The global thread index in a grid folded into x and y (x at most 65,535 blocks).
#define THREAD_INDEX ((blockIdx.x + blockIdx.y * gridDim.x) * WG + threadIdx.x)
#define GROUP_INDEX (blockIdx.x + blockIdx.y * gridDim.x)

__device__ __forceinline__ float as_f(u32 x) { return __uint_as_float(x); }
__device__ __forceinline__ u32 as_u(float x) { return __float_as_uint(x); }

// The storage offset of logical element i of the view described at md[base..]: the offset,
// then (size, stride) for each of `rank` dims, outermost first.
__device__ u32 view_offset(const u32* md, u32 i, u32 rank, u32 base) {
    u32 rem = i;
    u32 off = md[base];
    for (i32 d = (i32)rank - 1; d >= 0; d--) {
        u32 size = md[base + 1u + 2u * (u32)d];
        u32 stride = md[base + 2u + 2u * (u32)d];
        off += (rem % size) * stride;
        rem /= size;
    }
    return off;
}

__device__ __forceinline__ bool is_nan(float x) {
    // Bit test, as in the WGSL prelude.
    u32 b = as_u(x);
    return (b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu) != 0u;
}

__device__ __forceinline__ float max_nan(float a, float b) {
    if (is_nan(a) || a >= b) return a;
    return b;
}

__device__ __forceinline__ float min_nan(float a, float b) {
    if (is_nan(a) || a <= b) return a;
    return b;
}
