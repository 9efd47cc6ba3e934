//! `predict`: the attack score and decision for single images.

use super::{attack_index, load_model, run_classes, run_config};
use crate::PredictArgs;
use anyhow::Result;
use std::process::ExitCode;

/// The threshold `predict` decides with when the run has none yet (it fixes one on val only
/// when it finishes); the output says so.
const DEFAULT_THRESHOLD: f64 = 0.5;

/// `s` with control characters escaped (`\n`, `\u{1b}`), so a file name cannot split a line
/// or send a terminal escape.
pub(crate) fn term_safe(s: &str) -> String {
    if s.chars().any(char::is_control) {
        s.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_debug().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        s.to_string()
    }
}

pub fn predict(a: PredictArgs) -> Result<ExitCode> {
    let loaded = run_config(&a.run)?;
    let classes = run_classes(&a.run, &loaded)?;
    let lr = load_model(&a.run, &loaded, classes.len(), &a.checkpoint)?;
    let attack = attack_index(&a.run, &classes, &loaded);
    let threshold = lr.threshold.unwrap_or(DEFAULT_THRESHOLD);
    let source = if lr.threshold.is_some() {
        "run"
    } else {
        "default"
    };
    let mut rows = Vec::new();
    let mut failed = 0usize;
    // Every readable file is scored; one that is not gets an error line (and a JSON row with
    // its error) and makes the exit status 1.
    for path in &a.images {
        let scored = (|| -> Result<(Vec<f64>, Vec<String>)> {
            let (input, _, warnings) =
                moirelab_data::load_image_file_checked(path, &loaded.config.data)?;
            let probs = tch::no_grad(|| -> Result<Vec<f64>> {
                let logits = lr.net.forward_t(&input.to_device(lr.device), false)?;
                let p = logits
                    .softmax(-1, tch::Kind::Double)
                    .to_device(tch::Device::Cpu)
                    .flatten(0, -1);
                Ok(Vec::<f64>::try_from(p)?)
            })?;
            let score = probs.get(attack).copied().unwrap_or(f64::NAN);
            // A NaN score is below every threshold: it must not pass as bona fide.
            if let Some(&value) = probs.iter().chain([&score]).find(|p| !p.is_finite()) {
                return Err(moirelab_train::TrainError::NonFiniteScore {
                    image: path.clone(),
                    value,
                }
                .into());
            }
            Ok((probs, warnings.iter().map(|w| w.message.clone()).collect()))
        })();
        let image = path.display().to_string();
        match scored {
            Err(e) => {
                failed += 1;
                let msg = crate::one_line(&e);
                eprintln!("error: {}", term_safe(&msg));
                rows.push(serde_json::json!({ "image": image, "error": msg }));
            }
            Ok((probs, warnings)) => {
                // One line per file, its warnings joined (the file named once).
                if !warnings.is_empty() {
                    let line = format!("{image}: {}", warnings.join("; "));
                    eprintln!("warning: {}", term_safe(&line));
                }
                let score = probs.get(attack).copied().unwrap_or(f64::NAN);
                rows.push(serde_json::json!({
                    "image": image,
                    "score": score,
                    "decision": super::decision(&classes, attack, score >= threshold),
                    "threshold": threshold,
                    "threshold_source": source,
                    "probs": classes.iter().cloned().zip(probs.iter().copied()).collect::<std::collections::BTreeMap<_, _>>(),
                    "warnings": warnings,
                }));
            }
        }
    }
    let scored = rows.len() - failed;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if scored > 0 {
        let note = match lr.threshold {
            Some(_) => String::new(),
            None => ", a default: the run has fixed none yet".to_string(),
        };
        println!(
            "{:<48}{:>10}  decision (threshold {threshold:.4}{note})",
            "image", "P(attack)"
        );
        for r in rows.iter().filter(|r| r.get("error").is_none()) {
            println!(
                "{:<48}{:>10.4}  {}",
                term_safe(r["image"].as_str().unwrap_or("")),
                r["score"].as_f64().unwrap_or(f64::NAN),
                r["decision"].as_str().unwrap_or("")
            );
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
