//! A line whose calls end as the test's script says. Every executed attempt id is appended to a log so
//! tests can prove that no attempt ran twice.

use node::{Line, LineOutcome, LineProgress, ReceivedFax, SendJob};
use protocol::{CallStats, FailureReason, Outcome, Phase};
use serde::Deserialize;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The outcome of one call: `sent`, `busy`, `no_answer`, `line_down` (a fax-server fault), `bad_number`
/// (permanent) or `hang` (the call never ends until cancelled).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Script {
    /// Per number, the outcomes of successive calls; the last one repeats.
    #[serde(default)]
    pub numbers: HashMap<String, Vec<String>>,
    /// For numbers not listed.
    #[serde(default = "default_outcome")]
    pub default: String,
    /// How long a call takes before it ends, per page sent.
    #[serde(default = "default_page_ms")]
    pub page_ms: u64,
    /// How long an attempt is prepared (phase `preparing`, before dialling); a cancel ends it there.
    #[serde(default)]
    pub prepare_ms: u64,
    /// The far end: the inject directory of the receiving fax server (`faxhub-testnode --inject-dir`). A
    /// call that ends `sent` leaves the fax there, addressed to the number dialled, at the moment the
    /// receiver would have confirmed the last page; a call cut short leaves nothing.
    #[serde(default)]
    pub deliver_to: Option<PathBuf>,
}

fn default_outcome() -> String {
    "sent".into()
}
fn default_page_ms() -> u64 {
    50
}

/// Called when a call starts (benchmarks time the dispatch with it).
pub type SendObserver = std::sync::Arc<dyn Fn(&SendJob) + Send + Sync>;

pub struct ScriptedLine {
    observer: Option<SendObserver>,
    script: Script,
    channels: u32,
    calls: Mutex<HashMap<String, usize>>,
    log: Option<Mutex<std::fs::File>>,
    received: tokio::sync::Mutex<mpsc::UnboundedReceiver<ReceivedFax>>,
}

impl ScriptedLine {
    /// Returns the line and a sender with which the test "receives" faxes on it.
    pub fn new(
        script: Script,
        channels: u32,
        log: Option<PathBuf>,
    ) -> std::io::Result<(Self, mpsc::UnboundedSender<ReceivedFax>)> {
        let log = match log {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
            None => None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        Ok((
            Self {
                observer: None,
                script,
                channels,
                calls: Mutex::new(HashMap::new()),
                log,
                received: tokio::sync::Mutex::new(rx),
            },
            tx,
        ))
    }

    pub fn with_observer(mut self, observer: SendObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Hands the fax to the far end (see `Script::deliver_to`), written whole or not at all.
    fn deliver(&self, job: &SendJob) {
        let Some(dir) = &self.script.deliver_to else {
            return;
        };
        let Some((_, tiff)) = job.documents.first() else {
            return;
        };
        let fax = serde_json::json!({"tiff": tiff, "caller": null, "called": job.recipient, "tsi": null, "pages": 1});
        let tmp = dir.join(format!("{}.tmp", job.attempt_id));
        let written = std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&tmp, fax.to_string()))
            .and_then(|()| std::fs::rename(&tmp, dir.join(format!("{}.json", job.attempt_id))));
        if let Err(e) = written {
            tracing::error!("the far end in {} did not get the fax: {e}", dir.display());
        }
    }

    fn next_outcome(&self, number: &str) -> String {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let n = calls.entry(number.to_owned()).or_insert(0);
        let outcome = match self.script.numbers.get(number) {
            Some(seq) if !seq.is_empty() => seq[(*n).min(seq.len() - 1)].clone(),
            _ => self.script.default.clone(),
        };
        *n += 1;
        outcome
    }
}

fn line_outcome(outcome: Outcome) -> LineOutcome {
    LineOutcome {
        outcome,
        stats: CallStats {
            bit_rate: Some(14_400),
            ecm: Some(true),
            ..Default::default()
        },
    }
}

fn cancelled() -> LineOutcome {
    line_outcome(failed(FailureReason::Cancelled))
}

/// A failure as the real line reports it (the reason decides the side at fault).
fn failed(reason: FailureReason) -> Outcome {
    Outcome::failed(reason, None, 0)
}

#[async_trait::async_trait]
impl Line for ScriptedLine {
    fn channels(&self) -> u32 {
        self.channels
    }
    fn max_bit_rate(&self) -> u32 {
        14_400
    }
    fn ecm(&self) -> bool {
        true
    }
    fn answers(&self) -> Vec<String> {
        Vec::new()
    }

    async fn send(
        &self,
        job: SendJob,
        progress: mpsc::UnboundedSender<LineProgress>,
        mut cancel: watch::Receiver<bool>,
    ) -> LineOutcome {
        if let Some(observe) = &self.observer {
            observe(&job);
        }
        if let Some(log) = &self.log {
            let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(f, "{} {} {}", job.attempt_id, job.job_id, job.recipient);
        }
        let outcome = self.next_outcome(&job.recipient);
        let p = |phase, page| LineProgress {
            phase,
            page,
            pages_total: Some(1),
            bit_rate: Some(14_400),
        };
        if self.script.prepare_ms > 0 {
            let _ = progress.send(p(Phase::Preparing, None));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(self.script.prepare_ms)) => {}
                _ = cancel.wait_for(|c| *c) => return cancelled(),
            }
        }
        let _ = progress.send(p(Phase::Dialling, None));
        let wait = Duration::from_millis(self.script.page_ms);
        let result = match outcome.as_str() {
            "hang" => {
                let _ = progress.send(p(Phase::Transmitting, Some(1)));
                loop {
                    if *cancel.borrow() {
                        break failed(FailureReason::Cancelled);
                    }
                    if cancel.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
            "sent" => {
                let _ = progress.send(p(Phase::Negotiating, None));
                let _ = progress.send(p(Phase::Transmitting, Some(1)));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {
                        self.deliver(&job);
                        Outcome::Sent { pages: 1 }
                    }
                    _ = cancel.wait_for(|c| *c) => failed(FailureReason::Cancelled),
                }
            }
            "busy" => failed(FailureReason::Busy),
            "no_answer" => failed(FailureReason::NoAnswer),
            "line_down" => failed(FailureReason::LineDown),
            "bad_number" => failed(FailureReason::BadNumber),
            other => failed(FailureReason::Other(format!(
                "unknown scripted outcome {other}"
            ))),
        };
        line_outcome(result)
    }

    /// Refuses settings that ask for more channels than the line has, as a real line would.
    fn apply_settings(
        &self,
        settings: &protocol::settings::FaxServerSettings,
    ) -> Result<(), node::SettingsError> {
        settings.validate()?;
        if settings.channels > self.channels {
            return Err(node::SettingsError::TooManyChannels {
                has: self.channels,
                asked: settings.channels,
            });
        }
        Ok(())
    }

    async fn next_received(&self) -> Option<ReceivedFax> {
        self.received.lock().await.recv().await
    }
}
