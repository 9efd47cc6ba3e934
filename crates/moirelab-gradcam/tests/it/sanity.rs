//! Cascading randomisation, faithfulness and `explain`.

use crate::common::{images, max_diff, probes, shallow};
use moirelab_gradcam::sanity::{cascading_randomization, faithfulness, randomization_order};
use moirelab_gradcam::{
    compute, explain, Colormap, ExplainInput, ExplainOptions, ExplainRecord, Method, Targets,
};

#[test]
fn randomization_runs_top_down_and_restores_the_model() {
    let (vs, net) = shallow(31, 8, 3, true);
    assert_eq!(
        randomization_order(&vs),
        vec!["fc", "conv3", "conv2", "conv1"]
    );
    let xs = images(32, 4, 32);
    let before = compute(
        net.as_ref(),
        &xs,
        &Targets::Pred,
        &["conv2"],
        &[Method::GradCam],
    )
    .unwrap();
    let rows = cascading_randomization(
        &vs,
        net.as_ref(),
        &xs,
        &Targets::Pred,
        &["conv2"],
        Method::GradCam,
        5,
    )
    .unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0].group, "none");
    assert!((rows[0].mean - 1.0).abs() < 1e-9, "{rows:?}");
    assert_eq!(rows[1].group, "fc");
    // Randomising every layer destroys the trained structure.
    let last = rows.last().unwrap();
    assert!(last.mean < 0.9, "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r.per_image.len() == 4 && r.mean.is_finite()));
    // Same seed, same table; parameters restored bit for bit.
    let again = cascading_randomization(
        &vs,
        net.as_ref(),
        &xs,
        &Targets::Pred,
        &["conv2"],
        Method::GradCam,
        5,
    )
    .unwrap();
    assert_eq!(rows, again);
    let after = compute(
        net.as_ref(),
        &xs,
        &Targets::Pred,
        &["conv2"],
        &[Method::GradCam],
    )
    .unwrap();
    assert_eq!(max_diff(&before.maps[0].raw, &after.maps[0].raw), 0.0);
}

#[test]
fn deletion_and_insertion_curves_start_and_end_where_they_must() {
    let (_vs, net) = shallow(33, 4, 2, true);
    let xs = images(34, 3, 16);
    let b = compute(net.as_ref(), &xs, &Targets::Pred, &[], &[Method::GradCam]).unwrap();
    let f = faithfulness(net.as_ref(), &xs, &b.maps[0], &b.targets, 8, 16).unwrap();
    assert_eq!(f.deletion.len(), 3);
    for i in 0..3 {
        let p = b.probs[i][b.targets[i] as usize];
        assert_eq!(f.deletion[i].len(), 9);
        // Nothing removed = the original score; everything inserted = the original score.
        assert!((f.deletion[i][0] - p).abs() < 1e-5);
        assert!((f.insertion[i][8] - p).abs() < 1e-5);
        assert!(
            (0.0..=1.0).contains(&f.deletion_auc[i]) && (0.0..=1.0).contains(&f.insertion_auc[i])
        );
    }
    // Everything deleted = a zero input for every image.
    let zero = tch::Tensor::zeros([1, 3, 16, 16], (tch::Kind::Float, tch::Device::Cpu));
    let pz = net
        .forward_t(&zero, false)
        .unwrap()
        .softmax(1, tch::Kind::Double);
    for i in 0..3 {
        let want = pz.double_value(&[0, b.targets[i]]);
        assert!((f.deletion[i][8] - want).abs() < 1e-5);
    }
    assert!((0.0..=100.0).contains(&f.average_drop));
    assert!((0.0..=100.0).contains(&f.increase_in_confidence));
    assert!(faithfulness(net.as_ref(), &xs, &b.maps[0], &b.targets[..2], 8, 16).is_err());
}

#[test]
fn explain_writes_overlays_raw_maps_and_json_per_image() {
    let (_vs, net) = shallow(35, 4, 2, true);
    let xs = images(36, 2, 16);
    let inputs: Vec<ExplainInput> = probes(&xs, 2)
        .into_iter()
        .enumerate()
        .map(|(i, p)| ExplainInput {
            name: format!("img{i}"),
            image: p.image,
            input: p.input,
            masks: p.masks,
        })
        .collect();
    let opts = ExplainOptions {
        methods: vec![Method::GradCam, Method::GradCamPlusPlus],
        layers: vec![],
        target: None,
        classes: vec!["direct".into(), "screen".into()],
        colormap: Colormap::Turbo,
        image_weight: 0.5,
        pointing_tolerance: 1,
        batch_size: 1,
    };
    let dir = tempfile::tempdir().unwrap();
    let recs = explain(net.as_ref(), &inputs, &opts, dir.path()).unwrap();
    assert_eq!(recs.len(), 2);
    for r in &recs {
        let back: ExplainRecord =
            moirelab_core::fsio::read_json(&dir.path().join(format!("{}.json", r.name))).unwrap();
        // serde_json may parse the last digit of a float 1 ulp off: compare with a tolerance.
        assert_eq!(
            (&back.name, back.pred_class, &back.methods.len()),
            (&r.name, r.pred_class, &r.methods.len())
        );
        for (m, v) in &r.methods {
            for (region, s) in &v.regions {
                assert!((back.methods[m].regions[region].lift - s.lift).abs() < 1e-12);
            }
        }
        assert_eq!(r.layer, "conv2");
        assert_eq!(r.target_class, r.pred_class);
        let m = &r.methods["gradcam++"];
        assert!(dir.path().join(&m.overlay).exists() && dir.path().join(&m.heat).exists());
        let st = tch::Tensor::read_safetensors(dir.path().join(format!("{}.safetensors", r.name)))
            .unwrap();
        assert_eq!(st.len(), 2);
        assert_eq!(st[0].1.size(), vec![16, 16]);
    }
    let mut dup = inputs;
    dup[1].name = "img0".into();
    let err = explain(net.as_ref(), &dup, &opts, dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("used twice"), "{err}");
}
