use crate::ModelError;
use serde::{Deserialize, Serialize};

/// Model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Three conv blocks + global average pool + linear: the "very shallow network".
    Shallow,
}

impl Arch {
    pub const ALL: &'static [Arch] = &[Arch::Shallow];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Shallow => "shallow",
        }
    }
}

/// `[model]` of the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct ModelConfig {
    pub arch: Arch,
    /// Channels of the first block; later blocks multiply it (architecture-specific).
    pub width: i64,
    /// Blocks or stages (architecture-specific; shallow: number of conv blocks).
    pub depth: i64,
    /// Dropout before the classifier (0 disables).
    pub dropout: f64,
    pub batch_norm: bool,
    pub in_channels: i64,
    /// Number of classes (normally taken from the data set).
    pub classes: i64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            arch: Arch::Shallow,
            width: 16,
            depth: 3,
            dropout: 0.0,
            batch_norm: true,
            in_channels: 3,
            classes: 2,
        }
    }
}

impl ModelConfig {
    /// Range checks with messages that name the key.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        if !(1..=1024).contains(&self.width) {
            return bad(format!(
                "model.width = {} is out of range 1..=1024",
                self.width
            ));
        }
        if !(1..=8).contains(&self.depth) {
            return bad(format!(
                "model.depth = {} is out of range 1..=8",
                self.depth
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!(
                "model.dropout = {} is out of range [0, 1)",
                self.dropout
            ));
        }
        if !(1..=16).contains(&self.in_channels) {
            return bad(format!(
                "model.in-channels = {} is out of range 1..=16",
                self.in_channels
            ));
        }
        if !(2..=1000).contains(&self.classes) {
            return bad(format!(
                "model.classes = {} is out of range 2..=1000",
                self.classes
            ));
        }
        Ok(())
    }
}
