//! Jobs (claims 2 and 23): a submission checked and queued, a client's jobs read, cancelled and sent
//! again. Every face (REST, console, HylaFAX gateway) submits and acts on jobs through these functions;
//! how a face receives documents (multipart, a data connection) is its own business, what a job may be
//! is decided here.

use crate::AppState;
use crate::access::Caller;
use crate::competence::{Competence, Target};
use crate::dispatch::{JobOptions, job_event};
use crate::error::{Error, Result};
use crate::numbers;
use crate::settings::rules;
use protocol::DocumentRef;
use protocol::job::JobStatus;
use serde::{Deserialize, Serialize};
use store::{Attempt, Job, JobFilter, JobOwners, JobUpdate, NewJob};
use utoipa::ToSchema;

/// How far ahead `send_at` may lie: a job is an open promise the retention worker never removes.
const MAX_SEND_AHEAD_DAYS: i64 = 365;
/// The longest wait between tries a submission may ask for, as the supervisor's own retry schedule.
const MAX_RETRY_DELAY_SECS: u64 = 86_400;
/// Recipients of one submission, numbers and phonebook entries together.
const MAX_RECIPIENTS: usize = 100;

/// The instruction part of a submission. With `multipart/form-data`, send it as a part named `request`
/// before the document parts (named `document`); with `application/json`, reference documents uploaded
/// before by hash.
#[derive(Debug, Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// E.164 numbers or local dial strings.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Phonebook entry ids: each sends to the entry's fax number, if the caller may refer to the entry.
    #[serde(default)]
    pub recipient_entries: Vec<String>,
    /// SHA-256 of documents uploaded before; sent before any uploaded in the same request.
    #[serde(default)]
    pub documents: Vec<String>,
    /// `standard`, `fine` (default) or `superfine`.
    pub resolution: Option<String>,
    /// Error correction mode (default on).
    pub ecm: Option<bool>,
    pub max_tries: Option<u32>,
    /// Give up this many seconds after submission.
    pub kill_after_secs: Option<u64>,
    /// Do not send before this time (RFC 3339), at most 365 days ahead.
    pub send_at: Option<String>,
    /// Page header text: up to 60 printable characters (no control or invisible formatting characters).
    pub header: Option<String>,
    /// Station identity: up to 20 digits, spaces and '+'.
    pub tsi: Option<String>,
    /// 0 (most urgent) to 255; default 127.
    pub priority: Option<u8>,
    /// Seconds between tries after busy / no answer (1 to 86400), instead of the server's schedule.
    pub retry_delay_secs: Option<u64>,
    /// Repeating a submission with the same key returns the first one instead of sending twice; the same
    /// key with a different request (other recipients, documents or options) is refused.
    pub idempotency_key: Option<String>,
}

/// A document of a submission, with its page count.
pub type Document = (DocumentRef, u32);

/// What a submission made.
#[derive(Debug)]
pub struct Submitted {
    /// False when the idempotency key named an earlier submission, whose jobs these are.
    pub fresh: bool,
    pub batch_id: String,
    /// One job per recipient.
    pub jobs: Vec<Job>,
}

/// Whether the caller may send faxes at all; a face asks before it takes a submission's documents in.
pub fn may_submit(app: &AppState, caller: &Caller) -> Result<()> {
    app.access
        .authorize(caller, Competence::SendFaxes, Target::Anywhere)
}

/// The documents uploaded before that a submission names by hash (`documents[i]`), if the caller may
/// use each; one it may not use is as unknown as one that does not exist.
pub async fn documents_by_hash(
    app: &AppState,
    caller: &Caller,
    hashes: &[String],
) -> Result<Vec<Document>> {
    let mut documents = Vec::with_capacity(hashes.len());
    for (i, sha) in hashes.iter().enumerate() {
        let missing = || {
            Error::field(
                &format!("documents[{i}]"),
                format!("no uploaded document {sha}"),
            )
        };
        let doc = crate::documents::usable(app, caller, sha)
            .await?
            .ok_or_else(missing)?;
        let pages = doc.pages;
        let doc = DocumentRef {
            sha256: sha.clone(),
            size: u64::try_from(doc.size).unwrap_or(0),
            media_type: doc.media_type,
        };
        documents.push((doc, u32::try_from(pages).unwrap_or(0)));
    }
    Ok(documents)
}

