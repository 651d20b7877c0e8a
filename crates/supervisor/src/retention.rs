//! The retention worker: removes finished jobs, received faxes, unused documents, events and audit entries
//! older than the supervisor's settings keep them. Runs hourly and whenever the settings change.

use crate::AppState;
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;

/// One pass; answers what was removed.
pub async fn sweep(app: &AppState) -> store::Result<store::Purged> {
    let r = app.live.with(|s| s.retention.clone());
    let now = store::now_ms();
    let cut = |days: u32| (days > 0).then(|| now - i64::from(days) * DAY_MS);
    let purged = app
        .store
        .purge(store::Cutoffs {
            finished_jobs: cut(r.finished_jobs_days),
            inbound_faxes: cut(r.inbound_faxes_days),
            documents: cut(r.documents_days),
            events: cut(r.events_days),
            audit: cut(r.audit_days),
        })
        .await?;
    for sha in &purged.documents {
        if let Some(path) = app.docs.path_of(sha)
            && let Err(e) = tokio::fs::remove_file(&path).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(sha256 = %sha, "retention could not remove a document file: {e}");
        }
    }
    if purged != store::Purged::default() {
        tracing::info!(
            jobs = purged.jobs,
            inbound_faxes = purged.inbound_faxes,
            documents = purged.documents.len(),
            events = purged.events,
            audit = purged.audit,
            "retention removed old records"
        );
    }
    Ok(purged)
}

pub async fn run(app: AppState) {
    loop {
        if let Err(e) = sweep(&app).await {
            tracing::error!("retention pass failed: {e}");
        }
        let _ =
            tokio::time::timeout(Duration::from_secs(3600), app.retention_wake.notified()).await;
    }
}
