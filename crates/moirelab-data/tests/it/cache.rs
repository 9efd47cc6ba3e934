use crate::fixtures::{cfg, img, moirelab_set, save};
use moirelab_data::{CacheMode, Dataset, Loader, LoaderOptions};
use std::path::Path;
use std::sync::Arc;

fn cache_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".mlc"))
        .collect();
    v.sort();
    v
}

/// A 3-per-class moirelab data set and a config that caches it on disk in a folder of its own:
/// (data folder, cache folder, config).
fn disk_cached_set() -> (
    tempfile::TempDir,
    tempfile::TempDir,
    moirelab_data::DataConfig,
) {
    let dir = tempfile::tempdir().unwrap();
    moirelab_set(dir.path(), 3, false);
    let cache = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.cache = CacheMode::Disk;
    c.cache_dir = Some(cache.path().to_path_buf());
    (dir, cache, c)
}

#[test]
fn disk_cache_is_reused_and_rebuilt_when_a_file_changes() {
    let (dir, cache, mut c) = disk_cached_set();
    let a = Dataset::open(&c, Path::new("/")).unwrap();
    let file = a.cache_file().unwrap().to_path_buf();
    assert!(file.starts_with(cache.path()));
    let before = std::fs::metadata(&file).unwrap().modified().unwrap();
    let b = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(b.cache_file(), Some(file.as_path()));
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        before,
        "reused, not rewritten"
    );
    assert_eq!(a.eval_image(4).unwrap(), b.eval_image(4).unwrap());
    assert_eq!(
        a.report(),
        b.report(),
        "the report comes back from the sidecar"
    );
    // change one image: new key, new pixels, old file removed
    let old = b.eval_image(0).unwrap();
    save(dir.path(), &a.record(0).path, &img(40, 40, 777));
    let c2 = Dataset::open(&c, Path::new("/")).unwrap();
    assert_ne!(c2.cache_file(), Some(file.as_path()));
    assert_ne!(c2.eval_image(0).unwrap(), old);
    assert_eq!(cache_files(cache.path()).len(), 1);
    // and a memory cache of the same data gives the same pixels
    c.cache = CacheMode::Memory;
    let m = Dataset::open(&c, Path::new("/")).unwrap();
    assert!(m.cache_file().is_none());
    assert_eq!(m.eval_image(0).unwrap(), c2.eval_image(0).unwrap());
}

/// Evaluating one split caches that split on its own: it neither reuses nor replaces the
/// whole data set's cache file of a training run.
#[test]
fn an_evaluation_of_one_split_keeps_the_training_cache() {
    let (_dir, cache, c) = disk_cached_set();
    let train = Dataset::open(&c, Path::new("/")).unwrap();
    let file = train.cache_file().unwrap().to_path_buf();
    let before = std::fs::metadata(&file).unwrap().modified().unwrap();
    let spec = moirelab_data::EvalSpec {
        split: "test".into(),
        classes: train.classes().to_vec(),
        attack_class: None,
    };
    let test = Dataset::open_eval(&c, Path::new("/"), &spec).unwrap();
    assert_eq!(test.len(), train.split("test").len());
    assert_ne!(test.cache_file(), Some(file.as_path()));
    assert_eq!(cache_files(cache.path()).len(), 2);
    let again = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(again.cache_file(), Some(file.as_path()));
    assert_eq!(
        std::fs::metadata(&file).unwrap().modified().unwrap(),
        before,
        "the training cache is reused, not rewritten"
    );
}

#[test]
fn a_corrupt_cache_file_is_rebuilt_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    moirelab_set(dir.path(), 2, false);
    let cache = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.cache = CacheMode::Disk;
    c.cache_dir = Some(cache.path().to_path_buf());
    let a = Dataset::open(&c, Path::new("/")).unwrap();
    let file = a.cache_file().unwrap().to_path_buf();
    let want = a.eval_image(1).unwrap();
    drop(a);
    std::fs::write(&file, b"garbage").unwrap();
    let b = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(b.eval_image(1).unwrap(), want);
    assert_eq!(rebuilt_warnings(&b), 1, "{}", b.report());
}

/// The warnings saying that a damaged cache file was rebuilt.
fn rebuilt_warnings(ds: &Dataset) -> usize {
    ds.report()
        .of_kind(moirelab_data::ProblemKind::CacheRebuilt)
        .inspect(|p| assert_eq!(p.severity(), moirelab_data::Severity::Warning))
        .count()
}

