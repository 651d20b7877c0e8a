//! The line interface: what the fax server needs from a telephone line, whatever carries it. The real
//! implementation (SIP signalling, T.30 over T.38/UDPTL) lives in its own crates; tests may drive a test
//! double of this trait, which no shipped configuration can select.

use protocol::settings::{FaxServerSettings, FieldError};
use protocol::{CallStats, DocumentRef, Outcome, Phase, SendOptions};
use std::path::PathBuf;
use tokio::sync::{mpsc, watch};

/// One send attempt handed to a line.
#[derive(Debug, Clone)]
pub struct SendJob {
    pub attempt_id: String,
    pub job_id: String,
    /// E.164 with '+'.
    pub recipient: String,
    /// The documents in order, downloaded and verified, with their local files.
    pub documents: Vec<(DocumentRef, PathBuf)>,
    pub options: SendOptions,
    /// 1 for the job's first attempt.
    pub attempt_number: u32,
    /// The previous attempt failed in training or transmission: this one steps down (the retry policy).
    pub step_down: bool,
}

/// Progress a line reports while sending.
#[derive(Debug, Clone, PartialEq)]
pub struct LineProgress {
    pub phase: Phase,
    pub page: Option<u32>,
    pub pages_total: Option<u32>,
    pub bit_rate: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct LineOutcome {
    pub outcome: Outcome,
    pub stats: CallStats,
}

/// A fax the line received.
#[derive(Debug, Clone)]
pub struct ReceivedFax {
    /// TIFF Class F.
    pub tiff: Vec<u8>,
    pub pages: u32,
    pub caller_number: Option<String>,
    pub called_number: Option<String>,
    pub tsi: Option<String>,
    pub started_at: String,
    pub ended_at: String,
    pub stats: CallStats,
    /// What arrived of each page.
    pub page_info: Vec<protocol::InboundPage>,
    /// Why the call ended before the fax was complete.
    pub failure: Option<String>,
}

/// Why a line refuses settings (it keeps the ones it had).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// A field does not validate (a document from another build, or damaged on disk).
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The SIP account registers but its password did not come with the push.
    #[error("sip.password did not arrive with the settings")]
    PasswordMissing,
    /// More channels than the line has.
    #[error("channels: this line has {has} channels, not {asked}")]
    TooManyChannels { has: u32, asked: u32 },
    #[error("the line needs a tokio runtime")]
    NoRuntime,
}

#[async_trait::async_trait]
pub trait Line: Send + Sync + 'static {
    /// Channels usable at once, both directions together.
    fn channels(&self) -> u32;
    fn max_bit_rate(&self) -> u32;
    fn ecm(&self) -> bool;
    /// Numbers this line answers.
    fn answers(&self) -> Vec<String>;
    /// Sends a fax; returns when the call is over. `cancel` turns true when the supervisor cancels the
    /// attempt; the line should then hang up and return a failed outcome with reason `cancelled`.
    async fn send(
        &self,
        job: SendJob,
        progress: mpsc::UnboundedSender<LineProgress>,
        cancel: watch::Receiver<bool>,
    ) -> LineOutcome;
    /// Waits for the next fax received on this line; `None` when the line is shut down.
    async fn next_received(&self) -> Option<ReceivedFax>;
    /// Why the line offers fewer channels than configured, for operators (`None` when all is well).
    fn status(&self) -> Option<String> {
        None
    }
    /// Channels currently receiving.
    fn receiving(&self) -> u32 {
        0
    }
    /// The fax server is shutting down: take no new calls (refuse them so the caller's network tries
    /// elsewhere); the calls under way go on.
    fn stop_answering(&self) {}
    /// Takes new settings (the supervisor's fax server settings document); an error refuses them, saying
    /// why, and the line keeps its previous settings.
    fn apply_settings(&self, settings: &FaxServerSettings) -> Result<(), SettingsError> {
        settings.validate()?;
        Ok(())
    }
}
