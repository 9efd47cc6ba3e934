//! `explain`: CAM overlays for single images, any methods and layers.

use super::predict::term_safe;
use super::{attack_index, check_out_folder, load_model, run_classes, run_config};
use crate::ExplainArgs;
use anyhow::{anyhow, bail, Result};
use std::process::ExitCode;

pub fn explain(a: ExplainArgs) -> Result<ExitCode> {
    check_out_folder("--out", &a.out)?;
    let loaded = run_config(&a.run)?;
    let classes = run_classes(&a.run, &loaded)?;
    let lr = load_model(&a.run, &loaded, classes.len(), &a.checkpoint)?;
    let methods = a
        .methods
        .iter()
        .map(|m| m.parse::<moirelab_gradcam::Method>())
        .collect::<Result<Vec<_>, _>>()?;
    let target = match &a.class {
        None => None,
        Some(c) => Some(
            classes
                .iter()
                .position(|n| n == c)
                .or_else(|| c.parse::<usize>().ok().filter(|&i| i < classes.len()))
                .ok_or_else(|| {
                    anyhow!(
                        "--class {c}: unknown; valid: {} (or an index)",
                        classes.join(", ")
                    )
                })? as i64,
        ),
    };
    let mut inputs = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    // Every file is read before anything is written: each unreadable one gets its own error
    // line, and then nothing is written for the batch (one bad name does not leave a
    // half-explained --out folder).
    let mut bad = 0usize;
    for p in &a.images {
        let (t, img) = match moirelab_data::load_image_file_checked(p, &loaded.config.data) {
            Ok((t, img, warnings)) => {
                if !warnings.is_empty() {
                    let msgs: Vec<&str> = warnings.iter().map(|w| w.message.as_str()).collect();
                    let line = format!("{}: {}", p.display(), msgs.join("; "));
                    eprintln!("warning: {}", term_safe(&line));
                }
                (t, img)
            }
            Err(e) => {
                bad += 1;
                eprintln!("error: {}", term_safe(&e.to_string()));
                continue;
            }
        };
        // File-name-safe, unique output stem per image.
        let stem: String = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into())
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut name = stem.clone();
        let mut k = 2;
        while !used.insert(name.clone()) {
            name = format!("{stem}-{k}");
            k += 1;
        }
        inputs.push(moirelab_gradcam::ExplainInput {
            name,
            image: img,
            input: t.squeeze_dim(0).to_device(lr.device),
            masks: None,
        });
    }
    if bad > 0 {
        bail!(
            "{bad} of {} image(s) could not be read; nothing written to {}",
            a.images.len(),
            a.out.display()
        );
    }
    let g = &loaded.config.gradcam;
    let opts = moirelab_gradcam::ExplainOptions {
        methods,
        layers: a.layers.clone(),
        target,
        classes: classes.clone(),
        colormap: g.colormap.parse()?,
        image_weight: g.image_weight,
        pointing_tolerance: g.pointing_tolerance,
        batch_size: g.batch_size,
    };
    // Inputs are in the order of the images: a non-finite score is named by its file.
    let records = moirelab_gradcam::explain(lr.net.as_ref(), &inputs, &opts, &a.out).map_err(
        |e| match e {
            moirelab_gradcam::GradcamError::NonFiniteScore { index, value } => {
                anyhow::Error::from(moirelab_train::TrainError::NonFiniteScore {
                    image: a.images.get(index).cloned().unwrap_or_default(),
                    value,
                })
            }
            e => e.into(),
        },
    )?;
    println!(
        "{:<32}{:>10}  {:<10}files",
        "image", "P(attack)", "explained"
    );
    let attack = attack_index(&a.run, &classes, &loaded);
    for r in &records {
        let files: Vec<String> = r.methods.values().map(|m| m.overlay.clone()).collect();
        println!(
            "{:<32}{:>10.4}  {:<10}{}",
            r.name,
            r.probs.get(attack).copied().unwrap_or(f64::NAN),
            classes.get(r.target_class).cloned().unwrap_or_default(),
            files.join(" ")
        );
    }
    println!("written to {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}
