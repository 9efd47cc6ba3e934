//! Integration tests of moirelab-synth: one binary, modules per concern.

mod dataset;
mod errors;
mod geometry;
mod leakage;
mod lock;

use moirelab_synth::GenConfig;

/// The `tiny` preset shrunk further for fast tests.
pub fn tiny(count: usize) -> GenConfig {
    let mut c = GenConfig::preset("tiny").expect("tiny preset exists");
    c.count = count;
    c
}
