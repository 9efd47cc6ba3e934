//! The CAM methods. One forward pass in eval mode returns the logits and the activations of
//! the requested layers; one `run_backward` per target set returns `d(score)/d(activation)`
//! for the whole batch (the score is the sum of one selected logit per image, so with
//! BatchNorm in eval mode every image's gradient is its own). Methods then only combine the
//! `(A, g)` pair, per docs/GRADCAM.md:
//!
//! * Grad-CAM — Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
//!   Gradient-based Localization".
//! * Grad-CAM++ — Chattopadhay et al. 2018.
//! * HiResCAM — Draelos & Carin 2020.
//! * XGrad-CAM — Fu et al. 2020, "Axiom-based Grad-CAM".
//! * LayerCAM — Jiang et al. 2021.
//! * Eigen-CAM — Muhammad & Yeasin 2020 (first principal component, no gradients).
//! * Score-CAM — Wang et al. 2020 (channel masks on the input, softmax of the masked scores).

use crate::{GradcamError, Result};
use moirelab_models::CamNet;
use std::fmt;
use std::str::FromStr;
use tch::{Device, Kind, Tensor};

/// A CAM method. `FromStr` accepts the names of [`Method::NAMES`] (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    GradCam,
    GradCamPlusPlus,
    HiResCam,
    XGradCam,
    LayerCam,
    EigenCam,
    ScoreCam,
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::GradCam,
        Method::GradCamPlusPlus,
        Method::HiResCam,
        Method::XGradCam,
        Method::LayerCam,
        Method::EigenCam,
        Method::ScoreCam,
    ];
    pub const NAMES: [&'static str; 7] = [
        "gradcam",
        "gradcam++",
        "hirescam",
        "xgradcam",
        "layercam",
        "eigencam",
        "scorecam",
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Whether the method needs `d(score)/d(activation)`.
    pub fn uses_gradients(self) -> bool {
        !matches!(self, Method::EigenCam | Method::ScoreCam)
    }

    /// File-name-safe form (`gradcam++` -> `gradcampp`), used in tile names.
    pub fn file_stem(self) -> &'static str {
        match self {
            Method::GradCamPlusPlus => "gradcampp",
            m => m.as_str(),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = GradcamError;
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let lower = match lower.as_str() {
            "gradcampp" | "gradcam-plus-plus" => "gradcam++",
            l => l,
        };
        Self::NAMES
            .iter()
            .position(|n| *n == lower)
            .map(|i| Self::ALL[i])
            .ok_or_else(|| GradcamError::UnknownMethod {
                name: s.to_string(),
            })
    }
}

/// Which class each image's map explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// The predicted class (argmax of the logits) of each image.
    Pred,
    /// One class per image; a length different from the batch is an error, never truncated.
    Classes(Vec<i64>),
    /// The same class for every image.
    Class(i64),
}

impl Targets {
    /// One class index per image, checked against the number of classes.
    ///
    /// # Shapes
    /// `logits: [N, K]`.
    pub fn resolve(&self, logits: &Tensor) -> Result<Vec<i64>> {
        let (n, k) = logits.size2()?;
        let v: Vec<i64> = match self {
            Targets::Pred => Vec::<i64>::try_from(&logits.argmax(1, false).to_device(Device::Cpu))?,
            Targets::Classes(v) => {
                if v.len() != n as usize {
                    return Err(GradcamError::TargetCount {
                        got: v.len(),
                        batch: n as usize,
                    });
                }
                v.clone()
            }
            Targets::Class(c) => vec![*c; n as usize],
        };
        for (image, &class) in v.iter().enumerate() {
            if !(0..k).contains(&class) {
                return Err(GradcamError::TargetRange {
                    image,
                    class,
                    classes: k,
                });
            }
        }
        Ok(v)
    }
}

/// One method's maps for a batch.
#[derive(Debug)]
pub struct CamMap {
    pub method: Method,
    /// Layer name, or several joined with `+` when the maps of several layers were averaged.
    pub layer: String,
    /// Non-negative map upsampled to the input size, not normalised (for metrics, and to
    /// compare images and epochs on one scale). Several layers: mean of the upsampled
    /// ReLU'd maps. `[N, H, W]` float.
    pub raw: Tensor,
    /// pytorch-grad-cam semantics: ReLU, per-image min-max at feature resolution, bilinear
    /// upsample, mean over layers, min-max again. Values in `[0, 1]`. `[N, H, W]` float.
    pub normalized: Tensor,
}

