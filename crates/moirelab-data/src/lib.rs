//! placeholder-free stub; replaced by the crate's implementation
