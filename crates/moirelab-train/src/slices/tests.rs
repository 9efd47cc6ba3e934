//! Unit tests of `slices.rs` (kept apart so the module reads as its code).

use super::*;
use serde_json::json;

fn rec(params: Value, groups: &[(&str, &str)]) -> ManifestRecord {
    ManifestRecord {
        path: "x.png".into(),
        label: "screen".into(),
        split: "test".into(),
        groups: groups
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        mask: None,
        boxes: Default::default(),
        flag_twin: None,
        params,
    }
}

/// Each row's value, attacks, APCER and bona fide count.
fn rows_by_attacks(t: &SliceTable) -> Vec<(&str, u64, Option<f64>, u64)> {
    t.rows
        .iter()
        .map(|r| (r.value.as_str(), r.attacks, r.apcer, r.bona_fide))
        .collect()
}

fn none_known() -> Vec<String> {
    vec![]
}

/// [`slicing`] then [`Slicing::table`], as `eval` runs them.
fn slice(
    spec: &SliceSpec,
    values: &[Option<Value>],
    scores: &[f64],
    is_attack: &[bool],
    threshold: f64,
    known: impl FnOnce() -> Vec<String>,
) -> Result<SliceTable, SliceError> {
    Ok(slicing(spec, values, known)?.table(scores, is_attack, threshold))
}

#[test]
fn parse_accepts_paths_groups_and_increasing_edges() {
    let s = SliceSpec::parse("camera.sensor-scale=1.5, 2,2.5").unwrap();
    assert_eq!(s.key, "camera.sensor-scale");
    assert_eq!(s.edges, Some(vec![1.5, 2.0, 2.5]));
    let g = SliceSpec::parse("groups.flag").unwrap();
    assert_eq!(
        g.value(&rec(Value::Null, &[("flag", "A")])),
        Some(json!("A"))
    );
    for bad in ["", "a..b", "x=1,1", "x=1,a", "x=inf", "groups.a.b", ".x"] {
        assert!(SliceSpec::parse(bad).is_err(), "{bad} was accepted");
    }
}

#[test]
fn text_values_give_one_row_each_with_rates_at_the_threshold() {
    let spec = SliceSpec::parse("screen.layout").unwrap();
    let recs = [
        rec(json!({"screen": {"layout": "rgb"}}), &[]),
        rec(json!({"screen": {"layout": "rgb"}}), &[]),
        rec(json!({"screen": {"layout": "pentile"}}), &[]),
        rec(json!({"screen": null}), &[]),
        rec(json!({}), &[]),
    ];
    let values: Vec<_> = recs.iter().map(|r| spec.value(r)).collect();
    let scores = [0.9, 0.2, 0.5, 0.7, 0.1];
    let attack = [true, true, true, false, false];
    let t = slice(&spec, &values, &scores, &attack, 0.5, none_known).unwrap();
    let got: Vec<_> = t
        .rows
        .iter()
        .map(|r| (r.value.as_str(), r.attacks, r.bona_fide, r.apcer, r.bpcer))
        .collect();
    assert_eq!(
        got,
        [
            ("pentile", 1, 0, Some(0.0), None),
            ("rgb", 2, 0, Some(0.5), None),
            ("(none)", 0, 2, None, Some(0.5)),
        ]
    );
    assert_eq!(t.rows[2].accuracy, 0.5);
    assert!(t.edges.is_none());
}

#[test]
fn numbers_fall_into_quartiles_or_the_given_edges() {
    let spec = SliceSpec::parse("s").unwrap();
    let values: Vec<_> = (1..=8).map(|i| Some(json!(i as f64))).collect();
    let scores = [0.0; 8];
    let attack = [true; 8];
    let t = slice(&spec, &values, &scores, &attack, 0.5, none_known).unwrap();
    assert_eq!(t.edges, Some(vec![3.0, 5.0, 7.0]));
    let names: Vec<_> = t
        .rows
        .iter()
        .map(|r| (r.value.as_str(), r.attacks))
        .collect();
    assert_eq!(names, [("< 3", 2), ("3 - 5", 2), ("5 - 7", 2), (">= 7", 2)]);
    let given = SliceSpec::parse("s=4.5").unwrap();
    let t = slice(&given, &values, &scores, &attack, 0.5, none_known).unwrap();
    let names: Vec<_> = t
        .rows
        .iter()
        .map(|r| (r.value.as_str(), r.attacks))
        .collect();
    assert_eq!(names, [("< 4.5", 4), (">= 4.5", 4)]);
    assert_eq!(
        [
            short(1.530_612_2),
            short(0.000_134_16),
            short(1530.6),
            short(2.0),
            short(-0.5)
        ],
        ["1.531", "0.0001342", "1531", "2", "-0.5"]
    );
    // Two to four distinct numbers: a row each, in numeric order (64 before 128).
    let sides: Vec<_> = [128, 64, 256, 128, 64]
        .iter()
        .map(|&x| Some(json!(x)))
        .collect();
    let t = slice(&spec, &sides, &[0.9; 5], &[true; 5], 0.5, none_known).unwrap();
    let names: Vec<_> = t
        .rows
        .iter()
        .map(|r| (r.value.as_str(), r.attacks))
        .collect();
    assert_eq!(names, [("64", 2), ("128", 2), ("256", 1)]);
    assert!(t.edges.is_none());
    // One repeated value: one bin, not empty ones.
    let same = vec![Some(json!(2)); 5];
    let t = slice(&spec, &same, &[0.0; 5], &[true; 5], 0.5, none_known).unwrap();
    assert_eq!(t.rows.len(), 1);
    assert_eq!(t.rows[0].value, "all");
}

