//! Outcomes: what a fax server reports at an attempt's end, applied to the attempt and its job, and
//! HylaFAX's retry rules that decide what follows a failure.

use super::attempts::{OpenAttempt, open_event};
use super::{Dispatcher, JobOptions, job_event};
use protocol::job::{AttemptStatus, JobStatus};
use protocol::{Body, FailureReason, FaultSide, JobResult, Outcome, Phase};
use std::time::Duration;
use store::{Attempt, AttemptFinish, Ended, Ending, Job, JobUpdate, now_ms};

/// The decision after a failed attempt.
#[derive(Debug, PartialEq)]
pub(super) enum Next {
    Retry { not_before: i64 },
    Fail(String),
    Cancelled,
}

impl Dispatcher {
    /// A job was sent: its other attempts are withdrawn if they have not started dialling (as far as the
    /// supervisor knows; the fax server checks again). One that dials, or whose fax server is silent, is
    /// left to end, and its result is recorded.
    pub(super) fn withdraw_duplicates(&self, job_id: &str, sent_by: &str) {
        let withdraw: Vec<(String, String)> = self
            .lock()
            .attempts
            .iter()
            .filter(|(id, a)| {
                a.job_id == job_id
                    && id.as_str() != sent_by
                    && a.silent_since.is_none()
                    && matches!(a.phase, Phase::Offered | Phase::Accepted | Phase::Preparing)
            })
            .map(|(id, a)| (a.fax_server_id.clone(), id.clone()))
            .collect();
        for (fax_server_id, attempt_id) in withdraw {
            tracing::info!(attempt = %attempt_id, job = %job_id, "withdrawing an attempt: another one sent the job");
            self.push(
                &fax_server_id,
                Body::JobCancel {
                    attempt_id,
                    only_before_dialling: true,
                },
            );
        }
    }

    /// An attempt in doubt is active again: its fax server reported on it.
    pub(super) async fn resume(
        &self,
        attempt_id: &str,
        open: &OpenAttempt,
        phase: Phase,
    ) -> store::Result<()> {
        let event = open_event(
            "job.resumed",
            attempt_id,
            open,
            serde_json::json!({"phase": phase}),
        );
        if self
            .store
            .resume_attempt(attempt_id, true, &[event])
            .await?
        {
            tracing::info!(attempt = %attempt_id, "the fax server is back: the attempt is no longer in doubt");
            self.events.committed();
        }
        Ok(())
    }

    /// Applies the end of an attempt as the fax server reports it; a repeated report changes nothing. A
    /// report for an attempt the supervisor abandoned meanwhile is recorded as what happened.
    pub async fn on_result(&self, fax_server_id: &str, result: JobResult) -> store::Result<()> {
        if let Outcome::Sent { pages } = result.outcome
            && self.sent_in_batch(fax_server_id, &result, pages).await
        {
            return Ok(());
        }
        let Some(a) = self.store.attempt(&result.attempt_id).await? else {
            return Ok(());
        };
        if a.fax_server_id != fax_server_id {
            tracing::warn!(attempt = %a.id, "result from a fax server that does not hold the attempt; ignored");
            return Ok(());
        }
        let ending = if a.status == AttemptStatus::Abandoned {
            Ending::Late
        } else {
            Ending::Open
        };
        let withdrawn = self
            .lock()
            .fax_servers
            .get(fax_server_id)
            .and_then(|s| s.withdrawn.clone());
        if let (Some(why), Ending::Open, Outcome::Failed { reason, .. }) =
            (withdrawn, ending, &result.outcome)
            && *reason == FailureReason::Cancelled
        {
            // It stopped the call because it is being withdrawn: the job moves on at once.
            self.abandon(&a, &why).await?;
            return Ok(());
        }
        let stats = serde_json::to_string(&result.stats).ok();
        let (finish, health) = match &result.outcome {
            Outcome::Sent { pages } => (
                AttemptFinish {
                    pages_sent: i64::from(*pages),
                    stats,
                    ..AttemptFinish::new(AttemptStatus::Succeeded)
                },
                1.0,
            ),
            Outcome::Failed {
                reason: FailureReason::Cancelled,
                ..
            } if ending == Ending::Late => {
                // It confirms the cancel sent when the supervisor gave up on it: the call did not end
                // the job, and the abandonment already says why it stopped counting.
                tracing::info!(attempt = %a.id, "an abandoned attempt confirms its cancel");
                return Ok(());
            }
            Outcome::Failed {
                fault,
                reason,
                t30,
                pages_sent,
            } => (
                AttemptFinish {
                    status: AttemptStatus::Failed,
                    fault: Some(*fault),
                    reason: Some(reason.to_string()),
                    t30: t30.clone(),
                    pages_sent: i64::from(*pages_sent),
                    stats,
                },
                if *fault == FaultSide::FaxServer {
                    0.0
                } else {
                    0.8
                },
            ),
        };
        let applied = self.finish(&a, finish, ending).await?;
        if applied && ending == Ending::Open {
            let mut st = self.lock();
            if let Some(s) = st.fax_servers.get_mut(fax_server_id) {
                s.health = s.health * 0.8 + health * 0.2;
            }
        } else if !applied {
            tracing::info!(attempt = %a.id, "result for an attempt that already ended; acknowledged, no change");
        }
        Ok(())
    }

