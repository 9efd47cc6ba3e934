//! Integration tests of moirelab-report: fabricated run folders in temp dirs, real readers
//! (TensorBoard's EventAccumulator, headless Chromium) where the brief asks for them.

mod browser;
mod compare;
mod fixture;
mod media;
mod pages;
mod tb;
mod tolerance;
