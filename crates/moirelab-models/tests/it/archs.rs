//! Architecture behaviour: CAM layer shapes, names, forward_from, determinism, errors.

use crate::{input, max_abs_diff, seeded, tiny_configs};
use moirelab_models::{
    check_layers, summary, to_channels_last, Arch, MemoryFormat, ModelConfig, ModelError, Op,
};
use tch::{Device, Kind, Tensor};

/// `(layer, [C, H, W])` of one image.
type Shapes = Vec<(&'static str, [i64; 3])>;

/// (config name, layer shapes, default layer) — worked out by hand from the architecture
/// docs at the test sizes of `tiny_configs`.
fn documented_shapes() -> Vec<(&'static str, Shapes, &'static str)> {
    let shallow = vec![
        ("conv1", [4, 8, 8]),
        ("conv2", [8, 4, 4]),
        ("conv3", [16, 2, 2]),
    ];
    vec![
        ("shallow", shallow.clone(), "conv3"),
        ("shallow-nobn-1ch", shallow, "conv3"),
        (
            "vgg",
            vec![
                ("stage1.conv1", [4, 16, 16]),
                ("stage1.conv2", [4, 16, 16]),
                ("stage1", [4, 8, 8]),
                ("stage2.conv1", [8, 8, 8]),
                ("stage2.conv2", [8, 8, 8]),
                ("stage2", [8, 4, 4]),
                ("stage3.conv1", [16, 4, 4]),
                ("stage3.conv2", [16, 4, 4]),
                ("stage3", [16, 2, 2]),
            ],
            "stage3",
        ),
        (
            "vgg-nobn",
            vec![
                ("stage1.conv1", [4, 12, 12]),
                ("stage1", [4, 6, 6]),
                ("stage2.conv1", [8, 6, 6]),
                ("stage2", [8, 3, 3]),
            ],
            "stage2",
        ),
        (
            "resnet",
            vec![
                ("maxpool", [4, 8, 8]),
                ("layer1.0", [4, 8, 8]),
                ("layer1.1", [4, 8, 8]),
                ("layer2.0", [8, 4, 4]),
                ("layer2.1", [8, 4, 4]),
                ("layer3.0", [16, 2, 2]),
                ("layer3.1", [16, 2, 2]),
            ],
            "layer3.1",
        ),
        (
            "resnet-nobn",
            vec![
                ("maxpool", [4, 6, 6]),
                ("layer1.0", [4, 6, 6]),
                ("layer2.0", [8, 3, 3]),
            ],
            "layer2.0",
        ),
        (
            "mobilenet",
            vec![
                ("features.0", [8, 16, 16]),
                ("features.1", [8, 16, 16]),
                ("features.2", [8, 8, 8]),
                ("features.3", [8, 8, 8]),
                ("features.4", [8, 4, 4]),
                ("features.5", [8, 4, 4]),
                ("features.6", [8, 4, 4]),
                ("features.7", [16, 2, 2]),
                ("features.8", [16, 2, 2]),
                ("features.9", [16, 2, 2]),
                ("features.10", [16, 2, 2]),
                ("features.11", [1280, 2, 2]),
            ],
            "features.11",
        ),
        (
            "mobilenet-nobn",
            vec![
                ("features.0", [8, 8, 8]),
                ("features.1", [8, 8, 8]),
                ("features.2", [8, 4, 4]),
                ("features.3", [8, 4, 4]),
                ("features.4", [1280, 4, 4]),
            ],
            "features.4",
        ),
    ]
}

#[test]
fn every_cam_layer_returns_its_documented_shape() {
    let _rng = crate::rng_lock();
    let configs = tiny_configs();
    for (name, layers, default) in documented_shapes() {
        let (_, cfg, size) = configs.iter().find(|c| c.0 == name).unwrap();
        let (_vs, net) = seeded(cfg, 1);
        let names: Vec<&str> = layers.iter().map(|l| l.0).collect();
        assert_eq!(net.cam_layers(), names, "{name}: CAM layer list");
        assert_eq!(net.default_cam_layer(), default, "{name}: default layer");
        let xs = input(cfg, 2, *size, 7);
        let out = net.forward_with(&xs, false, &names).unwrap();
        assert_eq!(out.logits.size(), vec![2, cfg.classes], "{name}: logits");
        assert_eq!(out.activations.len(), names.len());
        for ((layer, [c, h, w]), act) in layers.iter().zip(&out.activations) {
            assert_eq!(act.size(), vec![2, *c, *h, *w], "{name}: layer {layer}");
        }
    }
}

#[test]
fn summary_shapes_equal_the_real_activations() {
    let _rng = crate::rng_lock();
    for (name, cfg, size) in tiny_configs() {
        let (vs, net) = seeded(&cfg, 1);
        let s = summary(net.as_ref(), &vs, [cfg.in_channels, size, size]).unwrap();
        let layers = net.cam_layers();
        let refs: Vec<&str> = layers.iter().map(String::as_str).collect();
        let out = net
            .forward_with(&input(&cfg, 1, size, 3), false, &refs)
            .unwrap();
        for (row, act) in s.layers.iter().zip(&out.activations) {
            let [c, h, w] = row.output;
            assert_eq!(act.size(), vec![1, c, h, w], "{name}: {}", row.name);
        }
        assert_eq!(s.layers.last().unwrap().output, [cfg.classes, 1, 1]);
    }
}

#[test]
fn activations_come_back_in_request_order_with_repeats() {
    let _rng = crate::rng_lock();
    let (_, cfg, size) = &tiny_configs()[4]; // resnet
    let (_vs, net) = seeded(cfg, 1);
    let xs = input(cfg, 1, *size, 2);
    let out = net
        .forward_with(&xs, false, &["layer2.1", "maxpool", "layer2.1"])
        .unwrap();
    assert_eq!(out.activations[0].size(), vec![1, 8, 4, 4]);
    assert_eq!(out.activations[1].size(), vec![1, 4, 8, 8]);
    assert_eq!(max_abs_diff(&out.activations[0], &out.activations[2]), 0.0);
}

#[test]
fn unknown_layer_error_names_the_layer_the_arch_and_the_valid_layers() {
    let _rng = crate::rng_lock();
    let (_, cfg, size) = &tiny_configs()[0];
    let (_vs, net) = seeded(cfg, 1);
    let want = "unknown layer 'conv9' for model 'shallow'; valid layers: conv1, conv2, conv3";
    let xs = input(cfg, 1, *size, 2);
    let err = net.forward_with(&xs, false, &["conv9"]).unwrap_err();
    assert!(matches!(err, ModelError::UnknownLayer { .. }));
    assert_eq!(err.to_string(), want);
    let err = net.forward_from("conv9", &xs, false).unwrap_err();
    assert_eq!(err.to_string(), want);
    let err = check_layers(net.as_ref(), &["conv1", "conv9"]).unwrap_err();
    assert_eq!(err.to_string(), want);

    let (_, cfg, _) = &tiny_configs()[5]; // resnet-nobn
    let (_vs, net) = seeded(cfg, 1);
    let err = check_layers(net.as_ref(), &["layer4"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown layer 'layer4' for model 'resnet'; valid layers: maxpool, layer1.0, layer2.0"
    );
}

#[test]
fn forward_from_a_layers_own_activation_reproduces_the_logits() {
    let _rng = crate::rng_lock();
    for (name, cfg, size) in tiny_configs() {
        let (_vs, net) = seeded(&cfg, 4);
        let xs = input(&cfg, 2, size, 5);
        let layers = net.cam_layers();
        let refs: Vec<&str> = layers.iter().map(String::as_str).collect();
        let out = net.forward_with(&xs, false, &refs).unwrap();
        for (layer, act) in refs.iter().zip(&out.activations) {
            let logits = net.forward_from(layer, act, false).unwrap();
            let d = max_abs_diff(&logits, &out.logits);
            assert!(d <= 1e-6, "{name}: forward_from({layer}) differs by {d}");
        }
    }
}

#[test]
fn gradients_reach_requested_activations_in_train_and_eval_mode() {
    let _rng = crate::rng_lock();
    for (name, cfg, size) in tiny_configs() {
        let (_vs, net) = seeded(&cfg, 4);
        let layer = net.default_cam_layer();
        for train in [false, true] {
            let out = net
                .forward_with(&input(&cfg, 2, size, 5), train, &[&layer])
                .unwrap();
            let score = out.logits.select(1, 0).sum(Kind::Float);
            let g = Tensor::run_backward(&[score], &[&out.activations[0]], false, false);
            assert_eq!(g[0].size(), out.activations[0].size(), "{name}");
            assert!(
                g[0].abs().sum(Kind::Float).double_value(&[]) > 0.0,
                "{name}"
            );
        }
    }
}

#[test]
fn same_seed_gives_identical_weights_and_logits_and_another_seed_does_not() {
    let _rng = crate::rng_lock();
    for (name, cfg, size) in tiny_configs() {
        let xs = input(&cfg, 2, size, 9);
        let (vs_a, a) = seeded(&cfg, 11);
        let (vs_b, b) = seeded(&cfg, 11);
        let (vs_c, _) = seeded(&cfg, 12);
        let (va, vb, vc) = (vs_a.variables(), vs_b.variables(), vs_c.variables());
        assert_eq!(va.len(), vb.len());
        let mut differs = false;
        for (k, t) in &va {
            assert_eq!(max_abs_diff(t, &vb[k]), 0.0, "{name}: {k}");
            differs |= max_abs_diff(t, &vc[k]) > 0.0;
        }
        assert!(differs, "{name}: seed 12 gave the weights of seed 11");
        let la = a.forward_t(&xs, false).unwrap();
        let lb = b.forward_t(&xs, false).unwrap();
        assert_eq!(max_abs_diff(&la, &lb), 0.0, "{name}");
    }
}

#[test]
fn batchnorm_starts_as_pytorch_does() {
    let _rng = crate::rng_lock();
    let (_, cfg, _) = &tiny_configs()[0];
    let (vs, _net) = seeded(cfg, 1);
    let v = vs.variables();
    let ones = Tensor::ones([4], (Kind::Float, Device::Cpu));
    assert_eq!(max_abs_diff(&v["conv1.bn.weight"], &ones), 0.0);
    assert_eq!(max_abs_diff(&v["conv1.bn.bias"], &(&ones * 0.0)), 0.0);
    assert_eq!(max_abs_diff(&v["conv1.bn.running_var"], &ones), 0.0);
}

/// GroupNorm normalises each image with its own statistics: no running statistics, the same
/// numbers in training and evaluation mode, and an image's logits do not depend on the other
/// images of its batch (BatchNorm in training mode fails that, which the check first shows).
#[test]
fn groupnorm_keeps_every_image_to_itself_in_training_and_evaluation() {
    let _rng = crate::rng_lock();
    let configs = tiny_configs();
    let (_, bn_cfg, _) = configs.iter().find(|c| c.0 == "vgg").unwrap();
    for name in ["shallow-gn1", "vgg-gn", "resnet-gn", "mobilenet-gn"] {
        let (_, cfg, size) = configs.iter().find(|c| c.0 == name).unwrap();
        let xs = input(cfg, 4, *size, 13);
        let alone = |cfg: &ModelConfig, train: bool| {
            let (_vs, net) = seeded(cfg, 3);
            let batch = tch::no_grad(|| net.forward_t(&xs, train)).unwrap();
            let first = tch::no_grad(|| net.forward_t(&xs.narrow(0, 0, 1), train)).unwrap();
            (batch, first)
        };
        if name == "vgg-gn" {
            let (batch, first) = alone(bn_cfg, true);
            assert!(max_abs_diff(&batch.narrow(0, 0, 1), &first) > 1e-3);
        }
        let (vs, net) = seeded(cfg, 3);
        assert!(
            !vs.variables().keys().any(|k| k.ends_with("running_mean")),
            "{name}: GroupNorm keeps no running statistics"
        );
        let eval = tch::no_grad(|| net.forward_t(&xs, false)).unwrap();
        for train in [false, true] {
            let (batch, first) = alone(cfg, train);
            let d = max_abs_diff(&batch.narrow(0, 0, 1), &first);
            assert!(
                d <= 1e-5,
                "{name} train={train}: batch-mates moved it by {d}"
            );
            let d = max_abs_diff(&batch, &eval);
            assert!(d <= 1e-5, "{name} train={train}: modes differ by {d}");
        }
    }
    // 2 groups of the 4 channels, as asked.
    let (_, cfg, _) = configs.iter().find(|c| c.0 == "vgg-gn").unwrap();
    let (_vs, net) = seeded(cfg, 3);
    let arch = net.architecture().unwrap();
    let ops = &arch.layers[0].ops;
    assert!(
        ops.contains(&Op::GroupNorm2d {
            channels: 4,
            groups: 2
        }),
        "{ops:?}"
    );
}

#[test]
fn bad_inputs_are_shape_errors_with_the_minimum_size() {
    let _rng = crate::rng_lock();
    let (_, cfg, _) = &tiny_configs()[0]; // shallow, 3 pooling blocks: at least 8 px
    let (_vs, net) = seeded(cfg, 1);
    let small = Tensor::zeros([1, 3, 7, 16], (Kind::Float, Device::Cpu));
    let err = net.forward_t(&small, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input shape [1, 3, 7, 16]: expected [N, 3, H, W] with H, W >= 8"
    );
    let gray = Tensor::zeros([1, 1, 16, 16], (Kind::Float, Device::Cpu));
    assert!(matches!(
        net.forward_t(&gray, false),
        Err(ModelError::Shape { channels: 3, .. })
    ));
}

#[test]
fn parameter_names_follow_torchvision_for_resnet_and_mobilenet() {
    let _rng = crate::rng_lock();
    let (_, cfg, _) = &tiny_configs()[4];
    let (vs, _) = seeded(cfg, 1);
    let v = vs.variables();
    for k in [
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer1.1.bn2.bias",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_var",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(v.contains_key(k), "resnet lacks {k}");
    }
    assert!(!v.contains_key("layer1.0.downsample.0.weight"));
    let (_, cfg, _) = &tiny_configs()[6];
    let (vs, _) = seeded(cfg, 1);
    let v = vs.variables();
    for k in [
        "features.0.0.weight",
        "features.0.1.weight",
        "features.1.conv.0.0.weight", // t = 1: depthwise first
        "features.1.conv.1.weight",
        "features.1.conv.2.running_mean",
        "features.2.conv.0.0.weight", // t = 6: expand first
        "features.2.conv.3.bias",
        "features.11.0.weight",
        "classifier.1.weight",
    ] {
        assert!(v.contains_key(k), "mobilenet lacks {k}");
    }
}

#[test]
fn full_size_resnet18_and_mobilenet_v2_have_torchvision_parameter_counts() {
    let _rng = crate::rng_lock();
    let count = |cfg: &ModelConfig| {
        let (vs, _) = seeded(cfg, 1);
        vs.trainable_variables()
            .iter()
            .map(|t| t.numel())
            .sum::<usize>()
    };
    let resnet18 = ModelConfig {
        arch: Arch::Resnet,
        width: 64,
        depth: 4,
        classes: 1000,
        ..Default::default()
    };
    assert_eq!(count(&resnet18), 11_689_512);
    let mobilenet_v2 = ModelConfig {
        arch: Arch::Mobilenet,
        width: 32,
        depth: 7,
        classes: 1000,
        ..Default::default()
    };
    assert_eq!(count(&mobilenet_v2), 3_504_872);
}

#[test]
fn to_channels_last_keeps_shape_and_values_and_is_idempotent() {
    let _rng = crate::rng_lock();
    let xs = input(&tiny_configs()[0].1, 2, 5, 3);
    let cl = to_channels_last(&xs);
    assert_eq!(cl.size(), xs.size());
    assert_eq!(cl.stride(), vec![5 * 5 * 3, 1, 5 * 3, 3]);
    assert_eq!(max_abs_diff(&cl, &xs), 0.0);
    let again = to_channels_last(&cl);
    assert_eq!(
        again.data_ptr(),
        cl.data_ptr(),
        "a channels-last tensor is not copied"
    );
}

/// The memory format is a speed setting: logits, CAM activations and the gradients Grad-CAM
/// reads agree between layouts up to float rounding, for every architecture, in train and
/// eval mode.
#[test]
fn channels_last_and_contiguous_models_compute_the_same_numbers() {
    let _rng = crate::rng_lock();
    for (name, cfg, size) in tiny_configs() {
        let run = |format: MemoryFormat, train: bool| {
            let cfg = ModelConfig {
                memory_format: format,
                ..cfg.clone()
            };
            let (_vs, net) = seeded(&cfg, 21);
            let layers = net.cam_layers();
            let refs: Vec<&str> = layers.iter().map(String::as_str).collect();
            // `input` reseeds, so dropout draws the same masks in both runs.
            let out = net
                .forward_with(&input(&cfg, 3, size, 23), train, &refs)
                .unwrap();
            let score = out.logits.select(1, 1).sum(Kind::Float);
            let acts: Vec<&Tensor> = out.activations.iter().collect();
            let grads = Tensor::run_backward(&[score], &acts, false, false);
            (out.logits, out.activations, grads)
        };
        for train in [false, true] {
            let (la, aa, ga) = run(MemoryFormat::ChannelsLast, train);
            let (lb, ab, gb) = run(MemoryFormat::Contiguous, train);
            let scale = lb.abs().max().double_value(&[]).max(1.0);
            assert!(
                max_abs_diff(&la, &lb) <= 1e-5 * scale,
                "{name} train={train}: logits"
            );
            for (i, (a, b)) in aa.iter().zip(&ab).enumerate() {
                let s = b.abs().max().double_value(&[]).max(1.0);
                assert!(
                    max_abs_diff(a, b) <= 1e-5 * s,
                    "{name} train={train}: act {i}"
                );
            }
            for (i, (a, b)) in ga.iter().zip(&gb).enumerate() {
                let s = b.abs().max().double_value(&[]).max(1e-3);
                assert!(
                    max_abs_diff(a, b) <= 1e-4 * s,
                    "{name} train={train}: grad {i}"
                );
            }
        }
    }
}

#[test]
fn a_laplacian_input_filter_ignores_a_constant_offset_and_sees_a_one_pixel_change() {
    let _rng = crate::rng_lock();
    let configs = tiny_configs();
    let (_, lap, size) = configs.iter().find(|c| c.0 == "vgg-laplacian").unwrap();
    let plain = ModelConfig {
        input_filter: moirelab_models::InputFilter::None,
        ..lap.clone()
    };
    let xs = input(lap, 2, *size, 5);
    let shifted = &xs + Tensor::from_slice(&[0.7f32, -0.3, 1.1]).view([1, 3, 1, 1]);
    let poked = xs.copy();
    let _ = poked.get(0).get(1).get(5).get(9).fill_(3.0);
    let with = ModelConfig {
        input_filter: moirelab_models::InputFilter::WithLaplacian,
        ..lap.clone()
    };
    // Stacked after the photo, the Laplacian leaves the colours (and an offset) readable.
    for (cfg, invariant) in [(lap, true), (&plain, false), (&with, false)] {
        let (_vs, net) = seeded(cfg, 1);
        let logits = |x: &Tensor| net.forward_t(x, false).unwrap();
        let base = logits(&xs);
        // The filter's kernel sums to zero, so a per-channel offset never reaches the
        // first convolution; without the filter it changes the logits.
        let offset = max_abs_diff(&base, &logits(&shifted));
        assert_eq!(
            offset < 1e-5,
            invariant,
            "{:?}: offset moved the logits by {offset}",
            cfg.input_filter
        );
        assert!(
            max_abs_diff(&base, &logits(&poked)) > 1e-4,
            "{:?}: one pixel",
            cfg.input_filter
        );
    }
}
