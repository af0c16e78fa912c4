//! Writes `DIR/{train,test}/<digit>/<n>.png` from the 5,000 MNIST digits the repo ships, for
//! the `cnn_image_folder` example.
//!
//! `cargo run --release -p fukai --example make_image_folder -- DIR`

use std::path::{Path, PathBuf};

fn main() -> fukai::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: make_image_folder DIR"),
    );
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist_5k.csv.gz");
    let (x, y) = fukai::data::read_mnist_csv(&csv)?;
    for (i, label) in y.iter().enumerate() {
        let split = if i % 5 == 0 { "test" } else { "train" };
        let folder = dir.join(split).join(label.to_string());
        std::fs::create_dir_all(&folder).expect("the folder can be created");
        let px: Vec<u8> = x[i * 784..(i + 1) * 784]
            .iter()
            .map(|v| (v * 255.0) as u8)
            .collect();
        let img = image::GrayImage::from_raw(28, 28, px).expect("28x28 pixels");
        img.save(folder.join(format!("{i}.png")))
            .expect("the PNG is written");
    }
    println!("wrote {} images under {}", y.len(), dir.display());
    Ok(())
}
