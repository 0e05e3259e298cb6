use std::path::PathBuf;

/// Why a clip could not be turned into samples. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{path}: file not found")]
    NotFound { path: PathBuf },
    #[error("{path}: is a directory, not an audio file")]
    IsDirectory { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: unsupported or unrecognised audio format: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: corrupt or truncated audio: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: no audio samples (zero-length)")]
    Empty { path: PathBuf },
    #[error("{path}: {count} non-finite (NaN/Inf) samples, first at sample {first}")]
    NonFinite {
        path: PathBuf,
        count: usize,
        first: usize,
    },
    #[error("{path}: invalid sample rate {rate} Hz (files must declare 1000..=768000 Hz)")]
    BadRate { path: PathBuf, rate: u32 },
    #[error("{path}: target rate {rate} Hz is outside {min}..={max} Hz")]
    BadTargetRate {
        path: PathBuf,
        rate: u32,
        min: u32,
        max: u32,
    },
    #[error("{path}: resampling failed: {reason}")]
    Resample { path: PathBuf, reason: String },
    #[error("{path}: cannot write audio: {reason}")]
    Write { path: PathBuf, reason: String },
}

impl AudioError {
    /// The file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            AudioError::NotFound { path }
            | AudioError::IsDirectory { path }
            | AudioError::Io { path, .. }
            | AudioError::Unsupported { path, .. }
            | AudioError::Corrupt { path, .. }
            | AudioError::Empty { path }
            | AudioError::NonFinite { path, .. }
            | AudioError::BadRate { path, .. }
            | AudioError::BadTargetRate { path, .. }
            | AudioError::Resample { path, .. }
            | AudioError::Write { path, .. } => path,
        }
    }
}