/// Checks a submission and queues one job per recipient, committed with their `job.queued` events
/// before it returns; the dispatcher then picks a proper fax server for each. `documents` are those
/// of the submission, in order (named by hash and uploaded with it alike).
pub async fn submit(
    app: &AppState,
    caller: &Caller,
    submit: SubmitRequest,
    documents: Vec<Document>,
) -> Result<Submitted> {
    may_submit(app, caller)?;
    let pages_total: i64 = documents.iter().map(|(_, pages)| i64::from(*pages)).sum();
    let documents: Vec<DocumentRef> = documents.into_iter().map(|(d, _)| d).collect();
    let total = submit.recipients.len() + submit.recipient_entries.len();
    if total == 0 || total > MAX_RECIPIENTS {
        return Err(Error::field(
            "recipients",
            format!(
                "give 1 to {MAX_RECIPIENTS} recipients (numbers and phonebook entries together)"
            ),
        ));
    }
    if documents.is_empty() {
        return Err(Error::field("documents", "give at least one document"));
    }
    let max_pages = app.live.with(|s| s.uploads.max_pages_per_job);
    if pages_total > i64::from(max_pages) {
        return Err(Error::field(
            "documents",
            format!("{pages_total} pages; a job may have at most {max_pages}"),
        ));
    }
    let recipients = recipients(app, caller, &submit)?;
    let options = options(&submit)?;
    let max_tries = checked_max_tries(
        submit
            .max_tries
            .unwrap_or_else(|| app.live.with(|s| s.retry.max_tries)),
    )?;
    let now = store::now_ms();
    let not_before = send_at(submit.send_at.as_deref(), now)?;
    let kill_secs = submit
        .kill_after_secs
        .unwrap_or_else(|| app.live.with(|s| s.retry.kill_secs));
    if kill_secs == 0 || kill_secs > 30 * 86_400 {
        return Err(Error::field(
            "kill_after_secs",
            "must be 1 second to 30 days",
        ));
    }
    let kill_at = not_before.max(now) + i64::try_from(kill_secs).unwrap_or(0) * 1000;
    if submit
        .idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 200)
    {
        return Err(Error::field(
            "idempotency_key",
            "must be 1 to 200 characters",
        ));
    }
    let request_hash = submit
        .idempotency_key
        .as_ref()
        .map(|_| request_hash(&submit, &recipients, &documents))
        .transpose()?;
    let batch_id = store::new_id("bat");
    let options_json =
        serde_json::to_string(&options).map_err(|e| Error::internal("encoding options", e))?;
    let new_jobs: Vec<NewJob> = recipients
        .iter()
        .map(|r| NewJob {
            id: store::new_id("job"),
            batch_id: batch_id.clone(),
            client_id: caller.id.clone(),
            recipient: r.clone(),
            priority: i64::from(submit.priority.unwrap_or(127)),
            options: options_json.clone(),
            max_tries,
            kill_at,
            not_before,
            pages_total,
            idempotency_key: submit.idempotency_key.clone(),
            request_hash: request_hash.clone(),
            documents: documents.iter().map(|d| d.sha256.clone()).collect(),
        })
        .collect();
    let events: Vec<_> = new_jobs.iter().map(|j| queued_event(j, None)).collect();
    let (fresh, jobs) = app.intake.submit(new_jobs, events).await?;
    let earlier = jobs.first().and_then(|j| j.request_hash.as_ref());
    if !fresh && earlier.is_some() && earlier != request_hash.as_ref() {
        return Err(Error::field(
            "idempotency_key",
            "was used before for a different request (other recipients, documents or options); a new \
             request needs a new key",
        ));
    }
    if fresh {
        app.metrics.submitted.inc();
        app.events.committed();
        for job in &jobs {
            app.dispatcher
                .enqueue_new(job, documents.clone(), options.clone());
        }
    }
    let batch_id = jobs.first().map(|j| j.batch_id.clone()).unwrap_or(batch_id);
    Ok(Submitted {
        fresh,
        batch_id,
        jobs,
    })
}

