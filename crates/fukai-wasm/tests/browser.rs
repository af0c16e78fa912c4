//! The web page (`web/dist`, built by `web/build.sh`) in headless Chromium over WebDriver,
//! checked against native fukai on the same inputs: the digit panel (a real MNIST digit
//! painted on the canvas), the sentence panel (all-MiniLM-L6-v2 from the shared assets) and
//! the training panel (a Web Worker must lower the loss). It prints the page's timings beside
//! native ones and saves a screenshot under `target/web-artifacts/`.
//!
//! Without chromium, chromedriver or `web/dist` the test prints why and passes, unless
//! `FUKAI_REQUIRE_BROWSER=1` (CI), where that is a failure.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use fantoccini::actions::{InputSource, MouseActions, PointerAction, MOUSE_BUTTON_LEFT};
use fantoccini::{Client, Locator};
use fukai::data::Transform;
use fukai::nn::Module;
use fukai::testing::max_slice_diff;
use fukai::Tensor;
use fukai_wasm::{drawing_to_input, DigitModel, MnistTraining};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{chrome, server};

const TOL: f32 = 1e-5;
const MINILM: &str = "models/all-MiniLM-L6-v2";
/// 16 tokens with [CLS] and [SEP] (checked below).
const SENTENCE16: &str = "The quick brown fox jumps over the lazy dog near the river bank.";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Why the test cannot run here: a skip, or a failure under `FUKAI_REQUIRE_BROWSER=1`.
fn missing(why: &str) {
    assert!(
        std::env::var("FUKAI_REQUIRE_BROWSER").as_deref() != Ok("1"),
        "FUKAI_REQUIRE_BROWSER=1 but {why}"
    );
    eprintln!("skipped: {why}");
}

async fn js(c: &Client, script: &str, args: Vec<Value>) -> Value {
    c.execute(script, args)
        .await
        .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
}

/// The text of the first element `css` selects.
async fn text_of(c: &Client, css: &str) -> String {
    let el = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"));
    el.text().await.unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The canvas the page paints for a 28×28 image: each pixel a 10×10 grey block.
fn painted(pixels: &[f32]) -> Vec<u8> {
    let mut rgba = vec![0u8; 280 * 280 * 4];
    for y in 0..280 {
        for x in 0..280 {
            let v = (255.0 * pixels[(y / 10) * 28 + x / 10]).round() as u8;
            rgba[(y * 280 + x) * 4..][..4].copy_from_slice(&[v, v, v, 255]);
        }
    }
    rgba
}

#[test]
#[ignore = "needs chromium, chromedriver and web/dist (web/build.sh); slow"]
fn page_in_headless_chromium() {
    let (chromium, driver) = match chrome::binaries() {
        Ok(b) => b,
        Err(why) => return missing(&why),
    };
    let dist = repo().join("web/dist");
    if !dist.join("pkg/fukai_wasm_bg.wasm").is_file() {
        return missing(&format!(
            "{} is not built (run web/build.sh)",
            dist.display()
        ));
    }
    let assets = fukai::testing::assets(MINILM);
    let mounts = assets
        .iter()
        .map(|a| (MINILM.to_string(), a.join(MINILM)))
        .collect();
    let port = server::serve(dist.clone(), mounts);
    let driver = chrome::start_driver(&driver);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = chrome::session(&driver, &chromium).await;
        let result = run(&c, port, &dist, assets.as_deref()).await;
        let _ = c.close().await;
        result
    });
}

