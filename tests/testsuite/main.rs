//! The UI test suite: drives the forked Cargo against sample crates.
//!
//! Every test builds a throw-away project with `cargo-test-support` and runs
//! the fork (its path comes from `BUILD_SANDBOX_FORK_CARGO`, which
//! `cargo xtask test` sets) or, where a test compares, the stock Cargo running
//! this suite. Output is checked with exact snapshots; `SNAPSHOTS=overwrite`
//! updates them.

mod utils;

mod attacks;
mod build_script;
mod config;
mod fingerprint;
mod flag_off;
mod learn;
mod manifest;
mod policy;
mod real_crates;
mod trust;
mod wasmtime;