/// Maps of a batch for one set of targets.
#[derive(Debug)]
pub struct CamBatch {
    /// `[N, K]`, detached.
    pub logits: Tensor,
    /// Softmax of the logits, per image.
    pub probs: Vec<Vec<f64>>,
    /// The class each map explains, per image.
    pub targets: Vec<i64>,
    /// One entry per requested method, in request order.
    pub maps: Vec<CamMap>,
}

/// Images per forward pass of Score-CAM's masked inputs.
pub(crate) const SCORE_CAM_BATCH: i64 = 64;

/// Compute the maps of `methods` for one set of targets.
///
/// `layers` empty = the model's default CAM layer. Runs the network in eval mode with grad
/// enabled (also when the caller is inside `no_grad`); parameter `.grad` fields are never
/// written. Unknown layers are an error listing the valid ones.
///
/// # Shapes
/// `xs: [N, C, H, W]` → each map `[N, H, W]`, `logits: [N, K]`.
pub fn compute(
    net: &dyn CamNet,
    xs: &Tensor,
    targets: &Targets,
    layers: &[&str],
    methods: &[Method],
) -> Result<CamBatch> {
    let mut v = compute_multi(
        net,
        xs,
        std::slice::from_ref(targets),
        layers,
        methods,
        SCORE_CAM_BATCH,
    )?;
    Ok(v.remove(0))
}

/// Logits, detached activations and `d(score)/d(activation)` of one forward pass.
struct Prepared {
    /// `[N, K]`, detached.
    logits: Tensor,
    /// Per layer `[N, C, h, w]`, detached.
    acts: Vec<Tensor>,
    /// Per target set, the class of each image.
    targets: Vec<Vec<i64>>,
    /// Per target set, per layer `[N, C, h, w]` (empty when no method needs gradients).
    grads: Vec<Vec<Tensor>>,
}

fn resolve_layers<'a>(
    net: &dyn CamNet,
    layers: &[&'a str],
    default: &'a str,
) -> Result<Vec<&'a str>> {
    let layers: Vec<&str> = if layers.is_empty() {
        vec![default]
    } else {
        layers.to_vec()
    };
    moirelab_models::check_layers(net, &layers)?;
    Ok(layers)
}

fn check_input(xs: &Tensor) -> Result<(i64, i64)> {
    let size = xs.size();
    if size.len() != 4 {
        return Err(GradcamError::Shape {
            got: size,
            expected: "[N, C, H, W]".into(),
        });
    }
    Ok((size[2], size[3]))
}

/// One forward pass in eval mode without a graph, then per layer the rest of the network
/// from that layer's activation (a fresh leaf) and one backward per target set.
///
/// The trunk up to the CAM layer never records an autograd graph and nothing is
/// back-propagated through it: for a last-block CAM layer the backward covers only the
/// pooling and the classifier. pytorch-grad-cam instead back-propagates the whole network
/// (parameter gradients included) — the main reason this is faster. Gradients w.r.t. the
/// activation are the same: the rest of the network is the same function of it.
fn prepare(
    net: &dyn CamNet,
    xs: &Tensor,
    targets: &[Targets],
    layers: &[&str],
    need_grad: bool,
) -> Result<Prepared> {
    let out = tch::no_grad(|| net.forward_with(xs, false, layers))?;
    let logits = out.logits;
    let target_vecs = targets
        .iter()
        .map(|t| t.resolve(&logits))
        .collect::<Result<Vec<_>>>()?;
    // Per target set, per layer; empty when no method needs gradients.
    let mut grads: Vec<Vec<Tensor>> = Vec::new();
    if need_grad {
        grads = target_vecs.iter().map(|_| Vec::new()).collect();
        // Grad mode on even under a caller's `no_grad`: the head's graph is needed.
        tch::with_grad(|| -> Result<()> {
            for (layer, act) in layers.iter().zip(&out.activations) {
                let leaf = act.detach().set_requires_grad(true);
                let rest = net.forward_from(layer, &leaf, false)?;
                for (ti, tv) in target_vecs.iter().enumerate() {
                    let score = selected_score(&rest, tv)?;
                    let keep = ti + 1 < target_vecs.len();
                    let mut g = Tensor::f_run_backward(&[&score], &[&leaf], keep, false)?;
                    grads[ti].push(g.remove(0));
                }
            }
            Ok(())
        })?;
    }
    Ok(Prepared {
        logits: logits.detach(),
        acts: out.activations.iter().map(Tensor::detach).collect(),
        targets: target_vecs,
        grads,
    })
}

