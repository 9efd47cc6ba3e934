//! TensorBoard event files: known-answer bytes (REPORT.md) and a real reader.

use crate::fixture::{self, Spec};
use moirelab_core::run::{CamTarget, MetricsLine};
use moirelab_report::tb::{
    self, encode_file_version_event, encode_scalar_event, frame_record, masked_crc32c, EventWriter,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::process::Command;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn masked_crc32c_matches_known_answers() {
    assert_eq!(masked_crc32c(b""), 0xa282_ead8);
    assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
}

#[test]
fn file_version_event_matches_known_bytes() {
    assert_eq!(
        hex(&encode_file_version_event(1_700_000_000.0)),
        "0900000040fc54d9411a0d627261696e2e4576656e743a32"
    );
}

#[test]
fn scalar_event_matches_known_bytes() {
    assert_eq!(
        hex(&encode_scalar_event(1_700_000_000.0, 1, "loss", 0.5)),
        "0900000040fc54d94110012a0d0a0b0a046c6f7373150000003f"
    );
}

#[test]
fn record_frame_is_length_crc_data_crc_little_endian() {
    let data = b"abc";
    let r = frame_record(data);
    assert_eq!(r.len(), 8 + 4 + 3 + 4);
    assert_eq!(&r[..8], &3u64.to_le_bytes());
    assert_eq!(&r[8..12], &masked_crc32c(&3u64.to_le_bytes()).to_le_bytes());
    assert_eq!(&r[12..15], data);
    assert_eq!(&r[15..], &masked_crc32c(data).to_le_bytes());
}

#[test]
fn create_never_clobbers_an_existing_event_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = EventWriter::create_named(tmp.path(), 1_700_000_000, "host").unwrap();
    a.scalar("x", 1, 1.0).unwrap();
    a.flush().unwrap();
    let a_path = a.path().to_path_buf();
    let a_bytes = std::fs::read(&a_path).unwrap();
    // A resumed run in the same second on the same host.
    let b = EventWriter::create_named(tmp.path(), 1_700_000_000, "host").unwrap();
    assert_ne!(b.path(), a_path);
    assert_eq!(
        a_path.file_name().unwrap(),
        "events.out.tfevents.1700000000.host"
    );
    assert!(b.path().to_string_lossy().contains("tfevents"));
    drop(b);
    assert_eq!(std::fs::read(&a_path).unwrap(), a_bytes);
    // The default name uses the current time and host.
    let c = EventWriter::create(tmp.path()).unwrap();
    let name = c.path().file_name().unwrap().to_string_lossy().into_owned();
    let secs = name.strip_prefix("events.out.tfevents.").unwrap();
    assert_eq!(secs.split('.').next().unwrap().len(), 10, "{name}");
}

#[test]
fn image_with_wrong_size_or_non_png_is_rejected_with_the_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = EventWriter::create(tmp.path()).unwrap();
    let png = fixture::png(4, 3, 1);
    let e = w.image("cam/grid", 1, &png, 5, 3).unwrap_err().to_string();
    assert!(e.contains("cam/grid") && e.contains("4x3"), "{e}");
    let e = w
        .image("cam/grid", 1, b"nope", 4, 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a PNG"), "{e}");
}

/// The tag scheme, restated independently of the implementation.
fn expected_scalars(lines: &[MetricsLine]) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    let mut put = |tag: String, step: u32, v: f64| {
        out.entry(tag).or_default().push((i64::from(step), v));
    };
    for l in lines {
        match l {
            MetricsLine::Epoch(e) => {
                let s = &e.split;
                put(format!("{s}/loss"), e.epoch, e.loss);
                put(format!("{s}/accuracy"), e.epoch, e.accuracy);
                put(
                    format!("{s}/balanced_accuracy"),
                    e.epoch,
                    e.balanced_accuracy,
                );
                put(
                    format!("{s}/worst_group_accuracy"),
                    e.epoch,
                    e.worst_group_accuracy.unwrap(),
                );
                put(
                    format!("{s}/aligned_accuracy"),
                    e.epoch,
                    e.aligned_accuracy.unwrap(),
                );
                put(
                    format!("{s}/conflicting_accuracy"),
                    e.epoch,
                    e.conflicting_accuracy.unwrap(),
                );
                if let Some(lr) = e.lr {
                    put(format!("{s}/lr"), e.epoch, lr);
                }
                if let Some(p) = &e.pad {
                    put(format!("{s}/pad/threshold"), e.epoch, p.threshold);
                    put(
                        format!("{s}/pad/accuracy_at_threshold"),
                        e.epoch,
                        p.accuracy_at_threshold.unwrap(),
                    );
                    put(format!("{s}/pad/apcer"), e.epoch, p.apcer);
                    put(format!("{s}/pad/bpcer"), e.epoch, p.bpcer);
                    put(format!("{s}/pad/acer_non_iso"), e.epoch, p.acer_non_iso);
                    put(format!("{s}/pad/eer"), e.epoch, p.eer);
                    put(format!("{s}/pad/auc"), e.epoch, p.auc);
                    put(format!("{s}/pad/bpcer20"), e.epoch, p.bpcer20.unwrap());
                    assert!(p.bpcer100.is_none());
                }
                put(format!("{s}/group/screen|flag=A/accuracy"), e.epoch, 0.9);
            }
            MetricsLine::Cam(c) => {
                let t = c.target.as_str();
                let classes: Vec<(String, _)> = c
                    .per_class
                    .iter()
                    .map(|(k, v)| (format!("/class-{k}"), v))
                    .collect();
                let mut subs = vec![
                    (String::new(), &c.regions),
                    ("/aligned".to_string(), &c.aligned),
                    ("/conflicting".to_string(), &c.conflicting),
                ];
                subs.extend(classes);
                for (sub, map) in subs {
                    for (r, st) in map {
                        let base = format!("cam/{}/{t}{sub}/{r}", c.method);
                        put(format!("{base}/mass"), c.epoch, st.mass);
                        put(format!("{base}/lift"), c.epoch, st.lift);
                        put(format!("{base}/pointing"), c.epoch, st.pointing);
                        put(format!("{base}/rank"), c.epoch, st.rank);
                    }
                }
            }
        }
    }
    out
}