    /// Ends an attempt and moves its job on: sent, retried or failed; a job that moved on meanwhile (sent by
    /// another attempt, or this one was abandoned and its job retried) changes only to `sent`. False when
    /// the attempt was not in the state `ending` needs.
    pub(super) async fn finish(
        &self,
        a: &Attempt,
        finish: AttemptFinish,
        ending: Ending,
    ) -> store::Result<bool> {
        self.flush_progress().await;
        let Some(job) = self.store.job(&a.job_id).await? else {
            return Ok(false);
        };
        let now = now_ms();
        let late = ending == Ending::Late;
        let mut requeue = false;
        let (update, event) = if finish.status == AttemptStatus::Succeeded {
            let pages = finish.pages_sent;
            let update = JobUpdate {
                pages_sent: Some(pages),
                ..JobUpdate::to(JobStatus::Sent)
            };
            let event = job_event(
                "job.sent",
                &job,
                serde_json::json!({"attempt_id": a.id, "pages": pages, "late": late}),
            );
            (Some(update), Some(event))
        } else if late {
            (None, None)
        } else {
            let history = self.store.attempts_of(&job.id).await?;
            let fault = finish.fault;
            let reason = finish.reason.clone().unwrap_or_default();
            let next = if reason == FailureReason::Cancelled.as_str() {
                Next::Cancelled
            } else {
                match self.next_after_failure(&job, &history, a, fault, &reason, now) {
                    Next::Retry { .. } if job.cancel_requested => Next::Cancelled,
                    next => next,
                }
            };
            let (update, event) = match next {
                Next::Cancelled => (
                    JobUpdate {
                        reason: Some("cancelled by the client".into()),
                        ..JobUpdate::to(JobStatus::Cancelled)
                    },
                    job_event(
                        "job.cancelled",
                        &job,
                        serde_json::json!({"attempt_id": a.id}),
                    ),
                ),
                Next::Retry { not_before } => {
                    requeue = true;
                    (
                        JobUpdate {
                            status: JobStatus::Queued,
                            reason: Some(reason.clone()),
                            not_before: Some(not_before),
                            pages_sent: Some(finish.pages_sent),
                        },
                        job_event(
                            "job.retry_scheduled",
                            &job,
                            serde_json::json!({"attempt_id": a.id, "fault": fault, "reason": reason, "not_before": not_before}),
                        ),
                    )
                }
                Next::Fail(why) => (
                    JobUpdate {
                        reason: Some(why.clone()),
                        ..JobUpdate::to(JobStatus::Failed)
                    },
                    job_event(
                        "job.failed",
                        &job,
                        serde_json::json!({"attempt_id": a.id, "fault": fault, "reason": why}),
                    ),
                ),
            };
            (Some(update), Some(event))
        };
        // When the job does not move, the attempt's end is still told, as it happened.
        let attempt_ended = job_event(
            "job.attempt_ended",
            &job,
            serde_json::json!({"attempt_id": a.id, "status": finish.status, "fault": finish.fault,
                               "reason": finish.reason, "pages_sent": finish.pages_sent, "late": late}),
        );
        let ended = self
            .store
            .finish_attempt(
                &a.id,
                ending,
                &finish,
                update.as_ref(),
                event.as_slice(),
                &[attempt_ended],
            )
            .await?;
        match ended {
            Ended::NotOpen => return Ok(false),
            // The client cancelled while this was decided: decide again, now as a cancel.
            Ended::CancelRequested => return Box::pin(self.finish(a, finish, ending)).await,
            Ended::AttemptOnly | Ended::WithJob => {}
        }
        if late {
            tracing::warn!(attempt = %a.id, job = %job.id, status = %finish.status,
                "an attempt abandoned earlier reported its end; recorded");
        }
        let moved = (ended == Ended::WithJob)
            .then(|| update.as_ref().map(|u| u.status))
            .flatten();
        self.attempt_ended(
            (&job.id, &job.recipient),
            &a.id,
            &a.fax_server_id,
            finish.status,
            finish.reason.as_deref(),
            finish.pages_sent,
            moved,
        );
        self.ended(&a.id, &a.fax_server_id, &job.id, moved);
        if requeue && ended == Ended::WithJob {
            if let Some(job) = self.store.job(&job.id).await? {
                self.enqueue(std::slice::from_ref(&job)).await?;
            }
        } else {
            self.wake.notify_one();
        }
        Ok(true)
    }

