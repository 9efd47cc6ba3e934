//! Batches for training and evaluation, prepared on worker threads while the model trains.
//!
//! Determinism: the order of an epoch comes from `Rng::derive(seed, [epoch, ORDER])` and each
//! sample's augmentation from `(seed, epoch, position in the epoch)`, so the batches are
//! bit-identical for any worker count and when an epoch resumes after `skip_batches`.

use crate::dataset::Dataset;
use crate::{normalize_into, DataError};
use moirelab_core::rng::Rng;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use tch::Tensor;

const ORDER_STREAM: u64 = 0x0de5;
const BALANCE_STREAM: u64 = 0xba1a;
/// Batches prepared ahead per worker.
const AHEAD_PER_WORKER: usize = 2;

/// How a [`Loader`] walks its split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderOptions {
    /// New permutation every epoch (else split order).
    pub shuffle: bool,
    /// Apply `[data.augment]` (never for eval/probe loaders).
    pub augment: bool,
    /// Drop the last incomplete batch.
    pub drop_last: bool,
    pub seed: u64,
    /// Threads preparing batches ahead (0 = build on the calling thread).
    pub workers: usize,
    /// Class-balanced sampling: every class contributes ~len/classes samples per epoch
    /// (minority classes are repeated, majority classes sub-sampled, fresh each epoch).
    pub balanced: bool,
}

impl LoaderOptions {
    /// Shuffled, augmented, incomplete last batch dropped.
    pub fn train(seed: u64, workers: usize) -> Self {
        LoaderOptions {
            shuffle: true,
            augment: true,
            drop_last: true,
            seed,
            workers,
            balanced: false,
        }
    }

    /// In order, no augmentation, every sample once.
    pub fn eval(workers: usize) -> Self {
        LoaderOptions {
            shuffle: false,
            augment: false,
            drop_last: false,
            seed: 0,
            workers,
            balanced: false,
        }
    }
}

/// One batch.
#[derive(Debug)]
pub struct Batch {
    /// `[N, 3, S, S]` f32, normalised (see [`crate::normalize`]), CPU.
    pub images: Tensor,
    /// `[N]` i64 class ids.
    pub labels: Tensor,
    /// Dataset indices of the samples, in batch order.
    pub indices: Vec<usize>,
}

/// Iterates a split in batches.
#[derive(Debug)]
pub struct Loader {
    ds: Arc<Dataset>,
    split: String,
    indices: Vec<usize>,
    batch_size: usize,
    opts: LoaderOptions,
}

impl Loader {
    pub fn new(
        ds: Arc<Dataset>,
        split: &str,
        batch_size: usize,
        opts: LoaderOptions,
    ) -> Result<Self, DataError> {
        if !crate::source::SPLITS.contains(&split) {
            return Err(DataError::Request(format!(
                "unknown split '{split}'; valid: {}",
                crate::source::SPLITS.join(", ")
            )));
        }
        let indices = ds.split(split).to_vec();
        if indices.is_empty() {
            return Err(DataError::Request(format!(
                "split '{split}' of {} has no images",
                ds.root().display()
            )));
        }
        if batch_size == 0 {
            return Err(DataError::Request("batch size must be at least 1".into()));
        }
        if opts.drop_last && indices.len() < batch_size {
            return Err(DataError::Request(format!(
                "split '{split}' has {} images, fewer than one batch of {batch_size} (drop_last)",
                indices.len()
            )));
        }
        Ok(Loader {
            ds,
            split: split.to_string(),
            indices,
            batch_size,
            opts,
        })
    }

    pub fn split(&self) -> &str {
        &self.split
    }

    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.ds
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    pub fn batches_per_epoch(&self) -> usize {
        let n = self.indices.len();
        if self.opts.drop_last {
            n / self.batch_size
        } else {
            n.div_ceil(self.batch_size)
        }
    }

    /// Dataset indices of one epoch, in visiting order (before batching).
    pub fn epoch_order(&self, epoch: u32) -> Vec<usize> {
        let mut order = if self.opts.balanced {
            self.balanced_order(epoch)
        } else {
            self.indices.clone()
        };
        if self.opts.shuffle {
            Rng::derive(self.opts.seed, &[epoch as u64, ORDER_STREAM]).shuffle(&mut order);
        }
        order
    }

    fn balanced_order(&self, epoch: u32) -> Vec<usize> {
        let mut by_class: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for &i in &self.indices {
            by_class.entry(self.ds.label(i)).or_default().push(i);
        }
        let n = self.indices.len();
        let k = by_class.len();
        let mut out = Vec::with_capacity(n);
        for (ci, (class, members)) in by_class.iter().enumerate() {
            let quota = n / k + usize::from(ci < n % k);
            let (mut got, mut round) = (0usize, 0u64);
            while got < quota {
                let mut pool = members.clone();
                Rng::derive(
                    self.opts.seed,
                    &[epoch as u64, BALANCE_STREAM, *class as u64, round],
                )
                .shuffle(&mut pool);
                let take = (quota - got).min(pool.len());
                out.extend_from_slice(&pool[..take]);
                got += take;
                round += 1;
            }
        }
        out
    }

