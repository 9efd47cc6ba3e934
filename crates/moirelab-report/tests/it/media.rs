//! Plots (embedded font, PNG + SVG) and GIF strips.

use crate::fixture::{self, Spec};
use image::AnimationDecoder;
use moirelab_report::{gif, plots};

#[test]
fn curves_are_written_as_png_and_svg_with_rendered_text() {
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("plots"));
    let written = plots::write_curves(&run).unwrap();
    let names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for n in [
        "loss.png",
        "loss.svg",
        "accuracy.png",
        "pad.svg",
        "attention-gradcam-true.png",
    ] {
        assert!(names.contains(&n.to_string()), "{n} not in {names:?}");
    }
    let png = image::open(run.join("plots/loss.png")).unwrap().to_rgb8();
    assert_eq!(png.dimensions(), (plots::WIDTH, plots::HEIGHT));
    // The title is drawn with the embedded font: dark pixels in the caption band.
    let dark = (0..png.width())
        .flat_map(|x| (0..30).map(move |y| (x, y)))
        .filter(|&(x, y)| png.get_pixel(x, y).0.iter().all(|&c| c < 100))
        .count();
    assert!(dark > 30, "title band has {dark} dark pixels");
    let svg = std::fs::read_to_string(run.join("plots/loss.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("\nLoss\n") && svg.contains("val"),
        "{svg}"
    );
}

#[test]
fn sanity_chart_draws_the_cascade_with_its_axis_and_band() {
    let tmp = tempfile::tempdir().unwrap();
    let steps = [
        (0, 1.0, 0.0),
        (1, 0.42, 0.1),
        (2, 0.1, 0.05),
        (3, -0.02, 0.04),
    ];
    let chart = plots::sanity_chart("gradcam++", &steps);
    assert_eq!(chart.name, "sanity-gradcam__");
    assert_eq!(chart.series.len(), 3);
    assert_eq!(chart.series[0].points[1], (1.0, 0.42));
    assert!((chart.series[1].points[1].1 - 0.52).abs() < 1e-12);
    assert!(chart.series[2].dashed && !chart.series[0].dashed);
    let written = plots::write_chart(tmp.path(), &chart).unwrap();
    assert_eq!(written.len(), 2);
    let svg = std::fs::read_to_string(tmp.path().join("sanity-gradcam__.svg")).unwrap();
    assert!(svg.contains("re-initialised"), "{svg}");
    assert!(image::open(tmp.path().join("sanity-gradcam__.png")).is_ok());
}

#[test]
fn run_without_metrics_writes_no_plots() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("r");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("config.toml"), "").unwrap();
    assert!(plots::write_curves(&run).unwrap().is_empty());
}

#[test]
fn probe_gif_has_one_captioned_frame_per_dumped_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = Spec::new("gif");
    spec.epochs = vec![1, 2, 3, 4];
    spec.dumps = vec![1, 3, 4];
    let run = fixture::make_run(tmp.path(), &spec);
    let gifs = gif::write_probe_gifs(&run).unwrap().written;
    assert_eq!(gifs.len(), 2);
    let path = gif::gif_path(&run.canonicalize().unwrap(), 1, "gradcam");
    assert_eq!(gifs[1], path);
    let dec = image::codecs::gif::GifDecoder::new(std::io::BufReader::new(
        std::fs::File::open(&path).unwrap(),
    ))
    .unwrap();
    let frames = dec.into_frames().collect_frames().unwrap();
    assert_eq!(frames.len(), 3);
    // Tile 24 px wide -> 1x font, 12 px caption bar above the 24 px tile.
    assert_eq!(frames[0].buffer().dimensions(), (24, 36));
    let (n, d) = frames[0].delay().numer_denom_ms();
    assert_eq!(n / d, 700);
}
