//! Progress reports: they need no acknowledgement, so a writer task commits them in batches, in arrival
//! order, and an attempt's end waits for the reports before it ([`Dispatcher::flush_progress`]).

use super::attempts::open_event;
use super::{Dispatcher, secs};
use crate::events::EventBus;
use protocol::JobProgress;
use store::{ProgressRecord, Store, now_ms};
use tokio::sync::mpsc;

/// What the writer is sent.
pub(super) enum ProgressMsg {
    Record(ProgressRecord),
    /// Answered once everything sent before it is committed.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Writes progress reports in batches: they need no acknowledgement, so they are committed together, in
/// arrival order, a few at a time under load and one by one when quiet.
pub(super) async fn writer(
    store: Store,
    events: EventBus,
    mut rx: mpsc::UnboundedReceiver<ProgressMsg>,
) {
    let mut msgs = Vec::with_capacity(1024);
    while rx.recv_many(&mut msgs, 1024).await > 0 {
        let mut records = Vec::new();
        let mut flushes = Vec::new();
        for m in msgs.drain(..) {
            match m {
                ProgressMsg::Record(r) => records.push(r),
                ProgressMsg::Flush(done) => flushes.push(done),
            }
        }
        if !records.is_empty() {
            match store.record_progress(&records).await {
                Ok(()) => events.committed(),
                Err(e) => tracing::warn!(
                    reports = records.len(),
                    "progress reports not recorded: {e}"
                ),
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

impl Dispatcher {
    /// Waits until every progress report received so far is committed, so that an attempt's end is
    /// never recorded before its progress.
    pub(super) async fn flush_progress(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.progress.send(ProgressMsg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    pub async fn on_progress(
        &self,
        fax_server_id: &str,
        progress: JobProgress,
    ) -> store::Result<()> {
        let phase = progress.phase;
        let deadline = now_ms() + secs(self.config.deadlines.for_phase(phase).as_secs());
        let (open, activate, was_in_doubt) = {
            let mut st = self.lock();
            let Some(open) = st.attempts.get_mut(&progress.attempt_id) else {
                return Ok(());
            };
            if open.fax_server_id != fax_server_id {
                return Ok(());
            }
            let activate = !open.activated;
            let was_in_doubt = open.in_doubt;
            open.in_touch();
            open.activated = true;
            open.phase = phase;
            open.page = progress.page.or(open.page);
            open.deadline = deadline;
            (open.clone(), activate, was_in_doubt)
        };
        if was_in_doubt {
            self.resume(&progress.attempt_id, &open, phase).await?;
        }
        let event = open_event(
            "job.progress",
            &progress.attempt_id,
            &open,
            serde_json::json!({"phase": phase, "page": progress.page,
                               "pages_total": progress.pages_total, "bit_rate": progress.bit_rate}),
        );
        let _ = self.progress.send(ProgressMsg::Record(ProgressRecord {
            attempt_id: progress.attempt_id,
            activate,
            event,
        }));
        Ok(())
    }
}
