//! Model summaries, checked by hand on the shallow model.

use crate::{seeded, tiny_configs};
use moirelab_models::{summary, LayerSummary, ModelConfig, ModelError, NormLayer};

fn hand_model() -> ModelConfig {
    ModelConfig {
        width: 4,
        depth: 2,
        ..Default::default()
    }
}

#[test]
fn shallow_summary_matches_hand_computed_numbers() {
    let _rng = crate::rng_lock();
    let cfg = hand_model();
    let (vs, net) = seeded(&cfg, 1);
    let s = summary(net.as_ref(), &vs, [3, 16, 16]).unwrap();
    // conv1: 3x3 conv 3->4 without bias (BN follows): 4*3*9 = 108, BN γ/β 2*4 = 8.
    //   MACs: the conv runs at 16x16 before the pool: 4*16*16*27.
    //   RF: conv 3, pool 2x2/2 adds (2-1)*1 -> 4; stride 2.
    // conv2: 8*4*9 = 288 + 16; MACs 8*8*8*36; RF 4 + 2*2 = 8, pool 8 + 1*2 = 10; stride 4.
    // head: linear 8 -> 2 = 16 + 2 params, 16 MACs.
    let want = vec![
        LayerSummary {
            name: "conv1".into(),
            output: [4, 8, 8],
            params: 116,
            flops: 2 * 4 * 16 * 16 * 27,
            receptive_field: Some(4),
            stride: Some(2),
        },
        LayerSummary {
            name: "conv2".into(),
            output: [8, 4, 4],
            params: 304,
            flops: 2 * 8 * 8 * 8 * 36,
            receptive_field: Some(10),
            stride: Some(4),
        },
        LayerSummary {
            name: "head".into(),
            output: [2, 1, 1],
            params: 18,
            flops: 32,
            receptive_field: None,
            stride: None,
        },
    ];
    assert_eq!(s.layers, want);
    assert_eq!(s.params, 438);
    assert_eq!(s.buffers, 2 * 4 + 2 * 8);
    assert_eq!(s.flops, 55_296 + 36_864 + 32);
    assert_eq!(s.default_cam_layer, "conv2");
}

#[test]
fn summary_counts_every_parameter_of_every_arch() {
    let _rng = crate::rng_lock();
    for (name, cfg, size) in tiny_configs() {
        let (vs, net) = seeded(&cfg, 1);
        let s = summary(net.as_ref(), &vs, [cfg.in_channels, size, size])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let n: usize = vs.trainable_variables().iter().map(|t| t.numel()).sum();
        assert_eq!(s.params as usize, n, "{name}");
        assert!(s.flops > 0, "{name}");
        assert_eq!(
            s.buffers > 0,
            cfg.norm_layer() == NormLayer::Batch,
            "{name}"
        );
    }
}

#[test]
fn resnet_receptive_field_and_stride_match_the_known_resnet18_values() {
    let _rng = crate::rng_lock();
    let cfg = ModelConfig {
        arch: moirelab_models::Arch::Resnet,
        width: 8,
        depth: 4,
        ..Default::default()
    };
    let (vs, net) = seeded(&cfg, 1);
    let s = summary(net.as_ref(), &vs, [3, 224, 224]).unwrap();
    let row = |n: &str| s.layers.iter().find(|l| l.name == n).unwrap().clone();
    // By hand: 7x7/2 -> r 7, j 2; 3x3/2 pool -> 11, 4; each 3x3 conv adds 2j: layer1 +4*8 = 43;
    // layer2 +8 (stride 2 conv at j 4) then 3*16 = 99; layer3 16 + 3*32 -> 211; layer4 32 +
    // 3*64 -> 435 at j 32 (ResNet-18's well-known 435 px).
    assert_eq!(row("maxpool").receptive_field, Some(11));
    assert_eq!(row("maxpool").stride, Some(4));
    assert_eq!(row("layer4.1").receptive_field, Some(435));
    assert_eq!(row("layer4.1").stride, Some(32));
    assert_eq!(row("layer4.1").output, [64, 7, 7]);
}