/// The numbers a submission sends to: its dial strings normalised and its phonebook entries' numbers,
/// each one some fax server of the caller's groupings may dial, each once (a number given twice, however
/// written, or also through a phonebook entry, is one recipient), in the order first given.
fn recipients(app: &AppState, caller: &Caller, submit: &SubmitRequest) -> Result<Vec<String>> {
    let mut numbers: Vec<String> = Vec::with_capacity(submit.recipients.len());
    for (i, r) in submit.recipients.iter().enumerate() {
        let field = format!("recipients[{i}]");
        let number = numbers::normalize(r, &app.config.dial)
            .map_err(|e| Error::field(&field, format!("{r:?} {e}")))?;
        reachable(app, caller, &field, &number)?;
        if !numbers.contains(&number) {
            numbers.push(number);
        }
    }
    let from_phonebook =
        crate::phonebook::recipient_numbers(app, caller, &submit.recipient_entries)?;
    for (i, number) in from_phonebook.into_iter().enumerate() {
        reachable(app, caller, &format!("recipient_entries[{i}]"), &number)?;
        if !numbers.contains(&number) {
            numbers.push(number);
        }
    }
    Ok(numbers)
}

/// A hash of what a submission asks for: every field as given, except that the recipients are the numbers
/// it sends to (normalised, phonebook entries resolved) and the documents are all of its documents by hash
/// (uploaded with it or before). An idempotency key used again tells a repeat from a different request by it.
fn request_hash(
    submit: &SubmitRequest,
    recipients: &[String],
    documents: &[DocumentRef],
) -> Result<String> {
    use sha2::Digest;
    let mut what =
        serde_json::to_value(submit).map_err(|e| Error::internal("encoding a request", e))?;
    if let Some(map) = what.as_object_mut() {
        map.remove("idempotency_key");
        map.remove("recipient_entries");
        map.insert("recipients".into(), serde_json::json!(recipients));
        let hashes: Vec<&str> = documents.iter().map(|d| d.sha256.as_str()).collect();
        map.insert("documents".into(), serde_json::json!(hashes));
    }
    Ok(hex::encode(sha2::Sha256::digest(what.to_string())))
}

/// Refuses a number no fax server in the caller's groupings may dial, naming `field`.
fn reachable(app: &AppState, caller: &Caller, field: &str, number: &str) -> Result<()> {
    if app.dispatcher.reachable(&caller.id, number) {
        Ok(())
    } else {
        Err(Error::field(
            field,
            format!("no fax server in your groupings may dial {number}"),
        ))
    }
}

/// The options a submission asks for, each checked.
fn options(submit: &SubmitRequest) -> Result<JobOptions> {
    let resolution = submit.resolution.clone().unwrap_or_else(|| "fine".into());
    if !matches!(resolution.as_str(), "standard" | "fine" | "superfine") {
        return Err(Error::field(
            "resolution",
            "must be standard, fine or superfine",
        ));
    }
    if let Some(tsi) = &submit.tsi {
        rules::station_id("tsi", tsi)?;
    }
    if let Some(header) = &submit.header {
        rules::printed("header", header, 60)?;
    }
    if submit
        .retry_delay_secs
        .is_some_and(|s| !(1..=MAX_RETRY_DELAY_SECS).contains(&s))
    {
        return Err(Error::field(
            "retry_delay_secs",
            format!("must be 1 to {MAX_RETRY_DELAY_SECS} seconds"),
        ));
    }
    Ok(JobOptions {
        resolution,
        ecm: submit.ecm.unwrap_or(true),
        header: submit.header.clone(),
        tsi: submit.tsi.clone(),
        retry_delay_secs: submit.retry_delay_secs,
    })
}

/// When a job may be sent: now, or the time asked for (RFC 3339, at most a year ahead; a past time is now).
fn send_at(asked: Option<&str>, now: i64) -> Result<i64> {
    let Some(t) = asked else { return Ok(now) };
    let at = rfc3339_field("send_at", t)?;
    let horizon = now.saturating_add(MAX_SEND_AHEAD_DAYS * 86_400_000);
    if at > horizon {
        return Err(Error::field(
            "send_at",
            format!(
                "{t} is more than {MAX_SEND_AHEAD_DAYS} days ahead; schedule it no later than {}",
                crate::rfc3339(horizon)
            ),
        ));
    }
    Ok(at.max(now))
}

