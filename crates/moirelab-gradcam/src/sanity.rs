//! Do the maps mean anything? Two families of checks, run on demand (not every epoch):
//!
//! * Cascading model-parameter randomisation — Adebayo et al. 2018, "Sanity Checks for
//!   Saliency Maps": re-initialise the network's parameter groups top-down (head first) and
//!   compare each step's maps with the trained ones by Spearman rank correlation. A method
//!   that explains the *model* loses its structure (ρ falls toward 0); one that ρ ≈ 1 survives
//!   is an edge detector.
//! * Faithfulness — deletion / insertion AUC (Petsiuk et al. 2018, RISE): remove (or insert
//!   over a blurred substrate) the highest-ranked pixels in steps and track the target
//!   probability; Average Drop / Increase in Confidence (Chattopadhay et al. 2018): the score
//!   on `x ⊙ L` versus on `x`.

use crate::cam::{compute, CamMap, Method, Targets};
use crate::overlay::Map2;
use crate::{GradcamError, Result};
use moirelab_core::rng::Rng;
use moirelab_models::CamNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::{nn::VarStore, Kind, Tensor};

/// One step of the cascade: after re-initialising `group` (and every group above it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomizationStep {
    /// 0 = trained model (ρ = 1 by construction, a self-check), then 1, 2, … top-down.
    pub step: usize,
    /// Parameter group re-initialised at this step (`"none"` at step 0).
    pub group: String,
    /// Spearman ρ between this step's normalised map and the trained one, per image.
    pub per_image: Vec<f64>,
    pub mean: f64,
    pub std: f64,
}

/// Parameter groups (first component of the variable names, e.g. `conv2` or `fc`) ordered
/// top-down: the reverse of the order the model created its trainable variables in, which
/// for our models (built input to output) puts the classifier first.
pub fn randomization_order(vs: &VarStore) -> Vec<String> {
    let named = vs.variables();
    let trainable = vs.trainable_variables();
    let mut groups: Vec<String> = Vec::new();
    for t in &trainable {
        let ptr = t.data_ptr();
        // Match by storage: `trainable_variables` is in creation order but unnamed.
        let mut names: Vec<&String> = named
            .iter()
            .filter(|(_, v)| v.data_ptr() == ptr)
            .map(|(n, _)| n)
            .collect();
        names.sort();
        if let Some(name) = names.first() {
            let group = name.split('.').next().unwrap_or(name).to_string();
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
    }
    groups.reverse();
    groups
}

/// Run the cascade for one method. `targets` are resolved once on the trained model and kept
/// for every step. The parameters are restored before returning (also on error), so the model
/// is unchanged afterwards. Weights (dim ≥ 2) are redrawn He-normal, `N(0, 2 / fan_in)`;
/// 1-D parameters (biases, BatchNorm affine) from a normal with the trained tensor's mean and
/// standard deviation, which keeps their scale and destroys their per-channel structure.
/// Random values come from `moirelab_core::rng` streams of `(seed, step, variable)`.
pub fn cascading_randomization(
    vs: &VarStore,
    net: &dyn CamNet,
    xs: &Tensor,
    targets: &Targets,
    layers: &[&str],
    method: Method,
    seed: u64,
) -> Result<Vec<RandomizationStep>> {
    let trained = compute(net, xs, targets, layers, &[method])?;
    let fixed = Targets::Classes(trained.targets.clone());
    let reference = Map2::batch_from_tensor(&trained.maps[0].normalized)?;
    let snapshot: Vec<(String, Tensor)> = tch::no_grad(|| {
        let mut v: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.copy()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    });
    let result = (|| -> Result<Vec<RandomizationStep>> {
        let mut rows = vec![row(0, "none", &reference, &reference)];
        let vars = vs.variables();
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for (si, group) in randomization_order(vs).iter().enumerate() {
            let step = si + 1;
            for (vi, name) in names.iter().enumerate() {
                if name.split('.').next() != Some(group.as_str()) {
                    continue;
                }
                let var = &vars[*name];
                if !var.requires_grad() {
                    continue; // buffers such as BatchNorm running statistics
                }
                let mut rng = Rng::derive(seed, &[step as u64, vi as u64]);
                let fresh = reinit(var, &mut rng)?;
                tch::no_grad(|| var.shallow_clone().f_copy_(&fresh))?;
            }
            let now = compute(net, xs, &fixed, layers, &[method])?;
            let maps = Map2::batch_from_tensor(&now.maps[0].normalized)?;
            rows.push(row(step, group, &reference, &maps));
        }
        Ok(rows)
    })();
    let vars = vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (name, saved) in &snapshot {
            if let Some(v) = vars.get(name) {
                v.shallow_clone().f_copy_(saved)?;
            }
        }
        Ok(())
    })?;
    result
}