    /// Batches of `epoch`, starting after `skip_batches` (exact mid-epoch resume). Workers
    /// stop when the iterator is dropped.
    pub fn epoch(&self, epoch: u32, skip_batches: usize) -> Epoch {
        let order = self.epoch_order(epoch);
        let nb = self.batches_per_epoch();
        let jobs: Vec<(usize, Vec<usize>)> = (skip_batches..nb)
            .map(|b| {
                let start = b * self.batch_size;
                let end = (start + self.batch_size).min(order.len());
                (start, order[start..end].to_vec())
            })
            .collect();
        let ctx = Arc::new(Ctx {
            ds: self.ds.clone(),
            jobs,
            epoch,
            seed: self.opts.seed,
            augment: self.opts.augment,
        });
        Epoch::start(ctx, self.opts.workers)
    }
}

struct Ctx {
    ds: Arc<Dataset>,
    /// (position of the first sample in the epoch, dataset indices)
    jobs: Vec<(usize, Vec<usize>)>,
    epoch: u32,
    seed: u64,
    augment: bool,
}

impl Ctx {
    fn make(&self, job: usize) -> Result<Batch, DataError> {
        let (start, idx) = &self.jobs[job];
        let s = self.ds.image_size() as usize;
        let per = 3 * s * s;
        let mut buf = vec![0f32; idx.len() * per];
        for (k, &i) in idx.iter().enumerate() {
            let img = if self.augment {
                self.ds.augmented(i, self.seed, self.epoch, start + k).0
            } else {
                self.ds.eval_image(i)?
            };
            normalize_into(&img, &mut buf[k * per..(k + 1) * per]);
        }
        let labels: Vec<i64> = idx.iter().map(|&i| self.ds.label(i) as i64).collect();
        Ok(Batch {
            images: Tensor::f_from_slice(&buf)?.f_view([
                idx.len() as i64,
                3,
                s as i64,
                s as i64,
            ])?,
            labels: Tensor::f_from_slice(&labels)?,
            indices: idx.clone(),
        })
    }
}

struct Shared {
    next_job: AtomicUsize,
    stop: AtomicBool,
    /// Jobs handed out to the consumer so far.
    yielded: Mutex<usize>,
    cv: Condvar,
}

/// Iterator over one epoch's batches (see [`Loader::epoch`]).
pub struct Epoch {
    ctx: Arc<Ctx>,
    next: usize,
    shared: Arc<Shared>,
    rx: Option<mpsc::Receiver<(usize, Result<Batch, DataError>)>>,
    ready: BTreeMap<usize, Result<Batch, DataError>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Epoch")
            .field("epoch", &self.ctx.epoch)
            .field("next", &self.next)
            .field("batches", &self.ctx.jobs.len())
            .field("workers", &self.threads.len())
            .finish()
    }
}

impl Epoch {
    fn start(ctx: Arc<Ctx>, workers: usize) -> Epoch {
        let shared = Arc::new(Shared {
            next_job: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            yielded: Mutex::new(0),
            cv: Condvar::new(),
        });
        let mut threads = Vec::new();
        let mut rx = None;
        if workers > 0 && !ctx.jobs.is_empty() {
            let (tx, r) = mpsc::channel();
            rx = Some(r);
            let ahead = workers * AHEAD_PER_WORKER;
            for _ in 0..workers.min(ctx.jobs.len()) {
                let (ctx, shared, tx) = (ctx.clone(), shared.clone(), tx.clone());
                threads.push(std::thread::spawn(move || loop {
                    let job = shared.next_job.fetch_add(1, Ordering::SeqCst);
                    if job >= ctx.jobs.len() || shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    {
                        // Bound memory: stay at most `ahead` batches in front of the consumer.
                        let mut y = shared.yielded.lock().unwrap_or_else(|p| p.into_inner());
                        while job >= *y + ahead && !shared.stop.load(Ordering::SeqCst) {
                            y = shared.cv.wait(y).unwrap_or_else(|p| p.into_inner());
                        }
                    }
                    if shared.stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if tx.send((job, ctx.make(job))).is_err() {
                        break;
                    }
                }));
            }
        }
        Epoch {
            ctx,
            next: 0,
            shared,
            rx,
            ready: BTreeMap::new(),
            threads,
        }
    }

    /// Batches left in this epoch.
    pub fn remaining(&self) -> usize {
        self.ctx.jobs.len() - self.next
    }
}

impl Iterator for Epoch {
    type Item = Result<Batch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.ctx.jobs.len() {
            return None;
        }
        let job = self.next;
        let out = match &self.rx {
            None => self.ctx.make(job),
            Some(rx) => loop {
                if let Some(b) = self.ready.remove(&job) {
                    break b;
                }
                match rx.recv() {
                    Ok((j, b)) => {
                        self.ready.insert(j, b);
                    }
                    // All workers gone without producing `job`: only possible if one
                    // panicked; build it here rather than lose the batch.
                    Err(_) => break self.ctx.make(job),
                }
            },
        };
        self.next += 1;
        {
            let mut y = self
                .shared
                .yielded
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *y = self.next;
        }
        self.shared.cv.notify_all();
        Some(out)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining(), Some(self.remaining()))
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.cv.notify_all();
        self.rx = None; // unblocks senders
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
