//! Whether a probe row of the compare page shows one picture in every run. Probes are
//! matched by their id (the image's path in the data set), and two data sets can hold other
//! pictures under the same path (another seed, another preset, a set regenerated in place).
//!
//! Two runs' cells of a row differ when both `probes.json` record the source image's content
//! hash (`image_hash`) and the hashes differ; for runs dumped before the hash was recorded,
//! when both probe inputs (`probes/NN.png`, the image as the model saw it) have the same size
//! and other pixels. Otherwise nothing is claimed.

use crate::load::RunData;
use crate::util::esc;
use std::collections::BTreeMap;

/// A probe row whose picture is not the same in every run that has it.
pub(crate) struct Differs {
    pub id: String,
    /// The run whose picture the others are compared with (the first that has the probe).
    pub reference: usize,
    /// Runs whose picture differs from the reference's.
    pub others: Vec<usize>,
}

/// Decoded probe inputs, each read once: (run, probe index) -> RGB (`None`: absent or not
/// decodable).
type Pixels = BTreeMap<(usize, usize), Option<image::RgbImage>>;

/// `Some(true)` when the two cells (run, probe index) show other pictures, `Some(false)` when
/// the same, `None` when that cannot be told.
fn differ(
    runs: &[RunData],
    cache: &mut Pixels,
    a: (usize, usize),
    b: (usize, usize),
) -> Option<bool> {
    let hash = |(r, i): (usize, usize)| runs[r].probe_image_hash(i);
    if let (Some(x), Some(y)) = (hash(a), hash(b)) {
        return Some(x != y);
    }
    for (r, i) in [a, b] {
        cache.entry((r, i)).or_insert_with(|| {
            let path = runs[r].probe_inputs.get(&i)?;
            image::open(path).ok().map(|im| im.into_rgb8())
        });
    }
    let (pa, pb) = (cache.get(&a)?.as_ref()?, cache.get(&b)?.as_ref()?);
    (pa.dimensions() == pb.dimensions()).then(|| pa.as_raw() != pb.as_raw())
}

/// The rows of `order` (probe ids) whose picture differs between runs; `by_run[r]` maps an
/// id to its probe index in run `r`.
pub(crate) fn differing_probes(
    runs: &[RunData],
    by_run: &[BTreeMap<String, usize>],
    order: &[String],
) -> Vec<Differs> {
    let mut cache = Pixels::new();
    let mut out = Vec::new();
    for id in order {
        let cells: Vec<(usize, usize)> = by_run
            .iter()
            .enumerate()
            .filter_map(|(r, m)| m.get(id).map(|&i| (r, i)))
            .collect();
        let Some((&first, rest)) = cells.split_first() else {
            continue;
        };
        let others: Vec<usize> = rest
            .iter()
            .filter(|&&c| differ(runs, &mut cache, first, c) == Some(true))
            .map(|c| c.0)
            .collect();
        if !others.is_empty() {
            out.push(Differs {
                id: id.clone(),
                reference: first.0,
                others,
            });
        }
    }
    out
}

/// Rows listed by name at most; the rest are counted.
const LISTED: usize = 12;

/// The compare page's warning about rows that show other pictures, with the runs' data
/// sets (`roots[r]`: `data.root` of run `r`, when its config names one). Empty when every
/// row shows one picture.
pub(crate) fn warning_html(
    runs: &[RunData],
    roots: &[Option<String>],
    differs: &[Differs],
    rows: usize,
) -> String {
    if differs.is_empty() {
        return String::new();
    }
    let name = |r: usize| runs[r].name.as_str();
    let mut involved: Vec<usize> = differs
        .iter()
        .flat_map(|d| std::iter::once(d.reference).chain(d.others.iter().copied()))
        .collect();
    involved.sort_unstable();
    involved.dedup();
    let named: Vec<&String> = involved.iter().filter_map(|&r| roots[r].as_ref()).collect();
    let why = if named.len() == involved.len() && named.windows(2).all(|w| w[0] == w[1]) {
        format!(
            "the runs read the same data folder, <code>{}</code>, whose pictures changed between \
             them (regenerated or edited in place)",
            esc(named[0])
        )
    } else {
        let list: Vec<String> = involved
            .iter()
            .map(|&r| {
                let root = roots[r].as_deref().unwrap_or("(not in its config)");
                format!("{}: <code>{}</code>", esc(name(r)), esc(root))
            })
            .collect();
        format!(
            "the runs' data sets hold other pictures under the same file names ({})",
            list.join(", ")
        )
    };
    let mut items: String = differs
        .iter()
        .take(LISTED)
        .map(|d| {
            let others: Vec<&str> = d.others.iter().map(|&r| name(r)).collect();
            format!(
                "<li>probe {} differs between runs: not the same image in {} as in {}</li>",
                esc(&d.id),
                esc(&others.join(", ")),
                esc(name(d.reference))
            )
        })
        .collect();
    if differs.len() > LISTED {
        items.push_str(&format!("<li>and {} more</li>", differs.len() - LISTED));
    }
    format!(
        "<div class=\"warn\" id=\"probe-warning\"><strong>Not like for like:</strong> {} of \
         {rows} probes show another picture in some runs: {why}. In those rows the maps explain \
         different images, so they do not compare.<ul>{items}</ul></div>",
        differs.len()
    )
}