fn row(step: usize, group: &str, reference: &[Map2], maps: &[Map2]) -> RandomizationStep {
    let per_image: Vec<f64> = reference
        .iter()
        .zip(maps)
        .map(|(a, b)| spearman(&a.data, &b.data))
        .collect();
    let n = per_image.len().max(1) as f64;
    let mean = per_image.iter().sum::<f64>() / n;
    let var = per_image.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
    RandomizationStep {
        step,
        group: group.to_string(),
        per_image,
        mean,
        std: var.sqrt(),
    }
}

fn reinit(var: &Tensor, rng: &mut Rng) -> Result<Tensor> {
    let size = var.size();
    let numel: i64 = size.iter().product();
    let (mean, std) = if size.len() >= 2 {
        let fan_in: i64 = size[1..].iter().product();
        (0.0, (2.0 / fan_in.max(1) as f64).sqrt())
    } else {
        let f = var.to_kind(Kind::Double);
        let std = if numel > 1 {
            f.std(true).double_value(&[])
        } else {
            0.0
        };
        (f.mean(Kind::Double).double_value(&[]), std)
    };
    let values: Vec<f32> = (0..numel)
        .map(|_| (mean + std * rng.normal()) as f32)
        .collect();
    Ok(Tensor::from_slice(&values)
        .f_view(size.as_slice())?
        .to_device(var.device())
        .to_kind(var.kind()))
}

/// Spearman's ρ with average ranks for ties; 1 for identical inputs, otherwise 0 when either
/// side is constant (no ordering to agree with); never NaN.
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() || a.len() < 2 {
        return 0.0;
    }
    if a == b {
        // Identical maps agree perfectly, constant ones included.
        return 1.0;
    }
    let ra = ranks(a);
    let rb = ranks(b);
    pearson(&ra, &rb)
}

fn ranks(v: &[f32]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Pearson correlation; 0 when either side is constant.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    if n < 2.0 {
        return 0.0;
    }
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa <= 0.0 || sbb <= 0.0 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// Faithfulness numbers of one method on a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Faithfulness {
    pub method: String,
    /// Target probability after removing the top `k/steps` of the pixels, k = 0..=steps.
    pub deletion: Vec<Vec<f64>>,
    /// Target probability after inserting the top `k/steps` over the blurred image.
    pub insertion: Vec<Vec<f64>>,
    /// Trapezoid areas of the curves over the fraction in [0, 1], per image (deletion: lower
    /// is better; insertion: higher is better).
    pub deletion_auc: Vec<f64>,
    pub insertion_auc: Vec<f64>,
    /// Mean over images, in percent: `max(0, y − o) / y` and `1[o > y]`, `y` the probability
    /// on `x`, `o` on `x ⊙ L` (normalised map).
    pub average_drop: f64,
    pub increase_in_confidence: f64,
}

