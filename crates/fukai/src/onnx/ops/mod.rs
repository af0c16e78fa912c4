//! The operators, by family. Each family's `run` returns `None` for an op type it does not
//! know, so the dispatcher can try the next one and name the op when none does.

mod elementwise;
mod loss;
mod misc;
mod nn;
mod quant;
mod reduce;
mod resize;
mod rnn;
mod shape;
mod util;

use super::attr::Node;
use crate::error::Result;
use crate::Tensor;

type Family = fn(&Node) -> Option<Result<Vec<Tensor>>>;

/// Runs one node and returns its outputs in order (optional trailing ones may be missing).
pub(crate) fn run_node(node: &Node) -> Result<Vec<Tensor>> {
    let families: [Family; 9] = [
        elementwise::run,
        shape::run,
        reduce::run,
        nn::run,
        loss::run,
        misc::run,
        resize::run,
        rnn::run,
        quant::run,
    ];
    for f in families {
        if let Some(r) = f(node) {
            return r;
        }
    }
    Err(node.unsupported("operator"))
}
