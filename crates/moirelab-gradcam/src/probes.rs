//! The fixed probe set a run's CAM dumps explain, and its selection.

use crate::{GradcamError, Result};
use moirelab_core::dataset_format::RegionMasks;
use moirelab_core::rng::Rng;
use std::collections::BTreeMap;
use tch::Tensor;

/// One probe image, prepared by the caller (the CLI glue turns data-set samples into these).
#[derive(Debug)]
pub struct ProbeInput {
    /// Stable id: the image path relative to the data-set root.
    pub id: String,
    /// Content hash of the source image (`moirelab_data::Dataset::content_hash`), recorded
    /// in `probes.json` so the compare page can tell other pictures under one id apart.
    pub image_hash: Option<u64>,
    /// The image as the model sees it, for display (resized to the input size if it differs).
    pub image: image::RgbImage,
    /// The normalised model input. `[3, H, W]` float.
    pub input: Tensor,
    pub true_class: usize,
    /// Group attributes, e.g. `{"flag": "A"}` (shown in the label strip).
    pub groups: BTreeMap<String, String>,
    /// Aligned with the train-set shortcut (`Some(true)`), conflicting (`Some(false)`).
    pub aligned: Option<bool>,
    /// Region masks at any resolution (resized nearest to the input size).
    pub masks: Option<RegionMasks>,
}

/// Stream id of the probe selection in [`Rng::derive`].
const PROBE_STREAM: u64 = 0x7072_6f62_6573; // "probes"

/// Pick `n` sample indices balanced over the strata (class × group key): strata are visited
/// round-robin in sorted order, each stratum's members in a seeded shuffled order, until `n`
/// are taken or every stratum is exhausted. The result is sorted by (class, group, index) so a
/// grid shows strata together. `group_keys` is empty (no groups) or one key per sample, e.g.
/// `"flag=A"`; any other length is an error.
pub fn select_probes(
    labels: &[usize],
    group_keys: &[String],
    n: usize,
    seed: u64,
) -> Result<Vec<usize>> {
    if !group_keys.is_empty() && group_keys.len() != labels.len() {
        return Err(GradcamError::Config(format!(
            "select_probes: {} group keys for {} samples (give none or one per sample)",
            group_keys.len(),
            labels.len()
        )));
    }
    let key = |i: usize| group_keys.get(i).map(String::as_str).unwrap_or("");
    let mut strata: BTreeMap<(usize, &str), Vec<usize>> = BTreeMap::new();
    for (i, &label) in labels.iter().enumerate() {
        strata.entry((label, key(i))).or_default().push(i);
    }
    let mut rng = Rng::derive(seed, &[PROBE_STREAM]);
    let mut queues: Vec<std::vec::IntoIter<usize>> = strata
        .into_values()
        .map(|mut members| {
            rng.shuffle(&mut members);
            members.into_iter()
        })
        .collect();
    let mut picked = Vec::with_capacity(n.min(labels.len()));
    while picked.len() < n {
        let mut progressed = false;
        for q in queues.iter_mut() {
            if picked.len() == n {
                break;
            }
            if let Some(i) = q.next() {
                picked.push(i);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    picked.sort_by(|&a, &b| (labels[a], key(a), a).cmp(&(labels[b], key(b), b)));
    Ok(picked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_balanced_deterministic_and_never_repeat() {
        // 90 of class 0 (80 flag A, 10 flag B), 10 of class 1 (all flag A).
        let labels: Vec<usize> = (0..100).map(|i| usize::from(i >= 90)).collect();
        let keys: Vec<String> = (0..100)
            .map(|i| {
                if (80..90).contains(&i) {
                    "flag=B"
                } else {
                    "flag=A"
                }
                .to_string()
            })
            .collect();
        let p = select_probes(&labels, &keys, 9, 7).unwrap();
        assert_eq!(p, select_probes(&labels, &keys, 9, 7).unwrap());
        assert_ne!(p, select_probes(&labels, &keys, 9, 8).unwrap());
        let count = |f: &dyn Fn(usize) -> bool| p.iter().filter(|&&i| f(i)).count();
        // three strata, three each
        assert_eq!(count(&|i| i < 80), 3);
        assert_eq!(count(&|i| (80..90).contains(&i)), 3);
        assert_eq!(count(&|i| i >= 90), 3);
        let mut d = p.clone();
        d.dedup();
        assert_eq!(d.len(), p.len());
        // More than available: everything, once.
        assert_eq!(select_probes(&labels[..5], &[], 50, 1).unwrap().len(), 5);
        assert!(select_probes(&labels, &keys[..3], 4, 1).is_err());
    }
}