/// Bytes flipped inside the pixel blobs leave the file's size, magic, key and table as they
/// were: only the pixels' checksums show it. The damaged file is rebuilt (a warning names
/// it), never trained on.
#[test]
fn a_cache_file_damaged_in_place_at_the_same_size_is_rebuilt_with_a_warning() {
    let (_dir, _cache, c) = disk_cached_set();
    let a = Dataset::open(&c, Path::new("/")).unwrap();
    let file = a.cache_file().unwrap().to_path_buf();
    let want: Vec<_> = (0..a.len()).map(|i| a.eval_image(i).unwrap()).collect();
    assert_eq!(rebuilt_warnings(&a), 0);
    drop(a);
    let size = std::fs::metadata(&file).unwrap().len();
    let mut bytes = std::fs::read(&file).unwrap();
    // the third image's stored pixels (32 x 32 RGB each)
    let at = 2 * 32 * 32 * 3 + 500;
    for b in &mut bytes[at..at + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(&file, &bytes).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().len(), size);
    let b = Dataset::open(&c, Path::new("/")).unwrap();
    let got: Vec<_> = (0..b.len()).map(|i| b.eval_image(i).unwrap()).collect();
    assert!(got == want, "the pixels come from the images again");
    assert_eq!(rebuilt_warnings(&b), 1, "{}", b.report());
    let line = b
        .report()
        .of_kind(moirelab_data::ProblemKind::CacheRebuilt)
        .next()
        .unwrap()
        .to_string();
    assert!(
        line.contains(&file.display().to_string())
            && line.contains("do not match their checksum")
            && line.contains(&b.record(2).path),
        "{line}"
    );
    assert_ne!(std::fs::read(&file).unwrap(), bytes, "rewritten");
    drop(b);
    // The rebuilt file is sound: used again without a warning.
    let d = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(rebuilt_warnings(&d), 0);
    assert_eq!(d.cache_file(), Some(file.as_path()));
}

/// A sidecar that does not parse is damage too (rebuilt with a warning); a missing one is a
/// cache never finished (rebuilt quietly).
#[test]
fn a_garbage_sidecar_is_rebuilt_with_a_warning_and_a_missing_one_quietly() {
    let (_dir, cache, c) = disk_cached_set();
    let a = Dataset::open(&c, Path::new("/")).unwrap();
    let file = a.cache_file().unwrap().to_path_buf();
    drop(a);
    let side = file.with_extension("scan.json");
    assert!(side.is_file(), "{}", side.display());
    std::fs::write(&side, b"{\"key\": 12").unwrap();
    let b = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(rebuilt_warnings(&b), 1, "{}", b.report());
    drop(b);
    std::fs::remove_file(&side).unwrap();
    let d = Dataset::open(&c, Path::new("/")).unwrap();
    assert_eq!(rebuilt_warnings(&d), 0, "{}", d.report());
    assert_eq!(cache_files(cache.path()).len(), 1);
}

#[test]
fn memory_and_disk_caches_give_identical_training_batches() {
    let dir = tempfile::tempdir().unwrap();
    moirelab_set(dir.path(), 4, false);
    let cache = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.cache_dir = Some(cache.path().to_path_buf());
    let mut batches = |cache| {
        c.cache = cache;
        let ds = Arc::new(Dataset::open(&c, Path::new("/")).unwrap());
        let l = Loader::new(ds, "train", 3, LoaderOptions::train(9, 2)).unwrap();
        l.epoch(0, 0).map(|b| b.unwrap().images).collect::<Vec<_>>()
    };
    let m = batches(CacheMode::Memory);
    let d = batches(CacheMode::Disk);
    assert_eq!(m.len(), d.len());
    assert!(m.iter().zip(&d).all(|(a, b)| a.equal(b)));
}

/// A relative `cache-dir` resolves against the base folder, as the root does, never inside
/// the data set (where an ImageFolder then found a stray class folder, and a read-only data
/// set had no cache at all).
#[test]
fn a_relative_cache_dir_resolves_against_the_base_folder_not_the_data_set() {
    let base = tempfile::tempdir().unwrap();
    moirelab_set(&base.path().join("data"), 3, false);
    let mut c = cfg(Path::new("data"));
    c.cache = CacheMode::Disk;
    c.cache_dir = Some("mycache".into());
    let ds = Dataset::open(&c, base.path()).unwrap();
    assert!(
        ds.cache_file()
            .unwrap()
            .starts_with(base.path().join("mycache")),
        "{:?}",
        ds.cache_file()
    );
    assert_eq!(cache_files(&base.path().join("mycache")).len(), 1);
    assert!(!base.path().join("data/mycache").exists());
}

/// `max-pixels` decides which files are too large to decode, and the sidecar records that
/// verdict: a cache built under one limit is not reused under another.
#[test]
fn a_cache_built_under_another_max_pixels_is_not_reused() {
    let (_dir, _cache, mut c) = disk_cached_set();
    let a = Dataset::open(&c, Path::new("/")).unwrap();
    let file = a.cache_file().unwrap().to_path_buf();
    drop(a);
    c.max_pixels = 100; // every image of the set is larger
    let err = match Dataset::open(&c, Path::new("/")) {
        Ok(_) => panic!("the smaller limit is applied, not the cached verdict"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("above [data] max-pixels"), "{err}");
    assert!(file.exists(), "the first limit's cache is left alone");
}