/// Deletion/insertion curves and Average Drop / Increase for `map` (from [`compute`] on the
/// same `xs` and `targets`). Pixels are ranked by the raw map (ties by index). "Removed"
/// pixels are set to 0, the data-set mean in normalised input space; the insertion substrate
/// is the input blurred with a Gaussian of σ = 5·H/224 px (RISE's σ = 5 at 224 px).
///
/// # Shapes
/// `xs: [N, C, H, W]`, `map.raw`, `map.normalized: [N, H, W]`.
pub fn faithfulness(
    net: &dyn CamNet,
    xs: &Tensor,
    map: &CamMap,
    targets: &[i64],
    steps: usize,
    batch_size: usize,
) -> Result<Faithfulness> {
    let (n, c, h, w) = xs.size4()?;
    if targets.len() != n as usize {
        return Err(GradcamError::TargetCount {
            got: targets.len(),
            batch: n as usize,
        });
    }
    let steps = steps.max(1) as i64;
    let hw = h * w;
    let device = xs.device();
    tch::no_grad(|| -> Result<Faithfulness> {
        let xs = xs.to_kind(Kind::Float);
        let blurred = gaussian_blur(&xs, 5.0 * h as f64 / 224.0)?;
        let prob_of = |batch: &Tensor, target: i64| -> Result<Vec<f64>> {
            let mut out = Vec::new();
            let total = batch.size()[0];
            let mut start = 0;
            while start < total {
                let len = (batch_size.max(1) as i64).min(total - start);
                let logits = net.forward_t(&batch.narrow(0, start, len), false)?;
                let p = logits.softmax(1, Kind::Double).select(1, target);
                out.extend(Vec::<f64>::try_from(&p.to_device(tch::Device::Cpu))?);
                start += len;
            }
            Ok(out)
        };
        let counts: Vec<i64> = (0..=steps)
            .map(|k| ((k as f64 / steps as f64) * hw as f64).round() as i64)
            .collect();
        let counts_t = Tensor::from_slice(&counts).to_device(device).unsqueeze(1);
        let mut res = Faithfulness {
            method: map.method.to_string(),
            deletion: Vec::new(),
            insertion: Vec::new(),
            deletion_auc: Vec::new(),
            insertion_auc: Vec::new(),
            average_drop: 0.0,
            increase_in_confidence: 0.0,
        };
        let auc = |curve: &[f64]| -> f64 {
            curve
                .windows(2)
                .map(|p| (p[0] + p[1]) / 2.0 / steps as f64)
                .sum()
        };
        let (mut drop, mut inc) = (0.0, 0.0);
        for b in 0..n {
            let t = targets[b as usize];
            let l = map.raw.get(b).flatten(0, -1);
            let order = l.argsort_stable(true, 0, true);
            let rank = order.argsort_stable(true, 0, false).unsqueeze(0); // [1, HW]
            let mask = rank
                .lt_tensor(&counts_t)
                .to_kind(Kind::Float)
                .view([steps + 1, 1, h, w]);
            let x = xs.get(b).unsqueeze(0).expand([steps + 1, c, h, w], false);
            let bl = blurred.get(b).unsqueeze(0);
            let del = &x * (1.0 - &mask);
            let ins = &bl * (1.0 - &mask) + &x * &mask;
            let dc = prob_of(&del, t)?;
            let ic = prob_of(&ins, t)?;
            res.deletion_auc.push(auc(&dc));
            res.insertion_auc.push(auc(&ic));
            res.deletion.push(dc);
            res.insertion.push(ic);
            let e = map.normalized.get(b).unsqueeze(0).unsqueeze(0);
            let pair = Tensor::f_cat(&[xs.get(b).unsqueeze(0), xs.get(b).unsqueeze(0) * e], 0)?;
            let p = prob_of(&pair, t)?;
            let (y, o) = (p[0], p[1]);
            if y > 0.0 {
                drop += (y - o).max(0.0) / y;
            }
            if o > y {
                inc += 1.0;
            }
        }
        res.average_drop = 100.0 * drop / n.max(1) as f64;
        res.increase_in_confidence = 100.0 * inc / n.max(1) as f64;
        Ok(res)
    })
}

