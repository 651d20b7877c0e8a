//! The queue: jobs waiting for their next attempt, those due in dispatch order (priority, then age) and
//! those waiting for their time in time order, so a dispatch round touches only what it can dispatch.

use super::JobOptions;
use protocol::DocumentRef;
use std::collections::{BTreeSet, HashMap};
use store::Job;

/// A job waiting for its next attempt.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub(super) job_id: String,
    pub(super) batch_id: String,
    pub(super) client_id: String,
    pub(super) recipient: String,
    pub(super) priority: i64,
    pub(super) not_before: i64,
    pub(super) kill_at: i64,
    /// Pages of all its documents, for the call limit.
    pub(super) pages: i64,
    /// Fax servers that failed this job with a fax-server fault, and until when to avoid them.
    pub(super) avoid: HashMap<String, i64>,
    pub(super) next_attempt_number: i64,
    /// The previous attempt failed in training or transmission: the next one steps down.
    pub(super) step_down: bool,
    pub(super) documents: Vec<DocumentRef>,
    pub(super) options: JobOptions,
}

impl Pending {
    /// A job of client `cli` to +15550100, one page and no documents, for the tests of the queue and of
    /// selection.
    #[cfg(test)]
    pub(super) fn fixture(id: &str, priority: i64, not_before: i64) -> Self {
        Self {
            job_id: id.to_owned(),
            batch_id: "bat".into(),
            client_id: "cli".into(),
            recipient: "+15550100".into(),
            priority,
            not_before,
            kill_at: i64::MAX,
            pages: 1,
            avoid: HashMap::new(),
            next_attempt_number: 1,
            step_down: false,
            documents: Vec::new(),
            options: JobOptions::default(),
        }
    }

    pub(super) fn new(job: &Job, documents: Vec<DocumentRef>, options: JobOptions) -> Self {
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
            step_down: false,
            documents,
            options,
        }
    }
}

/// Jobs waiting for an attempt: those due, in dispatch order, and those waiting for their time, in time
/// order, so a dispatch round touches only what it can dispatch.
#[derive(Debug, Default)]
pub(super) struct Queue {
    pub(super) jobs: HashMap<String, Pending>,
    /// (priority, not_before, job id) of due jobs: lower priority numbers first, then oldest.
    pub(super) ready: BTreeSet<(i64, i64, String)>,
    /// (not_before, job id) of jobs not yet due.
    pub(super) waiting: BTreeSet<(i64, String)>,
}

impl Queue {
    pub(super) fn insert(&mut self, p: Pending, now: i64) {
        self.remove(&p.job_id);
        if p.not_before <= now {
            self.ready
                .insert((p.priority, p.not_before, p.job_id.clone()));
        } else {
            self.waiting.insert((p.not_before, p.job_id.clone()));
        }
        self.jobs.insert(p.job_id.clone(), p);
    }

    pub(super) fn remove(&mut self, job_id: &str) -> Option<Pending> {
        let p = self.jobs.remove(job_id)?;
        self.ready
            .remove(&(p.priority, p.not_before, p.job_id.clone()));
        self.waiting.remove(&(p.not_before, p.job_id.clone()));
        Some(p)
    }

    /// Moves the jobs that became due to the ready set; returns when the next one waiting is due.
    pub(super) fn promote(&mut self, now: i64) -> Option<i64> {
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

    /// The due jobs, in dispatch order.
    pub(super) fn ready(&self) -> impl Iterator<Item = &Pending> {
        self.ready.iter().filter_map(|(_, _, id)| self.jobs.get(id))
    }

    pub(super) fn len(&self) -> usize {
        self.jobs.len()
    }
}

/// How long a job avoids a fax server that failed it with a fax-server fault, ms.
pub(super) const AVOID_MS: i64 = 30_000;

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(q: &Queue) -> Vec<&str> {
        q.ready().map(|p| p.job_id.as_str()).collect()
    }

    #[test]
    fn due_jobs_go_by_priority_then_age_and_later_ones_wait_for_their_time() {
        let mut q = Queue::default();
        q.insert(Pending::fixture("late", 0, 5_000), 1_000);
        q.insert(Pending::fixture("old-low", 5, 10), 1_000);
        q.insert(Pending::fixture("new-high", 1, 900), 1_000);
        q.insert(Pending::fixture("old-high", 1, 100), 1_000);
        assert_eq!(ready(&q), ["old-high", "new-high", "old-low"]);
        assert_eq!(q.len(), 4);

        assert_eq!(q.promote(4_999), Some(5_000), "not due yet: when it is");
        assert_eq!(ready(&q), ["old-high", "new-high", "old-low"]);
        assert_eq!(q.promote(5_000), None, "nothing left waiting");
        assert_eq!(ready(&q), ["late", "old-high", "new-high", "old-low"]);
    }

    #[test]
    fn a_job_is_queued_once_and_removed_from_wherever_it_waits() {
        let mut q = Queue::default();
        q.insert(Pending::fixture("a", 0, 0), 10);
        q.insert(Pending::fixture("a", 0, 50), 10);
        assert_eq!(q.len(), 1, "queued again, not twice");
        assert!(ready(&q).is_empty(), "its new time is not due yet");
        assert_eq!(q.remove("a").map(|p| p.not_before), Some(50));
        assert_eq!(q.promote(100), None, "nothing is left to promote");
        assert!(ready(&q).is_empty());
        assert!(q.remove("a").is_none());
        assert_eq!(q.len(), 0);
    }
}
