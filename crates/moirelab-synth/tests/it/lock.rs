//! One writer per data set: a second writer of the same folder waits for the first and then
//! sees what it wrote, and nothing is left beside the data set afterwards.

use crate::tiny;
use moirelab_synth::{generate_locked, generate_reusing, SynthError, WriteLock};
use std::sync::mpsc;
use std::time::Duration;

/// Names in `dir` other than the data sets themselves.
fn hidden(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    names.sort();
    names
}

#[test]
fn a_second_lock_on_the_same_data_set_waits_for_the_first_and_names_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let first = WriteLock::acquire(&out, &mut |_| panic!("nobody holds it yet")).unwrap();
    assert!(first.is_held());
    assert_eq!(first.out(), out.as_path());
    assert_eq!(hidden(dir.path()), [".set.lock"]);
    // Another data set in the same folder is not held up.
    let other = WriteLock::acquire(&dir.path().join("other"), &mut |_| panic!("not held"));
    drop(other);

    let (told, heard) = mpsc::channel();
    let (done, finished) = mpsc::channel();
    let waiter = {
        let out = out.clone();
        std::thread::spawn(move || {
            let lock = WriteLock::acquire(&out, &mut |pid| told.send(pid).is_ok()).unwrap();
            done.send(()).unwrap();
            drop(lock);
        })
    };
    // Told whom it waits for (this process), and still waiting a while later.
    let holder = heard.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(holder, Some(std::process::id()));
    assert!(finished.recv_timeout(Duration::from_millis(300)).is_err());
    drop(first);
    finished.recv_timeout(Duration::from_secs(30)).unwrap();
    waiter.join().unwrap();
    // Each holder deletes the lock file before it lets go.
    assert!(hidden(dir.path()).is_empty(), "{:?}", hidden(dir.path()));
}

/// Two writers of one missing data set: the second waits while the first writes it, then
/// finds it written (no rename onto a full folder, no second copy rendered).
#[test]
fn a_writer_that_waited_finds_the_data_set_the_first_one_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let lock = WriteLock::acquire(&out, &mut |_| true).unwrap();
    let (told, heard) = mpsc::channel();
    let second = {
        let out = out.clone();
        std::thread::spawn(move || {
            let lock = WriteLock::acquire(&out, &mut |_| {
                let _ = told.send(());
                true
            })
            .unwrap();
            generate_locked(&lock, &tiny(4), false, &|_, _| {}, &[], None)
        })
    };
    heard.recv_timeout(Duration::from_secs(30)).unwrap();
    let summary = generate_locked(&lock, &tiny(4), false, &|_, _| {}, &[], None).unwrap();
    assert_eq!(summary.out, out);
    drop(lock);
    let err = second.join().unwrap().unwrap_err();
    assert!(
        matches!(&err, SynthError::OutputNotEmpty { path } if path == &out),
        "{err}"
    );
    assert!(out.join("dataset.json").is_file());
    assert!(hidden(dir.path()).is_empty(), "{:?}", hidden(dir.path()));
    // A forced rewrite takes the lock by itself and leaves nothing beside the data set.
    generate_reusing(&tiny(4), &out, true, &|_, _| {}, &[]).unwrap();
    assert!(hidden(dir.path()).is_empty(), "{:?}", hidden(dir.path()));
}

/// A waiter whose caller gives up (Ctrl-C) gets an error naming the holder, and the holder's
/// lock is untouched.
#[test]
fn a_waiter_that_gives_up_names_the_holder_and_leaves_its_lock_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    let held = WriteLock::acquire(&out, &mut |_| true).unwrap();
    let mut polls = 0;
    let err = WriteLock::acquire(&out, &mut |_| {
        polls += 1;
        polls < 3
    })
    .unwrap_err();
    assert_eq!(polls, 3);
    assert!(
        matches!(&err, SynthError::StoppedWaiting { path, holder }
            if path == &out && *holder == Some(std::process::id())),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: stopped waiting for process {} to finish writing it",
            out.display(),
            std::process::id()
        )
    );
    assert_eq!(hidden(dir.path()), [".set.lock"]);
    drop(held);
    assert!(hidden(dir.path()).is_empty());
}

/// A forced rewrite of a data set that another process reads (a running train) is refused
/// before any rendering, names the reader, and leaves the data set and its folder as they
/// were; once the reader is gone the rewrite goes through.
#[cfg(target_os = "linux")]
#[test]
fn a_forced_rewrite_leaves_a_data_set_that_is_being_read_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("set");
    generate_reusing(&tiny(4), &out, false, &|_, _| {}, &[]).unwrap();
    let before = std::fs::read(out.join("manifest.jsonl")).unwrap();
    let reading = moirelab_core::dirlock::read_guard(&out).unwrap();
    assert!(reading.is_some());
    let mut other = tiny(4);
    other.seed += 1;
    let rendered = std::sync::atomic::AtomicUsize::new(0);
    let progress = |_: usize, _: usize| {
        rendered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    };
    let err = generate_reusing(&other, &out, true, &progress, &[]).unwrap_err();
    assert!(
        matches!(&err, SynthError::InUse { path, .. } if path == &out),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}: not replaced: this process is reading this data set (stop it first, or write \
             the new one into another folder)",
            out.display()
        )
    );
    assert_eq!(rendered.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(std::fs::read(out.join("manifest.jsonl")).unwrap(), before);
    assert!(hidden(dir.path()).is_empty(), "{:?}", hidden(dir.path()));
    drop(reading);
    generate_reusing(&other, &out, true, &|_, _| {}, &[]).unwrap();
    assert_ne!(std::fs::read(out.join("manifest.jsonl")).unwrap(), before);
}

/// A stop set while samples are being written ends the generation early with `Stopped`
/// naming the data set: no sample is started after it, the partial folder is gone, a data set
/// that a forced rewrite would have replaced is left as it was, and dropping the lock leaves
/// nothing beside it.
#[test]
fn a_stopped_generation_leaves_nothing_behind() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let (fresh, old) = (dir.path().join("fresh"), dir.path().join("old"));
    generate_reusing(&tiny(4), &old, false, &|_, _| {}, &[]).unwrap();
    let before = std::fs::read(old.join("manifest.jsonl")).unwrap();
    let mut other = tiny(64);
    other.seed += 1;
    for (out, force) in [(&fresh, false), (&old, true)] {
        let stop = AtomicBool::new(false);
        let done = AtomicUsize::new(0);
        let progress = |_: usize, _: usize| {
            done.fetch_add(1, Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
        };
        let lock = WriteLock::acquire(out, &mut |_| true).unwrap();
        let err = generate_locked(&lock, &other, force, &progress, &[], Some(&stop)).unwrap_err();
        assert!(
            matches!(&err, SynthError::Stopped { path } if path == out),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{}: stopped; the data set was not written (nothing of it was kept)",
                out.display()
            )
        );
        // At most the samples already under way on each worker when the first one finished.
        assert!(done.load(Ordering::SeqCst) <= rayon::current_num_threads());
        drop(lock);
        assert!(hidden(dir.path()).is_empty(), "{:?}", hidden(dir.path()));
    }
    assert!(!fresh.exists());
    assert_eq!(std::fs::read(old.join("manifest.jsonl")).unwrap(), before);
}
