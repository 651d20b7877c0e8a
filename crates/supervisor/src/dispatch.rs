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

use crate::access::Access;
use crate::config::Config;
use crate::metrics::Metrics;
use protocol::FailureReason;
use protocol::job::{AttemptStatus, JobStatus};
use protocol::{
    AttemptState, Body, Capabilities, DocumentRef, Envelope, FaultSide, JobOffer, JobProgress,
    JobResult, Outcome, Phase, SendOptions,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::{
    Attempt, AttemptFinish, Ended, Ending, Job, JobUpdate, NewEvent, ProgressRecord, Store, now_ms,
};
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

/// A job waiting for its next attempt.
#[derive(Debug, Clone)]
struct Pending {
    job_id: String,
    batch_id: String,
    client_id: String,
    recipient: String,
    priority: i64,
    not_before: i64,
    kill_at: i64,
    /// Pages of all its documents, for the call limit.
    pages: i64,
    /// Fax servers that failed this job with a fax-server fault, and until when to avoid them.
    avoid: HashMap<String, i64>,
    next_attempt_number: i64,
    documents: Vec<DocumentRef>,
    options: JobOptions,
}

#[derive(Debug)]
struct Server {
    dial_prefixes: Vec<String>,
    link: Option<Link>,
    caps: Capabilities,
    /// Attempts open on this fax server (offered or active).
    open: HashSet<String>,
    receiving: u32,
    /// 0..1, an exponentially weighted average of recent results.
    health: f64,
    /// What the fax server last said is wrong with its line.
    line_status: Option<String>,
    /// Being withdrawn (its credential was revoked), and why: nothing more is offered to it, and a stop it
    /// confirms moves the job on at once.
    withdrawn: Option<String>,
}

#[derive(Debug, Clone)]
struct Link {
    tx: mpsc::UnboundedSender<Envelope>,
    generation: u64,
}

impl Pending {
    fn new(job: &Job, documents: Vec<DocumentRef>, options: JobOptions) -> Self {
        Self {
            job_id: job.id.clone(),
            batch_id: job.batch_id.clone(),
            client_id: job.client_id.clone(),
            recipient: job.recipient.clone(),
            priority: job.priority,
            not_before: job.not_before,
            kill_at: job.kill_at,
            pages: job.pages_total,
            avoid: HashMap::new(),
            next_attempt_number: 1,
            documents,
            options,
        }
    }
}

impl Server {
    fn new(dial_prefixes: Vec<String>, caps: Capabilities) -> Self {
        Self {
            dial_prefixes,
            link: None,
            caps,
            open: HashSet::new(),
            receiving: 0,
            health: 1.0,
            line_status: None,
            withdrawn: None,
        }
    }

    /// Whether new attempts may be offered to it.
    fn takes_offers(&self) -> bool {
        self.link.is_some() && self.withdrawn.is_none()
    }

    fn free_channels(&self) -> u32 {
        let used = u32::try_from(self.open.len())
            .unwrap_or(u32::MAX)
            .saturating_add(self.receiving);
        self.caps.channels.saturating_sub(used)
    }

    /// How specific this fax server's route to `number` is: `None` if it may not dial it, 0 for a default
    /// route, else the length of the longest matching prefix.
    fn route_to(&self, number: &str) -> Option<usize> {
        let rule = longest_prefix(&self.dial_prefixes, number)?;
        longest_prefix(&self.caps.reachable_prefixes, number)?;
        Some(rule)
    }
}

fn longest_prefix(prefixes: &[String], number: &str) -> Option<usize> {
    if prefixes.is_empty() {
        return Some(0);
    }
    prefixes
        .iter()
        .filter(|p| number.starts_with(p.as_str()))
        .map(String::len)
        .max()
}

/// An attempt that has not ended, as routing and the watchdog need it. Deadlines live here, not in the
/// database (after a restart every open attempt gets the link grace anyway), except the end of a doubt.
#[derive(Debug, Clone)]
struct OpenAttempt {
    job_id: String,
    batch_id: String,
    client_id: String,
    recipient: String,
    fax_server_id: String,
    phase: Phase,
    page: Option<u32>,
    started: i64,
    /// When the watchdog looks at it next: the phase's deadline, the answer to a query, the end of the
    /// link grace, or (in doubt) the time its job may be dispatched again.
    deadline: i64,
    /// When it was asked about (`JobQuery`) after its deadline passed, while the question is unanswered.
    queried_at: Option<i64>,
    /// The job has been moved to `active`.
    activated: bool,
    /// Since when its fax server has been silent about it (link lost, query unanswered, or the supervisor
    /// restarted); `None` while in touch.
    silent_since: Option<i64>,
    /// Shown in doubt (in the database too).
    in_doubt: bool,
    /// The call limit its offer carried, ms.
    call_limit: i64,
}

impl OpenAttempt {
    /// Its fax server reported on it.
    fn in_touch(&mut self) {
        self.silent_since = None;
        self.queried_at = None;
        self.in_doubt = false;
    }

    /// When its job may be dispatched again: no call of it can be running once its fax server has been
    /// silent for the call limit (it hangs up then, counting from the offer's arrival, which came before
    /// the silence); and not before the link grace.
    fn doubt_ends(&self, grace: i64) -> i64 {
        self.silent_since
            .unwrap_or(i64::MAX)
            .saturating_add(self.call_limit.max(grace))
    }
}

/// Jobs waiting for an attempt: those due, in dispatch order, and those waiting for their time, in time
/// order, so a dispatch round touches only what it can dispatch.
#[derive(Debug, Default)]
struct Queue {
    jobs: HashMap<String, Pending>,
    /// (priority, not_before, job id) of due jobs: lower priority numbers first, then oldest.
    ready: BTreeSet<(i64, i64, String)>,
    /// (not_before, job id) of jobs not yet due.
    waiting: BTreeSet<(i64, String)>,
}

impl Queue {
    fn insert(&mut self, p: Pending, now: i64) {
        self.remove(&p.job_id);
        if p.not_before <= now {
            self.ready
                .insert((p.priority, p.not_before, p.job_id.clone()));
        } else {
            self.waiting.insert((p.not_before, p.job_id.clone()));
        }
        self.jobs.insert(p.job_id.clone(), p);
    }

    fn remove(&mut self, job_id: &str) -> Option<Pending> {
        let p = self.jobs.remove(job_id)?;
        self.ready
            .remove(&(p.priority, p.not_before, p.job_id.clone()));
        self.waiting.remove(&(p.not_before, p.job_id.clone()));
        Some(p)
    }

    /// Moves the jobs that became due to the ready set; returns when the next one waiting is due.
    fn promote(&mut self, now: i64) -> Option<i64> {
        while let Some((at, id)) = self.waiting.first().cloned() {
            if at > now {
                return Some(at);
            }
            self.waiting.pop_first();
            if let Some(p) = self.jobs.get(&id) {
                self.ready.insert((p.priority, p.not_before, id));
            }
        }
        None
    }

    fn len(&self) -> usize {
        self.jobs.len()
    }
}

#[derive(Debug, Default)]
struct State {
    servers: HashMap<String, Server>,
    queue: Queue,
    attempts: HashMap<String, OpenAttempt>,
    generation: u64,
}

impl State {
    /// A fax server's link is gone: its attempts fall silent from `now` (one silent already keeps when
    /// that began, one in doubt keeps its doubt's end), and the watchdog looks at them at `deadline`.
    fn lose_link(&mut self, server_id: &str, now: i64, deadline: i64) {
        if let Some(s) = self.servers.get_mut(server_id) {
            s.link = None;
            s.receiving = 0;
        }
        for open in self
            .attempts
            .values_mut()
            .filter(|a| a.fax_server_id == server_id && !a.in_doubt)
        {
            open.silent_since = Some(open.silent_since.unwrap_or(now));
            open.deadline = deadline;
            open.queried_at = None;
        }
    }
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
    /// Told whenever events were committed, so SSE streams look for new rows.
    pub events: tokio::sync::broadcast::Sender<()>,
    progress: mpsc::UnboundedSender<ProgressMsg>,
}

enum ProgressMsg {
    Record(ProgressRecord),
    /// Answered once everything sent before it is committed.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Writes progress reports in batches: they need no acknowledgement, so they are committed together, in
/// arrival order, a few at a time under load and one by one when quiet.
async fn progress_writer(
    store: Store,
    events: tokio::sync::broadcast::Sender<()>,
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
                Ok(()) => {
                    let _ = events.send(());
                }
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

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

/// The decision after a failed attempt.
#[derive(Debug, PartialEq)]
enum Next {
    Retry { not_before: i64 },
    Fail(String),
    Cancelled,
}

pub fn job_event(kind: &str, job: &Job, extra: serde_json::Value) -> NewEvent {
    let mut payload = serde_json::json!({
        "job_id": job.id, "batch_id": job.batch_id, "recipient": job.recipient,
    });
    if let (Some(map), serde_json::Value::Object(extra)) = (payload.as_object_mut(), extra) {
        map.extend(extra);
    }
    NewEvent::new(kind, payload, vec![job.client_id.clone()])
}

impl Dispatcher {
    /// Must be called within a tokio runtime: it starts the progress writer.
    pub fn new(
        store: Store,
        config: Arc<Config>,
        access: Arc<Access>,
        metrics: Arc<Metrics>,
        live: Arc<crate::supervisor_settings::Live>,
    ) -> Arc<Self> {
        let events = tokio::sync::broadcast::channel(64).0;
        let (progress, rx) = mpsc::unbounded_channel();
        tokio::spawn(progress_writer(store.clone(), events.clone(), rx));
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

    /// Waits until every progress report received so far is committed, so that an attempt's end is
    /// never recorded before its progress.
    async fn flush_progress(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.progress.send(ProgressMsg::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn events_committed(&self) {
        let _ = self.events.send(());
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
            st.servers
                .insert(fs.id.clone(), Server::new(fs.dial_prefixes(), caps));
        }
        for a in open {
            if let Some(s) = st.servers.get_mut(&a.fax_server_id) {
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
            fax_servers = st.servers.len(),
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

    /// Whether any fax server (online or not) in the client's groupings may dial this number.
    pub fn reachable(&self, client_id: &str, number: &str) -> bool {
        let st = self.lock();
        st.servers.iter().any(|(id, s)| {
            self.access.may_send(client_id, id)
                && longest_prefix(&s.dial_prefixes, number).is_some()
        })
    }

    pub fn set_dial_prefixes(&self, fax_server_id: &str, prefixes: Vec<String>) {
        if let Some(s) = self.lock().servers.get_mut(fax_server_id) {
            s.dial_prefixes = prefixes;
        }
        self.wake.notify_one();
    }

    pub fn register_server(&self, id: &str, prefixes: Vec<String>) {
        self.lock()
            .servers
            .entry(id.to_owned())
            .or_insert_with(|| Server::new(prefixes, Capabilities::default()));
    }

    /// What the fax server last reported as wrong with its line, if anything.
    pub fn line_status(&self, id: &str) -> Option<String> {
        self.lock()
            .servers
            .get(id)
            .and_then(|s| s.line_status.clone())
    }

    /// A snapshot for the API: (online, free channels, open attempts, health).
    pub fn server_status(&self, id: &str) -> Option<(bool, u32, usize, f64)> {
        let st = self.lock();
        st.servers
            .get(id)
            .map(|s| (s.link.is_some(), s.free_channels(), s.open.len(), s.health))
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

    pub fn online_servers(&self) -> usize {
        self.lock()
            .servers
            .values()
            .filter(|s| s.link.is_some())
            .count()
    }

    /// Removes a job from the queue (cancel); true if it was waiting there.
    pub fn dequeue(&self, job_id: &str) -> bool {
        self.lock().queue.remove(job_id).is_some()
    }

    /// Sends a cancel for an open attempt to its fax server, if connected; the fax server answers with a
    /// result whose reason is `cancelled`.
    pub fn request_cancel(&self, attempt: &Attempt) {
        self.send_to(
            &attempt.fax_server_id,
            Body::JobCancel {
                attempt_id: attempt.id.clone(),
                only_before_dialling: false,
            },
        );
    }

    /// A job was sent: its other attempts are withdrawn if they have not started dialling (as far as the
    /// supervisor knows; the fax server checks again). One that dials, or whose fax server is silent, is
    /// left to end, and its result is recorded.
    fn withdraw_duplicates(&self, job_id: &str, sent_by: &str) {
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
        for (server_id, attempt_id) in withdraw {
            tracing::info!(attempt = %attempt_id, job = %job_id, "withdrawing an attempt: another one sent the job");
            self.send_to(
                &server_id,
                Body::JobCancel {
                    attempt_id,
                    only_before_dialling: true,
                },
            );
        }
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
            let mut capacity: u32 = st
                .servers
                .values()
                .filter(|s| s.takes_offers())
                .map(Server::free_channels)
                .sum();
            let mut chosen = Vec::new();
            let mut taken: HashMap<String, u32> = HashMap::new();
            for (_, _, job_id) in &st.queue.ready {
                if capacity == 0 {
                    break;
                }
                let Some(p) = st.queue.jobs.get(job_id) else {
                    continue;
                };
                if let Some(server_id) = self.select(&st, p, now, &taken) {
                    capacity -= 1;
                    *taken.entry(server_id.clone()).or_default() += 1;
                    chosen.push((job_id.clone(), server_id));
                }
            }
            let mut picks = Vec::with_capacity(chosen.len());
            for (job_id, server_id) in chosen {
                let Some(p) = st.queue.remove(&job_id) else {
                    continue;
                };
                let attempt_id = store::new_id("att");
                if let Some(s) = st.servers.get_mut(&server_id) {
                    s.open.insert(attempt_id.clone());
                }
                picks.push((p, server_id, attempt_id));
            }
            (picks, next_due)
        };
        for chunk in picks.chunks(256) {
            self.offer(chunk.to_vec()).await?;
        }
        Ok(next_due)
    }

    /// The proper fax server for a job: shares a grouping with the client, online, has a free channel, may
    /// dial the number (the most specific route wins), then the least loaded and healthiest.
    /// `taken` counts the channels this round has already promised.
    fn select(
        &self,
        st: &State,
        p: &Pending,
        now: i64,
        taken: &HashMap<String, u32>,
    ) -> Option<String> {
        let mut best: Option<(usize, f64, &String)> = None;
        for (id, s) in &st.servers {
            let free = s
                .free_channels()
                .saturating_sub(taken.get(id).copied().unwrap_or(0));
            if !s.takes_offers() || free == 0 || p.avoid.get(id).is_some_and(|until| *until > now) {
                continue;
            }
            if !self.access.may_send(&p.client_id, id) {
                continue;
            }
            let Some(specificity) = s.route_to(&p.recipient) else {
                continue;
            };
            let channels = f64::from(s.caps.channels.max(1));
            let load = (channels - f64::from(free)) / channels;
            let score = load + (1.0 - s.health);
            let better = match &best {
                None => true,
                Some((bs, bscore, bid)) => {
                    specificity > *bs
                        || (specificity == *bs
                            && (score < *bscore || (score == *bscore && id < *bid)))
                }
            };
            if better {
                best = Some((specificity, score, id));
            }
        }
        best.map(|(_, _, id)| id.clone())
    }

    /// Records a batch of attempts in one transaction, then sends their offers.
    async fn offer(&self, picks: Vec<(Pending, String, String)>) -> store::Result<()> {
        let now = now_ms();
        let deadline = now + secs(self.config.deadlines.offered_secs);
        let batch: Vec<(Attempt, NewEvent)> = picks
            .iter()
            .map(|(p, server_id, attempt_id)| {
                let attempt = Attempt {
                    call_limit_ms: Some(self.new_call_limit(p.pages)),
                    ..Attempt::offered(attempt_id.clone(), p.job_id.clone(), p.next_attempt_number, server_id.clone(), now)
                };
                let event = NewEvent::new(
                    "job.dispatched",
                    serde_json::json!({"job_id": p.job_id, "batch_id": p.batch_id, "recipient": p.recipient,
                                       "attempt_id": attempt_id, "attempt": attempt.number, "fax_server_id": server_id}),
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
                for (p, server_id, attempt_id) in picks {
                    if let Some(s) = st.servers.get_mut(&server_id) {
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
            for (((p, server_id, attempt_id), ok), (attempt, _)) in
                picks.into_iter().zip(started).zip(&batch)
            {
                let call_limit = attempt.call_limit_ms.unwrap_or(i64::MAX);
                if !ok {
                    // Cancelled (or otherwise moved on) while it waited.
                    if let Some(s) = st.servers.get_mut(&server_id) {
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
                        fax_server_id: server_id.clone(),
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
                offers.push((server_id, offer_of(p, attempt_id, number, call_limit)));
            }
        }
        self.events_committed();
        for (server_id, offer) in offers {
            self.send_to(&server_id, Body::JobOffer(offer));
        }
        Ok(())
    }

    fn send_to(&self, server_id: &str, body: Body) {
        self.push(server_id, body);
    }

    /// Sends a message to a fax server if its link is up; false if it is not.
    pub fn push(&self, server_id: &str, body: Body) -> bool {
        let st = self.lock();
        st.servers
            .get(server_id)
            .and_then(|s| s.link.as_ref())
            .is_some_and(|link| link.tx.send(Envelope::unacked(body)).is_ok())
    }

    /// A fax server's link came up. Returns the link generation (to detect a stale disconnect) and the
    /// attempts the supervisor believes it holds.
    pub async fn connected(
        &self,
        server_id: &str,
        caps: Capabilities,
        tx: mpsc::UnboundedSender<Envelope>,
        in_flight: Vec<AttemptState>,
    ) -> store::Result<(u64, Vec<String>)> {
        let generation = {
            let mut st = self.lock();
            st.generation += 1;
            let generation = st.generation;
            let s = st
                .servers
                .entry(server_id.to_owned())
                .or_insert_with(|| Server::new(Vec::new(), Capabilities::default()));
            s.caps = caps;
            s.link = Some(Link { tx, generation });
            generation
        };
        // What the fax server accepted before it left must be in the database before it is compared.
        self.flush_progress().await;
        let open: Vec<Attempt> = self
            .store
            .open_attempts()
            .await?
            .into_iter()
            .filter(|a| a.fax_server_id == server_id)
            .collect();
        let expected: Vec<String> = open.iter().map(|a| a.id.clone()).collect();
        let held: HashSet<String> = in_flight.iter().map(|a| a.attempt_id.clone()).collect();
        for state in in_flight {
            match state.result {
                Some(result) => self.on_result(server_id, result).await?,
                None if expected.contains(&state.attempt_id) => {
                    let attempt_id = state.attempt_id.clone();
                    let progress = JobProgress {
                        attempt_id: state.attempt_id,
                        phase: state.phase,
                        page: None,
                        pages_total: None,
                        bit_rate: None,
                    };
                    self.on_progress(server_id, progress).await?;
                    self.cancel_if_moved_on(server_id, &attempt_id).await?;
                }
                None => {
                    // Not open here any more (abandoned, its job moved on): the fax server must stop.
                    self.send_to(
                        server_id,
                        Body::JobCancel {
                            attempt_id: state.attempt_id,
                            only_before_dialling: false,
                        },
                    );
                }
            }
        }
        for a in open.into_iter().filter(|a| !held.contains(&a.id)) {
            if a.phase == Phase::Offered {
                // The offer may never have arrived: send the same attempt again.
                match self.store.job(&a.job_id).await? {
                    Some(job) if job.is_finished() || job.cancel_requested => {
                        // Cancelled (or done) while the offer was in the air: it is not sent again.
                        tracing::info!(attempt = %a.id, job = %job.id, "not offering again: the job was cancelled or ended");
                        let finish = AttemptFinish {
                            reason: Some(FailureReason::Cancelled.to_string()),
                            ..AttemptFinish::new(AttemptStatus::Failed)
                        };
                        self.finish(&a, finish, Ending::Open).await?;
                    }
                    Some(job) => {
                        let mut p = self.pending_from_job(&job).await?;
                        p.next_attempt_number = a.number;
                        self.resend_offer(server_id, &a, p).await?;
                    }
                    None => {}
                }
            } else {
                // It took the attempt and no longer has it: no call of it is running.
                self.abandon(&a, "the fax server no longer holds the attempt")
                    .await?;
            }
        }
        self.wake.notify_one();
        Ok((generation, expected))
    }

    /// An attempt its fax server still runs whose job has moved on: a job sent by another attempt has it
    /// withdrawn unless it dials; a job the client cancelled has it stopped.
    async fn cancel_if_moved_on(&self, server_id: &str, attempt_id: &str) -> store::Result<()> {
        let Some(a) = self.store.attempt(attempt_id).await? else {
            return Ok(());
        };
        let Some(job) = self.store.job(&a.job_id).await? else {
            return Ok(());
        };
        if job.is_finished() || job.cancel_requested {
            self.send_to(
                server_id,
                Body::JobCancel {
                    attempt_id: a.id,
                    only_before_dialling: job.status == JobStatus::Sent,
                },
            );
        }
        Ok(())
    }

    async fn resend_offer(&self, server_id: &str, a: &Attempt, p: Pending) -> store::Result<()> {
        let deadline = now_ms() + secs(self.config.deadlines.offered_secs);
        let call_limit = self.call_limit(a, p.pages);
        {
            let mut st = self.lock();
            if let Some(s) = st.servers.get_mut(server_id) {
                s.open.insert(a.id.clone());
            }
            if let Some(open) = st.attempts.get_mut(&a.id) {
                open.in_touch();
                open.deadline = deadline;
            }
        }
        if a.status == AttemptStatus::InDoubt {
            let event = self.attempt_event(
                "job.resumed",
                &a.id,
                serde_json::json!({"phase": "offered"}),
            );
            if self.store.resume_attempt(&a.id, false, &event).await? {
                self.events_committed();
            }
        }
        self.send_to(
            server_id,
            Body::JobOffer(offer_of(p, a.id.clone(), a.number, call_limit)),
        );
        Ok(())
    }

    /// Begins withdrawing a fax server (its credential was revoked): nothing more is offered to it, and
    /// a stop of one of its attempts that it confirms from now on moves that job on at once. True when
    /// it is linked, so that it can still confirm.
    pub fn begin_withdrawal(&self, server_id: &str, why: &str) -> bool {
        let mut st = self.lock();
        let Some(s) = st.servers.get_mut(server_id) else {
            return false;
        };
        s.withdrawn = Some(why.to_owned());
        s.link.is_some()
    }

    /// Takes a withdrawn fax server's link out at once, whatever its generation. Its attempts it did not
    /// confirm stopping fall silent now: each is shown in doubt and its job moves on only once no call
    /// of it can still be running, as after a lost link (the fax server may be running the call
    /// unreachable, and must not send a fax the next one sends again).
    pub fn unlink(&self, server_id: &str) {
        let now = now_ms();
        self.lock().lose_link(server_id, now, now);
    }

    /// Whether attempts are still open on this fax server.
    pub fn holds_attempts(&self, server_id: &str) -> bool {
        self.lock()
            .servers
            .get(server_id)
            .is_some_and(|s| !s.open.is_empty())
    }

    /// An event about an open attempt, for its job's client.
    fn attempt_event(
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

    /// A fax server's link went down; a newer link of the same fax server is left alone. Its attempts
    /// fall silent: after the link grace they are shown in doubt.
    pub async fn disconnected(&self, server_id: &str, generation: u64) -> store::Result<()> {
        let now = now_ms();
        let deadline = now + secs(self.config.deadlines.link_grace_secs);
        let mut st = self.lock();
        let current = st
            .servers
            .get(server_id)
            .and_then(|s| s.link.as_ref())
            .is_some_and(|l| l.generation == generation);
        if current {
            st.lose_link(server_id, now, deadline);
        }
        Ok(())
    }

    /// An attempt in doubt is active again: its fax server reported on it.
    async fn resume(
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
            self.events_committed();
        }
        Ok(())
    }

    pub fn heartbeat(
        &self,
        server_id: &str,
        channels: &[protocol::ChannelState],
        line_status: Option<String>,
    ) {
        let receiving = channels
            .iter()
            .filter(|c| **c == protocol::ChannelState::Receiving)
            .count();
        let usable = channels
            .iter()
            .filter(|c| **c != protocol::ChannelState::Down)
            .count();
        let mut st = self.lock();
        if let Some(s) = st.servers.get_mut(server_id) {
            s.receiving = u32::try_from(receiving).unwrap_or(u32::MAX);
            s.caps.channels = u32::try_from(usable).unwrap_or(u32::MAX);
            s.line_status = line_status;
        }
        drop(st);
        self.wake.notify_one();
    }

    pub async fn on_progress(&self, server_id: &str, progress: JobProgress) -> store::Result<()> {
        let phase = progress.phase;
        let deadline = now_ms() + secs(self.config.deadlines.for_phase(phase).as_secs());
        let (open, activate, was_in_doubt) = {
            let mut st = self.lock();
            let Some(open) = st.attempts.get_mut(&progress.attempt_id) else {
                return Ok(());
            };
            if open.fax_server_id != server_id {
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

    /// Applies the end of an attempt as the fax server reports it; a repeated report changes nothing. A
    /// report for an attempt the supervisor abandoned meanwhile is recorded as what happened.
    pub async fn on_result(&self, server_id: &str, result: JobResult) -> store::Result<()> {
        let Some(a) = self.store.attempt(&result.attempt_id).await? else {
            return Ok(());
        };
        if a.fax_server_id != server_id {
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
            .servers
            .get(server_id)
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
            if let Some(s) = st.servers.get_mut(server_id) {
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
    async fn finish(
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
        {
            let mut st = self.lock();
            st.attempts.remove(&a.id);
            if let Some(s) = st.servers.get_mut(&a.fax_server_id) {
                s.open.remove(&a.id);
            }
        }
        self.events_committed();
        if late {
            tracing::warn!(attempt = %a.id, job = %job.id, status = %finish.status,
                "an attempt abandoned earlier reported its end; recorded");
        }
        if ended == Ended::WithJob {
            match update.as_ref().map(|u| u.status) {
                Some(JobStatus::Sent) => {
                    self.metrics.sent.inc();
                    // A retry may be waiting or under way: the fax is delivered.
                    self.dequeue(&job.id);
                    self.withdraw_duplicates(&job.id, &a.id);
                }
                Some(JobStatus::Failed) => self.metrics.failed.inc(),
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
        if requeue && ended == Ended::WithJob {
            if let Some(job) = self.store.job(&job.id).await? {
                self.enqueue(std::slice::from_ref(&job)).await?;
            }
        } else {
            self.wake.notify_one();
        }
        Ok(true)
    }

    /// HylaFAX's retry rules: recipient faults wait on the schedule until max tries or the kill time;
    /// fax-server faults move on at once to another fax server; permanent faults end the job.
    fn next_after_failure(
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

    async fn watchdog_round(&self) -> store::Result<()> {
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
                servers, attempts, ..
            } = &mut *st;
            for (id, open) in attempts.iter_mut() {
                let online = servers
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
        for (server_id, attempt_id) in query {
            self.send_to(&server_id, Body::JobQuery { attempt_id });
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
                    self.metrics.failed.inc();
                    self.events_committed();
                }
            }
        }
        Ok(())
    }

    /// Shows an attempt in doubt until `until`, when its job may be dispatched again. Its fax server may
    /// have reported on it while this was being committed: then it is resumed at once.
    async fn mark_in_doubt(
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
        self.events_committed();
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

    /// The fax server does not know an attempt it was asked about: it never arrived or was lost, so no
    /// call of it is running.
    pub async fn on_unknown(&self, server_id: &str, attempt_id: &str) -> store::Result<()> {
        if let Some(a) = self.store.attempt(attempt_id).await?
            && a.fax_server_id == server_id
        {
            self.abandon(&a, "the fax server does not know the attempt")
                .await?;
        }
        Ok(())
    }
}

const AVOID_MS: i64 = 30_000;

/// An event about an open attempt, for its job's client.
fn open_event(
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

fn open_attempt(job: &Job, a: &Attempt, call_limit: i64) -> OpenAttempt {
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
        call_limit_ms: u64::try_from(call_limit).ok(),
    }
}

fn secs(s: u64) -> i64 {
    i64::try_from(s)
        .unwrap_or(i64::MAX / 2000)
        .saturating_mul(1000)
}

impl Dispatcher {
    pub fn store(&self) -> &Store {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_routes() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(longest_prefix(&p(&[]), "+8131234"), Some(0));
        assert_eq!(longest_prefix(&p(&["+81"]), "+8131234"), Some(3));
        assert_eq!(longest_prefix(&p(&["+8", "+813"]), "+8131234"), Some(4));
        assert_eq!(longest_prefix(&p(&["+1"]), "+8131234"), None);
    }

    /// A dispatcher over a real store, with one client allowed to send through one fax server whose link
    /// is a channel the test reads. Deadlines of 1 s and a call limit of 3 s.
    struct Rig {
        d: Arc<Dispatcher>,
        fs: String,
        link: mpsc::UnboundedReceiver<Envelope>,
        dir: std::path::PathBuf,
    }

    impl Drop for Rig {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    impl Rig {
        async fn new() -> (Self, Job) {
            Self::with(|_| {}).await
        }

        /// A rig whose configuration `change` adjusts.
        async fn with(change: impl FnOnce(&mut Config)) -> (Self, Job) {
            let dir = std::env::temp_dir().join(store::new_id("faxhub-dispatch-test"));
            std::fs::create_dir_all(&dir).expect("dir");
            let store = Store::open(&dir.join("faxhub.db")).await.expect("store");
            let client = store
                .create_client(store::NewClient::application("app"))
                .await
                .expect("client");
            let fs = store
                .create_fax_server("fs", &[], "enr", i64::MAX)
                .await
                .expect("fs");
            let g = store.create_grouping("g").await.expect("grouping");
            for (kind, id) in [
                (store::MemberKind::Client, &client.id),
                (store::MemberKind::FaxServer, &fs.id),
            ] {
                store
                    .add_grouping_member(&g.id, kind, id)
                    .await
                    .expect("member");
            }
            store
                .add_grant(&client.id, "role_user", "all", "", None)
                .await
                .expect("grant");
            store
                .insert_document("ab", 3, "image/tiff", 1, Some(&client.id))
                .await
                .expect("document");
            let access = Arc::new(Access::default());
            access.reload(&store).await.expect("access");
            let mut config = Config::default();
            config.deadlines = crate::config::DeadlineConfig {
                offered_secs: 1,
                dialling_secs: 1,
                transmitting_secs: 1,
                query_secs: 1,
                link_grace_secs: 1,
                call_setup_secs: 3,
                max_page_bits: 0,
                ..Default::default()
            };
            change(&mut config);
            let live = Arc::new(crate::supervisor_settings::Live::new(
                crate::supervisor_settings::SupervisorSettings::from_config(&config),
            ));
            let d = Dispatcher::new(
                store.clone(),
                Arc::new(config),
                access,
                Arc::new(Metrics::default()),
                live,
            );
            let (tx, link) = mpsc::unbounded_channel();
            let caps = Capabilities {
                channels: 1,
                ..Default::default()
            };
            d.connected(&fs.id, caps, tx, Vec::new())
                .await
                .expect("connected");
            let new = store::NewJob {
                id: store::new_id("job"),
                batch_id: store::new_id("bat"),
                client_id: client.id.clone(),
                recipient: "+15551234567".into(),
                priority: 0,
                options: "{}".into(),
                max_tries: 3,
                kill_at: i64::MAX,
                not_before: 0,
                pages_total: 1,
                idempotency_key: None,
                documents: vec!["ab".into()],
            };
            let (_, jobs) = store.insert_jobs(&[new], &[]).await.expect("job");
            let job = jobs.into_iter().next().expect("one");
            d.enqueue(std::slice::from_ref(&job))
                .await
                .expect("enqueue");
            let rig = Self {
                d,
                fs: fs.id,
                link,
                dir,
            };
            (rig, job)
        }

        fn next_message(&mut self) -> Body {
            self.link
                .try_recv()
                .expect("a message to the fax server")
                .body
        }

        async fn progress(&self, attempt_id: &str, phase: Phase) {
            let progress = JobProgress {
                attempt_id: attempt_id.to_owned(),
                phase,
                page: None,
                pages_total: None,
                bit_rate: None,
            };
            self.d
                .on_progress(&self.fs, progress)
                .await
                .expect("progress");
            self.d.flush_progress().await;
        }

        /// The job's status and its attempts' statuses.
        /// (As the API shows them, so the expectations read as the API.)
        async fn statuses(&self, job: &Job) -> (String, Vec<String>) {
            let store = self.d.store();
            let job = store.job(&job.id).await.expect("job").expect("exists");
            let attempts = store.attempts_of(&job.id).await.expect("attempts");
            (
                job.status.to_string(),
                attempts.into_iter().map(|a| a.status.to_string()).collect(),
            )
        }

        /// Lets `secs` pass, then runs the watchdog once.
        async fn after(&self, secs: f64) {
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
            self.d.watchdog_round().await.expect("watchdog");
        }
    }

    fn owned(job: &str, attempts: &[&str]) -> (String, Vec<String>) {
        (
            job.to_owned(),
            attempts.iter().map(|a| (*a).to_owned()).collect(),
        )
    }

    /// A fax server that stays linked but leaves a question unanswered: its attempt is in doubt, back
    /// in touch when it reports, and given up only after the call limit from the question, when its
    /// job is queued again and the fax server told to stop; its late `sent` is then recorded and sends
    /// the job, taking it out of the queue.
    #[tokio::test]
    async fn an_unanswered_question_puts_the_attempt_in_doubt_until_the_call_limit() {
        let (mut rig, job) = Rig::new().await;
        rig.d.dispatch_round().await.expect("dispatch");
        let Body::JobOffer(offer) = rig.next_message() else {
            panic!("an offer first");
        };
        assert_eq!(
            offer.call_limit_ms,
            Some(3000),
            "3 s of set-up, no page time"
        );
        let attempt = offer.attempt_id;
        rig.progress(&attempt, Phase::Dialling).await;
        assert_eq!(rig.statuses(&job).await, owned("active", &["active"]));

        rig.after(1.1).await;
        assert!(matches!(rig.next_message(), Body::JobQuery { .. }));
        rig.after(1.1).await;
        assert_eq!(
            rig.statuses(&job).await,
            owned("in_doubt", &["in_doubt"]),
            "the question went unanswered"
        );
        rig.progress(&attempt, Phase::Transmitting).await;
        assert_eq!(
            rig.statuses(&job).await,
            owned("active", &["active"]),
            "back in touch"
        );

        rig.after(1.1).await;
        assert!(matches!(rig.next_message(), Body::JobQuery { .. }));
        rig.after(1.1).await;
        assert_eq!(rig.statuses(&job).await, owned("in_doubt", &["in_doubt"]));
        rig.after(0.5).await;
        assert_eq!(
            rig.statuses(&job).await.1,
            vec!["in_doubt"],
            "not given up before the call limit"
        );
        rig.after(1.6).await;
        assert_eq!(rig.statuses(&job).await, owned("queued", &["abandoned"]));
        assert!(matches!(
            rig.next_message(),
            Body::JobCancel {
                only_before_dialling: false,
                ..
            }
        ));
        assert_eq!(rig.d.queue_len(), 1);

        let sent = JobResult {
            attempt_id: attempt,
            outcome: Outcome::Sent { pages: 1 },
            stats: Default::default(),
        };
        rig.d.on_result(&rig.fs, sent).await.expect("late result");
        assert_eq!(rig.statuses(&job).await, owned("sent", &["succeeded"]));
        assert_eq!(rig.d.queue_len(), 0, "the retry is withdrawn");
    }

    /// The client cancels while the fax server is away and the offer may never have arrived: when it
    /// comes back without the attempt, the offer is not sent again; the job ends cancelled.
    #[tokio::test]
    async fn an_offer_lost_in_an_outage_is_not_sent_again_for_a_cancelled_job() {
        let (mut rig, job) = Rig::new().await;
        rig.d.dispatch_round().await.expect("dispatch");
        assert!(matches!(rig.next_message(), Body::JobOffer(_)));
        assert!(rig.d.store().request_cancel(&job.id).await.expect("cancel"));
        let (tx, mut link) = mpsc::unbounded_channel();
        let caps = Capabilities {
            channels: 1,
            ..Default::default()
        };
        rig.d
            .connected(&rig.fs, caps, tx, Vec::new())
            .await
            .expect("connected");
        assert_eq!(rig.statuses(&job).await, owned("cancelled", &["failed"]));
        while let Ok(m) = link.try_recv() {
            assert!(
                !matches!(m.body, Body::JobOffer(_)),
                "offered again: {:?}",
                m.body
            );
        }
        assert_eq!(rig.d.queue_len(), 0);
    }

    /// A fax server that keeps reporting on a long call is not cut by `max_attempt_secs` before the call
    /// limit its offer granted (3 s here, the maximum 1 s): the document is not sent again from page one.
    #[tokio::test]
    async fn the_watchdog_leaves_an_attempt_in_touch_until_its_call_limit() {
        let (mut rig, job) = Rig::with(|c| c.deadlines.max_attempt_secs = 1).await;
        rig.d.dispatch_round().await.expect("dispatch");
        let Body::JobOffer(offer) = rig.next_message() else {
            panic!("an offer first");
        };
        let attempt = offer.attempt_id;
        for _ in 0..5 {
            rig.progress(&attempt, Phase::Transmitting).await;
            rig.after(0.5).await;
        }
        assert_eq!(
            rig.statuses(&job).await,
            owned("active", &["active"]),
            "cut at 2.5 s, within the call limit"
        );
        for _ in 0..4 {
            rig.progress(&attempt, Phase::Transmitting).await;
            rig.after(0.5).await;
        }
        assert_eq!(
            rig.statuses(&job).await,
            owned("queued", &["abandoned"]),
            "past the call limit and the grace (4 s)"
        );
    }

    /// A fax server whose attempt is already in doubt is withdrawn: the attempt stays in doubt until its
    /// doubt ends (no call of it can run any more), as before the withdrawal; the job is not moved on at once.
    #[tokio::test]
    async fn withdrawing_a_fax_server_keeps_an_attempt_in_doubt_until_its_doubt_ends() {
        let (mut rig, job) = Rig::new().await;
        rig.d.dispatch_round().await.expect("dispatch");
        let Body::JobOffer(offer) = rig.next_message() else {
            panic!("an offer first");
        };
        rig.progress(&offer.attempt_id, Phase::Dialling).await;
        rig.after(1.1).await;
        assert!(matches!(rig.next_message(), Body::JobQuery { .. }));
        rig.after(1.1).await;
        assert_eq!(rig.statuses(&job).await, owned("in_doubt", &["in_doubt"]));

        assert!(rig.d.begin_withdrawal(&rig.fs, "revoked"));
        rig.d.unlink(&rig.fs);
        rig.after(0.5).await;
        assert_eq!(
            rig.statuses(&job).await,
            owned("in_doubt", &["in_doubt"]),
            "not moved on before its doubt ends (the call limit, 3 s from the question)"
        );
        assert!(rig.d.holds_attempts(&rig.fs));
        rig.after(1.6).await;
        assert_eq!(rig.statuses(&job).await, owned("queued", &["abandoned"]));
        assert!(!rig.d.holds_attempts(&rig.fs));
    }
}
