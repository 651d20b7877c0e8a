//! Send routing (claims 2 and 23): choosing a proper fax server for each job, offering it the attempt,
//! applying what the fax server reports, retrying, and the watchdog that bounds every in-flight state.
//!
//! The database is the truth; this module keeps in memory only what routing needs to be fast (the queue of
//! jobs waiting for an attempt, and the fax servers' links, capacity and health) and rebuilds it from the
//! database on start. An attempt is recorded (and its job moved out of `queued`) in one transaction
//! *before* the offer leaves, so a crash between the two re-sends the same attempt id, which the fax server
//! de-duplicates, and never makes a second attempt.
//!
//! An attempt whose fax server goes silent (its link lost beyond the grace, or a query unanswered) is *in
//! doubt*: its call may be running or may have sent the fax. Its job is dispatched again only once the
//! fax server has been silent for longer than the attempt's call limit (which the fax server enforces by
//! hanging up), or when the fax server comes back and does not hold it. Whatever the fax server reports
//! for it meanwhile is applied, and a report that comes after the job moved on is still recorded as what
//! happened; a `sent` one makes the job sent and withdraws the other attempt if it has not dialled yet.
//!
//! The parts, along the seams of that work:
//! - [`fleet`]: the fax servers as routing sees them (links, channels, health, line status, dial
//!   prefixes), their links coming and going, and the messages pushed to them;
//! - [`queue`]: the jobs waiting for an attempt, due ones in dispatch order;
//! - [`select`]: which fax server takes which job, a pure function of the fleet and the queue;
//! - [`attempts`]: the open attempts and their deadlines;
//! - [`outcomes`]: what a fax server reports at an attempt's end, and the retry that follows;
//! - [`watchdog`]: the bounds on every in-flight state, and the doubt of a silent fax server;
//! - [`progress`]: progress reports, committed in batches.
//!
//! All of them share one [`State`] behind one lock, never held across an `.await`.

mod attempts;
mod fleet;
pub use fleet::FleetStatus;
mod outcomes;
mod progress;
mod queue;
mod select;
#[cfg(test)]
mod tests;
mod watchdog;

use crate::access::Access;
use crate::config::Config;
use crate::events::EventBus;
use crate::metrics::Metrics;
use attempts::{OpenAttempt, open_attempt};
use fleet::FaxServer;
use progress::ProgressMsg;
use protocol::job::AttemptStatus;
use protocol::{Body, Capabilities, DocumentRef, FaultSide, JobOffer, Phase, SendOptions};
use queue::{AVOID_MS, Pending, Queue};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{Attempt, Job, NewEvent, Store, now_ms};
use tokio::sync::{Notify, mpsc};

/// Per-job options as stored with the job (JSON in `jobs.options`; a field an older row lacks takes its
/// default, a value of the wrong kind is corrupt).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, utoipa::ToSchema)]
#[serde(default)]
pub struct JobOptions {
    /// `standard`, `fine` or `superfine`.
    pub resolution: String,
    pub ecm: bool,
    pub header: Option<String>,
    pub tsi: Option<String>,
    /// Seconds between tries after recipient faults; the server's schedule when absent.
    pub retry_delay_secs: Option<u64>,
}

impl JobOptions {
    /// The options stored with `job`; a value that does not decode is corrupt data, not defaults.
    pub fn of(job: &Job) -> store::Result<Self> {
        serde_json::from_str(&job.options)
            .map_err(|e| store::Error::Corrupt(format!("job {}: options: {e}", job.id)))
    }
}

/// What routing holds in memory (the database holds the truth).
#[derive(Debug, Default)]
struct State {
    fax_servers: HashMap<String, FaxServer>,
    queue: Queue,
    attempts: HashMap<String, OpenAttempt>,
    /// Counts links made, so a stale disconnect is told from the current link's.
    generation: u64,
}

