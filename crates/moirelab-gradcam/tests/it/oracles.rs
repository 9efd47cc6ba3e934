//! docs/GRADCAM.md's test oracles on the shallow model (GAP → linear head).

use crate::common::{images, max_diff, shallow};
use moirelab_gradcam::cam::feature_maps;
use moirelab_gradcam::{compute, GradcamError, Method, Targets};
use tch::{Kind, Tensor};

#[test]
fn gradcam_on_gap_linear_head_is_the_class_activation_map() {
    let (vs, net) = shallow(1, 4, 2, true);
    let xs = images(2, 3, 16);
    let vars = vs.variables();
    let (wfc, bfc) = (&vars["fc.weight"], &vars["fc.bias"]); // [K, C], [K]
    for class in 0..2i64 {
        let (maps, targets) = feature_maps(
            net.as_ref(),
            &xs,
            &Targets::Class(class),
            &["conv2"],
            Method::GradCam,
        )
        .unwrap();
        assert_eq!(targets, vec![class; 3]);
        let m = &maps[0]; // [N, h, w], pre-ReLU
        let out = net.forward_with(&xs, false, &["conv2"]).unwrap();
        let a = &out.activations[0]; // [N, C, h, w]
        let (_, _, h, w) = a.size4().unwrap();
        // α_k = W_ck / (h·w)  ⇒  M = Σ_k W_ck A_k / (h·w)
        let cam = (wfc.get(class).view([1, -1, 1, 1]) * a).sum_dim_intlist(1, false, Kind::Float)
            / (h * w) as f64;
        assert!(max_diff(m, &cam) < 1e-5, "{}", max_diff(m, &cam));
        // Σ_hw M = y_c − b_c
        let sums = m.sum_dim_intlist(&[1i64, 2][..], false, Kind::Float);
        let want = out.logits.select(1, class) - bfc.get(class);
        assert!(max_diff(&sums, &want) < 1e-5, "{}", max_diff(&sums, &want));
    }
}

#[test]
fn antisymmetric_binary_head_gives_negated_class_maps() {
    let (vs, net) = shallow(3, 4, 2, false);
    let vars = vs.variables();
    tch::no_grad(|| {
        let w = &vars["fc.weight"];
        w.get(1).shallow_clone().copy_(&(-w.get(0)));
    });
    let xs = images(4, 2, 16);
    let (m0, _) =
        feature_maps(net.as_ref(), &xs, &Targets::Class(0), &[], Method::GradCam).unwrap();
    let (m1, _) =
        feature_maps(net.as_ref(), &xs, &Targets::Class(1), &[], Method::GradCam).unwrap();
    assert!(max_diff(&m0[0], &(-&m1[0])) < 1e-6);
    assert!(
        m0[0].abs().max().double_value(&[]) > 1e-4,
        "maps must not be trivially zero"
    );
    // So their ReLU'd, upsampled maps differ: each class explains its own evidence.
    let b0 = compute(
        net.as_ref(),
        &xs,
        &Targets::Class(0),
        &[],
        &[Method::GradCam],
    )
    .unwrap();
    let b1 = compute(
        net.as_ref(),
        &xs,
        &Targets::Class(1),
        &[],
        &[Method::GradCam],
    )
    .unwrap();
    assert!(max_diff(&b0.maps[0].raw, &b1.maps[0].raw) > 1e-4);
}

#[test]
fn an_image_has_the_same_maps_alone_and_inside_a_batch() {
    let (_vs, net) = shallow(5, 4, 3, true);
    let xs = images(6, 4, 32);
    let all = compute(
        net.as_ref(),
        &xs,
        &Targets::Pred,
        &["conv2", "conv3"],
        &Method::ALL,
    )
    .unwrap();
    for i in [0i64, 3] {
        let one = compute(
            net.as_ref(),
            &xs.narrow(0, i, 1),
            &Targets::Pred,
            &["conv2", "conv3"],
            &Method::ALL,
        )
        .unwrap();
        assert_eq!(one.targets[0], all.targets[i as usize]);
        for (a, b) in all.maps.iter().zip(&one.maps) {
            assert_eq!(a.layer, "conv2+conv3");
            let d = max_diff(&a.normalized.get(i), &b.normalized.get(0));
            let r = max_diff(&a.raw.get(i), &b.raw.get(0));
            assert!(
                d < 1e-4 && r < 1e-4,
                "{}: normalized {d}, raw {r}",
                a.method
            );
        }
    }
}

#[test]
fn flat_maps_are_zero_never_nan_for_every_method() {
    // BN without conv bias and a zero input: every activation is 0.
    let (_vs, net) = shallow(7, 4, 2, true);
    tch::no_grad(|| {
        for (name, t) in _vs.variables() {
            if name.contains("bn.") {
                let mut t = t;
                if name.ends_with("running_mean") || name.ends_with("bias") {
                    let _ = t.fill_(0.0);
                }
            }
        }
    });
    let xs = Tensor::zeros([2, 3, 16, 16], (Kind::Float, tch::Device::Cpu));
    let b = compute(net.as_ref(), &xs, &Targets::Pred, &[], &Method::ALL).unwrap();
    for m in &b.maps {
        for t in [&m.raw, &m.normalized] {
            assert_eq!(t.isnan().any().int64_value(&[]), 0, "{} has NaN", m.method);
            assert_eq!(
                t.abs().max().double_value(&[]),
                0.0,
                "{} not zero",
                m.method
            );
        }
    }
}