/// Target-probability change when only the flag is swapped (generator twins):
/// `p(target | x) − p(target | twin)`, per image.
///
/// # Shapes
/// `xs, twins: [N, C, H, W]`.
pub fn counterfactual_delta(
    net: &dyn CamNet,
    xs: &Tensor,
    twins: &Tensor,
    targets: &[i64],
) -> Result<Vec<f64>> {
    if xs.size() != twins.size() {
        return Err(GradcamError::Shape {
            got: twins.size(),
            expected: format!("twins of the inputs' shape {:?}", xs.size()),
        });
    }
    tch::no_grad(|| -> Result<Vec<f64>> {
        let both = Tensor::f_cat(&[xs, twins], 0)?;
        let logits = net.forward_t(&both, false)?;
        let n = xs.size()[0];
        let probs = logits.softmax(1, Kind::Double);
        let t = Targets::Classes(targets.to_vec()).resolve(&logits.narrow(0, 0, n))?;
        let idx = Tensor::from_slice(&t)
            .to_device(probs.device())
            .unsqueeze(1);
        let a = probs.narrow(0, 0, n).gather(1, &idx, false).squeeze_dim(1);
        let b = probs.narrow(0, n, n).gather(1, &idx, false).squeeze_dim(1);
        Ok(Vec::<f64>::try_from(&(a - b).to_device(tch::Device::Cpu))?)
    })
}

/// Separable Gaussian blur with zero padding renormalised by the kernel mass inside the
/// image, so borders do not darken.
///
/// # Shapes
/// `[N, C, H, W]` → `[N, C, H, W]`.
pub fn gaussian_blur(xs: &Tensor, sigma: f64) -> Result<Tensor> {
    let (_, c, _, _) = xs.size4()?;
    let sigma = sigma.max(0.5);
    let r = (3.0 * sigma).ceil() as i64;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let s: f32 = k.iter().sum();
    let k: Vec<f32> = k.iter().map(|v| v / s).collect();
    let g = Tensor::from_slice(&k).to_device(xs.device());
    let kh = g.view([1, 1, 1, 2 * r + 1]).repeat([c, 1, 1, 1]);
    let kv = g.view([1, 1, 2 * r + 1, 1]).repeat([c, 1, 1, 1]);
    let blur = |t: &Tensor| -> Result<Tensor> {
        let t = t.f_conv2d(&kh, None::<Tensor>, [1, 1], [0, r], [1, 1], c)?;
        Ok(t.f_conv2d(&kv, None::<Tensor>, [1, 1], [r, 0], [1, 1], c)?)
    };
    let num = blur(xs)?;
    let den = blur(&xs.ones_like())?;
    Ok(num / den)
}

/// Group the rows of several methods' cascades into a printable table: group → method → ρ.
pub fn cascade_table(
    runs: &[(Method, Vec<RandomizationStep>)],
) -> BTreeMap<usize, (String, BTreeMap<String, f64>)> {
    let mut out: BTreeMap<usize, (String, BTreeMap<String, f64>)> = BTreeMap::new();
    for (m, rows) in runs {
        for r in rows {
            out.entry(r.step)
                .or_insert_with(|| (r.group.clone(), BTreeMap::new()))
                .1
                .insert(m.to_string(), r.mean);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_handles_ties_monotone_maps_and_constants() {
        let a = [1.0f32, 2.0, 3.0, 4.0];
        assert!((spearman(&a, &[10.0, 20.0, 30.0, 400.0]) - 1.0).abs() < 1e-12);
        assert!((spearman(&a, &[4.0, 3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        assert_eq!(spearman(&a, &[1.0; 4]), 0.0);
        // ties get average ranks: [0, 0, 1, 2] -> ranks [0.5, 0.5, 2, 3]
        assert_eq!(ranks(&[0.0, 0.0, 1.0, 2.0]), vec![0.5, 0.5, 2.0, 3.0]);
    }

    #[test]
    fn blur_preserves_constant_images_up_to_the_border() {
        let x = Tensor::full([1, 3, 9, 9], 2.0, (Kind::Float, tch::Device::Cpu));
        let b = gaussian_blur(&x, 1.5).unwrap();
        let err = (b - 2.0).abs().max().double_value(&[]);
        assert!(err < 1e-5, "{err}");
    }
}
