//! A line whose calls end as the test's script says. Every executed attempt id is appended to a log so
//! tests can prove that no attempt ran twice.

use node::{Line, LineOutcome, LineProgress, ReceivedFax, SendJob};
use protocol::{CallStats, FaultSide, Outcome, Phase};
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

fn failed(fault: FaultSide, reason: &str) -> Outcome {
    Outcome::Failed {
        fault,
        reason: reason.into(),
        t30: None,
        pages_sent: 0,
    }
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
        let _ = progress.send(p(Phase::Dialling, None));
        let wait = Duration::from_millis(self.script.page_ms);
        let result = match outcome.as_str() {
            "hang" => {
                let _ = progress.send(p(Phase::Transmitting, Some(1)));
                loop {
                    if *cancel.borrow() {
                        break failed(FaultSide::Permanent, "cancelled");
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
                    _ = tokio::time::sleep(wait) => Outcome::Sent { pages: 1 },
                    _ = cancel.wait_for(|c| *c) => failed(FaultSide::Permanent, "cancelled"),
                }
            }
            "busy" => failed(FaultSide::Recipient, "busy"),
            "no_answer" => failed(FaultSide::Recipient, "no_answer"),
            "line_down" => failed(FaultSide::FaxServer, "line_down"),
            "bad_number" => failed(FaultSide::Permanent, "bad_number"),
            other => failed(
                FaultSide::Permanent,
                &format!("unknown scripted outcome {other}"),
            ),
        };
        LineOutcome {
            outcome: result,
            stats: CallStats {
                bit_rate: Some(14_400),
                ecm: Some(true),
                ..Default::default()
            },
        }
    }

    /// Refuses settings that ask for more channels than the line has, as a real line would.
    fn apply_settings(&self, settings: &serde_json::Value) -> Result<(), String> {
        match settings["channels"].as_u64() {
            Some(n) if n > u64::from(self.channels) => Err(format!(
                "channels: this line has {} channels, not {n}",
                self.channels
            )),
            _ => Ok(()),
        }
    }

    async fn next_received(&self) -> Option<ReceivedFax> {
        self.received.lock().await.recv().await
    }
}