#[test]
fn rare_text_values_share_one_row() {
    let spec = SliceSpec::parse("id").unwrap();
    let values: Vec<_> = (0..MAX_CATEGORIES + 5)
        .map(|i| Some(json!(format!("v{i:02}"))))
        .chain([Some(json!("v00"))])
        .collect();
    let n = values.len();
    let t = slice(
        &spec,
        &values,
        &vec![0.9; n],
        &vec![true; n],
        0.5,
        none_known,
    )
    .unwrap();
    assert_eq!(t.rows.len(), MAX_CATEGORIES + 1);
    let other = t.rows.last().unwrap();
    assert_eq!((other.value.as_str(), other.attacks), ("(other)", 5));
    assert_eq!(t.rows.iter().map(|r| r.attacks).sum::<u64>(), n as u64);
}

#[test]
fn a_sum_of_params_counts_missing_terms_as_zero() {
    // Screens with a moiré mask, with bands only, with neither; a genuine photo with none
    // of the terms falls into (none).
    let spec = SliceSpec::parse("m.moire-area + m.bands-area=1").unwrap();
    assert_eq!(spec.key, "m.moire-area + m.bands-area");
    let recs = [
        rec(json!({"m": {"moire-area": 40, "bands-area": 10}}), &[]),
        rec(json!({"m": {"moire-area": 0, "bands-area": 7}}), &[]),
        rec(json!({"m": {"moire-area": 0}}), &[]),
        rec(json!({"m": {"glare-area": 5}}), &[]),
    ];
    let values: Vec<_> = recs.iter().map(|r| spec.value(r)).collect();
    assert_eq!(
        values,
        [Some(json!(50.0)), Some(json!(7.0)), Some(json!(0.0)), None]
    );
    let t = slice(
        &spec,
        &values,
        &[0.9, 0.2, 0.1, 0.3],
        &[true, true, true, false],
        0.5,
        none_known,
    )
    .unwrap();
    assert_eq!(
        rows_by_attacks(&t),
        [
            ("< 1", 1, Some(1.0), 0),
            (">= 1", 2, Some(0.5), 0),
            ("(none)", 0, None, 1)
        ]
    );
    // A text term is named, as a text key with edges is.
    let text = SliceSpec::parse("m.layout+m.moire-area=1").unwrap();
    let r = rec(json!({"m": {"layout": "pentile", "moire-area": 3}}), &[]);
    let e = slice(&text, &[text.value(&r)], &[0.5], &[true], 0.5, none_known).unwrap_err();
    assert!(e.to_string().contains("\"pentile\""), "{e}");
    for bad in ["a.b+", "a.b+groups.flag", "groups.flag+a.b", "+a"] {
        assert!(SliceSpec::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn bad_keys_name_what_the_images_have() {
    let r = rec(
        json!({"camera": {"demosaic": "malvar", "scale": 2.0}}),
        &[("flag", "A")],
    );
    let known = || available_keys(&r);
    let missing = SliceSpec::parse("camera.lens").unwrap();
    let e = slice(&missing, &[missing.value(&r)], &[0.5], &[true], 0.5, known).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no image has 'camera.lens'; keys: camera.demosaic, camera.scale, groups.flag"
    );
    let object = SliceSpec::parse("camera").unwrap();
    let e = slice(&object, &[object.value(&r)], &[0.5], &[true], 0.5, known).unwrap_err();
    assert_eq!(
        e.to_string(),
        "'camera' is an object or a list, not a value; keys: camera.demosaic, camera.scale"
    );
    let text = SliceSpec::parse("camera.demosaic=1,2").unwrap();
    let e = slice(&text, &[text.value(&r)], &[0.5], &[true], 0.5, known).unwrap_err();
    assert!(
        e.to_string().contains("not numbers (e.g. \"malvar\")"),
        "{e}"
    );
}

#[test]
fn products_and_quotients_bind_tighter_than_sums_and_need_every_path() {
    // A display's pitch in output pixels from a simulation's draws: sensor px / sensor scale.
    let spec = SliceSpec::parse("pitch_sensor / sensor_scale=0.45,0.9").unwrap();
    assert_eq!(spec.key, "pitch_sensor / sensor_scale");
    let recs = [
        rec(json!({"pitch_sensor": 1.2, "sensor_scale": 4.0}), &[]),
        rec(json!({"pitch_sensor": 4.0, "sensor_scale": 2.0}), &[]),
        rec(json!({"pitch_sensor": 2.0, "sensor_scale": 0}), &[]),
        rec(json!({"sensor_scale": 2.5}), &[]),
    ];
    let values: Vec<_> = recs.iter().map(|r| spec.value(r)).collect();
    // A division by zero and a missing path are both "no value".
    assert_eq!(values, [Some(json!(0.3)), Some(json!(2.0)), None, None]);
    let t = slice(
        &spec,
        &values,
        &[0.2, 0.9, 0.9, 0.1],
        &[true, true, true, false],
        0.5,
        none_known,
    )
    .unwrap();
    assert_eq!(
        rows_by_attacks(&t),
        [
            ("< 0.45", 1, Some(1.0), 0),
            (">= 0.9", 1, Some(0.0), 0),
            ("(none)", 1, Some(0.0), 1)
        ]
    );
    // a*b/c + d, left to right within a product; a term that is missing counts as 0 in the
    // sum, as a missing path of a plain sum does.
    let spec = SliceSpec::parse("a*b/c+d").unwrap();
    let v = |p: Value| spec.value(&rec(p, &[]));
    assert_eq!(v(json!({"a": 3, "b": 4, "c": 2, "d": 1})), Some(json!(7.0)));
    assert_eq!(v(json!({"a": 3, "b": 4, "d": 1})), Some(json!(1.0)));
    assert_eq!(v(json!({"a": 3, "b": 4, "c": 2})), Some(json!(6.0)));
    assert_eq!(
        v(json!({"d": "x", "a": 1, "b": 1, "c": 1})),
        Some(json!("x"))
    );
    assert_eq!(v(json!({"e": 1})), None);
    assert_eq!(v(json!({"a": 3, "b": 4, "c": 0, "d": 1})), Some(json!(1.0)));
    for bad in ["a/", "*a", "a//b", "a/groups.flag", "groups.flag/a", "a./b"] {
        let e = SliceSpec::parse(bad).unwrap_err();
        assert!(e.contains(bad) || e.contains("groups"), "{bad}: {e}");
    }
}

#[test]
fn names_holding_operators_are_written_in_double_quotes() {
    // A user's manifest with names that hold the key syntax's own characters.
    let r = rec(
        json!({"exif": {"f/number": 2.8, "iso+gain": 400, "v1.2": "a"}, "x*y": 3, "a=b": 1}),
        &[],
    );
    let v = |key: &str| SliceSpec::parse(key).unwrap().value(&r);
    assert_eq!(v("exif.\"f/number\""), Some(json!(2.8)));
    assert_eq!(v("exif.\"iso+gain\""), Some(json!(400)));
    assert_eq!(v("exif.\"v1.2\""), Some(json!("a")));
    assert_eq!(v("\"a=b\""), Some(json!(1)));
    // Operators outside the quotes still combine.
    assert_eq!(v("\"x*y\" * exif.\"f/number\""), Some(json!(3.0 * 2.8)));
    assert_eq!(v("exif.\"iso+gain\"+\"x*y\""), Some(json!(403.0)));
    let spec = SliceSpec::parse("exif.\"f/number\"=2,4").unwrap();
    assert_eq!(spec.key, "exif.\"f/number\"");
    assert_eq!(spec.edges, Some(vec![2.0, 4.0]));
    // Unquoted, the same text means arithmetic on other names.
    assert_eq!(v("exif.f/number"), None);
    // The key list writes such names the way a key must.
    assert_eq!(
        available_keys(&r),
        [
            "\"a=b\"",
            "exif.\"f/number\"",
            "exif.\"iso+gain\"",
            "exif.\"v1.2\"",
            "\"x*y\""
        ]
    );
    for bad in [
        "exif.\"f/number",
        "ex\"if\".a",
        "a.\"b\"c",
        "\"a=1",
        "exif..a",
        "exif.",
    ] {
        assert!(SliceSpec::parse(bad).is_err(), "{bad} was accepted");
    }
}

/// Every key the error lists can be given back as it is written, an empty name (`""`, which
/// only quotes can write) included.
#[test]
fn every_listed_key_parses_and_finds_its_value() {
    let r = rec(
        json!({"": 1, "exif": {"": 2, "f/number": 2.8}, "plain": {"x": "a"}}),
        &[("flag", "A")],
    );
    let keys = available_keys(&r);
    assert!(keys.contains(&"\"\"".to_string()), "{keys:?}");
    assert!(keys.contains(&"exif.\"\"".to_string()), "{keys:?}");
    for key in &keys {
        let spec = SliceSpec::parse(key).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(spec.value(&r).is_some(), "{key} finds nothing");
    }
    assert_eq!(
        SliceSpec::parse("exif.\"\"").unwrap().value(&r),
        Some(json!(2))
    );
}
