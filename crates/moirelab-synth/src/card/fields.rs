//! The card's printed fields: the title, the label/value rows, the signature and the MRZ.

use super::canvas::{stroke, Canvas, EMPTY};
use super::{BoxF, CardSpec, SS};
use crate::mrz::Td1;
use crate::raster::{lin, Plane};
use moirelab_core::rng::Rng;

/// Ink of the template's title, values and MRZ.
pub(super) fn dark() -> [f32; 3] {
    lin([28, 36, 52])
}

/// The title ("IDENTITY CARD" on the template) filling the header box (display pixels);
/// returns the text's box.
pub(super) fn paint_title(cv: &mut Canvas, spec: &CardSpec, header: BoxF) -> BoxF {
    let (title, ink) = match &spec.design {
        Some(d) => (d.title, d.title_ink),
        None => ("IDENTITY CARD", dark()),
    };
    let cw =
        ((header[2] - header[0]) / (title.len() as f64 * 8.0)).min((header[3] - header[1]) / 8.0);
    cv.text(title, header[0], header[1], cw, cw, ink, spec.weight())
}

/// The first 4–6 label/value rows (surname, given names, birth, sex, number, expiry) in the
/// text box (display pixels); returns the box of each row.
pub(super) fn paint_rows(cv: &mut Canvas, spec: &CardSpec, text: BoxF, rng: &mut Rng) -> Vec<BoxF> {
    let mut rows = rows_of(&spec.doc);
    let nrows = 4 + rng.below(3) as usize;
    rows.truncate(nrows);
    let row_h = (text[3] - text[1]) / nrows as f64;
    let label_c = [spec.ink[0] * 0.8, spec.ink[1] * 0.8, spec.ink[2] * 0.9];
    let tw = text[2] - text[0];
    let scale = spec.design.as_ref().map_or(1.0, |d| d.text_scale);
    let cell = (tw / (20.0 * 8.0)).min(row_h * 0.8 / 8.0) * scale;
    let (dark, weight) = (spec.text_ink(), spec.weight());
    let mut boxes = Vec::with_capacity(rows.len());
    for (i, (label, value)) in rows.iter().enumerate() {
        let y = text[1] + i as f64 * row_h;
        let lb = cv.text(label, text[0], y, cell * 0.75, cell * 0.75, label_c, weight);
        let vb = cv.text(value, text[0] + tw * 0.36, y, cell, cell, dark, weight);
        boxes.push([lb[0], lb[1], vb[2], vb[3].max(lb[3])]);
    }
    boxes
}

/// Every label/value row of the document, dates as DD.MM.YY.
fn rows_of(doc: &Td1) -> Vec<(&'static str, String)> {
    let date = |d: &str| format!("{}.{}.{}", &d[4..6], &d[2..4], &d[0..2]);
    vec![
        ("SURNAME", doc.surname.clone()),
        ("GIVEN", doc.given.clone()),
        ("BORN", date(&doc.birth)),
        ("SEX", doc.sex.to_string()),
        ("NO", doc.number.clone()),
        ("EXPIRES", date(&doc.expiry)),
    ]
}

/// A Bézier-scribble signature of 3–5 cubic segments in the signature box (display pixels)
/// on a card `wc` display pixels wide; `cov` is a cleared coverage plane of the canvas's
/// size (left cleared).
pub(super) fn paint_signature(
    cv: &mut Canvas,
    cov: &mut Plane,
    sig: BoxF,
    wc: usize,
    rng: &mut Rng,
) {
    let s = SS as f64;
    let wf = wc as f64;
    let mut pts = Vec::new();
    let mut p0 = [sig[0] + (sig[2] - sig[0]) * 0.05, rng.range(sig[1], sig[3])];
    let segs = 3 + rng.below(3) as usize;
    for k in 0..segs {
        let xe = sig[0] + (sig[2] - sig[0]) * (k + 1) as f64 / segs as f64 * 0.95;
        let p3 = [xe, rng.range(sig[1], sig[3])];
        let p1 = [
            rng.range(p0[0], xe + 4.0),
            rng.range(sig[1] - 4.0, sig[3] + 4.0),
        ];
        let p2 = [
            rng.range(p0[0] - 4.0, xe),
            rng.range(sig[1] - 4.0, sig[3] + 4.0),
        ];
        for i in 0..=24 {
            let t = i as f64 / 24.0;
            let u = 1.0 - t;
            let b = |a: f64, b: f64, c: f64, d: f64| {
                u * u * u * a + 3.0 * u * u * t * b + 3.0 * u * t * t * c + t * t * t * d
            };
            let q = [
                b(p0[0], p1[0], p2[0], p3[0]),
                b(p0[1], p1[1], p2[1], p3[1]).clamp(sig[1], sig[3]),
            ];
            pts.push([q[0] * s, q[1] * s]);
        }
        p0 = p3;
    }
    let region = stroke(cov, &pts, 1.1 * s * wf / 256.0, false, EMPTY);
    cv.paint(cov, region, lin([20, 30, 110]), 0.9);
}

/// The document's three 30-character MRZ lines filling the MRZ box (display pixels); returns
/// the lines.
pub(super) fn paint_mrz(cv: &mut Canvas, spec: &CardSpec, mrz: BoxF) -> [String; 3] {
    let doc = &spec.doc;
    let lines = doc.lines();
    let mcw = (mrz[2] - mrz[0]) / (30.0 * 8.0);
    let mch = (mrz[3] - mrz[1]) / (3.0 * 8.0 * 1.25);
    let (dark, weight) = (spec.text_ink(), spec.weight());
    for (i, l) in lines.iter().enumerate() {
        cv.text(
            l,
            mrz[0],
            mrz[1] + i as f64 * 8.0 * mch * 1.25,
            mcw,
            mch,
            dark,
            weight,
        );
    }
    lines
}