impl Prepared {
    /// Pre-ReLU map of one method, target set and layer at feature resolution.
    fn layer_map(
        &self,
        method: Method,
        ti: usize,
        li: usize,
        score_logits: &[Option<Tensor>],
    ) -> Result<Tensor> {
        let a = &self.acts[li];
        match method {
            Method::EigenCam => eigen_cam(a),
            Method::ScoreCam => {
                let sl = score_logits
                    .get(li)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| {
                        GradcamError::Config("internal: Score-CAM logits were not computed".into())
                    })?;
                score_cam(a, sl, &self.targets[ti])
            }
            _ => {
                let g = self.grads.get(ti).and_then(|g| g.get(li)).ok_or_else(|| {
                    GradcamError::Config("internal: gradients were not computed".into())
                })?;
                Ok(gradient_map(method, a, g))
            }
        }
    }
}

/// Pre-ReLU maps at feature resolution, one `[N, h, w]` tensor per layer, and the resolved
/// target of each image. For analysis and the GAP oracle: with global-average-pool → linear,
/// Grad-CAM's map sums over `(h, w)` to `y_c − b_c`.
pub fn feature_maps(
    net: &dyn CamNet,
    xs: &Tensor,
    targets: &Targets,
    layers: &[&str],
    method: Method,
) -> Result<(Vec<Tensor>, Vec<i64>)> {
    check_input(xs)?;
    let default_layer = net.default_cam_layer();
    let layers = resolve_layers(net, layers, &default_layer)?;
    let prep = prepare(
        net,
        xs,
        std::slice::from_ref(targets),
        &layers,
        method.uses_gradients(),
    )?;
    tch::no_grad(|| -> Result<(Vec<Tensor>, Vec<i64>)> {
        let score_logits = score_logits_for(net, xs, &prep, &[method], SCORE_CAM_BATCH)?;
        let maps = (0..layers.len())
            .map(|li| prep.layer_map(method, 0, li, &score_logits))
            .collect::<Result<Vec<_>>>()?;
        Ok((maps, prep.targets[0].clone()))
    })
}

fn score_logits_for(
    net: &dyn CamNet,
    xs: &Tensor,
    prep: &Prepared,
    methods: &[Method],
    batch: i64,
) -> Result<Vec<Option<Tensor>>> {
    // Score-CAM's masked-input logits do not depend on the target: computed once.
    if methods.contains(&Method::ScoreCam) {
        prep.acts
            .iter()
            .map(|a| score_cam_logits(net, xs, a, batch).map(Some))
            .collect()
    } else {
        Ok(prep.acts.iter().map(|_| None).collect())
    }
}

/// Several target sets from one forward pass (the dump explains both the predicted and the
/// true class).
pub(crate) fn compute_multi(
    net: &dyn CamNet,
    xs: &Tensor,
    targets: &[Targets],
    layers: &[&str],
    methods: &[Method],
    score_cam_batch: i64,
) -> Result<Vec<CamBatch>> {
    if methods.is_empty() {
        return Err(GradcamError::NoMethods);
    }
    let (height, width) = check_input(xs)?;
    let default_layer = net.default_cam_layer();
    let layers = resolve_layers(net, layers, &default_layer)?;
    let layer_name = layers.join("+");
    let need_grad = methods.iter().any(|m| m.uses_gradients());
    let prep = prepare(net, xs, targets, &layers, need_grad)?;

    tch::no_grad(|| -> Result<Vec<CamBatch>> {
        let probs_t = prep.logits.softmax(1, Kind::Double).to_device(Device::Cpu);
        let probs: Vec<Vec<f64>> = Vec::<Vec<f64>>::try_from(&probs_t)?;
        let score_logits = score_logits_for(net, xs, &prep, methods, score_cam_batch)?;
        let mut batches = Vec::with_capacity(targets.len());
        for (ti, tv) in prep.targets.iter().enumerate() {
            let mut maps = Vec::with_capacity(methods.len());
            for &method in methods {
                let per_layer = (0..layers.len())
                    .map(|li| prep.layer_map(method, ti, li, &score_logits))
                    .collect::<Result<Vec<_>>>()?;
                let (raw, normalized) = finish(&per_layer, height, width)?;
                maps.push(CamMap {
                    method,
                    layer: layer_name.clone(),
                    raw,
                    normalized,
                });
            }
            batches.push(CamBatch {
                logits: prep.logits.shallow_clone(),
                probs: probs.clone(),
                targets: tv.clone(),
                maps,
            });
        }
        Ok(batches)
    })
}

