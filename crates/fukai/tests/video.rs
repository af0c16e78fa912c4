//! Video: the Moving MNIST generator, folders of frames, clip batches, the two video
//! predictors, and a run that learns to beat the copy-last-frame baseline.

use fukai::data::{Clips, FrameClips, MovingMnist, MovingMnistConfig};
use fukai::models::{VideoConfig, VideoPredictor};
use fukai::nn::Module;
use fukai::run::{Existing, Run, RunConfig};
use fukai::train::{Batches, ClipBatches};
use fukai::{DType, Tensor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod rng_lock;
use rng_lock::seeded;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fukai-video-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Digits with distinct, recognizable values: digit `i` is a filled square of value (i+1)/8.
fn square_digits(n: usize) -> Vec<f32> {
    let mut v = vec![0f32; n * 784];
    for i in 0..n {
        for r in 4..24 {
            for c in 4..24 {
                v[i * 784 + r * 28 + c] = (i + 1) as f32 / 8.0;
            }
        }
    }
    v
}

fn clip(set: &dyn Clips, i: usize) -> Vec<f32> {
    let mut v = vec![0f32; set.clip_len()];
    set.clip(i, &mut v).unwrap();
    v
}

#[test]
fn moving_mnist_is_seeded_and_draws_its_trajectories() {
    let cfg = MovingMnistConfig {
        clips: 50,
        ..Default::default()
    };
    let set = MovingMnist::new(square_digits(5), cfg.clone()).unwrap();
    assert_eq!(
        (set.len(), set.frames(), set.frame_shape()),
        (50, 20, [1, 64, 64])
    );
    // The same clip on every read; another seed, other clips.
    assert_eq!(clip(&set, 7), clip(&set, 7));
    let other = set
        .with_config(MovingMnistConfig { seed: 1, ..cfg })
        .unwrap();
    assert_ne!(clip(&set, 7), clip(&other, 7));
    let mut moved = 0;
    for i in 0..50 {
        let v = clip(&set, i);
        let (which, path) = set.trajectory(i);
        assert_eq!((which.len(), path.len()), (2, 20));
        for (t, frame) in v.chunks(64 * 64).enumerate() {
            for (d, &(y, x)) in which.iter().zip(&path[t]) {
                // Every digit stays inside the frame ...
                assert!(y <= 36 && x <= 36, "clip {i} frame {t}: digit at {y},{x}");
                // ... and shows at its spot (max-combined with the other digit).
                let want = (*d + 1) as f32 / 8.0;
                let got = frame[(y + 10) * 64 + x + 10];
                assert!(got >= want, "clip {i} frame {t}: {got} < {want}");
            }
            // Nothing is drawn outside the two squares.
            let inside = |r: usize, c: usize| {
                path[t]
                    .iter()
                    .any(|&(y, x)| (y + 4..y + 24).contains(&r) && (x + 4..x + 24).contains(&c))
            };
            for r in 0..64 {
                for c in 0..64 {
                    if !inside(r, c) {
                        assert_eq!(frame[r * 64 + c], 0.0, "clip {i} frame {t} at {r},{c}");
                    }
                }
            }
        }
        moved += usize::from(path[0] != path[19]);
    }
    assert!(moved >= 45, "digits move: {moved} of 50 clips");
}

#[test]
fn moving_mnist_refuses_bad_settings() {
    let bad = |digits: Vec<f32>, cfg: MovingMnistConfig, what: &str| {
        let e = MovingMnist::new(digits, cfg).expect_err(what).to_string();
        assert!(e.contains("MovingMnist"), "{what}: {e}");
        e
    };
    let d = MovingMnistConfig::default();
    let e = bad(vec![0.0; 700], d.clone(), "partial digit");
    assert!(e.contains("700"), "{e}");
    bad(Vec::new(), d.clone(), "no digits");
    let e = bad(
        square_digits(1),
        MovingMnistConfig {
            size: 20,
            ..d.clone()
        },
        "small frame",
    );
    assert!(e.contains("20"), "{e}");
    bad(
        square_digits(1),
        MovingMnistConfig {
            frames: 0,
            ..d.clone()
        },
        "no frames",
    );
    bad(
        square_digits(1),
        MovingMnistConfig {
            speed: (3.0, 1.0),
            ..d.clone()
        },
        "speeds",
    );
    bad(
        square_digits(1),
        MovingMnistConfig {
            speed: (f64::NAN, 1.0),
            ..d
        },
        "nan speed",
    );
    let set = MovingMnist::new(
        square_digits(1),
        MovingMnistConfig {
            clips: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let mut v = vec![0f32; set.clip_len()];
    assert!(set.clip(2, &mut v).is_err());
    assert!(set.clip(0, &mut v[1..]).is_err());
}

fn write_clip(dir: &Path, frames: usize, size: u32, base: u8) {
    std::fs::create_dir_all(dir).unwrap();
    for t in 0..frames {
        let img = image::GrayImage::from_fn(size, size, |x, y| {
            image::Luma([base.wrapping_add((t as u32 * 10 + x + y) as u8)])
        });
        img.save(dir.join(format!("frame_{t:03}.png"))).unwrap();
    }
}

#[test]
fn frame_folders_read_in_order_and_bad_ones_are_named() {
    let root = scratch("frames");
    write_clip(&root.join("clip_0002"), 4, 8, 100);
    write_clip(&root.join("clip_0001"), 4, 8, 0);
    let clips = FrameClips::read_folder(&root, None, 1).unwrap();
    assert_eq!(
        (clips.len(), clips.frames(), clips.frame_shape()),
        (2, 4, [1, 8, 8])
    );
    assert_eq!(clips.names, ["clip_0001", "clip_0002"]);
    let v = clip(&clips, 1);
    // Frame 2 of clip_0002, pixel (x=3, y=1): 100 + 20 + 4.
    assert_eq!(v[2 * 64 + 8 + 3], 124.0 / 255.0);
    // Resized on request, RGB on request.
    let rgb = FrameClips::read_folder(&root, Some([4, 4]), 3).unwrap();
    assert_eq!(rgb.frame_shape(), [3, 4, 4]);

    // A clip with another frame count is named.
    write_clip(&root.join("clip_0003"), 3, 8, 0);
    let e = FrameClips::read_folder(&root, None, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("clip_0003") && e.contains("3 frames"), "{e}");
    std::fs::remove_dir_all(root.join("clip_0003")).unwrap();
    // A corrupt frame is named.
    std::fs::write(root.join("clip_0002/frame_001.png"), b"not a png").unwrap();
    let e = FrameClips::read_folder(&root, None, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("frame_001.png"), "{e}");
    // An empty folder and a bad channel count.
    let empty = scratch("frames-empty");
    let e = FrameClips::read_folder(&empty, None, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no clip folders"), "{e}");
    assert!(FrameClips::read_folder(&root, None, 2).is_err());
}

#[test]
fn clip_batches_split_frames_and_carry_the_last_frame_as_baseline() {
    let cfg = MovingMnistConfig {
        clips: 5,
        frames: 6,
        size: 32,
        ..Default::default()
    };
    let set: Arc<dyn Clips> = Arc::new(MovingMnist::new(square_digits(3), cfg).unwrap());
    let batches = ClipBatches::new(set.clone(), vec![4, 1], 2, 4).unwrap();
    let b = batches.epoch(0, 0).next().unwrap().unwrap();
    let (x, y, base) = (
        b.x.to_vec::<f32>().unwrap(),
        b.y.to_vec::<f32>().unwrap(),
        b.baseline.unwrap().to_vec::<f32>().unwrap(),
    );
    let f = 32 * 32;
    for (row, idx) in [4usize, 1].into_iter().enumerate() {
        let c = clip(&*set, idx);
        assert_eq!(x[row * 4 * f..(row + 1) * 4 * f], c[..4 * f]);
        assert_eq!(y[row * 2 * f..(row + 1) * 2 * f], c[4 * f..]);
        for k in 0..2 {
            let at = (row * 2 + k) * f;
            assert_eq!(base[at..at + f], c[3 * f..4 * f]);
        }
    }
    assert!(ClipBatches::new(set.clone(), vec![0], 2, 6).is_err());
    assert!(ClipBatches::new(set.clone(), vec![0], 2, 0).is_err());
    assert!(ClipBatches::new(set, vec![5], 2, 3).is_err());
}

fn video_cfg(arch: &str) -> VideoConfig {
    VideoConfig {
        arch: arch.into(),
        frame_shape: vec![1, 32, 32],
        input_frames: 3,
        output_frames: 2,
        patch: 4,
        hidden: if arch == "conv3d" {
            vec![8, 8]
        } else {
            vec![8]
        },
        kernel: 3,
    }
}

#[test]
fn video_predictors_map_input_frames_to_output_frames() {
    let _rng = seeded(0);
    for arch in ["convlstm", "conv3d"] {
        let m = VideoPredictor::new(video_cfg(arch)).unwrap();
        let x = Tensor::rand(&[2, 3, 1, 32, 32], DType::F32).unwrap();
        let y = m.forward(&x).unwrap();
        assert_eq!(y.shape(), &[2, 2, 1, 32, 32], "{arch}");
        // Gradients reach every parameter.
        y.sum_all().unwrap().backward().unwrap();
        for (name, p) in m.named_parameters() {
            let g = p
                .grad()
                .unwrap_or_else(|| panic!("{arch}: {name} has no grad"));
            assert!(
                g.to_vec_f64().unwrap().iter().any(|v| *v != 0.0),
                "{arch}: {name}"
            );
        }
        let e = m
            .forward(&Tensor::rand(&[2, 4, 1, 32, 32], DType::F32).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("[batch, 3, 1, 32, 32]"), "{arch}: {e}");
    }
    let bad = |f: &dyn Fn(&mut VideoConfig), what: &str| {
        let mut c = video_cfg("conv3d");
        f(&mut c);
        let e = VideoPredictor::new(c).err().expect(what).to_string();
        assert!(e.contains("VideoPredictor"), "{what}: {e}");
    };
    bad(&|c| c.patch = 5, "patch does not divide");
    bad(&|c| c.arch = "lstm".into(), "unknown arch");
    bad(&|c| c.hidden = vec![], "no layers");
    bad(&|c| c.hidden = vec![4; 5], "grid too small to halve");
    bad(&|c| c.frame_shape = vec![32, 32], "frame rank");
    bad(&|c| c.output_frames = 0, "no output");
}

fn moving_mnist_run(
    kind: &str,
    hidden: &str,
    name: &str,
    epochs: usize,
) -> (PathBuf, serde_json::Value) {
    // A run seeds and draws from the default generator.
    let _rng = rng_lock::hold();
    let out = scratch(name);
    let cfg: RunConfig = config(&format!(
        r#"{{"name": "{name}",
        "data": {{"format": "moving-mnist", "clips": 256, "frames": 8, "input_frames": 4, "frame_size": 32}},
        "model": {{"kind": "{kind}", "hidden": {hidden}, "patch": 4}},
        "train": {{"epochs": {epochs}, "batch_size": 16, "lr": 0.003}}}}"#
    ));
    let data = fukai::run::shipped_mnist();
    let run = Run::prepare(&cfg, &data, &out, Existing::Refuse).unwrap();
    let outcome = run.train(None, false).unwrap();
    let shown =
        serde_json::Value::Object(outcome.showcase.expect("a video run shows its predictions"));
    (out, shown)
}

fn config(json: &str) -> RunConfig {
    serde_json::from_str(json).unwrap()
}

/// A short ConvLSTM run on clips made from the shipped digits: it writes its pictures and
/// predicts every frame better than holding the last one still.
#[test]
#[ignore = "trains for about a minute in release builds; run with --include-ignored"]
fn a_convlstm_run_beats_copying_the_last_frame() {
    let (out, shown) = moving_mnist_run("convlstm", "[32]", "convlstm-run", 4);
    for f in [
        "predictions.png",
        "predictions.gif",
        "summary.json",
        "curves.png",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let rows = shown["per_frame"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in rows {
        let (m, b) = (
            r["mse"].as_f64().unwrap(),
            r["copy_last_mse"].as_f64().unwrap(),
        );
        assert!(m < b, "frame {}: model {m} vs copy-last {b}", r["frame"]);
    }
    assert_eq!(shown["below_copy_last_at_every_frame"], true);
    let gif = image::open(out.join("predictions.gif")).unwrap();
    assert!(gif.width() > 64 && gif.height() > 64);
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["showcase"]["per_frame"], shown["per_frame"]);
}

/// The 3-D convolutional encoder-decoder learns too.
#[test]
#[ignore = "trains for about a minute in release builds; run with --include-ignored"]
fn a_conv3d_run_beats_copying_the_last_frame() {
    let (out, shown) = moving_mnist_run("conv3d", "[32, 32]", "conv3d-run", 4);
    assert!(out.join("predictions.gif").exists());
    assert_eq!(shown["below_copy_last_at_every_frame"], true, "{shown}");
}

/// `data.format = "frames"`: clip folders split into train and test, a model trained on them.
#[test]
fn a_run_reads_folders_of_frames() {
    let _rng = rng_lock::hold();
    let root = scratch("frames-run");
    // Twelve clips of a bright bar sliding right one pixel per frame.
    for k in 0..12u32 {
        let dir = root.join(format!("clip_{k:04}"));
        std::fs::create_dir_all(&dir).unwrap();
        for t in 0..6u32 {
            let img = image::GrayImage::from_fn(28, 28, |x, _| {
                image::Luma([if x == (k + t) % 28 { 255 } else { 0 }])
            });
            img.save(dir.join(format!("frame_{t:03}.png"))).unwrap();
        }
    }
    let out = scratch("frames-run-out");
    let cfg: RunConfig = config(
        r#"{"name": "bars",
        "data": {"format": "frames", "input_frames": 3, "test_fraction": 0.25, "val_fraction": 0.0, "channels": 1},
        "model": {"kind": "convlstm", "hidden": [4], "patch": 4},
        "train": {"epochs": 2, "batch_size": 4, "lr": 0.01}}"#,
    );
    let run = Run::prepare(&cfg, &root, &out, Existing::Refuse).unwrap();
    assert!(
        run.data
            .describe
            .contains("9 train / 3 test clips of 6 frames 28x28"),
        "{}",
        run.data.describe
    );
    let outcome = run.train(None, false).unwrap();
    let shown = outcome.showcase.unwrap();
    assert_eq!(shown["per_frame"].as_array().unwrap().len(), 3);
    assert!(out.join("predictions.png").exists());
    // A folder whose clips cannot all be read fails before training, naming the clip.
    std::fs::remove_file(root.join("clip_0005/frame_004.png")).unwrap();
    let e = Run::prepare(&cfg, &root, &scratch("frames-bad"), Existing::Refuse)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("clip_0005"), "{e}");
}

/// Both predictors' outputs and gradients are the same bits at 1 and 2 threads.
#[test]
fn video_predictors_are_deterministic_across_thread_counts() {
    let run = |arch: &str, threads: usize| -> Vec<u32> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let _rng = seeded(3);
                let m = VideoPredictor::new(video_cfg(arch)).unwrap();
                let x = Tensor::rand(&[3, 3, 1, 32, 32], DType::F32).unwrap();
                let y = m.forward(&x).unwrap();
                y.square().unwrap().sum_all().unwrap().backward().unwrap();
                let mut out = vec![y.to_vec::<f32>().unwrap()];
                for p in m.parameters() {
                    out.push(p.grad().unwrap().to_vec::<f32>().unwrap());
                }
                out.into_iter().flatten().map(f32::to_bits).collect()
            })
    };
    for arch in ["convlstm", "conv3d"] {
        assert!(
            run(arch, 1) == run(arch, 2),
            "{arch}: bits differ between 1 and 2 threads"
        );
    }
}