    /// What follows a committed end of an attempt in memory: it is no longer open, and its job's move to
    /// `moved` (if it moved) is counted; a job sent is taken out of the queue and its other attempts are
    /// withdrawn.
    fn ended(&self, attempt_id: &str, fax_server_id: &str, job_id: &str, moved: Option<JobStatus>) {
        {
            let mut st = self.lock();
            st.attempts.remove(attempt_id);
            if let Some(s) = st.fax_servers.get_mut(fax_server_id) {
                s.open.remove(attempt_id);
            }
        }
        self.events.committed();
        match moved {
            Some(JobStatus::Sent) => {
                self.metrics.finished.add(&["sent"], 1);
                // A retry may be waiting or under way: the fax is delivered.
                self.dequeue(job_id);
                self.withdraw_duplicates(job_id, attempt_id);
            }
            Some(JobStatus::Failed) => self.metrics.finished.add(&["failed"], 1),
            Some(JobStatus::Queued) => self.metrics.retried.inc(),
            Some(
                JobStatus::Dispatched
                | JobStatus::Active
                | JobStatus::InDoubt
                | JobStatus::Cancelled,
            )
            | None => {}
        }
    }

    /// The common end: an attempt open here, on this fax server, sent its job. It is ended in the link
    /// writer's next batch (after the progress reported before it, with no reads), as
    /// [`Dispatcher::finish`] would end it. False when that does not apply or did not happen (the attempt
    /// is not open here, or was no longer open in the database, or the batch failed): the caller takes
    /// the full path, which reads the attempt as it is now.
    async fn sent_in_batch(&self, fax_server_id: &str, result: &JobResult, pages: u32) -> bool {
        let open = {
            let st = self.lock();
            match st.attempts.get(&result.attempt_id) {
                Some(o) if o.fax_server_id == fax_server_id => o.clone(),
                _ => return false,
            }
        };
        let attempt_id = &result.attempt_id;
        let pages = i64::from(pages);
        let sent = open.job_event(
            "job.sent",
            serde_json::json!({"attempt_id": attempt_id, "pages": pages, "late": false}),
        );
        let attempt_ended = open.job_event(
            "job.attempt_ended",
            serde_json::json!({"attempt_id": attempt_id, "status": AttemptStatus::Succeeded,
                               "fault": None::<FaultSide>, "reason": None::<String>,
                               "pages_sent": pages, "late": false}),
        );
        let end = store::SentEnd {
            attempt_id: attempt_id.clone(),
            pages,
            stats: serde_json::to_string(&result.stats).ok(),
            events: vec![sent],
            otherwise: vec![attempt_ended],
        };
        let (done, answer) = tokio::sync::oneshot::channel();
        if self
            .progress
            .send(super::progress::ProgressMsg::Sent(end, done))
            .is_err()
        {
            return false;
        }
        let ended = match answer.await {
            Ok(Ok(ended)) => ended,
            Ok(Err(why)) => {
                tracing::warn!(attempt = %attempt_id, "ending the attempt with its batch failed ({why}); trying alone");
                return false;
            }
            Err(_) => return false,
        };
        let moved = match ended {
            Ended::NotOpen | Ended::CancelRequested => return false,
            Ended::WithJob => Some(JobStatus::Sent),
            Ended::AttemptOnly => None,
        };
        self.attempt_ended(
            (&open.job_id, &open.recipient),
            attempt_id,
            fax_server_id,
            AttemptStatus::Succeeded,
            None,
            pages,
            moved,
        );
        self.ended(attempt_id, fax_server_id, &open.job_id, moved);
        self.wake.notify_one();
        let mut st = self.lock();
        if let Some(s) = st.fax_servers.get_mut(fax_server_id) {
            s.health = s.health * 0.8 + 0.2;
        }
        true
    }

