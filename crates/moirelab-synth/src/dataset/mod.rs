//! Data sets in the `moirelab-core` format: the plan (labels, stratified splits, planted
//! shortcuts; `plan.rs`), one sample's image, masks and record (`sample.rs`), parallel
//! generation and the files it writes (`write.rs`), samples copied from an earlier data set
//! (`donor.rs`), one writer at a time (`lock.rs`), and the preview contact sheet (`preview.rs`).

mod donor;
mod lock;
mod plan;
mod preview;
mod sample;
mod write;

pub use donor::Donor;
pub use lock::WriteLock;
pub use plan::{plan, PlanEntry};
pub use preview::write_preview;
pub use sample::{encode_mask_png, read_mask_png, render_sample, Sample};
pub use write::{dataset_meta, generate, generate_locked, generate_reusing, GenSummary};

/// Shortcut attribute names (keys of `DatasetMeta::shortcuts` and `ManifestRecord::groups`).
pub const SHORTCUT_FLAG: &str = "flag";
pub const SHORTCUT_HAIR: &str = "hair";