/// Sum over images of each image's selected logit.
///
/// # Shapes
/// `logits: [N, K]` → scalar.
fn selected_score(logits: &Tensor, targets: &[i64]) -> Result<Tensor> {
    let idx = Tensor::from_slice(targets)
        .to_device(logits.device())
        .unsqueeze(1);
    Ok(logits.f_gather(1, &idx, false)?.sum(Kind::Float))
}

/// The map of a gradient-based method before ReLU and normalisation.
///
/// # Shapes
/// `a, g: [N, K, h, w]` → `[N, h, w]`.
pub fn gradient_map(method: Method, a: &Tensor, g: &Tensor) -> Tensor {
    let hw = [2i64, 3];
    match method {
        Method::GradCam => {
            // α[b,k] = mean_hw g
            let alpha = g.mean_dim(&hw[..], true, Kind::Float);
            (alpha * a).sum_dim_intlist(1, false, Kind::Float)
        }
        Method::GradCamPlusPlus => {
            let g2 = g * g;
            let g3 = &g2 * g;
            let sum_a = a.sum_dim_intlist(&hw[..], true, Kind::Float); // [N, K, 1, 1]
            let denom = &g2 * 2.0 + sum_a * g3 + 1e-6;
            let aij = (&g2 / denom).where_self(&g.ne(0.0), &g.zeros_like());
            let w = (g.relu() * aij).sum_dim_intlist(&hw[..], true, Kind::Float);
            (w * a).sum_dim_intlist(1, false, Kind::Float)
        }
        Method::HiResCam => (g * a).sum_dim_intlist(1, false, Kind::Float),
        Method::XGradCam => {
            let sum_a = a.sum_dim_intlist(&hw[..], true, Kind::Float);
            let w = (g * a).sum_dim_intlist(&hw[..], true, Kind::Float) / (sum_a + 1e-7);
            (w * a).sum_dim_intlist(1, false, Kind::Float)
        }
        Method::LayerCam => (g.relu() * a).sum_dim_intlist(1, false, Kind::Float),
        // Not gradient methods; callers route them elsewhere. The channel sum is the
        // natural gradient-free fallback and keeps this function total.
        Method::EigenCam | Method::ScoreCam => a.sum_dim_intlist(1, false, Kind::Float),
    }
}

/// Eigen-CAM: projection of the centred activations on their first principal direction.
/// The SVD's sign is arbitrary (pytorch-grad-cam leaves it so, which inverts maps at random);
/// here it is chosen so the map correlates positively with the channel-mean activation.
///
/// # Shapes
/// `a: [N, K, h, w]` → `[N, h, w]`.
pub fn eigen_cam(a: &Tensor) -> Result<Tensor> {
    let (n, k, h, w) = a.size4()?;
    let x = a
        .to_kind(Kind::Float)
        .reshape([n, k, h * w])
        .transpose(1, 2); // [N, hw, K]
    let xc = &x - x.mean_dim(1, true, Kind::Float);
    // First right singular vector of Xc = top eigenvector of Xcᵀ·Xc (eigh sorts ascending);
    // done in f64 so near-degenerate spectra stay stable.
    let xd = xc.to_kind(Kind::Double);
    let cov = xd.transpose(1, 2).matmul(&xd); // [N, K, K]
    let (_vals, vecs) = cov.f_linalg_eigh("L")?;
    let v0 = vecs.select(2, k - 1).unsqueeze(2); // [N, K, 1]
    let proj = xd.matmul(&v0).squeeze_dim(2).to_kind(Kind::Float); // [N, hw]
    let mean_act = x.mean_dim(2, false, Kind::Float);
    let centred = &mean_act - mean_act.mean_dim(1, true, Kind::Float);
    let corr = (&proj * centred).sum_dim_intlist(1, true, Kind::Float);
    let sign = corr.ge(0.0).to_kind(Kind::Float) * 2.0 - 1.0;
    Ok((proj * sign).reshape([n, h, w]))
}

