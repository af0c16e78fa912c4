// Shared by every fukai kernel. Binding 0 holds the launch's metadata words (sizes, strides,
// op codes, scalar bits); storage buffers follow from binding 1.
@group(0) @binding(0) var<storage, read> md: array<u32>;

const WG: u32 = 256u;

// The global thread index in a grid folded into x and y (x at most 65,535 workgroups).
fn thread_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * WG + lid;
}

fn group_index(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}

// The storage offset of logical element i of the view described at md[base..]: the offset,
// then (size, stride) for each of `rank` dims, outermost first.
fn view_offset(i: u32, rank: u32, base: u32) -> u32 {
    var rem = i;
    var off = md[base];
    for (var d = i32(rank) - 1; d >= 0; d = d - 1) {
        let size = md[base + 1u + 2u * u32(d)];
        let stride = md[base + 2u + 2u * u32(d)];
        off = off + (rem % size) * stride;
        rem = rem / size;
    }
    return off;
}

fn is_nan(x: f32) -> bool {
    // Bit test: compilers may fold x != x away under fast-math assumptions.
    let b = bitcast<u32>(x);
    return (b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu) != 0u;
}

fn max_nan(a: f32, b: f32) -> f32 {
    if is_nan(a) || a >= b { return a; }
    return b;
}

fn min_nan(a: f32, b: f32) -> f32 {
    if is_nan(a) || a <= b { return a; }
    return b;
}
