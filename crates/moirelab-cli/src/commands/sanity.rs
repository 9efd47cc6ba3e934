//! `sanity`: cascading parameter randomisation and faithfulness of a run's CAMs.

use super::{check_out_folder, load_model, open_run};
use crate::SanityArgs;
use anyhow::{anyhow, bail, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn sanity(a: SanityArgs) -> Result<ExitCode> {
    if a.images == 0 {
        bail!("--images 0: give at least one image");
    }
    let out = a.out.clone().unwrap_or_else(|| a.run.join("sanity"));
    check_out_folder("--out", &out)?;
    let (loaded, ds) = open_run(&a.run)?;
    let lr = load_model(&a.run, &loaded, ds.classes().len(), "best")?;
    let mut out_folder = OutFolder::prepare(&out)?;
    let method: moirelab_gradcam::Method = a.method.parse()?;
    // The gallery's rule and seed: with --images equal to gradcam.probes these are the
    // gallery's probes.
    let chosen = crate::hooks::choose_probes(&ds, a.images, loaded.config.gradcam.seed)?;
    let Some(split) = crate::hooks::probe_split(&ds).filter(|_| !chosen.is_empty()) else {
        bail!("{}: the data set has no images", a.run.display());
    };
    let xs = ds.eval_batch(&chosen)?.to_device(lr.device);
    let layers: Vec<String> = if loaded.config.gradcam.layers.is_empty() {
        vec![lr.net.default_cam_layer()]
    } else {
        loaded.config.gradcam.layers.clone()
    };
    let layer_refs: Vec<&str> = layers.iter().map(String::as_str).collect();
    let steps = moirelab_gradcam::sanity::cascading_randomization(
        &lr.vs,
        lr.net.as_ref(),
        &xs,
        &moirelab_gradcam::Targets::Pred,
        &layer_refs,
        method,
        loaded.config.train.seed,
    )?;
    println!(
        "cascading parameter randomisation (Adebayo et al. 2018), {method}, {} images from {split}",
        chosen.len()
    );
    println!(
        "{:<6}{:<36}{:>12}{:>10}",
        "step", "re-initialised", "spearman", "std"
    );
    for s in &steps {
        println!(
            "{:<6}{:<36}{:>12.4}{:>10.4}",
            s.step, s.group, s.mean, s.std
        );
    }
    let mut json = serde_json::json!({
        "method": method.to_string(),
        "layers": layers,
        "images": chosen.iter().map(|&i| ds.record(i).path.clone()).collect::<Vec<_>>(),
        "randomization": steps.iter().map(|s| serde_json::json!({
            "step": s.step, "group": s.group, "mean": s.mean, "std": s.std, "per_image": s.per_image,
        })).collect::<Vec<_>>(),
    });
    if a.faithfulness {
        let batch = moirelab_gradcam::compute(
            lr.net.as_ref(),
            &xs,
            &moirelab_gradcam::Targets::Pred,
            &layer_refs,
            &[method],
        )?;
        let map = batch
            .maps
            .first()
            .ok_or_else(|| anyhow!("no map computed for {method}"))?;
        let f = moirelab_gradcam::sanity::faithfulness(
            lr.net.as_ref(),
            &xs,
            map,
            &batch.targets,
            20,
            loaded.config.gradcam.batch_size,
        )?;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        println!(
            "deletion AUC (lower is better)   {:.4}",
            mean(&f.deletion_auc)
        );
        println!(
            "insertion AUC (higher is better) {:.4}",
            mean(&f.insertion_auc)
        );
        println!("average drop %                   {:.2}", f.average_drop);
        println!(
            "increase in confidence %         {:.2}",
            f.increase_in_confidence
        );
        json["faithfulness"] = serde_json::json!({
            "deletion_auc": f.deletion_auc, "insertion_auc": f.insertion_auc,
            "deletion": f.deletion, "insertion": f.insertion,
            "average_drop": f.average_drop, "increase_in_confidence": f.increase_in_confidence,
        });
    }
    let path = out.join("sanity.json");
    moirelab_core::fsio::write_json_atomic(&path, &json)?;
    let cascade: Vec<(usize, f64, f64)> = steps.iter().map(|s| (s.step, s.mean, s.std)).collect();
    let chart = moirelab_report::plots::sanity_chart(&method.to_string(), &cascade);
    let plots = moirelab_report::plots::write_chart(&out, &chart)?;
    println!("written to {}", path.display());
    for p in plots {
        println!("plot:      {}", p.display());
    }
    out_folder.keep = true;
    Ok(ExitCode::SUCCESS)
}

/// The output folder, created and found writable before any computation (sanity used to
/// print its whole table, then fail to write it). Dropped without `keep`, it removes the
/// folders it created that are still empty, so a failure leaves no empty folder behind.
struct OutFolder {
    /// Folders this process created, deepest first.
    created: Vec<PathBuf>,
    keep: bool,
}

impl OutFolder {
    fn prepare(out: &Path) -> Result<OutFolder> {
        let created = out
            .ancestors()
            .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
            .map(Path::to_path_buf)
            .collect();
        let folder = OutFolder {
            created,
            keep: false,
        };
        std::fs::create_dir_all(out)
            .map_err(|e| anyhow!("{}: cannot create the output folder: {e}", out.display()))?;
        let probe = out.join(format!(".sanity-probe-{}", std::process::id()));
        std::fs::write(&probe, b"")
            .map_err(|e| anyhow!("{}: the output folder is not writable: {e}", out.display()))?;
        let _ = std::fs::remove_file(&probe);
        Ok(folder)
    }
}

impl Drop for OutFolder {
    fn drop(&mut self) {
        if !self.keep {
            // remove_dir, not remove_dir_all: only what is still empty goes.
            for d in &self.created {
                let _ = std::fs::remove_dir(d);
            }
        }
    }
}
