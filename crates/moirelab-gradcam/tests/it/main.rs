//! Integration tests of moirelab-gradcam (one binary so libtorch links once).

mod common;
mod dump;
mod oracles;
mod parity;
mod sanity;
