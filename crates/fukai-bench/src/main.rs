//! `fukai-bench`: runs named workloads and prints one JSON object per line per measurement.
//! `bench/run.sh` runs it next to `bench/torch_bench.py` (the same workloads in PyTorch) and
//! writes BENCHMARKS.md.

mod conv;
mod convlstm;
mod direct_gemm;
mod fashion;
mod gpt;
mod harness;
mod linear_rows;
mod llm_decode;
mod lstm;
mod matmul;
mod minilm;
mod mlp;
mod onnx_minilm;
mod qmatvec;
mod tiny;

use std::process::ExitCode;

// The allocator a deployed fukai binary uses (see fukai-cli): it keeps freed pages for reuse,
// where glibc returns large buffers to the OS and page-faults them back in every step.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (index 15 in both its v2 and v3 option enums).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc still returns freed pages to the OS 10 ms after the last use by default; a training
/// step frees and reallocates the same large buffers, which then fault in zeroed pages again
/// (100k page faults in 25 s of a CNN epoch, 700 with purging off).
fn keep_freed_pages() {
    // SAFETY: sets a plain integer option; called first thing in main, before any thread starts.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

const USAGE: &str = "\
usage: fukai-bench [--threads N] [--reps R] [--sizes 64,128,..] [--tiny-iters N]
                   [--mlp-steps N] [--model DIR] [--max-batches N] [WORKLOAD...]

Workloads (default: all):
  matmul            square f32 matmul, fukai vs the gemm crate (GFLOP/s)
  tiny              every tiny_* op below
  tiny_add, tiny_mul, tiny_relu, tiny_sum_all, tiny_matmul_4x4
                    forward-only ops on 4-element (4x4) tensors, ns per op
  mlp_step          13-64-64-3 MLP SGD step, batch 32, us per step
  conv2d            conv2d forward+backward, 64x32x28x28 * 64x32x3x3
  conv3d            conv3d forward+backward, 8x32x10x32x32 * 64x32x3x4x4, stride (1,2,2)
  convlstm_step     ConvLSTM encoder-forecaster training step (Moving-MNIST-shaped batch of
                    8 x 20 frames, 16x16x16, hidden 64), ms per step
  lstm_vowels       one LSTM(64) training epoch on JapaneseVowels (needs FUKAI_ASSETS), ms
  minilm            all-MiniLM-L6-v2 embeddings, 8 texts x 128 tokens (--model DIR, or
                    $FUKAI_ASSETS/models/all-MiniLM-L6-v2; skipped without either)
  onnx_minilm       all-MiniLM-L6-v2 from the committed ONNX graph (fukai::onnx::Model):
                    1 sentence, 8 sentences padded, 8 x 128 tokens (needs FUKAI_ASSETS;
                    bench/onnx_minilm.sh runs it beside ONNX Runtime; not part of `all`)
  llm_decode        one SmolLM2-135M decode step after 256 tokens (--model FILE.gguf or
                    $FUKAI_GGUF_SMOLLM2; skipped without either), ms per token (not part of `all`)
  qmatvec           quantized matrix-vector products (fukai::quant::QMatrix) at SmolLM2-135M's
                    shapes (Q4_1, Q8_0; Q4_K, Q6_K) beside f32 on the dequantized weights:
                    us and weight GB/s (not part of `all`)
  linear_rows       x Wᵀ for 1 to 1024 rows at MiniLM's and SmolLM2's shapes, fukai (frozen,
                    trained) vs the gemm crate on the same [out, in] weight (GFLOP/s; not part
                    of `all`); FUKAI_LINEAR_SHAPES=208x384x1536,... times other shapes
  gpt_step          200 char-GPT training steps (4x128, context 64, batch 12), ms per step
  fashion_mlp       one training epoch of `fukai train --preset fashion-mlp` (the CLI binary
                    next to this one, or $FUKAI_CLI; needs FUKAI_ASSETS), ms; --reps R trains
                    R epochs in the run and reports the median
  fashion_cnn       the same for `--preset fashion-cnn`
  all               all of the above

--threads N builds rayon's global pool with N threads before any work (default: 1).
--max-batches N stops the fashion_* epochs after N batches (a smoke run).
Output: one JSON object per line; the last line reports the process's peak RSS.";

struct Args {
    threads: usize,
    reps: Option<usize>,
    sizes: Vec<usize>,
    tiny_iters: usize,
    mlp_steps: usize,
    model: Option<String>,
    max_batches: Option<usize>,
    workloads: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        threads: 1,
        reps: None,
        sizes: matmul::SIZES.to_vec(),
        tiny_iters: 1_000_000,
        mlp_steps: 2_000,
        model: None,
        max_batches: None,
        workloads: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    let num = |flag: &str, v: Option<String>| -> Result<usize, String> {
        v.ok_or(format!("{flag} needs a value"))?
            .parse::<usize>()
            .map_err(|e| format!("{flag}: {e}"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--threads" => args.threads = num("--threads", it.next())?.max(1),
            "--reps" => args.reps = Some(num("--reps", it.next())?.max(1)),
            "--tiny-iters" => args.tiny_iters = num("--tiny-iters", it.next())?.max(1),
            "--mlp-steps" => args.mlp_steps = num("--mlp-steps", it.next())?.max(1),
            "--max-batches" => args.max_batches = Some(num("--max-batches", it.next())?.max(1)),
            "--model" => args.model = Some(it.next().ok_or("--model needs a value")?),
            "--sizes" => {
                let v = it.next().ok_or("--sizes needs a value")?;
                args.sizes = v
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<usize>()
                            .map_err(|e| format!("--sizes: {e}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
            w => args.workloads.push(w.to_string()),
        }
    }
    if args.workloads.is_empty() {
        args.workloads.push("all".into());
    }
    Ok(args)
}

/// Expands `all` and `tiny` into the concrete workload names, rejecting unknown ones.
fn expand(workloads: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for w in workloads {
        match w.as_str() {
            "all" => {
                out.push("matmul".to_string());
                out.extend(tiny::OPS.iter().map(|s| s.to_string()));
                out.push("mlp_step".into());
                out.push("conv2d".into());
                out.push("conv3d".into());
                out.push("convlstm_step".into());
                out.push("lstm_vowels".into());
                out.push("gpt_step".into());
                out.push("minilm".into());
                out.extend(fashion::WORKLOADS.iter().map(|(w, _)| w.to_string()));
            }
            "tiny" => out.extend(tiny::OPS.iter().map(|s| s.to_string())),
            "matmul" | "mlp_step" | "conv2d" | "conv3d" | "convlstm_step" | "lstm_vowels"
            | "gpt_step" | "minilm" | "onnx_minilm" | "qmatvec" | "linear_rows" | "llm_decode" => {
                out.push(w.clone())
            }
            t if tiny::OPS.contains(&t) => out.push(w.clone()),
            f if fashion::WORKLOADS.iter().any(|(w, _)| *w == f) => out.push(w.clone()),
            other => return Err(format!("unknown workload {other:?}")),
        }
    }
    Ok(out)
}

fn run(args: &Args) -> Result<(), String> {
    let workloads = expand(&args.workloads)?;
    // Before any fukai or gemm call: the global pool is fixed at its first use.
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .map_err(|e| format!("building the rayon pool: {e}"))?;
    let threads = fukai::parallel::num_threads();
    if threads != args.threads {
        return Err(format!(
            "asked for {} threads, fukai sees {threads} (built without the `threads` feature?)",
            args.threads
        ));
    }
    let start = std::time::Instant::now();
    for w in &workloads {
        let r = match w.as_str() {
            "matmul" => matmul::run(threads, &args.sizes, args.reps),
            "mlp_step" => mlp::run(threads, args.mlp_steps, args.reps.unwrap_or(15)),
            "conv2d" => conv::CONV2D.run(threads, args.reps.unwrap_or(7)),
            "conv3d" => conv::CONV3D.run(threads, args.reps.unwrap_or(5)),
            "convlstm_step" => convlstm::run(threads, args.reps.unwrap_or(5)),
            "lstm_vowels" => lstm::run(threads, args.reps.unwrap_or(9)),
            "minilm" => minilm::run(threads, args.reps.unwrap_or(10), args.model.as_deref()),
            "onnx_minilm" => onnx_minilm::run(threads, args.reps.unwrap_or(15)),
            "qmatvec" => qmatvec::run(threads, args.reps.unwrap_or(9)),
            "llm_decode" => llm_decode::run(threads, args.reps.unwrap_or(7), args.model.as_deref()),
            "linear_rows" => linear_rows::run(threads, args.reps.unwrap_or(9)),
            "gpt_step" => gpt::run(threads, args.reps.unwrap_or(1)),
            "fashion_mlp" | "fashion_cnn" => {
                fashion::run(w, threads, args.reps.unwrap_or(1), args.max_batches)
            }
            t => tiny::run(t, threads, args.tiny_iters),
        };
        r.map_err(|e| format!("{w}: {e}"))?;
    }
    let mut line = harness::Line::new(&workloads.join(","), "fukai", threads)
        .str("kind", "process")
        .num("wall_s", start.elapsed().as_secs_f64());
    // The fashion_* workloads train in a child process: its peak counts as this process's.
    let peak = harness::peak_rss_kb().max(harness::children_peak_rss_kb());
    if let Some(kb) = peak {
        line = line.int("peak_rss_kb", kb);
    }
    line.print();
    Ok(())
}

fn main() -> ExitCode {
    keep_freed_pages();
    // FUKAI_SPIN=0 lets the pool's idle workers sleep during model runs (to compare).
    if std::env::var("FUKAI_SPIN").is_ok_and(|v| v == "0") {
        fukai::parallel::set_spinning(false);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("fukai-bench: {msg}\n");
            }
            eprintln!("{USAGE}");
            return if msg.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("fukai-bench: {msg}");
            ExitCode::FAILURE
        }
    }
}