#[test]
fn summary_table_has_aligned_rows_and_marks_the_default_layer() {
    let _rng = crate::rng_lock();
    let cfg = hand_model();
    let (vs, net) = seeded(&cfg, 1);
    let text = summary(net.as_ref(), &vs, [3, 16, 16]).unwrap().to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "model shallow, input 3×16×16");
    assert!(lines[1].starts_with("layer"), "{text}");
    // Header, rule, 3 rows, rule: all as wide as each other (numbers right-aligned).
    let width = lines[1].chars().count();
    for l in &lines[1..7] {
        assert_eq!(l.chars().count(), width, "misaligned line {l:?} in\n{text}");
    }
    assert!(lines[4].starts_with("conv2 *"), "{text}");
    assert!(
        text.contains("parameters: 438 trainable, 24 buffers"),
        "{text}"
    );
    assert!(text.contains("FLOPs: 92.2 k per image"), "{text}");
}

#[test]
fn summary_rejects_a_varstore_the_model_was_not_built_under() {
    let _rng = crate::rng_lock();
    let (_vs, net) = seeded(&hand_model(), 1);
    let other = ModelConfig {
        width: 8,
        ..hand_model()
    };
    let (vs_other, _) = seeded(&other, 1);
    let err = summary(net.as_ref(), &vs_other, [3, 16, 16]).unwrap_err();
    assert!(matches!(err, ModelError::Summary(_)), "{err}");
    assert!(err.to_string().contains("438 parameters"), "{err}");
}

#[test]
fn summary_rejects_inputs_the_model_cannot_take() {
    let _rng = crate::rng_lock();
    let (vs, net) = seeded(&hand_model(), 1);
    let err = summary(net.as_ref(), &vs, [3, 3, 16]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input shape [1, 3, 3, 16]: expected [N, 3, H, W] with H, W >= 4"
    );
    let err = summary(net.as_ref(), &vs, [1, 16, 16]).unwrap_err();
    assert!(matches!(err, ModelError::Shape { channels: 3, .. }));
}

#[test]
fn a_laplacian_input_filter_widens_every_receptive_field_by_two_and_is_named() {
    let _rng = crate::rng_lock();
    let plain = hand_model();
    let lap = ModelConfig {
        input_filter: moirelab_models::InputFilter::Laplacian,
        ..plain.clone()
    };
    let (vs, net) = seeded(&plain, 1);
    let a = summary(net.as_ref(), &vs, [3, 16, 16]).unwrap();
    let (vs, net) = seeded(&lap, 1);
    let b = summary(net.as_ref(), &vs, [3, 16, 16]).unwrap();
    // conv1: 3x3 on top of the 3x3 filter is 5, the pool makes it 6 (10 -> 12 for conv2).
    let rf = |s: &moirelab_models::ModelSummary| -> Vec<Option<i64>> {
        s.layers.iter().map(|l| l.receptive_field).collect()
    };
    assert_eq!(rf(&a), vec![Some(4), Some(10), None]);
    assert_eq!(rf(&b), vec![Some(6), Some(12), None]);
    assert_eq!(
        (a.params, a.flops),
        (b.params, b.flops),
        "the filter has no parameters"
    );
    let text = b.to_string();
    assert_eq!(
        text.lines().next(),
        Some("model shallow, input 3×16×16, input filter laplacian (3×3, fixed)")
    );
}

#[test]
fn with_laplacian_feeds_six_channels_to_the_first_conv_and_says_so() {
    let _rng = crate::rng_lock();
    let plain = hand_model();
    let with = ModelConfig {
        input_filter: moirelab_models::InputFilter::WithLaplacian,
        ..plain.clone()
    };
    let (vs, net) = seeded(&plain, 1);
    let a = summary(net.as_ref(), &vs, [3, 16, 16]).unwrap();
    let (vs, net) = seeded(&with, 1);
    let b = summary(net.as_ref(), &vs, [3, 16, 16]).unwrap();
    // conv1 is 3x3 with `width` outputs: three more input channels add 3·3·3·width weights
    // and as many multiply-adds per output pixel; later layers are unchanged.
    let (w, out) = (a.layers[0].output[0], a.layers[0].output[1] * 2);
    assert_eq!(b.params - a.params, 27 * w);
    assert_eq!(b.flops - a.flops, 2 * 27 * w * out * out);
    assert_eq!(a.layers[1].params, b.layers[1].params);
    assert_eq!(b.layers[0].receptive_field, Some(6));
    assert_eq!(
        b.to_string().lines().next(),
        Some(
            "model shallow, input 3×16×16, input filter with-laplacian \
             (3×3, fixed; 6 channels into the first layer)"
        )
    );
}
