//! Integration tests of the trainer crate (one binary so libtorch links once).

mod metrics;
mod optim;
mod trainer;