pub struct Dispatcher {
    store: Store,
    config: Arc<Config>,
    access: Arc<Access>,
    metrics: Arc<Metrics>,
    /// The supervisor's settings in force (retry policy).
    live: Arc<crate::supervisor_settings::Live>,
    state: Mutex<State>,
    wake: Notify,
    /// Told whenever events were committed (the application's bus: SSE streams and webhooks listen).
    events: EventBus,
    progress: mpsc::UnboundedSender<ProgressMsg>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

pub fn job_event(kind: &str, job: &Job, extra: serde_json::Value) -> NewEvent {
    job_event_of(
        kind,
        &job.id,
        &job.batch_id,
        &job.recipient,
        &job.client_id,
        extra,
    )
}

/// An event about a job, for its client: the job, its batch and recipient, and `extra`'s fields.
fn job_event_of(
    kind: &str,
    job_id: &str,
    batch_id: &str,
    recipient: &str,
    client_id: &str,
    extra: serde_json::Value,
) -> NewEvent {
    let mut payload = serde_json::json!({
        "job_id": job_id, "batch_id": batch_id, "recipient": recipient,
    });
    if let (Some(map), serde_json::Value::Object(extra)) = (payload.as_object_mut(), extra) {
        map.extend(extra);
    }
    NewEvent::new(kind, payload, vec![client_id.to_owned()])
}

impl Dispatcher {
    /// Must be called within a tokio runtime: it starts the progress writer.
    pub fn new(
        store: Store,
        config: Arc<Config>,
        access: Arc<Access>,
        metrics: Arc<Metrics>,
        live: Arc<crate::supervisor_settings::Live>,
        events: EventBus,
    ) -> Arc<Self> {
        let (progress, rx) = mpsc::unbounded_channel();
        tokio::spawn(progress::writer(store.clone(), events.clone(), rx));
        Arc::new(Self {
            store,
            config,
            access,
            metrics,
            live,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            events,
            progress,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds the in-memory view from the database after a start.
    pub async fn restore(&self) -> store::Result<()> {
        let servers = self.store.fax_servers().await?;
        let open = self.store.open_attempts().await?;
        let queued = self.store.queued_jobs().await?;
        // No fax server is connected yet: each open attempt's fax server has the link grace to come back
        // and reconcile. Its silence counts from now, as the supervisor cannot know how long it lasted
        // before; an attempt already in doubt keeps the end of its doubt.
        let now = now_ms();
        let grace_end = now + secs(self.config.deadlines.link_grace_secs);
        let mut restored = Vec::with_capacity(open.len());
        for a in &open {
            if let Some(job) = self.store.job(&a.job_id).await? {
                let mut open = open_attempt(&job, a, self.call_limit(a, job.pages_total));
                open.silent_since = Some(now);
                open.deadline = grace_end;
                if a.status == AttemptStatus::InDoubt {
                    open.in_doubt = true;
                    open.deadline = a.deadline_at.unwrap_or(now).max(grace_end);
                }
                restored.push((a.id.clone(), open));
            }
        }
        let mut pendings = Vec::with_capacity(queued.len());
        for job in &queued {
            pendings.push(self.pending_from_job(job).await?);
        }
        let mut st = self.lock();
        for fs in servers {
            let caps: Capabilities = fs.capabilities.0.clone();
            st.fax_servers
                .insert(fs.id.clone(), FaxServer::new(fs.dial_prefixes(), caps));
        }
        for a in open {
            if let Some(s) = st.fax_servers.get_mut(&a.fax_server_id) {
                s.open.insert(a.id);
            }
        }
        st.attempts.extend(restored);
        let now = now_ms();
        for p in pendings {
            st.queue.insert(p, now);
        }
        tracing::info!(
            queued = st.queue.len(),
            fax_servers = st.fax_servers.len(),
            "dispatcher restored"
        );
        Ok(())
    }

    /// The call limit an attempt was offered with, ms (computed as it would be now for one offered before
    /// limits were recorded).
    fn call_limit(&self, a: &Attempt, pages: i64) -> i64 {
        a.call_limit_ms
            .unwrap_or_else(|| self.new_call_limit(pages))
    }

    fn new_call_limit(&self, pages: i64) -> i64 {
        i64::try_from(self.config.deadlines.call_limit(pages).as_millis()).unwrap_or(i64::MAX)
    }

    async fn pending_from_job(&self, job: &Job) -> store::Result<Pending> {
        let docs = self.store.job_documents(&job.id).await?;
        let attempts = self.store.attempts_of(&job.id).await?;
        let mut avoid = HashMap::new();
        for a in attempts
            .iter()
            .filter(|a| a.fault == Some(FaultSide::FaxServer))
        {
            avoid.insert(a.fax_server_id.clone(), a.ended_at.unwrap_or(0) + AVOID_MS);
        }
        let documents = docs
            .into_iter()
            .map(|d| DocumentRef {
                sha256: d.sha256,
                size: u64::try_from(d.size).unwrap_or(0),
                media_type: d.media_type,
            })
            .collect();
        let mut p = Pending::new(job, documents, JobOptions::of(job)?);
        p.avoid = avoid;
        p.next_attempt_number = attempts.iter().map(|a| a.number).max().unwrap_or(0) + 1;
        p.step_down = attempts
            .iter()
            .max_by_key(|a| a.number)
            .and_then(|a| a.reason.as_deref())
            .is_some_and(|r| protocol::FailureReason::from_code(r).calls_for_step_down());
        Ok(p)
    }

    /// Queues freshly submitted (or re-queued) jobs for dispatch.
    pub async fn enqueue(&self, jobs: &[Job]) -> store::Result<()> {
        let mut pendings = Vec::with_capacity(jobs.len());
        for job in jobs {
            pendings.push(self.pending_from_job(job).await?);
        }
        {
            let mut st = self.lock();
            let now = now_ms();
            for p in pendings {
                st.queue.insert(p, now);
            }
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Queues jobs whose documents and options the caller already holds, without reading them back.
    pub fn enqueue_new(&self, job: &Job, documents: Vec<DocumentRef>, options: JobOptions) {
        let p = Pending::new(job, documents, options);
        self.lock().queue.insert(p, now_ms());
        self.wake.notify_one();
    }

    /// The live phase and page of an open attempt (the database has them only from its start and end).
    pub fn live_phase(&self, attempt_id: &str) -> Option<(Phase, Option<u32>)> {
        self.lock()
            .attempts
            .get(attempt_id)
            .map(|a| (a.phase, a.page))
    }

    pub fn queue_len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Removes a job from the queue (cancel); true if it was waiting there.
    pub fn dequeue(&self, job_id: &str) -> bool {
        self.lock().queue.remove(job_id).is_some()
    }

    /// Sends a cancel for an open attempt to its fax server, if connected; the fax server answers with a
    /// result whose reason is `cancelled`.
    pub fn request_cancel(&self, attempt: &Attempt) {
        self.push(
            &attempt.fax_server_id,
            Body::JobCancel {
                attempt_id: attempt.id.clone(),
                only_before_dialling: false,
            },
        );
    }

    /// The dispatch loop: runs until the process ends.
    pub async fn run(self: Arc<Self>) {
        loop {
            let next_due = match self.dispatch_round().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!("dispatch round failed: {e}");
                    Some(now_ms() + 1000)
                }
            };
            let wait = next_due.map_or(Duration::from_secs(1), |t| {
                Duration::from_millis(u64::try_from(t - now_ms()).unwrap_or(0))
            });
            let _ =
                tokio::time::timeout(wait.min(Duration::from_secs(1)), self.wake.notified()).await;
        }
    }

    /// Offers every job that is due and has a fax server available; returns when the next waiting job is due.
    async fn dispatch_round(&self) -> store::Result<Option<i64>> {
        let now = now_ms();
        let (picks, next_due) = {
            let mut st = self.lock();
            let next_due = st.queue.promote(now);
            let chosen = select::plan(&st.fax_servers, &st.queue, now, |client, fax_server| {
                self.access.may_send(client, fax_server)
            });
            let mut picks = Vec::with_capacity(chosen.len());
            for (job_id, fax_server_id) in chosen {
                let Some(p) = st.queue.remove(&job_id) else {
                    continue;
                };
                let attempt_id = store::new_id("att");
                if let Some(s) = st.fax_servers.get_mut(&fax_server_id) {
                    s.open.insert(attempt_id.clone());
                }
                picks.push((p, fax_server_id, attempt_id));
            }
            (picks, next_due)
        };
        for chunk in picks.chunks(256) {
            self.offer(chunk.to_vec()).await?;
        }
        Ok(next_due)
    }

    /// Records a batch of attempts in one transaction, then sends their offers.
    async fn offer(&self, picks: Vec<(Pending, String, String)>) -> store::Result<()> {
        let now = now_ms();
        let deadline = now + secs(self.config.deadlines.offered_secs);
        let batch: Vec<(Attempt, NewEvent)> = picks
            .iter()
            .map(|(p, fax_server_id, attempt_id)| {
                let attempt = Attempt {
                    call_limit_ms: Some(self.new_call_limit(p.pages)),
                    ..Attempt::offered(attempt_id.clone(), p.job_id.clone(), p.next_attempt_number, fax_server_id.clone(), now)
                };
                let event = NewEvent::new(
                    "job.dispatched",
                    serde_json::json!({"job_id": p.job_id, "batch_id": p.batch_id, "recipient": p.recipient,
                                       "attempt_id": attempt_id, "attempt": attempt.number, "fax_server_id": fax_server_id}),
                    vec![p.client_id.clone()],
                );
                (attempt, event)
            })
            .collect();
        let started = match self.store.start_attempts(&batch).await {
            Ok(s) => s,
            Err(e) => {
                // Put the jobs back untouched so a passing database error loses nothing.
                let mut st = self.lock();
                for (p, fax_server_id, attempt_id) in picks {
                    if let Some(s) = st.fax_servers.get_mut(&fax_server_id) {
                        s.open.remove(&attempt_id);
                    }
                    st.queue.insert(p, now);
                }
                return Err(e);
            }
        };
        let mut offers = Vec::new();
        {
            let mut st = self.lock();
            for (((p, fax_server_id, attempt_id), ok), (attempt, _)) in
                picks.into_iter().zip(started).zip(&batch)
            {
                let call_limit = attempt.call_limit_ms.unwrap_or(i64::MAX);
                if !ok {
                    // Cancelled (or otherwise moved on) while it waited.
                    if let Some(s) = st.fax_servers.get_mut(&fax_server_id) {
                        s.open.remove(&attempt_id);
                    }
                    continue;
                }
                st.attempts.insert(
                    attempt_id.clone(),
                    OpenAttempt {
                        job_id: p.job_id.clone(),
                        batch_id: p.batch_id.clone(),
                        client_id: p.client_id.clone(),
                        recipient: p.recipient.clone(),
                        fax_server_id: fax_server_id.clone(),
                        phase: Phase::Offered,
                        page: None,
                        started: now,
                        deadline,
                        queried_at: None,
                        activated: false,
                        silent_since: None,
                        in_doubt: false,
                        call_limit,
                    },
                );
                self.metrics.dispatched.inc();
                self.metrics.observe_dispatch_latency(now, p.not_before);
                let number = p.next_attempt_number;
                offers.push((fax_server_id, offer_of(p, attempt_id, number, call_limit)));
            }
        }
        self.events.committed();
        for (fax_server_id, offer) in offers {
            self.push(&fax_server_id, Body::JobOffer(offer));
        }
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

fn offer_of(p: Pending, attempt_id: String, number: i64, call_limit: i64) -> JobOffer {
    JobOffer {
        attempt_id,
        job_id: p.job_id,
        recipient: p.recipient,
        documents: p.documents,
        options: SendOptions {
            resolution: p.options.resolution,
            ecm: p.options.ecm,
            header: p.options.header,
            tsi: p.options.tsi,
            max_bit_rate: None,
        },
        attempt_number: u32::try_from(number).unwrap_or(u32::MAX),
        step_down: p.step_down,
        call_limit_ms: u64::try_from(call_limit).ok(),
    }
}

fn secs(s: u64) -> i64 {
    i64::try_from(s)
        .unwrap_or(i64::MAX / 2000)
        .saturating_mul(1000)
}