/// The `job.queued` event of a new job (`resend_of` names the job it sends again).
fn queued_event(job: &NewJob, resend_of: Option<&str>) -> store::NewEvent {
    let mut payload =
        serde_json::json!({"job_id": job.id, "batch_id": job.batch_id, "recipient": job.recipient});
    if let (Some(of), Some(map)) = (resend_of, payload.as_object_mut()) {
        map.insert("resend_of".into(), of.into());
    }
    store::NewEvent::new("job.queued", payload, vec![job.client_id.clone()])
}

/// Whose jobs a listing shows.
#[derive(Debug, Clone, Copy)]
pub enum Queue<'a> {
    /// The caller's own.
    Own,
    /// The caller's own and those of every client whose queue it administers (`manage_jobs`).
    Managed,
    /// Those of the clients of a grouping, for a holder of `manage_jobs` over it.
    Grouping(&'a str),
    /// One client's: the caller's own, or one whose queue it administers.
    Client(&'a str),
}

/// Jobs, newest first, by `filter`, from the queue named.
pub async fn list(
    app: &AppState,
    caller: &Caller,
    queue: Queue<'_>,
    filter: &JobFilter,
) -> Result<Vec<Job>> {
    let owners = match queue {
        Queue::Own => vec![caller.id.clone()],
        Queue::Managed => match app.access.managed_job_owners(caller) {
            None => return Ok(app.store.jobs_of(JobOwners::Everyone, filter).await?),
            Some(mut owners) => {
                owners.push(caller.id.clone());
                owners.sort();
                owners.dedup();
                owners
            }
        },
        Queue::Grouping(g) => {
            if !app.access.grouping_visible(caller, g) {
                return Err(Error::not_found("grouping"));
            }
            app.access
                .authorize(caller, Competence::ManageJobs, Target::Grouping(g))?;
            app.access.clients_of_grouping(g)
        }
        Queue::Client(c) => {
            if c != caller.id && !app.access.manages_jobs_of(caller, c) {
                return Err(Error::not_found("client"));
            }
            vec![c.to_owned()]
        }
    };
    Ok(app
        .store
        .jobs_of(JobOwners::Clients(&owners), filter)
        .await?)
}

/// A job the caller may see and act on: its own, or one in a queue it administers (`manage_jobs` over
/// a grouping its client is in, or over the whole supervisor); any other is not found.
pub async fn visible(app: &AppState, caller: &Caller, id: &str) -> Result<Job> {
    match app.store.job(id).await? {
        Some(job)
            if job.client_id == caller.id || app.access.manages_jobs_of(caller, &job.client_id) =>
        {
            Ok(job)
        }
        _ => Err(Error::not_found("job")),
    }
}

/// Commits a change to a job: with an audit entry when the caller acted on another client's job (queue
/// administration), as every change an operator makes is recorded.
async fn commit_job_change<B: Serialize, A: Serialize>(
    tx: store::Tx,
    caller: &Caller,
    job: &Job,
    action: &str,
    before: &B,
    after: &A,
) -> Result<()> {
    if job.client_id == caller.id {
        tx.commit().await?;
    } else {
        tx.commit_audited(crate::audit::entry(
            Ok(caller),
            action,
            Some(&job.id),
            Some(before),
            Some(after),
        ))
        .await?;
    }
    Ok(())
}

/// What may be changed of a queued job, as HylaFAX's `faxalter` changes it; fields left out stay.
#[derive(Debug, Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AlterRequest {
    /// Do not send before this time (RFC 3339, at most 365 days ahead; a past time is now).
    pub send_at: Option<String>,
    /// 0 (most urgent) to 255.
    pub priority: Option<u8>,
    /// Tries in all, counting those made (1 to 100).
    pub max_tries: Option<u32>,
    /// Give up at this time (RFC 3339) if the fax is not sent by then: after the send time, at most 30
    /// days after it.
    pub kill_at: Option<String>,
}

