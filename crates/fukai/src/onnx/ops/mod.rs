//! The operators, by family. Each family's `run` returns `None` for an op type it does not
//! know, so the dispatcher can try the next one and name the op when none does.

mod batch_norm_train;
mod detection;
mod dropout;
mod elementwise;
mod grid_sample;
mod loss;
mod misc;
mod nn;
mod quant;
mod reduce;
mod resize;
mod rnn;
mod shape;
mod spectral;
mod unique;
mod unpool;
// Shared with control.rs, which runs subgraphs beside these operators.
pub(super) mod util;

use super::attr::Node;
use crate::error::Result;
use crate::Tensor;

type Family = fn(&Node) -> Option<Result<Vec<Tensor>>>;

/// Runs one node and returns its outputs in order (optional trailing ones may be missing).
pub(crate) fn run_node(node: &Node) -> Result<Vec<Tensor>> {
    let families: [Family; 15] = [
        // Before nn::run, which has the inference-mode BatchNormalization.
        batch_norm_train::run,
        elementwise::run,
        shape::run,
        reduce::run,
        nn::run,
        loss::run,
        misc::run,
        resize::run,
        rnn::run,
        quant::run,
        unique::run,
        detection::run,
        grid_sample::run,
        unpool::run,
        spectral::run,
    ];
    for f in families {
        if let Some(r) = f(node) {
            return r;
        }
    }
    Err(node.unsupported("operator"))
}
