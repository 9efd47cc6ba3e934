//! Real headless Chromium over file://: the pages' #selftest steps the slider through every
//! epoch and mode, checks that every <img> loaded, and records script errors and CSP
//! violations; the dumped DOM must say PASS. Screenshots land under the target dir.

use crate::fixture::{self, Spec, HOSTILE};
use moirelab_report::{write_compare, write_run_report};
use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(p) = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        }) {
            return Some(p);
        }
    }
    if std::env::var("MOIRELAB_SKIP_BROWSER").as_deref() == Ok("1") {
        return None;
    }
    panic!(
        "no chromium on PATH: install it (Debian: apt-get install chromium) to run the page \
         tests, or set MOIRELAB_SKIP_BROWSER=1 to skip them explicitly"
    );
}

fn file_url(p: &Path) -> String {
    let mut s = String::from("file://");
    for b in p.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn headless(bin: &Path, profile: &Path, extra: &[String], url: &str) -> (String, String) {
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run the page's selftest at 1000 and 1400 px (layout checks included) and, when
/// `shot_name` is given, take screenshots at both widths. Returns the DOM at 1000 px.
fn check_page(bin: &Path, page: &Path, shot_name: Option<&str>) -> String {
    let wide = check_page_at(bin, page, shot_name, 1400);
    let result = &wide[wide.find("SELFTEST PASS").unwrap_or(0)..];
    let width: u32 = result
        .split(" width=")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(width > 1300, "window width not applied: {width}");
    check_page_at(bin, page, shot_name, 1000)
}

fn check_page_at(bin: &Path, page: &Path, shot_name: Option<&str>, width: u32) -> String {
    let profile = tempfile::tempdir().unwrap();
    let (dom, log) = headless(
        bin,
        profile.path(),
        &["--dump-dom".into(), format!("--window-size={width},900")],
        &format!("{}#selftest", file_url(page)),
    );
    let start = dom.find("<pre id=\"selftest\">").unwrap_or_else(|| {
        panic!(
            "no visible selftest result in the DOM of {}\n{log}",
            page.display()
        )
    });
    let result = &dom[start..start + dom[start..].find("</pre>").unwrap()];
    assert!(
        result.contains("SELFTEST PASS"),
        "{result}\n--- chromium log ---\n{log}"
    );
    let images: usize = result
        .split("images=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    if shot_name.is_some() {
        assert!(images > 0, "{result}");
    }
    for bad in ["Uncaught", "Refused to", "Content Security Policy"] {
        assert!(!log.contains(bad), "console says {bad:?}:\n{log}");
    }
    let Some(shot_name) = shot_name else {
        return dom;
    };
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join(format!("{width}-{shot_name}"));
    let profile2 = tempfile::tempdir().unwrap();
    let _ = std::fs::remove_file(&shot);
    headless(
        bin,
        profile2.path(),
        &[
            format!("--screenshot={}", shot.display()),
            format!("--window-size={width},2400"),
            "--hide-scrollbars".into(),
        ],
        &file_url(page),
    );
    assert!(shot.is_file(), "no screenshot at {}", shot.display());
    dom
}

#[test]
fn run_and_compare_pages_pass_their_selftest_in_headless_chromium() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut a = Spec::new("shallow <b> #1");
    a.name = HOSTILE.into();
    a.classes = vec![HOSTILE.into(), "screen".into()];
    a.methods = vec!["gradcam".into(), "gradcam++".into()];
    a.epochs = vec![1, 2, 3, 4];
    a.dumps = vec![1, 2, 4];
    let ra = fixture::make_run(&tmp.path().join("runs"), &a);
    let mut b = Spec::new("deep");
    b.arch = "resnet".into();
    b.skill = 0.2;
    b.summary = false;
    b.probe_ids = vec!["images/000002.png".into(), "images/000003.png".into()];
    let rb = fixture::make_run(&tmp.path().join("runs"), &b);

    let page = write_run_report(&ra).unwrap().page;
    let dom = check_page(&bin, &page, Some("run.png"));
    // Hostile strings are text in the live DOM too: no element was created from them.
    assert_eq!(
        dom.matches("<script").count(),
        2,
        "extra script elements in the DOM"
    );
    assert!(!dom.contains("<b>"));
    assert!(dom.contains("&lt;script&gt;alert(\"x\")&lt;/script&gt;'../"));

    let cmp = write_compare(&[ra, rb], &tmp.path().join("out/cmp"))
        .unwrap()
        .page;
    let dom = check_page(&bin, &cmp, Some("compare.png"));
    assert_eq!(dom.matches("<script").count(), 2);
    assert!(!dom.contains("<b>"));
}

#[test]
fn selftest_reports_a_missing_image_as_failure() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("broken"));
    let page = write_run_report(&run).unwrap().page;
    // The page was built while the strip existed; deleting it afterwards must be caught.
    std::fs::remove_file(run.join("epochs/0002/maps/gradcam-pred.png")).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let (dom, _) = headless(
        &bin,
        profile.path(),
        &["--dump-dom".into()],
        &format!("{}#selftest", file_url(&page)),
    );
    assert!(dom.contains("SELFTEST FAIL"), "{dom}");
    assert!(dom.contains("maps/gradcam-pred.png"));
}

/// The `data-state` attribute mirrors the state the page serialises into its address.
fn state_of(dom: &str) -> String {
    let i = dom.find("data-state=\"").expect("data-state") + "data-state=\"".len();
    dom[i..i + dom[i..].find('"').unwrap()].replace("&amp;", "&")
}

