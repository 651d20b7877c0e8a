//! The fax server link face: a WebSocket the fax server opens to `/v1/node/link` (see the `protocol`
//! crate; `api::node::link` authenticates the request and upgrades it). It reconciles on hello, and hands every message to the dispatcher
//! or the inbound router; a message is acknowledged only after its effect is committed.

use crate::AppState;
use crate::auth::Revoked;
use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use protocol::{
    Body, Envelope, FaultSide, JobProgress, JobResult, Outcome, PROTOCOL_VERSION, Phase, Welcome,
};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Whether a revocation reached this fax server: announced for it, or missed (the channel lagged) and
/// the store no longer knows it.
async fn revoked_now(
    app: &AppState,
    fs_id: &str,
    r: Result<Revoked, broadcast::error::RecvError>,
) -> bool {
    match r {
        Ok(Revoked::FaxServer(id)) => id == fs_id,
        Ok(_) => false,
        Err(broadcast::error::RecvError::Lagged(_)) => {
            !matches!(app.store.fax_server(fs_id).await, Ok(Some(fs)) if fs.revoked_at.is_none())
        }
        Err(broadcast::error::RecvError::Closed) => false,
    }
}

/// The link ended because the fax server's credential was revoked.
#[derive(Debug, thiserror::Error)]
#[error("the fax server's credential was revoked")]
struct CredentialRevoked;

/// The link ended because the supervisor is stopping.
#[derive(Debug, thiserror::Error)]
#[error("the supervisor is shutting down")]
struct SupervisorStopping;

