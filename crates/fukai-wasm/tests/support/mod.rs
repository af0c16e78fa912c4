//! What the browser test needs around the page: a static server and a headless Chromium.

pub mod chrome;
pub mod server;
