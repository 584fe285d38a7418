//! The browser package's cases natively, as part of `cargo test`. `wasm.rs` runs the same cases
//! in headless Chromium.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::type_complexity
)]

#[macro_use]
mod cases;

shared_cases!(test);