    /// HylaFAX's retry rules: recipient faults wait on the schedule until max tries or the kill time;
    /// fax-server faults move on at once to another fax server; permanent faults end the job.
    pub(super) fn next_after_failure(
        &self,
        job: &Job,
        history: &[Attempt],
        current: &Attempt,
        fault: Option<FaultSide>,
        reason: &str,
        now: i64,
    ) -> Next {
        let ended_with = |f: FaultSide| {
            let earlier = history
                .iter()
                .filter(|h| h.id != current.id && h.fault == Some(f))
                .count();
            u32::try_from(earlier + 1).unwrap_or(u32::MAX)
        };
        match fault {
            Some(FaultSide::Recipient) => {
                let tries = ended_with(FaultSide::Recipient);
                if i64::from(tries) >= job.max_tries {
                    return Next::Fail(format!("{reason} (gave up after {tries} tries)"));
                }
                let options = match JobOptions::of(job) {
                    Ok(o) => o,
                    Err(e) => {
                        tracing::error!(job = %job.id, "{e}");
                        return Next::Fail(format!("{reason} (no retry: {e})"));
                    }
                };
                let delay = options.retry_delay_secs.map_or_else(
                    || self.live.with(|s| s.retry_delay(tries)),
                    Duration::from_secs,
                );
                let not_before = now + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                if not_before >= job.kill_at {
                    return Next::Fail(format!("{reason} (kill time reached before the next try)"));
                }
                Next::Retry { not_before }
            }
            Some(FaultSide::FaxServer) => {
                let failovers = ended_with(FaultSide::FaxServer);
                if failovers > self.live.with(|s| s.retry.max_failovers) || now >= job.kill_at {
                    return Next::Fail(format!("{reason} (no fax server could take the job)"));
                }
                Next::Retry { not_before: now }
            }
            Some(FaultSide::Permanent) | None => Next::Fail(reason.to_owned()),
        }
    }

    /// Gives up on an open attempt and moves its job on (a fax-server fault). Its fax server, if
    /// connected, is told to stop; if it reports the attempt's end later, that is still recorded.
    pub async fn abandon(&self, a: &Attempt, why: &str) -> store::Result<bool> {
        tracing::warn!(attempt = %a.id, job = %a.job_id, fax_server = %a.fax_server_id, "abandoning attempt: {why}");
        let finish = AttemptFinish {
            fault: Some(FaultSide::FaxServer),
            reason: Some(why.to_owned()),
            pages_sent: a.pages_sent,
            ..AttemptFinish::new(AttemptStatus::Abandoned)
        };
        self.request_cancel(a);
        self.finish(a, finish, Ending::Open).await
    }

    /// The fax server does not know an attempt it was asked about: it never arrived or was lost, so no
    /// call of it is running.
    pub async fn on_unknown(&self, fax_server_id: &str, attempt_id: &str) -> store::Result<()> {
        if let Some(a) = self.store.attempt(attempt_id).await?
            && a.fax_server_id == fax_server_id
        {
            self.abandon(&a, "the fax server does not know the attempt")
                .await?;
        }
        Ok(())
    }
}

impl Dispatcher {
    /// Logs an attempt's end and counts it (by fax server, result and reason; pages confirmed). One line
    /// per attempt that ended, as there is one per received fax (`inbound fax delivered`): the outbound
    /// results are in the log as HylaFAX keeps them in its xferfaxlog (the link writer's fast path for
    /// sent attempts writes the same line).
    #[allow(clippy::too_many_arguments)]
    fn attempt_ended(
        &self,
        (job_id, recipient): (&str, &str),
        attempt_id: &str,
        fax_server_id: &str,
        status: AttemptStatus,
        reason: Option<&str>,
        pages: i64,
        moved: Option<JobStatus>,
    ) {
        self.metrics.attempts.add(
            &[fax_server_id, &status.to_string(), reason.unwrap_or("")],
            1,
        );
        self.metrics
            .pages_sent
            .add(&[fax_server_id], u64::try_from(pages).unwrap_or(0));
        tracing::info!(job = %job_id, recipient = %recipient, attempt = %attempt_id,
            fax_server = %fax_server_id, status = %status, reason = %reason.unwrap_or(""), pages,
            job_status = %moved.map(|s| s.to_string()).unwrap_or_default(), "outbound fax attempt ended");
    }
}
