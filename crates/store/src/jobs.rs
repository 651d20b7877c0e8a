//! Jobs (one recipient each) and their attempts.
//!
//! Job status: `queued` (waiting for its next attempt, maybe not before `not_before`) → `dispatched` (an
//! attempt was offered to a fax server) → `active` (the fax server accepted it) → `sent` | `failed` |
//! `cancelled`, or back to `queued` for a retry; `in_doubt` while its attempt is. An attempt is `offered` →
//! `active` → `succeeded` | `failed` | `abandoned` | `cancelled`; `offered` or `active` → `in_doubt` (its
//! fax server went silent; the call may be running) → `active` again or ended. `abandoned` means the
//! supervisor gave up waiting and moved the job on: a result the fax server reports later replaces it
//! ([`Store::finish_attempt`] with [`Ending::Late`]). Every transition is a conditional UPDATE on the
//! expected current status, so a transition that lost a race (a late result, a duplicated message) changes
//! nothing and says so.

use crate::{NewEvent, Result, Store, events, now_ms};
pub use protocol::job::{AttemptStatus, JobStatus};
pub use protocol::{FaultSide, Phase};
use sqlx::SqliteConnection;
use std::collections::HashMap;

pub const OPEN_ATTEMPT: &str = "status IN ('offered', 'active', 'in_doubt')";
const OPEN_JOB: &str = "status IN ('queued', 'dispatched', 'active', 'in_doubt')";

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub batch_id: String,
    pub client_id: String,
    pub recipient: String,
    pub priority: i64,
    pub options: String,
    pub max_tries: i64,
    pub kill_at: i64,
    pub not_before: i64,
    pub pages_total: i64,
    pub idempotency_key: Option<String>,
    /// With an idempotency key: a hash of the request, to tell a repeat from a different request.
    pub request_hash: Option<String>,
    pub documents: Vec<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: String,
    pub batch_id: String,
    pub client_id: String,
    pub recipient: String,
    pub status: JobStatus,
    pub priority: i64,
    pub options: String,
    pub max_tries: i64,
    pub tries: i64,
    pub kill_at: i64,
    pub not_before: i64,
    pub pages_total: i64,
    pub pages_sent: i64,
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
    /// See [`NewJob::request_hash`]; none on jobs stored before it was kept.
    pub request_hash: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    /// The client asked to cancel it while an attempt was on a fax server.
    pub cancel_requested: bool,
}

impl Job {
    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobDocument {
    pub seq: i64,
    pub sha256: String,
    pub size: i64,
    pub media_type: String,
    pub pages: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Attempt {
    pub id: String,
    pub job_id: String,
    pub number: i64,
    pub fax_server_id: String,
    pub status: AttemptStatus,
    pub phase: Phase,
    pub deadline_at: Option<i64>,
    pub page: Option<i64>,
    pub fault: Option<FaultSide>,
    pub reason: Option<String>,
    pub t30: Option<String>,
    pub pages_sent: i64,
    pub stats: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// The call limit its offer carried (none for attempts offered before limits existed).
    pub call_limit_ms: Option<i64>,
}

/// One progress report, as the supervisor batches them.
#[derive(Debug, Clone)]
pub struct ProgressRecord {
    pub attempt_id: String,
    /// The first report of the attempt: it and its job become `active`.
    pub activate: bool,
    pub event: NewEvent,
}

/// An open attempt whose fax server reports it sent its job: the attempt succeeds and the job is sent
/// (unless it was sent already), as [`Store::finish_attempt`] does for an open attempt.
#[derive(Debug, Clone)]
pub struct SentEnd {
    pub attempt_id: String,
    pub pages: i64,
    pub stats: Option<String>,
    /// Appended when the job becomes sent.
    pub events: Vec<NewEvent>,
    /// Appended when only the attempt ends (its job was sent already).
    pub otherwise: Vec<NewEvent>,
}

/// What the fax servers' links reported, committed together by [`Store::record_link_batch`].
#[derive(Debug, Default)]
pub struct LinkBatch {
    pub progress: Vec<ProgressRecord>,
    /// The highest link message id applied from each fax server (one entry per fax server).
    pub links_applied: Vec<(String, u64)>,
    /// Attempts that sent their jobs, ended after the progress reports.
    pub sent: Vec<SentEnd>,
}

impl LinkBatch {
    pub fn is_empty(&self) -> bool {
        self.progress.is_empty() && self.links_applied.is_empty() && self.sent.is_empty()
    }
}

impl Attempt {
    /// A new attempt, offered to a fax server now.
    pub fn offered(
        id: String,
        job_id: String,
        number: i64,
        fax_server_id: String,
        now: i64,
    ) -> Self {
        Self {
            id,
            job_id,
            number,
            fax_server_id,
            status: AttemptStatus::Offered,
            phase: Phase::Offered,
            deadline_at: None,
            page: None,
            fault: None,
            reason: None,
            t30: None,
            pages_sent: 0,
            stats: None,
            started_at: now,
            ended_at: None,
            call_limit_ms: None,
        }
    }
}

/// Which attempts [`Store::finish_attempt`] may end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// One still open: its fax server reports its end.
    Open,
    /// One the supervisor abandoned (and moved its job on from): its fax server's report came late and
    /// replaces the abandonment with what really happened.
    Late,
}

/// What [`Store::finish_attempt`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The attempt was not in the state the ending needs: nothing.
    NotOpen,
    /// The attempt, but not its job, which had moved on.
    AttemptOnly,
    /// The attempt and its job.
    WithJob,
    /// Nothing: the job was to be queued again, but its client asked to cancel it meanwhile. Decide
    /// again with the job as it is now.
    CancelRequested,
}

/// How an attempt ended ([`AttemptFinish::new`] for one with nothing more to say).
#[derive(Debug, Clone)]
pub struct AttemptFinish {
    pub status: AttemptStatus,
    pub fault: Option<FaultSide>,
    pub reason: Option<String>,
    pub t30: Option<String>,
    pub pages_sent: i64,
    pub stats: Option<String>,
}