/// Logits of every channel-masked input: each channel upsampled to the input size,
/// min-max normalised, multiplied into the input, forwarded in batches of `batch`.
///
/// # Shapes
/// `xs: [N, C, H, W]`, `a: [N, K, h, w]` → `[N, K, classes]`.
fn score_cam_logits(net: &dyn CamNet, xs: &Tensor, a: &Tensor, batch: i64) -> Result<Tensor> {
    let (n, k, _, _) = a.size4()?;
    let (_, _, hh, ww) = xs.size4()?;
    let batch = batch.max(1);
    let mut out = Vec::with_capacity(n as usize);
    for b in 0..n {
        let up = a
            .get(b)
            .unsqueeze(0)
            .upsample_bilinear2d([hh, ww], false, None::<f64>, None::<f64>)
            .squeeze_dim(0); // [K, H, W]
        let flat = up.flatten(1, -1);
        let lo = flat.amin(1, true).unsqueeze(2);
        let hi = flat.amax(1, true).unsqueeze(2);
        let masks = (&up - &lo) / (hi - lo + 1e-8);
        let x = xs.get(b).unsqueeze(0); // [1, C, H, W]
        let mut logits = Vec::new();
        let mut start = 0;
        while start < k {
            let len = batch.min(k - start);
            let m = masks.narrow(0, start, len).unsqueeze(1); // [len, 1, H, W]
            let masked = &x * m;
            logits.push(net.forward_t(&masked, false)?);
            start += len;
        }
        out.push(Tensor::f_cat(&logits, 0)?);
    }
    Ok(Tensor::f_stack(&out, 0)?)
}

/// Score-CAM weights = softmax over channels of the target's masked-input logit.
///
/// # Shapes
/// `a: [N, K, h, w]`, `logits: [N, K, classes]` → `[N, h, w]`.
fn score_cam(a: &Tensor, logits: &Tensor, targets: &[i64]) -> Result<Tensor> {
    let (_, k, _) = logits.size3()?;
    let idx = Tensor::from_slice(targets)
        .to_device(logits.device())
        .view([-1, 1, 1])
        .expand([-1, k, 1], false);
    let scores = logits.f_gather(2, &idx, false)?.squeeze_dim(2); // [N, K]
    let w = scores.softmax(1, Kind::Float).unsqueeze(2).unsqueeze(3);
    Ok((w * a).sum_dim_intlist(1, false, Kind::Float))
}

/// Per-image min-max to `[0, 1]` the way pytorch-grad-cam does it: `(m − min) / (1e-7 +
/// max(m − min))`, so a flat map becomes zeros, never NaN.
///
/// # Shapes
/// `[N, h, w]` → `[N, h, w]`.
pub fn minmax(m: &Tensor) -> Tensor {
    let size = m.size();
    let flat = m.flatten(1, -1);
    let shifted = &flat - flat.amin(1, true);
    let max = shifted.amax(1, true);
    (shifted / (max + 1e-7)).reshape(size)
}

/// Bilinear upsample with half-pixel centres (align_corners = false).
///
/// # Shapes
/// `[N, h, w]` → `[N, H, W]`.
pub fn upsample(m: &Tensor, height: i64, width: i64) -> Tensor {
    m.unsqueeze(1)
        .upsample_bilinear2d([height, width], false, None::<f64>, None::<f64>)
        .squeeze_dim(1)
}

