//! The loader fuzz harness: a seeded byte mutator, an allocator that records oversized
//! requests, and the loop that runs a loader over mutated corpus files for a time budget.

pub mod alloc_guard;
pub mod harness;
pub mod mutate;