async fn run(c: &Client, port: u16, dist: &Path, assets: Option<&Path>) {
    c.goto(&format!("http://127.0.0.1:{port}/")).await.unwrap();
    let t0 = Instant::now();
    loop {
        let ready = js(c, "return !!(window.fukaiDemo && fukaiDemo.ready)", vec![]).await;
        if ready == json!(true) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the page did not get ready in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let errors = js(c, "return fukaiDemo.errors", vec![]).await;
    assert_eq!(errors, json!({}), "the page shows errors after loading");

    let mut timings = Vec::new();
    bad_checkpoint(c).await;
    stroke(c).await;
    timings.extend(digits(c, dist).await);
    if let Some(a) = assets {
        timings.extend(sentences(c, &a.join(MINILM), dist).await);
    }
    timings.extend(training(c).await);

    let shot = c.screenshot().await.unwrap();
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo().join("target"), PathBuf::from)
        .join("web-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("page.png");
    std::fs::write(&png, &shot).unwrap();
    // A half-size copy, small enough to commit as the README's picture.
    let img = image::load_from_memory(&shot).unwrap();
    let small = img.resize(
        img.width() / 2,
        img.height(),
        image::imageops::FilterType::Triangle,
    );
    let small_png = dir.join("page-small.png");
    small.save(&small_png).unwrap();
    println!(
        "screenshot: {} (half size: {})",
        png.display(),
        small_png.display()
    );
    let threads = fukai::parallel::num_threads();
    println!(
        "{:<44} {:>12} {:>12}",
        "operation",
        "page (wasm)",
        format!("native ({threads} thr)")
    );
    for (what, page, native) in timings {
        println!("{what:<44} {page:>12} {native:>12}");
    }
}

/// A corrupt checkpoint is an error shown in the page, naming the file; the loaded model stays.
async fn bad_checkpoint(c: &Client) {
    let msg = js(
        c,
        "fukaiDemo.loadDigits(new Uint8Array([8,0,0,0,0,0,0,0,123,125,1,2]), 'broken.safetensors'); \
         return document.getElementById('digits-error').textContent",
        vec![],
    )
    .await;
    let msg = msg.as_str().unwrap().to_string();
    assert!(msg.contains("broken.safetensors"), "{msg}");
    let model = js(c, "return fukaiDemo.digitModel", vec![]).await;
    assert_eq!(model, json!("mnist-cnn.safetensors"));
}

/// A pen stroke with the mouse, as a user draws: a vertical line reads as a 1.
async fn stroke(c: &Client) {
    let pad = c.find(Locator::Css("#pad")).await.unwrap();
    let to = |y: f64, ms: u64| PointerAction::MoveToElement {
        element: pad.clone(),
        duration: Some(Duration::from_millis(ms)),
        x: 0.0,
        y,
    };
    let line = MouseActions::new("pen".into())
        .then(to(-100.0, 0))
        .then(PointerAction::Down {
            button: MOUSE_BUTTON_LEFT,
        })
        .then(to(-30.0, 100))
        .then(to(40.0, 100))
        .then(to(100.0, 100))
        .then(PointerAction::Up {
            button: MOUSE_BUTTON_LEFT,
        });
    c.perform_actions(line).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ink = js(
        c,
        "return fukaiDemo.lastInput.reduce((s, v) => s + v, 0)",
        vec![],
    )
    .await;
    assert!(
        ink.as_f64().unwrap() > 10.0,
        "the stroke left no ink in the model's input: {ink}"
    );
    let shown = text_of(c, "#top3 li").await;
    assert!(
        shown.starts_with('1'),
        "a vertical stroke shows as {shown:?}"
    );
    println!("digits: a mouse stroke shows {shown:?}");
}

/// Real test digits painted on the canvas: the page's 28×28 input equals native
/// preprocessing of that canvas, its probabilities equal native fukai's on that input, and the
/// class it shows is the digit's.
async fn digits(c: &Client, dist: &Path) -> Vec<(String, String, String)> {
    let ckpt = dist.join("mnist-cnn.safetensors");
    let trained = fukai::run::load_trained(&ckpt).unwrap();
    let norm = trained.norm.clone().unwrap().transform().unwrap();
    let native = DigitModel::from_bytes(&std::fs::read(&ckpt).unwrap(), "mnist-cnn").unwrap();
    let (x, y) = fukai::data::read_mnist_csv(&fukai::run::shipped_mnist()).unwrap();
    // The last digit of each class in the file.
    let rows: Vec<usize> = (0..10)
        .map(|d| (0..y.len()).rev().find(|&r| y[r] == d).unwrap())
        .collect();
    let (mut right, mut page_ms, mut native_ms) = (0, Vec::new(), Vec::new());
    for &r in &rows {
        let pixels = &x[r * 784..(r + 1) * 784];
        let out = js(
            c,
            "return fukaiDemo.drawImage(arguments[0])",
            vec![json!(pixels)],
        )
        .await;
        let input = floats(&out["input"]);
        let probs = floats(&out["probs"]);
        page_ms.push(out["ms"].as_f64().unwrap());

        let t = Instant::now();
        let canvas = painted(pixels);
        let mine = drawing_to_input(&canvas, 280, 280, 28).unwrap();
        let native_probs = native.probabilities(&mine).unwrap();
        native_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(
            max_slice_diff(&input, &mine) <= TOL,
            "digit row {r}: page input vs native preprocessing"
        );

        // fukai itself, not the wasm crate, on the exact input the page fed its model.
        let mut v = input.clone();
        norm.apply(&mut v, &[1, 28, 28], &mut fukai::Generator::new(0));
        let _g = fukai::no_grad();
        let want = trained
            .model
            .forward(&Tensor::from_vec(v, &[1, 1, 28, 28]).unwrap())
            .unwrap()
            .softmax(-1)
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let d = max_slice_diff(&probs, &want);
        assert!(
            d <= TOL,
            "digit row {r}: page probabilities differ from native by {d}"
        );
        assert!(max_slice_diff(&native_probs, &want) <= TOL);

        let best = (0..10).fold(0, |b, j| if want[j] > want[b] { j } else { b });
        let shown = text_of(c, "#top3 li").await;
        assert!(
            shown.starts_with(&best.to_string()),
            "digit row {r}: the page shows {shown:?}, the model's top class is {best}"
        );
        right += usize::from(best as i64 == y[r]);
    }
    assert!(
        right >= 9,
        "only {right} of 10 painted test digits recognized"
    );
    println!("digits: {right}/10 painted MNIST digits shown as their class");
    vec![(
        "digit: drawing -> probabilities (median ms)".into(),
        format!("{:.2}", median(page_ms)),
        format!("{:.2}", median(native_ms)),
    )]
}

/// all-MiniLM-L6-v2 in the page: token ids equal native, embeddings within 1e-5.
async fn sentences(c: &Client, dir: &Path, dist: &Path) -> Vec<(String, String, String)> {
    wrong_pick(c, dir, dist).await;
    let ok = js(
        c,
        "return await fukaiDemo.loadSentencesFrom('models/all-MiniLM-L6-v2/')",
        vec![],
    )
    .await;
    let err = js(c, "return fukaiDemo.errors.sentences || ''", vec![]).await;
    assert_eq!(ok, json!(true), "loading MiniLM in the page: {err}");
    let native = fukai::models::SentenceEmbedder::from_dir(dir).unwrap();
    let texts = [
        "The cat sat on the mat.",
        "A kitten is resting on a rug.",
        "Stock markets fell sharply today.",
        SENTENCE16,
    ];
    let out = js(
        c,
        "return fukaiDemo.compare(arguments[0])",
        vec![json!(texts)],
    )
    .await;
    assert!(!out.is_null(), "compare failed in the page");
    let want = native.embed(&texts).unwrap();
    for (i, t) in texts.iter().enumerate() {
        let ids: Vec<u32> = out["ids"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(ids, native.tokenize(&[t]).unwrap()[0], "token ids of {t:?}");
        let d = max_slice_diff(&floats(&out["embeddings"][i]), &want[i]);
        assert!(d <= TOL, "embedding of {t:?} differs from native by {d}");
    }
    let ids16 = native.tokenize(&[SENTENCE16]).unwrap().remove(0);
    assert_eq!(ids16.len(), 16, "the timing sentence should be 16 tokens");
    let shown = text_of(c, "#sim").await;
    assert!(
        shown.contains("1.000"),
        "the similarity matrix is shown: {shown:?}"
    );

    let mut page_ms = Vec::new();
    for _ in 0..5 {
        let out = js(
            c,
            "return fukaiDemo.compare([arguments[0]]).ms[0]",
            vec![json!(SENTENCE16)],
        )
        .await;
        page_ms.push(out.as_f64().unwrap());
    }
    // Leave the four-sentence matrix on screen for the screenshot.
    js(c, "fukaiDemo.compare(arguments[0])", vec![json!(texts)]).await;
    let mut native_ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        native.embed(&[SENTENCE16]).unwrap();
        native_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "sentences: ids equal and embeddings within {TOL} for {} texts",
        texts.len()
    );
    vec![(
        "MiniLM: one 16-token sentence (median ms)".into(),
        format!("{:.1}", median(page_ms)),
        format!("{:.1}", median(native_ms)),
    )]
}

/// Picking the digit checkpoint as `model.safetensors` (through the file input, as a user
/// would) is an error in the page that names that file.
async fn wrong_pick(c: &Client, dir: &Path, dist: &Path) {
    let tmp = std::env::temp_dir().join(format!("fukai-wasm-pick-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for n in ["config.json", "tokenizer.json"] {
        std::fs::copy(dir.join(n), tmp.join(n)).unwrap();
    }
    std::fs::copy(
        dist.join("mnist-cnn.safetensors"),
        tmp.join("model.safetensors"),
    )
    .unwrap();
    let paths: Vec<String> = ["config.json", "tokenizer.json", "model.safetensors"]
        .iter()
        .map(|n| tmp.join(n).display().to_string())
        .collect();
    let input = c.find(Locator::Css("#minilm-files")).await.unwrap();
    input.send_keys(&paths.join("\n")).await.unwrap();
    let t0 = Instant::now();
    let msg = loop {
        let m = js(
            c,
            "return document.getElementById('sentences-error').textContent",
            vec![],
        )
        .await;
        let m = m.as_str().unwrap_or("").to_string();
        if !m.is_empty() {
            break m;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no error shown for a wrong model.safetensors"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(msg.contains("model.safetensors"), "{msg}");
    println!("sentences: a wrong pick shows {msg:?}");
}

/// Training in the page's worker lowers the loss; stop ends it early.
async fn training(c: &Client) -> Vec<(String, String, String)> {
    let history = train_in_page(c, json!({ "maxSteps": 186, "chunk": 6 }), None).await;
    let val: Vec<&Value> = history.iter().filter(|h| h["kind"] == "val").collect();
    let train: Vec<&Value> = history.iter().filter(|h| h["kind"] == "train").collect();
    let (first, last) = (
        val[0]["loss"].as_f64().unwrap(),
        val[val.len() - 1]["loss"].as_f64().unwrap(),
    );
    assert!(
        last < first * 0.5,
        "validation loss went from {first} to {last} in the page"
    );
    let acc = val[val.len() - 1]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.8, "validation accuracy {acc} after 3 epochs");
    let (l0, l1) = (
        train[0]["loss"].as_f64().unwrap(),
        train[train.len() - 1]["loss"].as_f64().unwrap(),
    );
    assert!(l1 < l0, "training loss {l0} -> {l1}");
    let rate = median(
        train
            .iter()
            .skip(1)
            .map(|h| h["samplesPerSec"].as_f64().unwrap())
            .collect(),
    );
    println!("training: validation loss {first:.3} -> {last:.3}, accuracy {acc:.3}, {rate:.0} samples/s in the page");

    // Stop: a long run ends soon after the button is pressed.
    let stopped = train_in_page(
        c,
        json!({ "maxSteps": 100000, "chunk": 2 }),
        Some("fukaiDemo.stopTraining()"),
    )
    .await;
    let steps = stopped
        .iter()
        .filter_map(|h| h["step"].as_u64())
        .max()
        .unwrap();
    assert!(steps < 1000, "stop did not end training ({steps} steps)");
    // Leave the first run's curve on screen.
    let _ = train_in_page(c, json!({ "maxSteps": 186, "chunk": 6 }), None).await;

    let (x, y) = fukai::data::read_mnist_csv(&fukai::run::shipped_mnist()).unwrap();
    let mut t = MnistTraining::new(x, y, 0.2, &[128], 1e-3, 64, 0).unwrap();
    t.steps(6).unwrap();
    let t0 = Instant::now();
    let s = t.steps(60).unwrap();
    let native = s.samples as f64 / t0.elapsed().as_secs_f64();
    vec![(
        "MLP 784-128-10 training (samples/s)".into(),
        format!("{rate:.0}"),
        format!("{native:.0}"),
    )]
}

/// Starts a run in the page and waits until its worker says done (running `then` once the
/// first progress arrived); returns the messages it sent.
async fn train_in_page(c: &Client, opts: Value, then: Option<&str>) -> Vec<Value> {
    js(c, "fukaiDemo.startTraining(arguments[0])", vec![opts]).await;
    let t0 = Instant::now();
    let mut sent = false;
    loop {
        let state = js(c, "return [fukaiDemo.trainingDone, fukaiDemo.training.length, fukaiDemo.errors.train || '']", vec![]).await;
        assert_eq!(state[2], json!(""), "training in the page failed");
        if state[0] == json!(true) {
            break;
        }
        if let (Some(s), false) = (then, sent) {
            if state[1].as_u64().unwrap() > 2 {
                js(c, s, vec![]).await;
                sent = true;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "training did not finish in 180 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    js(c, "return fukaiDemo.training", vec![])
        .await
        .as_array()
        .unwrap()
        .clone()
}