/// Alters a queued job the caller may act on: its send time, priority, tries or kill time. A job that is
/// not queued (on a fax server, or finished) is a conflict: its attempt runs as it was offered.
pub async fn alter(app: &AppState, caller: &Caller, id: &str, ask: &AlterRequest) -> Result<Job> {
    let job = visible(app, caller, id).await?;
    let now = store::now_ms();
    let change = store::JobAlteration {
        not_before: ask
            .send_at
            .as_deref()
            .map(|t| send_at(Some(t), now))
            .transpose()?,
        priority: ask.priority.map(i64::from),
        max_tries: ask.max_tries.map(checked_max_tries).transpose()?,
        kill_at: ask
            .kill_at
            .as_deref()
            .map(|t| rfc3339_field("kill_at", t))
            .transpose()?,
    };
    if change == store::JobAlteration::default() {
        return Err(Error::field(
            "send_at",
            "nothing to change: give send_at, priority, max_tries or kill_at",
        ));
    }
    let send_time = change.not_before.unwrap_or(job.not_before).max(now);
    let kill_at = change.kill_at.unwrap_or(job.kill_at);
    if kill_at <= send_time {
        return Err(Error::field(
            if change.kill_at.is_some() {
                "kill_at"
            } else {
                "send_at"
            },
            format!(
                "the job would be given up (at {}) before it may be sent (at {})",
                crate::rfc3339(kill_at),
                crate::rfc3339(send_time)
            ),
        ));
    }
    if change.kill_at.is_some() && kill_at > send_time + 30 * 86_400_000 {
        return Err(Error::field(
            "kill_at",
            "at most 30 days after the job may be sent",
        ));
    }
    if job.status != JobStatus::Queued {
        return Err(not_queued(&job));
    }
    // Out of the dispatcher's queue first, so that it cannot start the job as it was while it changes;
    // a job that is not there is being started right now.
    if !app.dispatcher.dequeue(&job.id) {
        return Err(Error::conflict(
            "the job is being handed to a fax server; look at it again in a moment",
        ));
    }
    let changed = async {
        let mut tx = app.store.begin().await?;
        let event = job_event("job.altered", &job, serde_json::json!({"changes": &change}));
        let Some(altered) = tx.alter_queued_job(&job.id, &change, &[event]).await? else {
            return Ok(None);
        };
        let before = serde_json::json!({"not_before": job.not_before, "priority": job.priority,
            "max_tries": job.max_tries, "kill_at": job.kill_at});
        commit_job_change(tx, caller, &job, "job.alter", &before, &change).await?;
        Result::Ok(Some(altered))
    }
    .await;
    match changed {
        Ok(Some(altered)) => {
            app.dispatcher
                .enqueue(std::slice::from_ref(&altered))
                .await?;
            app.events.committed();
            Ok(altered)
        }
        Ok(None) => {
            // No longer queued (cancelled meanwhile): nothing goes back into the queue.
            let now = visible(app, caller, id).await?;
            Err(not_queued(&now))
        }
        Err(e) => {
            // Nothing changed: the job goes back as it was.
            app.dispatcher.enqueue(std::slice::from_ref(&job)).await?;
            Err(e)
        }
    }
}

/// A job's tries in all, as a submission or an alteration asks for them: 1 to 100.
fn checked_max_tries(n: u32) -> Result<i64> {
    if (1..=100).contains(&n) {
        Ok(i64::from(n))
    } else {
        Err(Error::field("max_tries", "must be 1 to 100"))
    }
}

fn not_queued(job: &Job) -> Error {
    Error::conflict(format!(
        "the job is {}; only a queued job can be altered (cancel it, or alter it while it waits for its next try)",
        job.status
    ))
}

/// An RFC 3339 time in a request, as Unix ms.
fn rfc3339_field(field: &str, t: &str) -> Result<i64> {
    let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::field(field, format!("not an RFC 3339 time: {e}")))?;
    Ok(i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
}

/// A job's attempts, the open ones with their live phase and page (the database has those only from
/// an attempt's start and end).
pub async fn attempts(app: &AppState, job: &Job) -> Result<Vec<Attempt>> {
    let mut attempts = app.store.attempts_of(&job.id).await?;
    for a in attempts.iter_mut().filter(|a| a.ended_at.is_none()) {
        if let Some((phase, page)) = app.dispatcher.live_phase(&a.id) {
            a.phase = phase.to_owned();
            a.page = page.map(i64::from).or(a.page);
        }
    }
    Ok(attempts)
}

/// How a cancel went.
#[derive(Debug)]
pub enum Cancelled {
    /// The job was waiting: it is cancelled.
    Now(Job),
    /// The job is on a fax server, told to stop: it ends `cancelled` when the fax server confirms.
    Asked(Job),
}

