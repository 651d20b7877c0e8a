//! The open attempts (offered or under way) as routing and the watchdog see them, with their deadlines,
//! and the events told about them.

use super::Dispatcher;
use protocol::Phase;
use store::{Attempt, Job, NewEvent};

/// An attempt that has not ended, as routing and the watchdog need it. Deadlines live here, not in the
/// database (after a restart every open attempt gets the link grace anyway), except the end of a doubt.
#[derive(Debug, Clone)]
pub(super) struct OpenAttempt {
    pub(super) job_id: String,
    pub(super) batch_id: String,
    pub(super) client_id: String,
    pub(super) recipient: String,
    pub(super) fax_server_id: String,
    pub(super) phase: Phase,
    pub(super) page: Option<u32>,
    pub(super) started: i64,
    /// When the watchdog looks at it next: the phase's deadline, the answer to a query, the end of the
    /// link grace, or (in doubt) the time its job may be dispatched again.
    pub(super) deadline: i64,
    /// When it was asked about (`JobQuery`) after its deadline passed, while the question is unanswered.
    pub(super) queried_at: Option<i64>,
    /// The job has been moved to `active`.
    pub(super) activated: bool,
    /// Since when its fax server has been silent about it (link lost, query unanswered, or the supervisor
    /// restarted); `None` while in touch.
    pub(super) silent_since: Option<i64>,
    /// Shown in doubt (in the database too).
    pub(super) in_doubt: bool,
    /// The call limit its offer carried, ms.
    pub(super) call_limit: i64,
}

impl OpenAttempt {
    /// An event about its job (as [`super::job_event`] tells it), for the job's client.
    pub(super) fn job_event(&self, kind: &str, extra: serde_json::Value) -> NewEvent {
        super::job_event_of(
            kind,
            &self.job_id,
            &self.batch_id,
            &self.recipient,
            &self.client_id,
            extra,
        )
    }

    /// Its fax server reported on it.
    pub(super) fn in_touch(&mut self) {
        self.silent_since = None;
        self.queried_at = None;
        self.in_doubt = false;
    }

    /// When its job may be dispatched again: no call of it can be running once its fax server has been
    /// silent for the call limit (it hangs up then, counting from the offer's arrival, which came before
    /// the silence); and not before the link grace.
    pub(super) fn doubt_ends(&self, grace: i64) -> i64 {
        self.silent_since
            .unwrap_or(i64::MAX)
            .saturating_add(self.call_limit.max(grace))
    }
}

/// An attempt the database holds open, as routing sees it after a start.
pub(super) fn open_attempt(job: &Job, a: &Attempt, call_limit: i64) -> OpenAttempt {
    let offered = a.phase == Phase::Offered;
    OpenAttempt {
        job_id: job.id.clone(),
        batch_id: job.batch_id.clone(),
        client_id: job.client_id.clone(),
        recipient: job.recipient.clone(),
        fax_server_id: a.fax_server_id.clone(),
        phase: if offered {
            Phase::Offered
        } else {
            Phase::Dialling
        },
        page: None,
        started: a.started_at,
        deadline: a.started_at,
        queried_at: None,
        activated: !offered,
        silent_since: None,
        in_doubt: false,
        call_limit,
    }
}

impl Dispatcher {
    /// An event about an open attempt, for its job's client.
    pub(super) fn attempt_event(
        &self,
        kind: &str,
        attempt_id: &str,
        extra: serde_json::Value,
    ) -> Vec<NewEvent> {
        let st = self.lock();
        st.attempts
            .get(attempt_id)
            .map(|open| open_event(kind, attempt_id, open, extra))
            .into_iter()
            .collect()
    }
}

/// An event about an open attempt, for its job's client.
pub(super) fn open_event(
    kind: &str,
    attempt_id: &str,
    open: &OpenAttempt,
    extra: serde_json::Value,
) -> NewEvent {
    let mut payload = serde_json::json!({
        "job_id": open.job_id, "batch_id": open.batch_id, "recipient": open.recipient,
        "attempt_id": attempt_id, "fax_server_id": open.fax_server_id,
    });
    if let (Some(map), serde_json::Value::Object(extra)) = (payload.as_object_mut(), extra) {
        map.extend(extra);
    }
    NewEvent::new(kind, payload, vec![open.client_id.clone()])
}
