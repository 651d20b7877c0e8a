//! The job vocabulary the supervisor keeps (store, dispatcher, API): where a job and each of its attempts
//! are. Kept as text in the database (`sqlx` feature, which only the store turns on) and in the API, in
//! `snake_case`.
//!
//! Job: `queued` (waiting for its next attempt) → `dispatched` (an attempt was offered) → `active` (a fax
//! server accepted it) → `sent` | `failed` | `cancelled`, or back to `queued` for a retry; `in_doubt` while
//! its attempt is. Attempt: `offered` → `active` → `succeeded` | `failed` | `abandoned` | `cancelled`;
//! `offered` or `active` → `in_doubt` (its fax server went silent; the call may be running).

vocabulary! {
    /// Where a job is.
    pub enum JobStatus ("a job status") {
        Queued = "queued",
        Dispatched = "dispatched",
        Active = "active",
        InDoubt = "in_doubt",
        Sent = "sent",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl JobStatus {
    /// Sent, failed or cancelled: nothing more happens to it.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Sent | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

vocabulary! {
    /// Where an attempt is.
    pub enum AttemptStatus ("an attempt status") {
        Offered = "offered",
        Active = "active",
        InDoubt = "in_doubt",
        Succeeded = "succeeded",
        Failed = "failed",
        /// The supervisor gave up waiting and moved the job on; a later report replaces it.
        Abandoned = "abandoned",
        Cancelled = "cancelled",
    }
}

impl AttemptStatus {
    /// Offered, active or in doubt: a fax server may still be working on it.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            AttemptStatus::Offered | AttemptStatus::Active | AttemptStatus::InDoubt
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each word reads back as itself, and serde writes the same word (`as_str` and serde's
    /// `snake_case` must agree, or the API and the database would differ).
    fn check<T>(all: &[T])
    where
        T: Copy
            + std::fmt::Debug
            + PartialEq
            + std::fmt::Display
            + std::str::FromStr
            + serde::Serialize,
        <T as std::str::FromStr>::Err: std::fmt::Debug,
    {
        for &v in all {
            assert_eq!(v.to_string().parse::<T>().expect("parses"), v);
            assert_eq!(
                serde_json::to_value(v).expect("json"),
                serde_json::json!(v.to_string())
            );
        }
    }

    #[test]
    fn statuses_read_and_write_as_the_api_shows_them() {
        check(JobStatus::ALL);
        check(AttemptStatus::ALL);
        check(crate::Phase::ALL);
        check(crate::FaultSide::ALL);
        assert_eq!(
            "done".parse::<JobStatus>(),
            Err("\"done\" is not a job status; use queued, dispatched, active, in_doubt, sent, failed, cancelled".into())
        );
        assert_eq!(
            serde_json::to_value(AttemptStatus::InDoubt).expect("json"),
            serde_json::json!("in_doubt")
        );
    }
}
