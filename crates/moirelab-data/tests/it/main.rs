//! Integration tests of moirelab-data (one binary so libtorch links once).

mod cache;
mod check;
mod eval_open;
mod fixtures;
mod fuzz;
mod hostile;
mod loader;
mod manifests;
mod masks;
mod readers;
