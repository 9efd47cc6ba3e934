use super::*;
use crate::display::Layout;

/// Apply `knob=value` pairs as `--set` does.
fn set(c: &mut GenConfig, kv: &str) -> Result<(), SynthError> {
    c.apply(&Overrides::from_sets(&[kv])?)
}

#[test]
fn sets_parse_lists_enums_and_reject_bad_values() {
    let mut c = GenConfig::preset("clean").unwrap();
    set(&mut c, "artifacts=bands, moire").unwrap();
    assert_eq!(c.knobs.artifacts, vec![Artifact::Moire, Artifact::Bands]);
    set(&mut c, "artifacts=none").unwrap();
    assert!(c.knobs.artifacts.is_empty());
    set(&mut c, "holdout=layout:pentile").unwrap();
    assert_eq!(c.knobs.holdout, Holdout::Layout(Layout::Pentile));
    set(&mut c, "holdout=pitch:0.3-0.5").unwrap();
    assert_eq!(c.knobs.holdout, Holdout::Pitch(0.3, 0.5));
    assert_eq!(c.knobs.holdout.to_string(), "pitch:0.3-0.5");
    for bad in [
        "layout:crt",
        "pitch:0.5",
        "pitch:0.5-0.3",
        "gamma:2",
        "layout",
    ] {
        let e = set(&mut c, &format!("holdout={bad}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("holdout"), "{bad}: {e}");
    }
    set(&mut c, "holdout=none").unwrap();
    set(&mut c, "layouts=delta, rgb-stripe,delta").unwrap();
    assert_eq!(c.knobs.layouts, vec![Layout::RgbStripe, Layout::Delta]);
    set(&mut c, "layouts=[\"rgbw\", \"default\"]").unwrap();
    assert_eq!(
        c.knobs.layouts,
        [Layout::CLASSIC.as_slice(), &[Layout::Rgbw]].concat()
    );
    set(&mut c, "layouts=all").unwrap();
    assert_eq!(c.knobs.layouts, Layout::ALL);
    set(&mut c, "layouts=default").unwrap();
    assert_eq!(c.knobs.layouts, Layout::CLASSIC);
    let e = set(&mut c, "layouts=delta,crt").unwrap_err().to_string();
    assert!(
        e.contains("layouts") && e.contains("`crt`") && e.contains("s-stripe"),
        "{e}"
    );
    let e = set(&mut c, "layouts=none").unwrap_err().to_string();
    assert!(e.contains("layouts") && e.contains("at least one"), "{e}");
    set(&mut c, "subpixel-jitter=0.5").unwrap();
    assert_eq!(c.knobs.subpixel_jitter, 0.5);
    let e = set(&mut c, "subpixel-jitter=-0.1").unwrap_err().to_string();
    assert!(e.contains("subpixel-jitter") && e.contains("[0, 1]"), "{e}");
    set(&mut c, "bezel=attack-only").unwrap();
    assert_eq!(c.knobs.bezel, Bezel::AttackOnly);
    let e = set(&mut c, "bezel=sometimes").unwrap_err().to_string();
    assert!(e.contains("bezel") && e.contains("rectified-crop"), "{e}");
    let e = set(&mut c, "artifacts=moire,sparkles")
        .unwrap_err()
        .to_string();
    assert!(e.contains("sparkles"), "{e}");
    let e = set(&mut c, "count=2.5").unwrap_err().to_string();
    assert!(e.contains("integer"), "{e}");
    let e = set(&mut c, "size=1024").unwrap_err().to_string();
    assert!(e.contains("size") && e.contains("512"), "{e}");
}

#[test]
fn messages_name_the_knob_and_what_it_accepts() {
    let mut c = GenConfig::preset("clean").unwrap();
    let msg = |c: &mut GenConfig, kv: &str| set(c, kv).unwrap_err().to_string();
    assert_eq!(
        msg(&mut c, "rho-flag=1.5"),
        "knob `rho-flag`: value 1.5 is out of range [0, 1]"
    );
    assert_eq!(
        msg(&mut c, "pitch-min=9"),
        "knob `pitch-min`: value 9 is out of range [0.05, 8]"
    );
    assert_eq!(
        msg(&mut c, "count=0"),
        "knob `count`: value 0 is out of range [1, 10000000]"
    );
    assert_eq!(
        msg(&mut c, "test-rho-flag=abc"),
        "knob `test-rho-flag`: bad value `abc`: expected a number"
    );
    assert_eq!(
        msg(&mut c, "bezel=sometimes"),
        "knob `bezel`: bad value `sometimes`: expected one of off, attack-only, both, \
         rectified-crop"
    );
    assert_eq!(
        msg(&mut c, "twins=maybe"),
        "knob `twins`: bad value `maybe`: expected true or false"
    );
    assert!(msg(&mut c, "seed=-1").contains("expected an unsigned integer"));
    assert!(msg(&mut c, "holdout=layout:crt").starts_with(
        "knob `holdout`: bad value `layout:crt`: unknown layout `crt`; expected one of"
    ));
    let e = msg(&mut c, "nope=1");
    assert!(
        e.starts_with("unknown knob `nope`; valid knobs: rho-flag,"),
        "{e}"
    );
    let e = set(&mut c, "rho-flag").unwrap_err();
    assert!(matches!(e, SynthError::NotKnobValue { .. }), "{e}");
    assert_eq!(c, GenConfig::preset("clean").unwrap(), "nothing applied");
}

#[test]
fn set_values_are_toml_or_bare_words() {
    let mut c = GenConfig::preset("clean").unwrap();
    for kv in [
        "rho-flag=0.75",
        "rho-face=1",
        "test-rho-face=.25",
        "count=1e3",
        "seed=007",
        "twins=on",
        "artifacts=[\"veil\", \"moire\"]",
        "bezel=\"both\"",
    ] {
        set(&mut c, kv).unwrap_or_else(|e| panic!("{kv}: {e}"));
    }
    let k = &c.knobs;
    assert_eq!((k.rho_flag, k.rho_face, k.test_rho_face), (0.75, 1.0, 0.25));
    assert_eq!((c.count, c.seed, c.twins), (1000, 7, true));
    assert_eq!(k.artifacts, vec![Artifact::Moire, Artifact::Veil]);
    assert_eq!(k.bezel, Bezel::Both);
    assert_eq!(knob_value(" 0.5 "), toml::Value::Float(0.5));
    assert_eq!(
        knob_value("moire,bands"),
        toml::Value::String("moire,bands".into())
    );
    // A later pair wins.
    let o = Overrides::from_sets(&["rho-flag=0.2", "rho-flag=0.3"]).unwrap();
    assert_eq!(o.rho_flag, Some(0.3));
    // `default` inside a list is the default set, plus what follows.
    set(&mut c, "artifacts=default,angle").unwrap();
    let mut want = Artifact::DEFAULT.to_vec();
    want.push(Artifact::Angle);
    assert_eq!(c.knobs.artifacts, want);
}

#[test]
fn a_toml_table_deserializes_directly() {
    let table: toml::Table = toml::from_str(
        "rho-flag = 0.9\ncount = 800\ntwins = true\nartifacts = [\"bands\"]\n\
         holdout = \"sensor-scale:2-2.5\"\n",
    )
    .unwrap();
    let o = Overrides::from_toml(table).unwrap();
    assert_eq!(
        o,
        Overrides {
            rho_flag: Some(0.9),
            count: Some(800),
            twins: Some(true),
            artifacts: Some(vec![Artifact::Bands]),
            holdout: Some(Holdout::SensorScale(2.0, 2.5)),
            ..Overrides::default()
        }
    );
}

#[test]
fn knob_names_are_exactly_the_fields_of_overrides() {
    // serde lists the fields it expects when it meets an unknown one.
    let e = toml::Value::Table(toml::Table::from_iter([(
        "not-a-knob".to_string(),
        toml::Value::Integer(1),
    )]))
    .try_into::<Overrides>()
    .unwrap_err();
    let msg = e.message();
    let fields: Vec<&str> = msg[msg.find("expected one of").unwrap()..]
        .split('`')
        .skip(1)
        .step_by(2)
        .collect();
    assert_eq!(fields, KNOB_NAMES, "{msg}");
}
