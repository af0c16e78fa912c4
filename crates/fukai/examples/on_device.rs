//! One training step on the best device this build and machine have (a GPU with the `wgpu`
//! feature and an adapter, else the CPU): the README's device example.
//!
//! ```text
//! cargo run --release -p fukai --features wgpu --example on_device
//! ```

use fukai::nn::{loss::cross_entropy, Module};
use fukai::{DType, Device, Tensor};

fn main() -> fukai::Result<()> {
    let dev = Device::best(); // the first real GPU, else the CPU
    let model = fukai::models::Mlp::new(fukai::models::MlpConfig::new(&[4], &[16], 3))?;
    model.to_device(dev)?; // parameters and buffers move in place; optimizers keep working
    let x = Tensor::randn(&[8, 4], DType::F32)?.to(dev)?;
    let y = Tensor::from_vec(vec![0i64, 1, 2, 0, 1, 2, 0, 1], &[8])?.to(dev)?;
    let loss = cross_entropy(&model.forward(&x)?, &y)?;
    loss.backward()?;
    println!("loss {:.4} on {dev}", loss.item()?);
    Ok(())
}