/// Cancels one of the caller's jobs. A queued job is cancelled at once; one on a fax server is told to
/// stop. A job whose fax server is away (`in_doubt`) ends `cancelled` instead of being dispatched again,
/// unless its fax server reports that it was sent. A finished job is a conflict.
pub async fn cancel(app: &AppState, caller: &Caller, id: &str) -> Result<Cancelled> {
    let job = visible(app, caller, id).await?;
    if job.is_finished() {
        return Err(Error::conflict(format!(
            "the job is already {}",
            job.status
        )));
    }
    let by = if job.client_id == caller.id {
        "cancelled by the client".to_owned()
    } else {
        format!("cancelled by {} (queue administration)", caller.name)
    };
    let before = serde_json::json!({"status": job.status});
    let after = serde_json::json!({"status": JobStatus::Cancelled, "reason": &by});
    let cancel_queued = || async {
        let update = JobUpdate {
            reason: Some(by.clone()),
            ..JobUpdate::to(JobStatus::Cancelled)
        };
        let event = job_event("job.cancelled", &job, serde_json::json!({}));
        let mut tx = app.store.begin().await?;
        let done = tx
            .update_job(&job.id, &[JobStatus::Queued], &update, &[event])
            .await?;
        if !done {
            return Result::<bool>::Ok(false);
        }
        commit_job_change(tx, caller, &job, "job.cancel", &before, &after).await?;
        app.dispatcher.dequeue(&job.id);
        app.events.committed();
        Ok(true)
    };
    if job.status == JobStatus::Queued && cancel_queued().await? {
        return Ok(Cancelled::Now(visible(app, caller, id).await?));
    }
    let mut tx = app.store.begin().await?;
    if tx.request_cancel(&job.id).await? {
        commit_job_change(tx, caller, &job, "job.cancel", &before, &after).await?;
    }
    // An attempt may have ended and queued its job for a retry since the job was read; from here on no
    // retry is queued (the store refuses it once the cancel is asked for), and one queued before is
    // cancelled now.
    if cancel_queued().await? {
        return Ok(Cancelled::Now(visible(app, caller, id).await?));
    }
    for a in app
        .store
        .attempts_of(&job.id)
        .await?
        .iter()
        .filter(|a| a.ended_at.is_none())
    {
        app.dispatcher.request_cancel(a);
    }
    Ok(Cancelled::Asked(visible(app, caller, id).await?))
}

/// Sends a finished job the caller may act on again, as a new job with the same documents, recipient and
/// options (and the same time to live). The new job is its client's, also when a queue administrator
/// resends it, and must be one that client could send.
pub async fn resend(app: &AppState, caller: &Caller, id: &str) -> Result<Submitted> {
    let job = visible(app, caller, id).await?;
    if job.client_id == caller.id {
        may_submit(app, caller)?;
    } else if !app
        .access
        .holds(&job.client_id, Competence::SendFaxes, Target::Anywhere)
    {
        return Err(Error::forbidden(format!(
            "client {} may no longer send faxes (it lacks send_faxes)",
            job.client_id
        )));
    }
    if !job.is_finished() {
        return Err(Error::conflict(format!(
            "the job is still {}; cancel it or wait for it to finish",
            job.status
        )));
    }
    if !app.dispatcher.reachable(&job.client_id, &job.recipient) {
        return Err(Error::field(
            "recipient",
            format!(
                "no fax server in the groupings of the job's client may dial {}",
                job.recipient
            ),
        ));
    }
    let docs = app.store.job_documents(&job.id).await?;
    let now = store::now_ms();
    let new = NewJob {
        id: store::new_id("job"),
        batch_id: store::new_id("bat"),
        client_id: job.client_id.clone(),
        recipient: job.recipient.clone(),
        priority: job.priority,
        options: job.options.clone(),
        max_tries: job.max_tries,
        kill_at: now + (job.kill_at - job.not_before).max(1000),
        not_before: now,
        pages_total: job.pages_total,
        idempotency_key: None,
        request_hash: None,
        documents: docs.iter().map(|d| d.sha256.clone()).collect(),
    };
    let event = queued_event(&new, Some(&job.id));
    let (_, jobs) = app
        .store
        .insert_jobs(std::slice::from_ref(&new), &[event])
        .await?;
    app.metrics.submitted.inc();
    app.events.committed();
    app.dispatcher.enqueue(&jobs).await?;
    Ok(Submitted {
        fresh: true,
        batch_id: new.batch_id,
        jobs,
    })
}
