//! The README's library example: define an MLP, train it on the MNIST digits shipped in the
//! repo, evaluate, and save a checkpoint. Run: `cargo run --release -p fukai --example quickstart`.

use fukai::data::{read_mnist_csv, stratified_split, DataLoader, InMemory};
use fukai::nn::{loss::cross_entropy, Activation, Linear, Module, Sequential};
use fukai::optim::{Adam, Optimizer};
use std::sync::Arc;

fn main() -> fukai::Result<()> {
    fukai::manual_seed(0);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist_5k.csv.gz");
    let (x, y) = read_mnist_csv(&path)?;
    let all = InMemory::new(x, y.clone(), &[784], 10)?;
    let (train_rows, test_rows) = stratified_split(&y, 0.2, 0)?;
    let train = DataLoader::new(Arc::new(all.subset(train_rows)?), 64).shuffle(0);
    let test = DataLoader::new(Arc::new(all.subset(test_rows)?), 500);

    let model = Sequential::new()
        .add(Linear::new(784, 128, true)?)
        .add(Activation::Relu)
        .add(Linear::new(128, 10, true)?);
    let mut opt = Adam::new(model.parameters(), 1e-3);
    for epoch in 0..5 {
        for batch in train.epoch(epoch) {
            let b = batch?;
            let loss = cross_entropy(&model.forward(&b.x)?, &b.y)?;
            loss.backward()?;
            opt.step()?;
            opt.zero_grad();
        }
        let _eval = fukai::no_grad();
        let (mut right, mut n) = (0, 0);
        for batch in test.epoch(0) {
            let b = batch?;
            let pred = model.forward(&b.x)?.argmax(-1, false)?.to_vec::<i64>()?;
            right += pred
                .iter()
                .zip(b.y.to_vec::<i64>()?)
                .filter(|(p, y)| **p == *y)
                .count();
            n += pred.len();
        }
        println!(
            "epoch {}: test accuracy {:.2}%",
            epoch + 1,
            100.0 * right as f64 / n as f64
        );
    }
    fukai::io::save_safetensors("quickstart.safetensors", &model.state_dict(), None)
}
