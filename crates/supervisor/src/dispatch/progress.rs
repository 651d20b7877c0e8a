//! Progress reports: they need no acknowledgement, so a writer task commits them in batches, in arrival
//! order, and an attempt's end waits for the reports before it ([`Dispatcher::flush_progress`]).
//!
//! The same writer records which link messages were applied ([`Dispatcher::applied`]): a fax server's
//! reliable message is acknowledged only once the highest id applied from it is committed, so that a
//! message it sends again after a reconnect is recognised and not applied twice. Committing those ids in
//! the writer's batches (one row per fax server per batch) rather than one write per message keeps the
//! single database writer free for the work itself.

use super::attempts::open_event;
use super::{Dispatcher, secs};
use crate::events::EventBus;
use protocol::{Body, Envelope, JobProgress};
use std::collections::HashMap;
use store::{Ended, LinkBatch, ProgressRecord, SentEnd, Store, now_ms};
use tokio::sync::mpsc;

/// What the writer is sent.
pub(super) enum ProgressMsg {
    Record(ProgressRecord),
    /// Answered once everything sent before it is committed.
    Flush(tokio::sync::oneshot::Sender<()>),
    /// An open attempt sent its job: ended in the batch, after the reports sent before it; answered with
    /// what changed once committed, or why the batch failed (nothing of it was written).
    Sent(SentEnd, tokio::sync::oneshot::Sender<Result<Ended, String>>),
    /// A link message applied: its id is committed, then acknowledged on `ack`.
    Applied {
        fax_server_id: String,
        msg_id: u64,
        ack: mpsc::UnboundedSender<Envelope>,
    },
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
        let mut batch = LinkBatch::default();
        let mut flushes = Vec::new();
        let mut highest: HashMap<String, u64> = HashMap::new();
        let mut acks = Vec::new();
        let mut sent_to = Vec::new();
        for m in msgs.drain(..) {
            match m {
                ProgressMsg::Record(r) => batch.progress.push(r),
                ProgressMsg::Flush(done) => flushes.push(done),
                ProgressMsg::Sent(end, done) => {
                    batch.sent.push(end);
                    sent_to.push(done);
                }
                ProgressMsg::Applied {
                    fax_server_id,
                    msg_id,
                    ack,
                } => {
                    let top = highest.entry(fax_server_id).or_default();
                    *top = (*top).max(msg_id);
                    acks.push((msg_id, ack));
                }
            }
        }
        batch.links_applied = highest.into_iter().collect();
        if !batch.is_empty() {
            match store.record_link_batch(&batch).await {
                Ok(ended) => {
                    if !batch.progress.is_empty() || !batch.sent.is_empty() {
                        events.committed();
                    }
                    for (done, e) in sent_to.into_iter().zip(ended) {
                        let _ = done.send(Ok(e));
                    }
                    // In the order applied: a link's acknowledgements keep the order of its messages.
                    for (msg_id, ack) in acks {
                        let _ = ack.send(Envelope::unacked(Body::Ack { ack: msg_id }));
                    }
                }
                // Unacknowledged messages stay in the fax server's outbox and come again with its next
                // link, where the ids that were committed say which ones were applied.
                Err(e) => {
                    tracing::warn!(
                        reports = batch.progress.len(),
                        ends = batch.sent.len(),
                        links = batch.links_applied.len(),
                        "link reports not recorded: {e}"
                    );
                    let why = e.to_string();
                    for done in sent_to {
                        let _ = done.send(Err(why.clone()));
                    }
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

impl Dispatcher {
    /// A reliable link message from `fax_server_id` was applied: its id is committed with the writer's
    /// next batch, and then acknowledged on `ack` (the link's outgoing queue).
    pub fn applied(&self, fax_server_id: &str, msg_id: u64, ack: mpsc::UnboundedSender<Envelope>) {
        let _ = self.progress.send(ProgressMsg::Applied {
            fax_server_id: fax_server_id.to_owned(),
            msg_id,
            ack,
        });
    }

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
