//! `data plan`: the data set a config trains on, as `train` resolves it — its root, whether
//! it is generated yet, and for a preset the generator's count, photo sides and knobs. Bench
//! scripts read its `--json` instead of re-reading config files with their own rules.

use super::{data_state, DataState};
use crate::config::{self, knob_text};
use crate::DataPlanArgs;
use anyhow::Result;
use moirelab_data::Mode;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

/// What `data plan --json` prints.
#[derive(Debug, Serialize)]
struct Plan {
    config: PathBuf,
    /// `data.root`, relative to the current folder as `train` reads it.
    root: PathBuf,
    /// What `data.root` holds: `ready` (train uses it as it is), `missing` (train generates
    /// it), `stale` (made by another generator version: train regenerates it), `other-knobs`
    /// (made with other knobs: train refuses it), `no-preset` (missing, and nothing to make
    /// it from).
    state: &'static str,
    /// `data.preset`; `null` for a data set of the user's own.
    preset: Option<String>,
    /// Images the preset generates with the knobs (`null` without a preset).
    count: Option<usize>,
    /// The photo sides it renders, ascending (one unless `[data.knobs] sizes`).
    sides: Option<Vec<u32>>,
    /// The sub-pixel layouts its screens are drawn from (`[data.knobs] layouts` resolved:
    /// the transfer protocol holds each out in turn).
    layouts: Option<Vec<&'static str>>,
    /// The network's input side (`data.image-size`) and how it is taken from a photo.
    image_size: u32,
    mode: Mode,
    /// `[data.knobs]` as `gen-data --set` arguments (`knob=value`, lists comma-joined), in
    /// name order, as the config writes them.
    knobs: Vec<String>,
}

pub fn data_plan(a: DataPlanArgs) -> Result<ExitCode> {
    let loaded = config::load(&a.config, &a.sets)?;
    let gen = loaded.gen_config()?;
    let root = loaded.config.data.root.clone();
    let state = data_state(&loaded)?;
    let plan = Plan {
        config: a.config.clone(),
        root,
        state: match state {
            DataState::Ready => "ready",
            DataState::Missing => "missing",
            DataState::Stale(_) => "stale",
            DataState::OtherKnobs => "other-knobs",
            DataState::NoPreset => "no-preset",
        },
        preset: loaded.preset.clone(),
        count: gen.as_ref().map(|g| g.count),
        sides: gen
            .as_ref()
            .map(|g| g.sizes.clone().unwrap_or_else(|| vec![g.size])),
        layouts: gen
            .as_ref()
            .map(|g| g.knobs.layouts.iter().map(|l| l.name()).collect()),
        image_size: loaded.config.data.image_size,
        mode: loaded.config.data.mode,
        knobs: loaded
            .knobs
            .iter()
            .map(|(k, v)| format!("{k}={}", knob_text(v)))
            .collect(),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(ExitCode::SUCCESS);
    }
    let state = match &state {
        DataState::Ready => "ready".to_string(),
        DataState::Missing => "not generated yet: train generates it".to_string(),
        DataState::Stale(v) => {
            format!("made by generator {v}: train regenerates it with this one")
        }
        DataState::OtherKnobs => {
            "made with other knobs than [data.knobs]: train refuses it".to_string()
        }
        DataState::NoPreset => "missing: set data.preset or run gen-data".to_string(),
    };
    println!(
        "{}: data.root = {} ({state})",
        plan.config.display(),
        plan.root.display()
    );
    if let (Some(p), Some(g)) = (&plan.preset, &gen) {
        let knobs = if plan.knobs.is_empty() {
            String::new()
        } else {
            format!(" with {}", plan.knobs.join(" "))
        };
        println!("  preset \"{p}\"{knobs}");
        println!("  {} photos of {} px", g.count, g.sides_text());
    } else {
        println!("  a data set of your own (no data.preset)");
    }
    let view = match plan.mode {
        Mode::Patch => format!("{0}x{0} crops at the photos' resolution", plan.image_size),
        Mode::Resize => format!("each photo resized to {0}x{0}", plan.image_size),
    };
    println!(
        "  the network reads {view} (data.mode = \"{}\")",
        mode_name(plan.mode)
    );
    Ok(ExitCode::SUCCESS)
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Resize => "resize",
        Mode::Patch => "patch",
    }
}