pub async fn serve(
    app: AppState,
    fs: store::FaxServer,
    socket: WebSocket,
    mut revoked: broadcast::Receiver<Revoked>,
) -> anyhow::Result<()> {
    let (mut sink, mut stream) = socket.split();
    let heartbeat = Duration::from_secs(app.config.deadlines.heartbeat_secs.max(1));
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .map_err(|_| anyhow::anyhow!("no hello within 10 s"))?;
    let hello = match first {
        Some(Ok(Message::Text(text))) => match Envelope::from_json(&text)?.body {
            Body::Hello(h) => h,
            other => anyhow::bail!("expected hello, got {other:?}"),
        },
        other => anyhow::bail!("expected hello, got {other:?}"),
    };
    if hello.protocol_version != PROTOCOL_VERSION {
        let bye = Envelope::unacked(Body::Goodbye {
            reason: format!(
                "protocol version {} is not supported; this supervisor speaks {PROTOCOL_VERSION}",
                hello.protocol_version
            ),
        });
        sink.send(Message::Text(bye.to_json().into())).await?;
        anyhow::bail!(
            "fax server speaks protocol version {}",
            hello.protocol_version
        );
    }
    app.store
        .record_fax_server_hello(&fs.id, &hello.capabilities)
        .await?;
    let expected: Vec<String> = app
        .store
        .open_attempts()
        .await?
        .into_iter()
        .filter(|a| a.fax_server_id == fs.id)
        .map(|a| a.id)
        .collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<Envelope>();
    tx.send(Envelope::unacked(Body::Welcome(Welcome {
        protocol_version: PROTOCOL_VERSION,
        fax_server_id: fs.id.clone(),
        heartbeat_interval_ms: u64::try_from(heartbeat.as_millis()).unwrap_or(10_000),
        expected_attempts: expected,
    })))?;
    // The writer also pings every heartbeat interval, so that an idle fax server hears from its supervisor
    // and does not take the silence for a dead link.
    let mut writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval(heartbeat);
        loop {
            let frame = tokio::select! {
                env = rx.recv() => match env {
                    Some(env) => Message::Text(env.to_json().into()),
                    None => break,
                },
                _ = ping.tick() => Message::Ping(Vec::new().into()),
            };
            if sink.send(frame).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    tracing::info!(fax_server = %fs.name, channels = hello.capabilities.channels, "fax server connected");
    // Revoked while it said hello: it must not be put back into routing.
    while let Ok(r) = revoked.try_recv() {
        if revoked_now(&app, &fs.id, Ok(r)).await {
            drop(tx);
            writer.abort();
            return Err(CredentialRevoked.into());
        }
    }
    let (generation, _) = app
        .dispatcher
        .connected(
            &fs.id,
            hello.capabilities.clone(),
            tx.clone(),
            hello.in_flight,
        )
        .await?;
    // Settings registered while it was away (or never received) go now.
    let desired = app
        .store
        .settings_state(&fs.id)
        .await?
        .map_or(0, |s| s.desired_version);
    if desired > 0 && u64::try_from(desired).ok() != Some(hello.settings_version) {
        crate::settings::push(&app, &fs.id).await?;
    }
    let result = read_loop(&app, &fs, &mut stream, &tx, heartbeat * 3, &mut revoked).await;
    app.dispatcher.disconnected(&fs.id, generation).await?;
    let goodbye = match &result {
        Err(e) if e.downcast_ref::<CredentialRevoked>().is_some() => {
            Some(CredentialRevoked.to_string())
        }
        Err(e) if e.downcast_ref::<SupervisorStopping>().is_some() => {
            Some(SupervisorStopping.to_string())
        }
        _ => None,
    };
    if let Some(reason) = goodbye {
        // What was queued before (the cancels sent just before a revocation), and the goodbye, still go.
        let _ = tx.send(Envelope::unacked(Body::Goodbye { reason }));
        drop(tx);
        if tokio::time::timeout(Duration::from_secs(2), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    } else {
        drop(tx);
        writer.abort();
    }
    tracing::info!(fax_server = %fs.name, "fax server disconnected");
    match result {
        Err(e) if e.downcast_ref::<SupervisorStopping>().is_some() => Ok(()),
        other => other,
    }
}

async fn read_loop(
    app: &AppState,
    fs: &store::FaxServer,
    stream: &mut futures::stream::SplitStream<WebSocket>,
    tx: &mpsc::UnboundedSender<Envelope>,
    silence: Duration,
    revoked: &mut broadcast::Receiver<Revoked>,
) -> anyhow::Result<()> {
    let mut last_applied = app.store.link_last_applied(&fs.id).await?;
    loop {
        // Other credentials' revocations do not move the deadline.
        let deadline = tokio::time::Instant::now() + silence;
        let next = loop {
            // Revocation first: once announced, nothing more from this fax server is applied (not even the
            // answer to the cancels sent just before it, which would read as the client cancelling).
            tokio::select! {
                biased;
                () = app.stopping.cancelled() => return Err(SupervisorStopping.into()),
                r = revoked.recv() => match r {
                    // Nobody can announce any more (the supervisor is stopping): just read.
                    Err(broadcast::error::RecvError::Closed) => {
                        break tokio::time::timeout_at(deadline, stream.next()).await;
                    }
                    r => {
                        if revoked_now(app, &fs.id, r).await {
                            return Err(CredentialRevoked.into());
                        }
                    }
                },
                next = tokio::time::timeout_at(deadline, stream.next()) => break next,
            }
        };
        let msg = match next {
            Err(_) => anyhow::bail!("no message for {silence:?}"),
            Ok(None) => return Ok(()),
            Ok(Some(msg)) => msg?,
        };
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(_) => return Ok(()),
            _ => continue,
        };
        let env = match Envelope::from_json(&text) {
            Ok(env) => env,
            Err(e) => {
                tracing::warn!(fax_server = %fs.name, "dropping malformed link message: {e}");
                continue;
            }
        };
        if env.msg_id != 0 && env.msg_id <= last_applied {
            // Applied before: acknowledged again, after whatever of it is still being committed.
            app.dispatcher.applied(&fs.id, env.msg_id, tx.clone());
            continue;
        }
        if let Body::Goodbye { reason } = &env.body {
            // A fax server that stops says so; it is a clean end, not a lost link.
            tracing::info!(fax_server = %fs.name, "fax server said goodbye: {reason}");
            return Ok(());
        }
        apply(app, &fs.id, env.body).await?;
        if env.msg_id != 0 {
            // Acknowledged once its id is committed (with the writer's next batch).
            app.dispatcher.applied(&fs.id, env.msg_id, tx.clone());
            last_applied = env.msg_id;
        }
    }
}

async fn apply(app: &AppState, fs_id: &str, body: Body) -> anyhow::Result<()> {
    let d = &app.dispatcher;
    match body {
        Body::Heartbeat(hb) => d.heartbeat(fs_id, &hb.channels, hb.line_status),
        Body::JobAccept { attempt_id } => {
            let progress = JobProgress {
                attempt_id,
                phase: Phase::Accepted,
                page: None,
                pages_total: None,
                bit_rate: None,
            };
            d.on_progress(fs_id, progress).await?;
        }
        Body::JobReject { attempt_id, reason } => {
            // A refusal is the fax server's: the job moves on to another one at once.
            let outcome = Outcome::Failed {
                fault: FaultSide::FaxServer,
                reason: protocol::FailureReason::from_code(&reason),
                t30: None,
                pages_sent: 0,
            };
            d.on_result(
                fs_id,
                JobResult {
                    attempt_id,
                    outcome,
                    stats: Default::default(),
                },
            )
            .await?;
        }
        Body::JobProgress(p) => d.on_progress(fs_id, p).await?,
        Body::JobResult(r) => d.on_result(fs_id, r).await?,
        Body::JobUnknown { attempt_id } => d.on_unknown(fs_id, &attempt_id).await?,
        Body::InboundFax(fax) => crate::inbound::receive(app, fs_id, fax).await?,
        Body::SettingsResult {
            version,
            applied,
            error,
        } => {
            let version = i64::try_from(version).unwrap_or(i64::MAX);
            app.store
                .settings_result(fs_id, version, applied, error.as_deref())
                .await?;
        }
        Body::Ack { .. } => {}
        other => {
            tracing::warn!(fax_server = %fs_id, "unexpected message from a fax server: {other:?}")
        }
    }
    Ok(())
}
