//! The watchdog: every in-flight state is bounded. An attempt past its deadline is asked about; one whose
//! fax server is silent is shown in doubt and its job moves on only once no call of it can still be
//! running; none in touch outlives `max_attempt_secs` (nor the call limit its offer granted); no queued
//! job outlives its kill time.

use super::attempts::open_event;
use super::{Dispatcher, State, job_event, secs};
use protocol::Body;
use protocol::job::JobStatus;
use std::sync::Arc;
use std::time::Duration;
use store::{JobUpdate, NewEvent, now_ms};

impl Dispatcher {
    /// The watchdog: no attempt stays open past its deadline without a question to its fax server; one
    /// whose fax server is silent is shown in doubt, and its job moves on once no call of it can still be
    /// running; none in touch outlives `max_attempt_secs`; no queued job outlives its kill time.
    pub async fn run_watchdog(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            if let Err(e) = self.watchdog_round().await {
                tracing::error!("watchdog round failed: {e}");
            }
        }
    }

    pub(super) async fn watchdog_round(&self) -> store::Result<()> {
        let now = now_ms();
        let d = &self.config.deadlines;
        let query_deadline = now + secs(d.query_secs);
        let grace = secs(d.link_grace_secs);
        let mut abandon = Vec::new();
        let mut query = Vec::new();
        let mut doubt = Vec::new();
        {
            let mut st = self.lock();
            let State {
                fax_servers,
                attempts,
                ..
            } = &mut *st;
            for (id, open) in attempts.iter_mut() {
                let online = fax_servers
                    .get(&open.fax_server_id)
                    .is_some_and(|s| s.link.is_some());
                let in_touch = open.silent_since.is_none();
                // Never before the call limit the offer granted (the fax server hangs up then): a long
                // document at a slow rate is not cut and sent again from its first page.
                let max_age = secs(d.max_attempt_secs).max(open.call_limit.saturating_add(grace));
                if in_touch && open.started < now.saturating_sub(max_age) {
                    open.deadline = query_deadline;
                    open.started = i64::MAX;
                    abandon.push((
                        id.clone(),
                        format!(
                            "the attempt was still open after the maximum of {} s",
                            max_age / 1000
                        ),
                    ));
                    continue;
                }
                if open.deadline > now {
                    continue;
                }
                if in_touch {
                    match open.queried_at {
                        None if online => {
                            open.queried_at = Some(now);
                            open.deadline = query_deadline;
                            query.push((open.fax_server_id.clone(), id.clone()));
                            continue;
                        }
                        // Unanswered: silent since the question (it held the attempt before that).
                        Some(asked) => open.silent_since = Some(asked),
                        None => open.silent_since = Some(now),
                    }
                }
                let ends = open.doubt_ends(grace);
                if open.in_doubt || ends <= now {
                    open.deadline = query_deadline;
                    abandon.push((
                        id.clone(),
                        format!(
                            "its fax server was silent for longer than the call could last ({} s)",
                            open.call_limit.max(grace) / 1000
                        ),
                    ));
                } else {
                    // Not again before the marking below has run; then the end of the doubt.
                    open.deadline = ends;
                    let since = open.silent_since.unwrap_or(now);
                    let why = if online {
                        "the fax server did not answer a question about the attempt"
                    } else {
                        "the fax server's link is lost"
                    };
                    let event = open_event(
                        "job.in_doubt",
                        id,
                        open,
                        serde_json::json!({"reason": why, "silent_since": since, "until": ends}),
                    );
                    doubt.push((id.clone(), ends, event));
                }
            }
        }
        for (fax_server_id, attempt_id) in query {
            self.push(&fax_server_id, Body::JobQuery { attempt_id });
        }
        for (attempt_id, until, event) in doubt {
            self.mark_in_doubt(&attempt_id, until, event).await?;
        }
        for (id, why) in abandon {
            if let Some(a) = self.store.attempt(&id).await? {
                self.abandon(&a, &why).await?;
            }
        }
        let expired: Vec<String> = self
            .lock()
            .queue
            .jobs
            .values()
            .filter(|p| p.kill_at <= now)
            .map(|p| p.job_id.clone())
            .collect();
        for job_id in expired {
            self.dequeue(&job_id);
            if let Some(job) = self.store.job(&job_id).await? {
                let update = JobUpdate {
                    reason: Some("kill time reached".into()),
                    ..JobUpdate::to(JobStatus::Failed)
                };
                let event = job_event(
                    "job.failed",
                    &job,
                    serde_json::json!({"reason": "kill time reached"}),
                );
                if self
                    .store
                    .update_job(&job_id, &[JobStatus::Queued], &update, &[event])
                    .await?
                {
                    self.metrics.finished.add(&["failed"], 1);
                    self.events.committed();
                }
            }
        }
        Ok(())
    }

    /// Shows an attempt in doubt until `until`, when its job may be dispatched again. Its fax server may
    /// have reported on it while this was being committed: then it is resumed at once.
    pub(super) async fn mark_in_doubt(
        &self,
        attempt_id: &str,
        until: i64,
        event: NewEvent,
    ) -> store::Result<()> {
        if !self
            .store
            .mark_in_doubt(attempt_id, until, &[event])
            .await?
        {
            return Ok(());
        }
        tracing::warn!(attempt = %attempt_id, "attempt in doubt: its fax server is silent");
        self.events.committed();
        let back = {
            let mut st = self.lock();
            match st.attempts.get_mut(attempt_id) {
                Some(open) if open.silent_since.is_some() => {
                    open.in_doubt = true;
                    None
                }
                Some(open) => Some(open.clone()),
                None => None,
            }
        };
        if let Some(open) = back {
            self.resume(attempt_id, &open, open.phase).await?;
        }
        Ok(())
    }
}
