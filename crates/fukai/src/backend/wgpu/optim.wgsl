// In-place optimizer updates, one thread per element, the same per-element arithmetic as the
// CPU's `update_chunks` closures. Bindings: weights (rw), gradient, two state buffers (rw).
// md: 0 n, 1 weight offset, 2 gradient offset, then each optimizer's settings (f32 bits).

@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> s1: array<f32>;
@group(0) @binding(4) var<storage, read_write> s2: array<f32>;

fn p(k: u32) -> f32 { return bitcast<f32>(md[k]); }

// md: 3 momentum buffer in use, 4 first step, 5 nesterov, 6 lr, 7 momentum, 8 weight decay.
@compute @workgroup_size(256)
fn sgd(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    let wi = md[1] + i;
    let x = w[wi];
    let d = g[md[2] + i] + p(8u) * x;
    if md[3] == 0u {
        w[wi] = x - p(6u) * d;
        return;
    }
    var b = d;
    if md[4] == 0u { b = p(7u) * s1[i] + d; }
    s1[i] = b;
    if md[5] == 1u { w[wi] = x - p(6u) * (d + p(7u) * b); } else { w[wi] = x - p(6u) * b; }
}

// md: 3 decoupled, 4 step size, 5 beta1, 6 beta2, 7 eps, 8 sqrt(bias correction 2), 9 lr,
//     10 weight decay.
@compute @workgroup_size(256)
fn adam(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    let wi = md[1] + i;
    var x = w[wi];
    var gr = g[md[2] + i];
    if md[3] == 1u {
        x = x * (1.0 - p(9u) * p(10u));
    } else {
        gr = gr + p(10u) * x;
    }
    let b1 = p(5u);
    let b2 = p(6u);
    let m = b1 * s1[i] + (1.0 - b1) * gr;
    let v = b2 * s2[i] + (1.0 - b2) * gr * gr;
    s1[i] = m;
    s2[i] = v;
    w[wi] = x - p(4u) * m / (sqrt(v) / p(8u) + p(7u));
}

// md: 3 momentum buffer in use, 4 lr, 5 alpha, 6 eps, 7 momentum, 8 weight decay.
@compute @workgroup_size(256)
fn rmsprop(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = thread_index(wg, nwg, lid);
    if i >= md[0] { return; }
    let wi = md[1] + i;
    let x = w[wi];
    let gr = g[md[2] + i] + p(8u) * x;
    let a = p(5u);
    let sq = a * s1[i] + (1.0 - a) * gr * gr;
    s1[i] = sq;
    let upd = gr / (sqrt(sq) + p(6u));
    if md[3] == 0u {
        w[wi] = x - p(4u) * upd;
    } else {
        let b = p(7u) * s2[i] + upd;
        s2[i] = b;
        w[wi] = x - p(4u) * b;
    }
}
