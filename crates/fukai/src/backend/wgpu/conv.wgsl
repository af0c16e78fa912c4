// Convolution as matrix products over columns: im2col gathers the input into columns laid out
// [groups, cin/groups · kh · kw, N, OH · OW]; col2im gathers column gradients back into the
// input, each input element summing its kernel taps in a fixed order (no atomics).
// md: 0 N, 1 C, 2 H, 3 W, 4 groups, 5 kh, 6 kw, 7/8 stride, 9/10 padding, 11/12 dilation,
//     13 OH, 14 OW, 15 input offset.

@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256)
fn im2col(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let N = md[0]; let C = md[1]; let H = md[2]; let W = md[3]; let G = md[4];
    let kh = md[5]; let kw = md[6];
    let L = md[13] * md[14];
    let cg = C / G;
    let kg = cg * kh * kw;
    let i = thread_index(wg, nwg, lid);
    if i >= G * kg * N * L { return; }
    let l = i % L;
    let n = (i / L) % N;
    let k = (i / (L * N)) % kg;
    let g = i / (L * N * kg);
    let kx = k % kw;
    let ky = (k / kw) % kh;
    let c = g * cg + k / (kh * kw);
    let oy = l / md[14];
    let ox = l % md[14];
    let y = i32(oy * md[7] + ky * md[11]) - i32(md[9]);
    let x = i32(ox * md[8] + kx * md[12]) - i32(md[10]);
    var v = 0.0;
    if y >= 0 && y < i32(H) && x >= 0 && x < i32(W) {
        v = src[md[15] + ((n * C + c) * H + u32(y)) * W + u32(x)];
    }
    dst[i] = v;
}

@compute @workgroup_size(256)
fn col2im(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let N = md[0]; let C = md[1]; let H = md[2]; let W = md[3]; let G = md[4];
    let kh = md[5]; let kw = md[6];
    let OH = md[13]; let OW = md[14];
    let L = OH * OW;
    let cg = C / G;
    let kg = cg * kh * kw;
    let i = thread_index(wg, nwg, lid);
    if i >= N * C * H * W { return; }
    let x = i % W;
    let y = (i / W) % H;
    let c = (i / (W * H)) % C;
    let n = i / (W * H * C);
    let g = c / cg;
    let ci = c % cg;
    var acc = 0.0;
    for (var ky = 0u; ky < kh; ky = ky + 1u) {
        let ty = i32(y + md[9]) - i32(ky * md[11]);
        if ty < 0 || ty % i32(md[7]) != 0 { continue; }
        let oy = u32(ty) / md[7];
        if oy >= OH { continue; }
        for (var kx = 0u; kx < kw; kx = kx + 1u) {
            let tx = i32(x + md[10]) - i32(kx * md[12]);
            if tx < 0 || tx % i32(md[8]) != 0 { continue; }
            let ox = u32(tx) / md[8];
            if ox >= OW { continue; }
            let k = (ci * kh + ky) * kw + kx;
            acc = acc + src[md[15] + ((g * kg + k) * N + n) * L + oy * OW + ox];
        }
    }
    dst[i] = acc;
}