#[test]
fn normalized_maps_are_in_unit_range_and_raw_maps_non_negative() {
    let (_vs, net) = shallow(8, 4, 3, true);
    let xs = images(9, 3, 32);
    let b = compute(net.as_ref(), &xs, &Targets::Pred, &["conv1"], &Method::ALL).unwrap();
    for m in &b.maps {
        assert_eq!(m.raw.size(), vec![3, 32, 32]);
        assert!(m.raw.min().double_value(&[]) >= 0.0);
        assert!(m.normalized.min().double_value(&[]) >= 0.0);
        assert!(m.normalized.max().double_value(&[]) <= 1.0 + 1e-6);
    }
    let p: f64 = b.probs[0].iter().sum();
    assert!((p - 1.0).abs() < 1e-9);
}

#[test]
fn targets_count_mismatch_is_an_error_not_a_truncation() {
    let (_vs, net) = shallow(1, 4, 2, true);
    let xs = images(2, 3, 16);
    let err = compute(
        net.as_ref(),
        &xs,
        &Targets::Classes(vec![0, 1]),
        &[],
        &[Method::GradCam],
    )
    .unwrap_err();
    assert!(
        matches!(err, GradcamError::TargetCount { got: 2, batch: 3 }),
        "{err}"
    );
    assert!(err.to_string().contains("2 class indices for a batch of 3"));
    let err = compute(
        net.as_ref(),
        &xs,
        &Targets::Class(2),
        &[],
        &[Method::GradCam],
    )
    .unwrap_err();
    assert!(err.to_string().contains("out of range 0..2"), "{err}");
}

#[test]
fn unknown_layer_and_method_errors_list_the_valid_names() {
    let (_vs, net) = shallow(1, 4, 2, true);
    let xs = images(2, 1, 16);
    let err = compute(
        net.as_ref(),
        &xs,
        &Targets::Pred,
        &["conv9"],
        &[Method::GradCam],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("conv9") && err.contains("conv1, conv2"),
        "{err}"
    );
    let err = "grad-cam".parse::<Method>().unwrap_err().to_string();
    assert!(err.contains("gradcam, gradcam++, hirescam"), "{err}");
    let err = compute(net.as_ref(), &xs, &Targets::Pred, &[], &[]).unwrap_err();
    assert!(matches!(err, GradcamError::NoMethods));
}

#[test]
fn computing_maps_never_touches_parameter_grads() {
    let (vs, net) = shallow(1, 4, 2, true);
    let xs = images(2, 2, 16);
    compute(
        net.as_ref(),
        &xs,
        &Targets::Pred,
        &["conv1", "conv2"],
        &Method::ALL,
    )
    .unwrap();
    for (name, t) in vs.variables() {
        assert!(!t.grad().defined(), "{name} got a grad");
    }
    // An existing grad stays bit-identical.
    let w = &vs.variables()["fc.weight"];
    let loss = net.forward_t(&xs, false).unwrap().sum(Kind::Float);
    loss.backward();
    let before = w.grad().copy();
    compute(net.as_ref(), &xs, &Targets::Pred, &[], &[Method::GradCam]).unwrap();
    assert_eq!(max_diff(&before, &w.grad()), 0.0);
}

#[test]
fn frozen_parameters_and_caller_no_grad_give_the_same_maps() {
    let (mut vs, net) = shallow(11, 4, 3, true);
    let xs = images(12, 2, 32);
    let layers = ["conv2", "conv3"];
    let want = compute(net.as_ref(), &xs, &Targets::Pred, &layers, &Method::ALL).unwrap();
    let inside =
        tch::no_grad(|| compute(net.as_ref(), &xs, &Targets::Pred, &layers, &Method::ALL).unwrap());
    vs.freeze();
    let frozen = compute(net.as_ref(), &xs, &Targets::Pred, &layers, &Method::ALL).unwrap();
    for ((a, b), c) in want.maps.iter().zip(&inside.maps).zip(&frozen.maps) {
        assert!(max_diff(&a.raw, &b.raw) < 1e-6, "{}", a.method);
        assert!(max_diff(&a.raw, &c.raw) < 1e-5, "{} frozen", a.method);
    }
}

#[test]
fn batched_score_cam_equals_a_direct_masked_forward_loop() {
    let (_vs, net) = shallow(13, 3, 2, true);
    let xs = images(14, 2, 16);
    let (maps, targets) = feature_maps(
        net.as_ref(),
        &xs,
        &Targets::Pred,
        &["conv1"],
        Method::ScoreCam,
    )
    .unwrap();
    let a = net
        .forward_with(&xs, false, &["conv1"])
        .unwrap()
        .activations[0]
        .detach();
    let (_, k, _, _) = a.size4().unwrap();
    for b in 0..2i64 {
        let mut scores = Vec::new();
        for c in 0..k {
            let up = a.get(b).get(c).view([1, 1, 8, 8]).upsample_bilinear2d(
                [16, 16],
                false,
                None::<f64>,
                None::<f64>,
            );
            let (lo, hi) = (up.min(), up.max());
            let mask = (&up - &lo) / (hi - lo + 1e-8);
            let logit = net
                .forward_t(&(xs.get(b).unsqueeze(0) * mask), false)
                .unwrap();
            scores.push(logit.double_value(&[0, targets[b as usize]]));
        }
        let mx = scores.iter().cloned().fold(f64::MIN, f64::max);
        let e: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
        let z: f64 = e.iter().sum();
        let mut want = Tensor::zeros([8, 8], (Kind::Float, tch::Device::Cpu));
        for c in 0..k {
            want += a.get(b).get(c) * (e[c as usize] / z);
        }
        let d = max_diff(&maps[0].get(b), &want);
        assert!(d < 1e-5, "image {b}: {d}");
    }
}