#[test]
fn tensorboard_event_accumulator_reads_back_every_scalar_and_image() {
    let Some(py) = moirelab_testkit::python("the TensorBoard read-back") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let spec = Spec::new("tbrun");
    let run = fixture::make_run(tmp.path(), &spec);
    let lines: Vec<MetricsLine> =
        moirelab_core::fsio::read_jsonl(&run.join("metrics.jsonl")).unwrap();
    assert!(lines
        .iter()
        .any(|l| matches!(l, MetricsLine::Cam(c) if c.target == CamTarget::True)));

    let mut w = EventWriter::create(&run).unwrap();
    for l in &lines {
        tb::log_metrics_line(&mut w, l).unwrap();
    }
    let mut images: BTreeMap<String, Vec<(i64, u32, u32)>> = BTreeMap::new();
    for &e in &spec.dumps {
        let n = tb::log_epoch_images(&mut w, &run, e).unwrap();
        assert_eq!(n, 1 + spec.probe_ids.len() * spec.methods.len());
        images
            .entry("cam/grid".into())
            .or_default()
            .push((i64::from(e), 48, 24));
        for i in 0..spec.probe_ids.len() {
            images
                .entry(format!("cam/gradcam/overlay/{i:02}"))
                .or_default()
                .push((i64::from(e), 24, 24));
        }
    }
    // A negative step and a direct scalar as the trainer would log them.
    w.scalar("train/batch_loss", -1, 0.25).unwrap();
    w.flush().unwrap();
    drop(w);

    let mut scalars = expected_scalars(&lines);
    scalars.insert("train/batch_loss".into(), vec![(-1, 0.25)]);
    let n_scalars: usize = scalars.values().map(Vec::len).sum();
    // f32 on the wire: compare against the rounded value.
    let scalars_json: BTreeMap<&String, Vec<(i64, f64)>> = scalars
        .iter()
        .map(|(k, v)| {
            (
                k,
                v.iter().map(|&(s, x)| (s, f64::from(x as f32))).collect(),
            )
        })
        .collect();
    let expected = json!({"scalars": scalars_json, "images": images});
    let exp_path = tmp.path().join("expected.json");
    std::fs::write(&exp_path, expected.to_string()).unwrap();
    let script = moirelab_testkit::parity_script("tb_readback.py");
    let out = Command::new(&py)
        .arg(&script)
        .arg(run.join("tb"))
        .arg(&exp_path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let n_images: usize = images.values().map(Vec::len).sum();
    assert!(
        stdout.contains(&format!("scalars={n_scalars} images={n_images}")),
        "{stdout}"
    );
}

#[test]
fn export_run_writes_a_fresh_event_file_per_call() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("exp"));
    let a = tb::export_run(&run).unwrap();
    let b = tb::export_run(&run).unwrap();
    assert_ne!(a, b);
    let bytes = std::fs::read(&a).unwrap();
    // First record is the file_version event; every record's CRCs check out.
    let mut off = 0;
    let mut records = 0;
    while off < bytes.len() {
        let len = u64::from_le_bytes(bytes[off..off + 8].try_into().unwrap()) as usize;
        let crc_len = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap());
        assert_eq!(crc_len, masked_crc32c(&bytes[off..off + 8]));
        let data = &bytes[off + 12..off + 12 + len];
        let crc = u32::from_le_bytes(bytes[off + 12 + len..off + 16 + len].try_into().unwrap());
        assert_eq!(crc, masked_crc32c(data));
        if records == 0 {
            assert!(data.ends_with(b"brain.Event:2"));
        }
        records += 1;
        off += 16 + len;
    }
    assert_eq!(off, bytes.len());
    assert!(records > 50, "{records} records");
}
