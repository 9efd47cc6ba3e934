//! Integration tests of the trainer crate (one binary so libtorch links once).

mod checkpoint_load;
mod metrics;
mod optim;
mod trainer;