#[test]
fn a_link_with_view_state_reopens_that_view() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut a = Spec::new("a");
    a.epochs = vec![1, 2, 3, 4];
    a.dumps = vec![1, 2, 3, 4];
    let ra = fixture::make_run(tmp.path(), &a);
    let page = write_run_report(&ra).unwrap().page;
    let profile = tempfile::tempdir().unwrap();
    let hash = "#e=2&map=both&grp=aligned&ok=right&sort=pa&norm=epoch&op=35&p=images%2F000001.png";
    let (dom, log) = headless(
        &bin,
        profile.path(),
        &["--dump-dom".into()],
        &format!("{}{hash}", file_url(&page)),
    );
    let state = state_of(&dom);
    for kv in [
        "e=2",
        "map=both",
        "grp=aligned",
        "ok=right",
        "sort=pa",
        "norm=epoch",
        "op=35",
        "p=images%2F000001.png",
    ] {
        assert!(state.contains(kv), "{kv} not restored: {state}\n{log}");
    }
    // The restored view shows the selected probe highlighted and the epoch's label.
    assert!(
        dom.contains("class=\"prow sel\" data-id=\"images/000001.png\""),
        "{dom}"
    );
    assert!(dom.contains("epoch 2 (2/4)"));
    // Hostile or stale values are ignored, not applied.
    let profile = tempfile::tempdir().unwrap();
    let (dom, _) = headless(
        &bin,
        profile.path(),
        &["--dump-dom".into()],
        &format!("{}#e=77&sort=%3Cimg%3E&p=%3Cb%3E", file_url(&page)),
    );
    let state = state_of(&dom);
    assert!(
        state.contains("e=4") && state.contains("sort=flag") && !state.contains("%3C"),
        "{state}"
    );

    // The compare page keeps its alignment mode in the address too.
    let rb = fixture::make_run(tmp.path(), &Spec::new("b"));
    let cmp = write_compare(&[ra, rb], &tmp.path().join("cmp"))
        .unwrap()
        .page;
    let profile = tempfile::tempdir().unwrap();
    let (dom, _) = headless(
        &bin,
        profile.path(),
        &["--dump-dom".into()],
        &format!("{}#align=frac&f=10&map=pred", file_url(&cmp)),
    );
    let state = state_of(&dom);
    assert!(
        state.contains("align=frac") && state.contains("f=10") && state.contains("map=pred"),
        "{state}"
    );
    // By default the compare page opens on each run's best epoch.
    let profile = tempfile::tempdir().unwrap();
    let (dom, _) = headless(
        &bin,
        profile.path(),
        &["--dump-dom".into()],
        &file_url(&cmp),
    );
    assert!(state_of(&dom).contains("align=best"));
    assert!(
        dom.contains("best: a @ 4 · b @ 3"),
        "{}",
        &dom[dom.find("epoch-label").unwrap_or(0)..][..200]
    );
}

#[test]
fn gallery_of_a_50_epoch_run_opens_fast_and_stays_small() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Spec::new("long");
    s.epochs = (1..=50).collect();
    s.dumps = (1..=50).collect();
    s.probe_ids = (0..32).map(|i| format!("images/{i:06}.png")).collect();
    let run = fixture::make_run(tmp.path(), &s);
    let page = moirelab_report::write_run_page(&run).unwrap().page;
    let bytes = std::fs::metadata(&page).unwrap().len();
    assert!(bytes < 5_000_000, "page is {bytes} bytes");
    let profile = tempfile::tempdir().unwrap();
    let (dom, log) = headless(
        &bin,
        profile.path(),
        &["--dump-dom".into()],
        &file_url(&page),
    );
    let i = dom.find("data-ready-ms=\"").expect("ready") + "data-ready-ms=\"".len();
    let ms: u64 = dom[i..i + dom[i..].find('"').unwrap()].parse().unwrap();
    assert!(ms < 2000, "first render after {ms} ms\n{log}");
}

#[test]
fn pages_of_a_run_without_metrics_or_dumps_pass_their_selftest() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let fresh = tmp.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::write(fresh.join("config.toml"), "[train]\nepochs = 3\n").unwrap();
    let page = write_run_report(&fresh).unwrap().page;
    let dom = check_page(&bin, &page, None);
    assert!(dom.contains("no epochs yet"), "{dom}");
    let mut spec = Spec::new("metrics-only");
    spec.dumps = vec![];
    spec.summary = false;
    let other = fixture::make_run(tmp.path(), &spec);
    let cmp = write_compare(&[fresh, other], &tmp.path().join("cmp"))
        .unwrap()
        .page;
    check_page(&bin, &cmp, None);
}

#[test]
fn csp_blocks_an_injected_inline_script_under_file_urls() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = fixture::make_run(tmp.path(), &Spec::new("csp"));
    let page = write_run_report(&run).unwrap().page;
    // Simulate an escaping bug: a script that is not one of the page's hashed blocks.
    let html = std::fs::read_to_string(&page)
        .unwrap()
        .replace("</body>", "<script>document.title='pwned';</script></body>");
    let injected = page.with_file_name("injected.html");
    std::fs::write(&injected, html).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let (dom, _) = headless(
        &bin,
        profile.path(),
        &["--dump-dom".into()],
        &format!("{}#selftest", file_url(&injected)),
    );
    assert!(!dom.contains("<title>pwned</title>"), "injected script ran");
    assert!(
        dom.contains("SELFTEST FAIL") && dom.contains("CSP violation"),
        "{dom}"
    );
}