/// ReLU, upsample, normalise and average the per-layer maps (docs/GRADCAM.md).
///
/// # Shapes
/// each `[N, h_l, w_l]` → `(raw [N, H, W], normalized [N, H, W])`.
fn finish(per_layer: &[Tensor], height: i64, width: i64) -> Result<(Tensor, Tensor)> {
    let mut raw: Option<Tensor> = None;
    let mut norm: Option<Tensor> = None;
    for m in per_layer {
        let r = m.to_kind(Kind::Float).nan_to_num(0.0, 0.0, 0.0).relu();
        let up_raw = upsample(&r, height, width);
        let up_norm = upsample(&minmax(&r), height, width);
        raw = Some(match raw {
            None => up_raw,
            Some(s) => s + up_raw,
        });
        norm = Some(match norm {
            None => up_norm,
            Some(s) => s + up_norm,
        });
    }
    let l = per_layer.len().max(1) as f64;
    match (raw, norm) {
        (Some(raw), Some(norm)) => Ok(((raw / l).relu(), minmax(&(norm / l)))),
        _ => Err(GradcamError::Config("no layers to combine".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip_and_unknown_lists_valid() {
        for m in Method::ALL {
            assert_eq!(m.to_string().parse::<Method>().unwrap(), m);
        }
        assert_eq!(
            "GradCAM++".parse::<Method>().unwrap(),
            Method::GradCamPlusPlus
        );
        let err = "gradcam+".parse::<Method>().unwrap_err().to_string();
        assert!(
            err.contains("'gradcam+'") && err.contains("scorecam"),
            "{err}"
        );
    }

    #[test]
    fn minmax_of_flat_map_is_zero_not_nan() {
        let m = Tensor::full([2, 3, 3], 5.0, (Kind::Float, Device::Cpu));
        let n = minmax(&m);
        assert_eq!(n.isnan().any().int64_value(&[]), 0);
        assert_eq!(n.abs().max().double_value(&[]), 0.0);
    }

    #[test]
    fn gradcam_plus_plus_matches_hand_computed_weights() {
        // One image, two channels, 1x2 spatial.
        // channel 0: A = [1, 3], g = [1, -1]; channel 1: A = [2, 2], g = [0, 2].
        let a = Tensor::from_slice(&[1.0f32, 3.0, 2.0, 2.0]).view([1, 2, 1, 2]);
        let g = Tensor::from_slice(&[1.0f32, -1.0, 0.0, 2.0]).view([1, 2, 1, 2]);
        // ch0: sumA = 4. p=(0,0): g2=1, g3=1, a = 1/(2+4+1e-6); relu(g)=1 → 1/6.
        //      p=(0,1): g=-1 → relu = 0. w0 = 1/(6+1e-6).
        // ch1: sumA = 4. p=(0,0): g=0 → a=0. p=(0,1): g2=4, g3=8, a = 4/(8+32+1e-6); relu=2
        //      → w1 = 8/(40+1e-6).
        let w0 = 1.0 / (6.0 + 1e-6);
        let w1 = 8.0 / (40.0 + 1e-6);
        let want = [w0 * 1.0 + w1 * 2.0, w0 * 3.0 + w1 * 2.0];
        let m = gradient_map(Method::GradCamPlusPlus, &a, &g);
        let got = Vec::<f32>::try_from(&m.flatten(0, -1)).unwrap();
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn xgradcam_and_layercam_match_hand_computed_values() {
        let a = Tensor::from_slice(&[1.0f32, 3.0, 2.0, 2.0]).view([1, 2, 1, 2]);
        let g = Tensor::from_slice(&[1.0f32, -1.0, 0.0, 2.0]).view([1, 2, 1, 2]);
        // XGrad: w0 = (1*1 + -1*3)/4 = -0.5; w1 = (0*2 + 2*2)/4 = 1.
        let m = gradient_map(Method::XGradCam, &a, &g);
        let got = Vec::<f32>::try_from(&m.flatten(0, -1)).unwrap();
        assert!((got[0] - (-0.5 + 2.0)).abs() < 1e-5 && (got[1] - (-1.5 + 2.0)).abs() < 1e-5);
        // LayerCAM: Σ_k relu(g)·A = [1*1 + 0*2, 0*3 + 2*2] = [1, 4].
        let m = gradient_map(Method::LayerCam, &a, &g);
        assert_eq!(
            Vec::<f32>::try_from(&m.flatten(0, -1)).unwrap(),
            vec![1.0, 4.0]
        );
        // HiResCAM: Σ_k g·A = [1 + 0, -3 + 4] = [1, 1].
        let m = gradient_map(Method::HiResCam, &a, &g);
        assert_eq!(
            Vec::<f32>::try_from(&m.flatten(0, -1)).unwrap(),
            vec![1.0, 1.0]
        );
    }

    #[test]
    fn eigen_cam_sign_follows_the_mean_activation() {
        // A blob in the middle of every channel: the map must peak there, not be inverted.
        let mut v = vec![0.0f32; 3 * 5 * 5];
        for c in 0..3 {
            v[c * 25 + 12] = 1.0 + c as f32;
            v[c * 25 + 13] = 0.5;
        }
        let a = Tensor::from_slice(&v).view([1, 3, 5, 5]);
        let m = eigen_cam(&a).unwrap();
        let flat = Vec::<f32>::try_from(&m.flatten(0, -1)).unwrap();
        let argmax = (0..25)
            .max_by(|&i, &j| flat[i].total_cmp(&flat[j]))
            .unwrap();
        assert_eq!(argmax, 12, "{flat:?}");
        assert!(flat[12] > 0.0);
    }

    #[test]
    fn upsample_uses_half_pixel_centres() {
        // align_corners=false on [0, 1] -> 4 samples: 0, 0.25, 0.75, 1.
        let m = Tensor::from_slice(&[0.0f32, 1.0]).view([1, 1, 2]);
        let up = upsample(&m, 1, 4);
        let got = Vec::<f32>::try_from(&up.flatten(0, -1)).unwrap();
        assert_eq!(got, vec![0.0, 0.25, 0.75, 1.0]);
    }
}
