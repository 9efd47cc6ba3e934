use moirelab_core::dataset_format::RegionMasks;
use moirelab_gradcam::ProbeInput;
use moirelab_models::{build, CamNet, ModelConfig};
use std::collections::BTreeMap;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// A seeded shallow model (`depth` blocks of width `width`) on the CPU.
pub fn shallow(seed: i64, width: i64, depth: i64, batch_norm: bool) -> (VarStore, Box<dyn CamNet>) {
    let cfg = ModelConfig {
        width,
        depth,
        batch_norm,
        ..ModelConfig::default()
    };
    model(seed, &cfg)
}

pub fn model(seed: i64, cfg: &ModelConfig) -> (VarStore, Box<dyn CamNet>) {
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let net = build(&vs.root(), cfg).expect("valid test config");
    // Give BatchNorm non-trivial eval statistics so maps are not just conv outputs.
    tch::no_grad(|| {
        for (name, t) in vs.variables() {
            let mut t = t;
            if name.ends_with("running_mean") {
                t.copy_(&(Tensor::randn_like(&t) * 0.1));
            } else if name.ends_with("running_var") {
                t.copy_(&(Tensor::rand_like(&t) + 0.5));
            } else if name.ends_with("bn.bias") {
                t.copy_(&(Tensor::randn_like(&t) * 0.2));
            }
        }
    });
    (vs, net)
}

/// Seeded standard-normal images `[n, 3, size, size]`.
pub fn images(seed: i64, n: i64, size: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn([n, 3, size, size], (Kind::Float, Device::Cpu))
}

/// Max |a − b|.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Probe inputs from images: display image = input mapped to 0..255; masks: "left" = left
/// half, "corner" = top-left quarter; alternating aligned/conflicting.
pub fn probes(xs: &Tensor, classes: usize) -> Vec<ProbeInput> {
    let (n, _, h, w) = xs.size4().unwrap();
    (0..n)
        .map(|i| {
            let x = xs.get(i);
            let disp = ((x.tanh() + 1.0) * 127.5)
                .clamp(0.0, 255.0)
                .to_kind(Kind::Uint8)
                .permute([1, 2, 0])
                .contiguous()
                .flatten(0, -1);
            let bytes = Vec::<u8>::try_from(&disp).unwrap();
            let image = image::RgbImage::from_raw(w as u32, h as u32, bytes).unwrap();
            let mut bits = vec![0u16; (h * w) as usize];
            for y in 0..h {
                for xx in 0..w {
                    let mut b = 0;
                    if xx < w / 2 {
                        b |= 1;
                    }
                    if xx < w / 2 && y < h / 2 {
                        b |= 2;
                    }
                    bits[(y * w + xx) as usize] = b;
                }
            }
            ProbeInput {
                id: format!("images/{i:03}.png"),
                image_hash: Some(i as u64),
                image,
                input: x,
                true_class: (i as usize) % classes,
                groups: BTreeMap::from([(
                    "flag".to_string(),
                    if i % 2 == 0 { "A" } else { "B" }.to_string(),
                )]),
                aligned: Some(i % 2 == 0),
                masks: Some(RegionMasks {
                    width: w as u32,
                    height: h as u32,
                    names: vec!["left".into(), "corner".into()],
                    bits,
                }),
            }
        })
        .collect()
}
