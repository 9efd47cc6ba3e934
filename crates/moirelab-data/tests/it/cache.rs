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