/// The job's next state, applied with an attempt's end or on its own.
#[derive(Debug, Clone)]
pub struct JobUpdate {
    pub status: JobStatus,
    pub reason: Option<String>,
    pub not_before: Option<i64>,
    pub pages_sent: Option<i64>,
}

impl JobUpdate {
    /// To `status`, nothing else changed.
    pub fn to(status: JobStatus) -> Self {
        Self {
            status,
            reason: None,
            not_before: None,
            pages_sent: None,
        }
    }
}

impl AttemptFinish {
    /// Ended as `status`, with no fault, reason, pages or statistics.
    pub fn new(status: AttemptStatus) -> Self {
        Self {
            status,
            fault: None,
            reason: None,
            t30: None,
            pages_sent: 0,
            stats: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    /// Only jobs created before this job id (ids are time ordered): the pagination cursor.
    pub before: Option<String>,
    pub limit: i64,
}

/// Whose jobs a listing covers.
#[derive(Debug, Clone, Copy)]
pub enum JobOwners<'a> {
    /// Every client's.
    Everyone,
    /// These clients'.
    Clients(&'a [String]),
}

/// What a queue administrator (or the job's owner) may change of a queued job, as HylaFAX's `faxalter`
/// does; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct JobAlteration {
    /// When the job may be sent (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tries: Option<i64>,
    /// When the job is given up if not sent by then (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kill_at: Option<i64>,
}

/// Applies `update` to the job if it is in the state `condition` (SQL) names; true if it did.
async fn apply_job_update(
    conn: &mut SqliteConnection,
    job_id: &str,
    update: &JobUpdate,
    now: i64,
    condition: &str,
) -> Result<bool> {
    let finished = update.status.is_finished();
    let done = sqlx::query(&format!(
        "UPDATE jobs SET status = $1, reason = CASE WHEN $1 = 'sent' THEN NULL ELSE COALESCE($2, reason) END,
             not_before = COALESCE($3, not_before),
             pages_sent = COALESCE($4, pages_sent), updated_at = $5,
             finished_at = CASE WHEN $6 THEN $5 ELSE NULL END
         WHERE id = $7 AND {condition}"
    ))
    .bind(update.status)
    .bind(&update.reason)
    .bind(update.not_before)
    .bind(update.pages_sent)
    .bind(now)
    .bind(finished)
    .bind(job_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The writes of [`Store::finish_attempt`] within `conn`'s transaction, without its events: the caller
/// appends those that [`Ended`] calls for (none for `NotOpen` and `CancelRequested`, which write nothing).
async fn finish_in(
    conn: &mut SqliteConnection,
    attempt_id: &str,
    ending: Ending,
    finish: &AttemptFinish,
    job: Option<&JobUpdate>,
) -> Result<Ended> {
    let now = now_ms();
    let from = match ending {
        Ending::Open => OPEN_ATTEMPT,
        Ending::Late => "status = 'abandoned'",
    };
    // A late report keeps the time the supervisor gave up: that is when the attempt stopped counting.
    let job_id: Option<String> = sqlx::query_scalar(&format!(
        "UPDATE attempts SET status = $1, phase = 'finished', fault = $2, reason = $3, t30 = $4,
             pages_sent = $5, stats = $6, ended_at = COALESCE(ended_at, $7), deadline_at = NULL
         WHERE id = $8 AND {from} RETURNING job_id"
    ))
    .bind(finish.status)
    .bind(finish.fault)
    .bind(&finish.reason)
    .bind(&finish.t30)
    .bind(finish.pages_sent)
    .bind(&finish.stats)
    .bind(now)
    .bind(attempt_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(job_id) = job_id else {
        return Ok(Ended::NotOpen);
    };
    let Some(update) = job else {
        return Ok(Ended::AttemptOnly);
    };
    let open = if update.status == JobStatus::Sent {
        "status <> 'sent'"
    } else {
        OPEN_JOB
    };
    if update.status == JobStatus::Queued {
        let cancel_requested: Option<bool> = sqlx::query_scalar(&format!(
            "SELECT cancel_requested FROM jobs WHERE id = $1 AND {open}"
        ))
        .bind(&job_id)
        .fetch_optional(&mut *conn)
        .await?;
        match cancel_requested {
            // A cancel asked for while the retry was being decided wins over the retry: nothing is
            // written (the transaction is dropped), and the caller decides again.
            Some(true) => return Ok(Ended::CancelRequested),
            None => return Ok(Ended::AttemptOnly),
            Some(false) => {}
        }
    }
    let moved = apply_job_update(&mut *conn, &job_id, update, now, open).await?;
    Ok(if moved {
        Ended::WithJob
    } else {
        Ended::AttemptOnly
    })
}

/// Ends open attempts that sent their jobs, and those jobs unless already sent, in two statements per few
/// hundred (what [`finish_in`] does for each, with the same outcome in the batch's order: of two reports
/// of one attempt the first ends it; of two attempts of one job the first that ends moves the job).
async fn end_sent(conn: &mut SqliteConnection, sent: &[SentEnd], now: i64) -> Result<Vec<Ended>> {
    let mut ended = vec![Ended::NotOpen; sent.len()];
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<usize> = (0..sent.len())
        .filter(|&i| seen.insert(sent[i].attempt_id.as_str()))
        .collect();
    let mut job_of: HashMap<String, String> = HashMap::new();
    for chunk in firsts.chunks(300) {
        let mut q = sqlx::QueryBuilder::new(
            "UPDATE attempts SET status = 'succeeded', phase = 'finished', fault = NULL, reason = NULL,
                 t30 = NULL, pages_sent = v.column2, stats = v.column3, deadline_at = NULL,
                 ended_at = COALESCE(ended_at, ",
        );
        q.push_bind(now).push(") FROM (");
        q.push_values(chunk, |mut row, &i| {
            row.push_bind(&sent[i].attempt_id)
                .push_bind(sent[i].pages)
                .push_bind(&sent[i].stats);
        });
        q.push(format!(
            ") AS v WHERE attempts.id = v.column1 AND attempts.{OPEN_ATTEMPT} RETURNING id, job_id"
        ));
        let rows: Vec<(String, String)> = q.build_query_as().fetch_all(&mut *conn).await?;
        job_of.extend(rows);
    }
    // The attempts that ended, and for each job the first of them in the batch's order.
    let mut first_of_job: HashMap<&str, usize> = HashMap::new();
    for &i in &firsts {
        if let Some(job_id) = job_of.get(&sent[i].attempt_id) {
            ended[i] = Ended::AttemptOnly;
            first_of_job.entry(job_id.as_str()).or_insert(i);
        }
    }
    let mut jobs: Vec<(&str, usize)> = first_of_job.into_iter().collect();
    jobs.sort_by_key(|&(_, i)| i);
    for chunk in jobs.chunks(400) {
        let mut q = sqlx::QueryBuilder::new(
            "UPDATE jobs SET status = 'sent', pages_sent = v.column2, updated_at = ",
        );
        q.push_bind(now)
            .push(", finished_at = ")
            .push_bind(now)
            .push(" FROM (");
        q.push_values(chunk, |mut row, &(job_id, i)| {
            row.push_bind(job_id).push_bind(sent[i].pages);
        });
        q.push(") AS v WHERE jobs.id = v.column1 AND jobs.status <> 'sent' RETURNING id");
        let moved: std::collections::HashSet<String> = q
            .build_query_scalar()
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
        for &(job_id, i) in chunk {
            if moved.contains(job_id) {
                ended[i] = Ended::WithJob;
            }
        }
    }
    Ok(ended)
}

fn queued_job(j: &NewJob, now: i64) -> Job {
    Job {
        id: j.id.clone(),
        batch_id: j.batch_id.clone(),
        client_id: j.client_id.clone(),
        recipient: j.recipient.clone(),
        status: JobStatus::Queued,
        priority: j.priority,
        options: j.options.clone(),
        max_tries: j.max_tries,
        tries: 0,
        kill_at: j.kill_at,
        not_before: j.not_before,
        pages_total: j.pages_total,
        pages_sent: 0,
        reason: None,
        idempotency_key: j.idempotency_key.clone(),
        request_hash: j.request_hash.clone(),
        created_at: now,
        updated_at: now,
        finished_at: None,
        cancel_requested: false,
    }
}

impl Store {
    /// Inserts the jobs of one submission atomically. With an idempotency key that this client used before,
    /// nothing is inserted and the jobs of the earlier submission are returned with `false`.
    pub async fn insert_jobs(
        &self,
        jobs: &[NewJob],
        events: &[NewEvent],
    ) -> Result<(bool, Vec<Job>)> {
        let mut out = self
            .insert_submissions(&[(jobs.to_vec(), events.to_vec())])
            .await?;
        Ok(out.pop().unwrap_or((true, Vec::new())))
    }

    /// Inserts many submissions in one transaction (group commit): each is all-or-nothing together with
    /// the others, and each with an idempotency key already used returns the earlier jobs with `false`.
    /// Rows go in multi-row INSERTs, so the cost is a few round trips per batch, not per job.
    pub async fn insert_submissions(
        &self,
        submissions: &[(Vec<NewJob>, Vec<NewEvent>)],
    ) -> Result<Vec<(bool, Vec<Job>)>> {
        let mut tx = self.writer.begin().await?;
        let now = now_ms();
        let mut results = Vec::with_capacity(submissions.len());
        let mut fresh_jobs: Vec<&NewJob> = Vec::new();
        let mut fresh_events: Vec<NewEvent> = Vec::new();
        let mut keys_in_batch: std::collections::HashMap<(&str, &str), usize> =
            std::collections::HashMap::new();
        for (jobs, events) in submissions {
            let Some(first) = jobs.first() else {
                results.push((true, Vec::new()));
                continue;
            };
            if let Some(key) = &first.idempotency_key {
                let existing: Vec<Job> = sqlx::query_as(
                    "SELECT * FROM jobs WHERE client_id = $1 AND idempotency_key = $2 ORDER BY id",
                )
                .bind(&first.client_id)
                .bind(key)
                .fetch_all(&mut *tx)
                .await?;
                if !existing.is_empty() {
                    results.push((false, existing));
                    continue;
                }
                if let Some(&earlier) = keys_in_batch.get(&(first.client_id.as_str(), key.as_str()))
                {
                    // The same key twice in one batch: the first one is stored, the repeat answers with it.
                    let jobs = results
                        .get(earlier)
                        .map(|(_, jobs): &(bool, Vec<Job>)| jobs.clone())
                        .unwrap_or_default();
                    results.push((false, jobs));
                    continue;
                }
                keys_in_batch.insert((first.client_id.as_str(), key.as_str()), results.len());
            }
            fresh_jobs.extend(jobs.iter());
            fresh_events.extend(events.iter().cloned());
            results.push((true, jobs.iter().map(|j| queued_job(j, now)).collect()));
        }
        // 15 parameters a job row, 3 a document row: stay well under SQLite's 32766.
        for chunk in fresh_jobs.chunks(1000) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO jobs (id, batch_id, client_id, recipient, status, priority, options, max_tries, kill_at,
                     not_before, pages_total, idempotency_key, request_hash, created_at, updated_at) ",
            );
            insert.push_values(chunk, |mut row, job| {
                row.push_bind(&job.id)
                    .push_bind(&job.batch_id)
                    .push_bind(&job.client_id)
                    .push_bind(&job.recipient)
                    .push_bind("queued")
                    .push_bind(job.priority)
                    .push_bind(&job.options)
                    .push_bind(job.max_tries)
                    .push_bind(job.kill_at)
                    .push_bind(job.not_before)
                    .push_bind(job.pages_total)
                    .push_bind(&job.idempotency_key)
                    .push_bind(&job.request_hash)
                    .push_bind(now)
                    .push_bind(now);
            });
            insert.build().execute(&mut *tx).await?;
        }
        let documents: Vec<(&str, i64, &str)> = fresh_jobs
            .iter()
            .flat_map(|j| {
                j.documents.iter().enumerate().map(|(seq, sha)| {
                    (
                        j.id.as_str(),
                        i64::try_from(seq).unwrap_or(i64::MAX),
                        sha.as_str(),
                    )
                })
            })
            .collect();
        for chunk in documents.chunks(3000) {
            let mut insert =
                sqlx::QueryBuilder::new("INSERT INTO job_documents (job_id, seq, sha256) ");
            insert.push_values(chunk, |mut row, (job, seq, sha)| {
                row.push_bind(*job).push_bind(*seq).push_bind(*sha);
            });
            insert.build().execute(&mut *tx).await?;
        }
        events::append(self, &mut tx, &fresh_events).await?;
        tx.commit().await?;
        Ok(results)
    }

    pub async fn job(&self, id: &str) -> Result<Option<Job>> {
        Ok(sqlx::query_as("SELECT * FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?)
    }

    /// A client's jobs, newest first.
    /// The jobs of `owners`, newest first, by `filter`.
    pub async fn jobs_of(&self, owners: JobOwners<'_>, filter: &JobFilter) -> Result<Vec<Job>> {
        let owned = match owners {
            JobOwners::Everyone => "TRUE".to_owned(),
            JobOwners::Clients([]) => return Ok(Vec::new()),
            JobOwners::Clients(ids) => format!(
                "client_id IN ({})",
                (0..ids.len())
                    .map(|i| format!("${}", i + 4))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let sql = format!(
            "SELECT * FROM jobs WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR id < $2) AND {owned}
             ORDER BY id DESC LIMIT $3"
        );
        let mut q = sqlx::query_as(&sql)
            .bind(filter.status)
            .bind(&filter.before)
            .bind(filter.limit);
        if let JobOwners::Clients(ids) = owners {
            for id in ids {
                q = q.bind(id);
            }
        }
        Ok(q.fetch_all(&self.reader).await?)
    }

    pub async fn jobs_of_client(&self, client_id: &str, filter: &JobFilter) -> Result<Vec<Job>> {
        Ok(sqlx::query_as(
            "SELECT * FROM jobs WHERE client_id = $1 AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
        )
        .bind(client_id)
        .bind(filter.status)
        .bind(&filter.before)
        .bind(filter.limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Every job waiting for an attempt, for the dispatcher after a start.
    pub async fn queued_jobs(&self) -> Result<Vec<Job>> {
        Ok(
            sqlx::query_as("SELECT * FROM jobs WHERE status = 'queued' ORDER BY id")
                .fetch_all(&self.reader)
                .await?,
        )
    }

    pub async fn job_documents(&self, job_id: &str) -> Result<Vec<JobDocument>> {
        Ok(sqlx::query_as(
            "SELECT j.seq, j.sha256, d.size, d.media_type, d.pages FROM job_documents j
             JOIN documents d ON d.sha256 = j.sha256 WHERE j.job_id = $1 ORDER BY j.seq",
        )
        .bind(job_id)
        .fetch_all(&self.reader)
        .await?)
    }

    pub async fn attempts_of(&self, job_id: &str) -> Result<Vec<Attempt>> {
        Ok(
            sqlx::query_as("SELECT * FROM attempts WHERE job_id = $1 ORDER BY number")
                .bind(job_id)
                .fetch_all(&self.reader)
                .await?,
        )
    }

    pub async fn attempt(&self, id: &str) -> Result<Option<Attempt>> {
        Ok(sqlx::query_as("SELECT * FROM attempts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.writer)
            .await?)
    }

    /// Attempts not yet ended, everywhere.
    pub async fn open_attempts(&self) -> Result<Vec<Attempt>> {
        Ok(sqlx::query_as(&format!(
            "SELECT * FROM attempts WHERE {OPEN_ATTEMPT} ORDER BY started_at"
        ))
        .fetch_all(&self.writer)
        .await?)
    }

    /// Records new attempts, each moving its job from `queued` to `dispatched` with its event, in one
    /// transaction. For each, true if recorded; false (nothing recorded) when its job was no longer queued.
    pub async fn start_attempts(&self, batch: &[(Attempt, NewEvent)]) -> Result<Vec<bool>> {
        let mut tx = self.writer.begin().await?;
        let now = now_ms();
        let mut moved: std::collections::HashSet<String> = std::collections::HashSet::new();
        for chunk in batch.chunks(1000) {
            let mut update = sqlx::QueryBuilder::new(
                "UPDATE jobs SET status = 'dispatched', tries = tries + 1, reason = NULL, updated_at = ",
            );
            update
                .push_bind(now)
                .push(" WHERE status = 'queued' AND cancel_requested = 0 AND id IN (");
            let mut ids = update.separated(", ");
            for (a, _) in chunk {
                ids.push_bind(&a.job_id);
            }
            update.push(") RETURNING id");
            let rows: Vec<(String,)> = update.build_query_as().fetch_all(&mut *tx).await?;
            moved.extend(rows.into_iter().map(|(id,)| id));
        }
        let started: Vec<bool> = batch
            .iter()
            .map(|(a, _)| moved.contains(&a.job_id))
            .collect();
        let attempts: Vec<&Attempt> = batch
            .iter()
            .filter(|(a, _)| moved.contains(&a.job_id))
            .map(|(a, _)| a)
            .collect();
        for chunk in attempts.chunks(1000) {
            let mut insert = sqlx::QueryBuilder::new(
                "INSERT INTO attempts (id, job_id, number, fax_server_id, status, phase, deadline_at, started_at, call_limit_ms) ",
            );
            insert.push_values(chunk, |mut row, a| {
                row.push_bind(&a.id)
                    .push_bind(&a.job_id)
                    .push_bind(a.number)
                    .push_bind(&a.fax_server_id)
                    .push_bind(a.status)
                    .push_bind(a.phase)
                    .push_bind(a.deadline_at)
                    .push_bind(a.started_at)
                    .push_bind(a.call_limit_ms);
            });
            insert.build().execute(&mut *tx).await?;
        }
        let events: Vec<NewEvent> = batch
            .iter()
            .filter(|(a, _)| moved.contains(&a.job_id))
            .map(|(_, e)| e.clone())
            .collect();
        events::append(self, &mut tx, &events).await?;
        tx.commit().await?;
        Ok(started)
    }

    /// Records what the links reported in one transaction (a group commit: the database has one writer,
    /// and one transaction for many reports keeps it free). The progress reports: their events, and the
    /// activation of attempts reporting for the first time (with their jobs); later phases live in the
    /// supervisor's memory and reach the database with the attempt's end, and activations of attempts
    /// that ended meanwhile change nothing. The highest link message ids applied. Then the attempts that
    /// sent their jobs, each as [`Store::finish_attempt`] ends an open one; what each changed is returned
    /// in their order (`NotOpen` for one that was no longer open: nothing of it was written).
    pub async fn record_link_batch(&self, batch: &LinkBatch) -> Result<Vec<Ended>> {
        let mut tx = self.writer.begin().await?;
        crate::fax_servers::set_links_applied(&mut tx, &batch.links_applied).await?;
        let activated: Vec<&str> = batch
            .progress
            .iter()
            .filter(|r| r.activate)
            .map(|r| r.attempt_id.as_str())
            .collect();
        for chunk in activated.chunks(1000) {
            // Only offered ones: an attempt marked in doubt meanwhile stays so until `resume_attempt`.
            let mut update = sqlx::QueryBuilder::new(
                "UPDATE attempts SET status = 'active', phase = 'accepted' WHERE status = 'offered' AND id IN (",
            );
            let mut ids = update.separated(", ");
            for id in chunk {
                ids.push_bind(*id);
            }
            update.push(")");
            update.build().execute(&mut *tx).await?;
            let mut jobs =
                sqlx::QueryBuilder::new("UPDATE jobs SET status = 'active', updated_at = ");
            jobs.push_bind(now_ms()).push(
                " WHERE status = 'dispatched' AND id IN (SELECT job_id FROM attempts WHERE status = 'active' AND id IN (",
            );
            let mut ids = jobs.separated(", ");
            for id in chunk {
                ids.push_bind(*id);
            }
            jobs.push("))");
            jobs.build().execute(&mut *tx).await?;
        }
        let mut events: Vec<NewEvent> = batch.progress.iter().map(|r| r.event.clone()).collect();
        let ended = end_sent(&mut tx, &batch.sent, now_ms()).await?;
        for (sent, e) in batch.sent.iter().zip(&ended) {
            match e {
                Ended::WithJob => events.extend(sent.events.iter().cloned()),
                Ended::AttemptOnly => events.extend(sent.otherwise.iter().cloned()),
                Ended::NotOpen | Ended::CancelRequested => {}
            }
        }
        events::append(self, &mut tx, &events).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Ends an attempt and, unless the job has moved on, applies the job's next state, atomically.
    ///
    /// The job changes only while it is open, except that `sent` applies to any job not already sent: a fax
    /// the receiver confirmed was delivered, whatever the supervisor had concluded meanwhile. When the job
    /// does not change, `otherwise` is appended instead of `events`.
    pub async fn finish_attempt(
        &self,
        attempt_id: &str,
        ending: Ending,
        finish: &AttemptFinish,
        job: Option<&JobUpdate>,
        events: &[NewEvent],
        otherwise: &[NewEvent],
    ) -> Result<Ended> {
        let mut tx = self.writer.begin().await?;
        let ended = finish_in(&mut tx, attempt_id, ending, finish, job).await?;
        match ended {
            Ended::NotOpen | Ended::CancelRequested => return Ok(ended),
            Ended::WithJob => events::append(self, &mut tx, events).await?,
            Ended::AttemptOnly => events::append(self, &mut tx, otherwise).await?,
        }
        tx.commit().await?;
        Ok(ended)
    }

    /// Marks an open attempt in doubt until `until` (when its job may be dispatched again), with its job.
    /// False when the attempt had ended.
    pub async fn mark_in_doubt(
        &self,
        attempt_id: &str,
        until: i64,
        events: &[NewEvent],
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let job_id: Option<String> = sqlx::query_scalar(
            "UPDATE attempts SET status = 'in_doubt', deadline_at = $1
             WHERE id = $2 AND status IN ('offered', 'active') RETURNING job_id",
        )
        .bind(until)
        .bind(attempt_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(job_id) = job_id else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE jobs SET status = 'in_doubt', updated_at = $1
             WHERE id = $2 AND status IN ('dispatched', 'active')",
        )
        .bind(now_ms())
        .bind(&job_id)
        .execute(&mut *tx)
        .await?;
        events::append(self, &mut tx, events).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Its fax server is in touch again about an attempt in doubt: it and its job become active again
    /// (`accepted`: the fax server reports on it), or offered and dispatched (the offer goes again, as the
    /// fax server never took it). False when it was not in doubt.
    pub async fn resume_attempt(
        &self,
        attempt_id: &str,
        accepted: bool,
        events: &[NewEvent],
    ) -> Result<bool> {
        let (attempt, job) = if accepted {
            ("active", "active")
        } else {
            ("offered", "dispatched")
        };
        let mut tx = self.writer.begin().await?;
        let job_id: Option<String> = sqlx::query_scalar(
            "UPDATE attempts SET status = $1, deadline_at = NULL,
                 phase = CASE WHEN $2 AND phase = 'offered' THEN 'accepted' ELSE phase END
             WHERE id = $3 AND status = 'in_doubt' RETURNING job_id",
        )
        .bind(attempt)
        .bind(accepted)
        .bind(attempt_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(job_id) = job_id else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE jobs SET status = $1, updated_at = $2 WHERE id = $3 AND status = 'in_doubt'",
        )
        .bind(job)
        .bind(now_ms())
        .bind(&job_id)
        .execute(&mut *tx)
        .await?;
        events::append(self, &mut tx, events).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Counts of jobs by status, for metrics.
    pub async fn job_counts(&self) -> Result<Vec<(JobStatus, i64)>> {
        Ok(
            sqlx::query_as("SELECT status, COUNT(*) FROM jobs GROUP BY status ORDER BY status")
                .fetch_all(&self.reader)
                .await?,
        )
    }
}

impl crate::Tx {
    /// Remembers that an open job was cancelled, so that it is not dispatched again whatever its
    /// attempt's fax server does (no retry of it is queued or started). False when the job had finished.
    pub async fn request_cancel(&mut self, job_id: &str) -> Result<bool> {
        let done = sqlx::query(&format!(
            "UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND {OPEN_JOB}"
        ))
        .bind(job_id)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Changes a job that has no open attempt, if its status is one of `from`. Returns false otherwise.
    pub async fn update_job(
        &mut self,
        job_id: &str,
        from: &[JobStatus],
        update: &JobUpdate,
        events: &[NewEvent],
    ) -> Result<bool> {
        let status: Option<JobStatus> = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(self.conn())
            .await?;
        if !status.is_some_and(|s| from.contains(&s)) {
            return Ok(false);
        }
        apply_job_update(self.conn(), job_id, update, now_ms(), "TRUE").await?;
        let store = self.store.clone();
        events::append(&store, self.conn(), events).await?;
        Ok(true)
    }

    /// Alters a queued job (send time, priority, tries, kill time), with its events; the job as it is
    /// now, or `None` when it is not queued (any more).
    pub async fn alter_queued_job(
        &mut self,
        job_id: &str,
        change: &JobAlteration,
        events: &[NewEvent],
    ) -> Result<Option<Job>> {
        let done = sqlx::query(
            "UPDATE jobs SET not_before = COALESCE($1, not_before), priority = COALESCE($2, priority),
                 max_tries = COALESCE($3, max_tries), kill_at = COALESCE($4, kill_at), updated_at = $5
             WHERE id = $6 AND status = 'queued'",
        )
        .bind(change.not_before)
        .bind(change.priority)
        .bind(change.max_tries)
        .bind(change.kill_at)
        .bind(now_ms())
        .bind(job_id)
        .execute(self.conn())
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let store = self.store.clone();
        events::append(&store, self.conn(), events).await?;
        Ok(sqlx::query_as("SELECT * FROM jobs WHERE id = $1")
            .bind(job_id)
            .fetch_optional(self.conn())
            .await?)
    }
}

crate::own_transaction! {
    /// [`crate::Tx::request_cancel`] on its own.
    fn request_cancel(&self, job_id: &str) -> bool;
    /// [`crate::Tx::update_job`] on its own.
    fn update_job(&self, job_id: &str, from: &[JobStatus], update: &JobUpdate, events: &[NewEvent]) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::new_id;
    use crate::test_util::store;

    async fn queued_job(store: &Store) -> Job {
        let client = store
            .create_client(crate::NewClient::application(&new_id("c")))
            .await
            .expect("client");
        store
            .insert_document("ab", 10, "image/tiff", 1, Some(&client.id))
            .await
            .expect("doc");
        let job = NewJob {
            id: new_id("job"),
            batch_id: new_id("bat"),
            client_id: client.id.clone(),
            recipient: "+15551234".into(),
            priority: 100,
            options: "{}".into(),
            max_tries: 3,
            kill_at: i64::MAX,
            not_before: 0,
            pages_total: 1,
            idempotency_key: Some("k1".into()),
            request_hash: None,
            documents: vec!["ab".into()],
        };
        let (created, jobs) = store
            .insert_jobs(std::slice::from_ref(&job), &[])
            .await
            .expect("insert");
        assert!(created);
        let (created_again, again) = store
            .insert_jobs(
                &[NewJob {
                    id: new_id("job"),
                    ..job
                }],
                &[],
            )
            .await
            .expect("again");
        assert!(
            !created_again,
            "the idempotency key must return the first submission"
        );
        assert_eq!(again[0].id, jobs[0].id);
        jobs.into_iter().next().expect("one job")
    }

    fn attempt(job: &Job, fs: &str) -> Attempt {
        Attempt::offered(
            new_id("att"),
            job.id.clone(),
            job.tries + 1,
            fs.into(),
            now_ms(),
        )
    }

    /// Records the attempt as offered (its job dispatched); whether it was.
    async fn start(store: &Store, a: &Attempt) -> bool {
        let event = NewEvent::new("job.dispatched", serde_json::json!({}), vec![]);
        store
            .start_attempts(&[(a.clone(), event)])
            .await
            .expect("start")
            == vec![true]
    }

    /// A one-page attempt that succeeded, and its job's update to `sent`.
    fn sent() -> (AttemptFinish, JobUpdate) {
        let finish = AttemptFinish {
            pages_sent: 1,
            ..AttemptFinish::new(AttemptStatus::Succeeded)
        };
        let update = JobUpdate {
            pages_sent: Some(1),
            ..JobUpdate::to(JobStatus::Sent)
        };
        (finish, update)
    }

    fn job_to(status: JobStatus) -> JobUpdate {
        JobUpdate::to(status)
    }

    /// Ends an open attempt, its job going to `status`.
    async fn end_open(
        store: &Store,
        a: &Attempt,
        finish: &AttemptFinish,
        status: JobStatus,
    ) -> Ended {
        end(store, a, Ending::Open, finish, Some(&job_to(status))).await
    }

    async fn end(
        store: &Store,
        a: &Attempt,
        ending: Ending,
        finish: &AttemptFinish,
        job: Option<&JobUpdate>,
    ) -> Ended {
        store
            .finish_attempt(&a.id, ending, finish, job, &[], &[])
            .await
            .expect("finish")
    }

    /// A store holding a queued job and its first attempt, started on a fax server.
    async fn started() -> (
        Store,
        crate::test_util::tempdir::Dir,
        Job,
        crate::FaxServer,
        Attempt,
    ) {
        let (store, dir) = store().await;
        let job = queued_job(&store).await;
        let fs = store
            .create_fax_server("fs1", &[], "enr", i64::MAX)
            .await
            .expect("fs");
        let a = attempt(&job, &fs.id);
        assert!(start(&store, &a).await);
        (store, dir, job, fs, a)
    }

    async fn status_of(store: &Store, job: &Job, attempt: &Attempt) -> (JobStatus, AttemptStatus) {
        let j = store.job(&job.id).await.expect("job").expect("exists");
        let a = store
            .attempt(&attempt.id)
            .await
            .expect("attempt")
            .expect("exists");
        (j.status, a.status)
    }

    /// A row that does not decode (a status no build wrote, a damaged JSON column) is an error that says
    /// the data is corrupt, never a row of defaults.
    #[tokio::test]
    async fn corrupt_rows_are_errors_not_defaults() {
        let (store, _dir, job, fs, _a) = started().await;
        sqlx::query("UPDATE jobs SET status = 'teleported' WHERE id = $1")
            .bind(&job.id)
            .execute(&store.writer)
            .await
            .expect("update");
        match store.job(&job.id).await {
            Err(crate::Error::Corrupt(why)) => assert!(why.contains("teleported"), "{why}"),
            other => panic!("a job with an unknown status read as {other:?}"),
        }
        sqlx::query("UPDATE fax_servers SET dial_prefixes = '[\"+49\"' WHERE id = $1")
            .bind(&fs.id)
            .execute(&store.writer)
            .await
            .expect("update");
        assert!(
            matches!(
                store.fax_server(&fs.id).await,
                Err(crate::Error::Corrupt(_))
            ),
            "a fax server with damaged dial prefixes"
        );
    }

    #[tokio::test]
    async fn an_attempt_starts_once_and_finishes_once() {
        let (store, _dir, job, fs, a) = started().await;
        assert!(
            !start(&store, &attempt(&job, &fs.id)).await,
            "job no longer queued"
        );
        assert_eq!(store.open_attempts().await.expect("open").len(), 1);
        let (finish, update) = sent();
        assert_eq!(
            end(&store, &a, Ending::Open, &finish, Some(&update)).await,
            Ended::WithJob
        );
        assert_eq!(
            end(&store, &a, Ending::Open, &finish, Some(&update)).await,
            Ended::NotOpen,
            "a repeated result changes nothing"
        );
        let job = store.job(&job.id).await.expect("get").expect("exists");
        assert_eq!(
            (job.status.as_str(), job.tries, job.pages_sent),
            ("sent", 1, 1)
        );
        assert!(job.finished_at.is_some());
    }

    /// A batch of link reports ends sent attempts as `finish_attempt` ends them one by one: a second
    /// report of one attempt changes nothing, of two attempts of one job the first moves the job and the
    /// second ends alone, an attempt no longer open is left as it is; each outcome's events, and the
    /// highest link message id per fax server, are committed with them.
    #[tokio::test]
    async fn a_batch_ends_sent_attempts_as_one_by_one() {
        let (store, _dir, job, fs, a) = started().await;
        // A second attempt of the same job (as when one was in doubt and the job went again).
        let b = Attempt {
            number: 2,
            ..attempt(&job, &fs.id)
        };
        sqlx::query(
            "INSERT INTO attempts (id, job_id, number, fax_server_id, status, phase, started_at)
             VALUES ($1, $2, 2, $3, 'active', 'sending', 0)",
        )
        .bind(&b.id)
        .bind(&job.id)
        .bind(&fs.id)
        .execute(&store.writer)
        .await
        .expect("second attempt");
        // Another job whose attempt was abandoned: a batch does not end it.
        let other = queued_job(&store).await;
        let c = attempt(&other, &fs.id);
        assert!(start(&store, &c).await);
        let abandoned = AttemptFinish::new(AttemptStatus::Abandoned);
        assert_eq!(
            end(&store, &c, Ending::Open, &abandoned, None).await,
            Ended::AttemptOnly
        );

        let kind = |k: &str| NewEvent::new(k, serde_json::json!({}), vec![job.client_id.clone()]);
        let sent_end = |att: &Attempt, pages| SentEnd {
            attempt_id: att.id.clone(),
            pages,
            stats: Some("{}".into()),
            events: vec![kind("test.moved")],
            otherwise: vec![kind("test.alone")],
        };
        let batch = LinkBatch {
            progress: Vec::new(),
            links_applied: vec![(fs.id.clone(), 41)],
            sent: vec![
                sent_end(&a, 3),
                sent_end(&a, 3),
                sent_end(&b, 2),
                sent_end(&c, 1),
            ],
        };
        let ended = store.record_link_batch(&batch).await.expect("batch");
        assert_eq!(
            ended,
            vec![
                Ended::WithJob,
                Ended::NotOpen,
                Ended::AttemptOnly,
                Ended::NotOpen
            ]
        );
        let j = store.job(&job.id).await.expect("job").expect("exists");
        assert_eq!((j.status, j.pages_sent), (JobStatus::Sent, 3));
        assert!(j.finished_at.is_some());
        for (att, pages) in [(&a, 3), (&b, 2)] {
            let stored = store.attempt(&att.id).await.expect("a").expect("a");
            assert_eq!(
                (stored.status, stored.phase, stored.pages_sent),
                (AttemptStatus::Succeeded, Phase::Finished, pages)
            );
            assert!(stored.ended_at.is_some() && stored.deadline_at.is_none());
        }
        let c_now = store.attempt(&c.id).await.expect("c").expect("c");
        assert_eq!(c_now.status, AttemptStatus::Abandoned);
        let kinds: Vec<String> =
            sqlx::query_scalar("SELECT kind FROM events WHERE kind LIKE 'test.%' ORDER BY seq")
                .fetch_all(&store.writer)
                .await
                .expect("events");
        assert_eq!(kinds, ["test.moved", "test.alone"]);
        assert_eq!(store.link_last_applied(&fs.id).await.expect("applied"), 41);
        // An id lower than the one recorded never lowers it.
        let lower = LinkBatch {
            links_applied: vec![(fs.id.clone(), 7)],
            ..LinkBatch::default()
        };
        assert!(
            store
                .record_link_batch(&lower)
                .await
                .expect("batch")
                .is_empty()
        );
        assert_eq!(store.link_last_applied(&fs.id).await.expect("applied"), 41);
    }

    /// A cancel asked for while an attempt's end is decided wins over a retry: the store does not queue
    /// the job again (the caller decides anew), and a job whose cancel was asked for is never started.
    #[tokio::test]
    async fn a_cancel_asked_for_meanwhile_is_never_queued_over() {
        let (store, _dir, job, fs, a) = started().await;
        assert!(store.request_cancel(&job.id).await.expect("cancel"));
        let failed = AttemptFinish {
            fault: Some(FaultSide::Recipient),
            reason: Some("busy".into()),
            ..AttemptFinish::new(AttemptStatus::Failed)
        };
        assert_eq!(
            end_open(&store, &a, &failed, JobStatus::Queued).await,
            Ended::CancelRequested
        );
        assert_eq!(
            status_of(&store, &job, &a).await,
            (JobStatus::Dispatched, AttemptStatus::Offered),
            "nothing written"
        );
        assert_eq!(
            end_open(&store, &a, &failed, JobStatus::Cancelled).await,
            Ended::WithJob
        );
        // A job left queued with its cancel asked for is not started.
        let other = queued_job(&store).await;
        assert!(store.request_cancel(&other.id).await.expect("cancel"));
        assert!(!start(&store, &attempt(&other, &fs.id)).await);
    }

    /// Deleting a client marks its jobs on fax servers, in doubt included, cancel-requested: none of them
    /// is queued or offered again after the deletion.
    #[tokio::test]
    async fn a_deleted_clients_job_in_doubt_is_never_sent_again() {
        let (store, _dir, job, _fs, a) = started().await;
        assert!(store.mark_in_doubt(&a.id, 123, &[]).await.expect("doubt"));
        let gone = store
            .delete_client(&job.client_id)
            .await
            .expect("delete")
            .expect("deleted");
        assert_eq!(gone.open_jobs, vec![job.id.clone()]);
        let after = store.job(&job.id).await.expect("job").expect("exists");
        assert!(after.cancel_requested, "{after:?}");
        let failed = AttemptFinish {
            fault: Some(FaultSide::FaxServer),
            ..AttemptFinish::new(AttemptStatus::Abandoned)
        };
        assert_eq!(
            end_open(&store, &a, &failed, JobStatus::Queued).await,
            Ended::CancelRequested
        );
    }

    /// An attempt in doubt is open (its job waits for it) and comes back to `active` when its fax server
    /// reports (or `offered` when the offer goes again); one that was abandoned takes a late `sent`
    /// truthfully: the attempt succeeded and its job is sent, even after a retry failed it; a late failure
    /// changes the attempt only, and an open attempt of a job that moved on changes only itself.
    #[tokio::test]
    async fn in_doubt_and_late_results() {
        let (store, _dir, job, fs, a) = started().await;
        assert!(store.mark_in_doubt(&a.id, 123, &[]).await.expect("doubt"));
        assert!(
            !store.mark_in_doubt(&a.id, 456, &[]).await.expect("again"),
            "once"
        );
        assert_eq!(
            status_of(&store, &job, &a).await,
            (JobStatus::InDoubt, AttemptStatus::InDoubt)
        );
        assert_eq!(
            store.open_attempts().await.expect("open").len(),
            1,
            "in doubt is open"
        );
        let stored = store.attempt(&a.id).await.expect("a").expect("a");
        assert_eq!(stored.deadline_at, Some(123));
        let resume = |accepted| store.resume_attempt(&a.id, accepted, &[]);
        assert!(resume(false).await.expect("offer again"));
        assert_eq!(
            status_of(&store, &job, &a).await,
            (JobStatus::Dispatched, AttemptStatus::Offered)
        );
        assert!(store.mark_in_doubt(&a.id, 123, &[]).await.expect("doubt"));
        assert!(resume(true).await.expect("resume"));
        assert!(!resume(true).await.expect("resume"), "once");
        assert_eq!(
            status_of(&store, &job, &a).await,
            (JobStatus::Active, AttemptStatus::Active)
        );
        assert!(store.mark_in_doubt(&a.id, 123, &[]).await.expect("doubt"));

        // Abandoned, the job retried and failed.
        let abandoned = AttemptFinish {
            fault: Some(FaultSide::FaxServer),
            ..AttemptFinish::new(AttemptStatus::Abandoned)
        };
        let retry = job_to(JobStatus::Queued);
        assert_eq!(
            end(&store, &a, Ending::Open, &abandoned, Some(&retry)).await,
            Ended::WithJob
        );
        let failed = job_to(JobStatus::Failed);
        assert!(
            store
                .update_job(&job.id, &[JobStatus::Queued], &failed, &[])
                .await
                .expect("fail")
        );

        // A late failure is recorded on the attempt only; a late success also sends the job.
        let busy = AttemptFinish {
            fault: Some(FaultSide::Recipient),
            reason: Some("busy".into()),
            ..AttemptFinish::new(AttemptStatus::Failed)
        };
        assert_eq!(
            end(&store, &a, Ending::Open, &busy, None).await,
            Ended::NotOpen,
            "an abandoned attempt is not open"
        );
        let (finish, to_sent) = sent();
        assert_eq!(
            end(&store, &a, Ending::Late, &finish, Some(&to_sent)).await,
            Ended::WithJob
        );
        assert_eq!(
            status_of(&store, &job, &a).await,
            (JobStatus::Sent, AttemptStatus::Succeeded)
        );
        assert_eq!(
            end(&store, &a, Ending::Late, &busy, None).await,
            Ended::NotOpen,
            "a late result is recorded once"
        );

        // A job that moved on keeps its state when an open attempt ends (here: sent, a retry cancelled).
        let b = Attempt {
            number: 2,
            ..attempt(&job, &fs.id)
        };
        let set_status = |status: &'static str| {
            sqlx::query("UPDATE jobs SET status = $1 WHERE id = $2")
                .bind(status)
                .bind(&job.id)
                .execute(&store.writer)
        };
        set_status("queued").await.expect("requeue");
        assert!(start(&store, &b).await);
        set_status("sent").await.expect("sent");
        let cancelled = job_to(JobStatus::Cancelled);
        assert_eq!(
            end(&store, &b, Ending::Open, &busy, Some(&cancelled)).await,
            Ended::AttemptOnly
        );
        assert_eq!(
            status_of(&store, &job, &b).await,
            (JobStatus::Sent, AttemptStatus::Failed)
        );
        assert!(
            !store.request_cancel(&job.id).await.expect("cancel"),
            "a finished job takes no cancel"
        );
    }
}
