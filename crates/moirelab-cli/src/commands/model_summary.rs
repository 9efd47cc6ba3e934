//! `model summary`: layers, shapes and parameter counts of a config's model.

use crate::config;
use crate::ModelSummaryArgs;
use anyhow::Result;
use std::process::ExitCode;

pub fn model_summary(a: ModelSummaryArgs) -> Result<ExitCode> {
    let loaded = config::load(&a.config, &a.sets)?;
    let size = a.size.unwrap_or(loaded.config.data.image_size as i64);
    let mut model = loaded.config.model.clone();
    if model.classes < 2 {
        model.classes = 2;
    }
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let net = moirelab_models::build(&vs.root(), &model)?;
    let s = moirelab_models::summary(net.as_ref(), &vs, [model.in_channels, size, size])?;
    println!("{s}");
    Ok(ExitCode::SUCCESS)
}
