//! Webhook delivery: each event is POSTed as JSON, signed with HMAC-SHA256, retried with backoff, and every
//! try is logged. The signing secret of a webhook is derived from the server key and the webhook id, shown
//! to its owner once at creation and never stored.
//!
//! Signature header: `X-Faxhub-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

use crate::AppState;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

type HmacSha256 = Hmac<Sha256>;

/// Delays before the 2nd, 3rd, … try; after the last, the delivery is marked failed.
const BACKOFF_SECS: [i64; 8] = [1, 5, 30, 120, 600, 1800, 3600, 7200];

pub fn secret_for(server_key: &[u8; 32], webhook_id: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(server_key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"faxhub webhook secret\0");
    mac.update(webhook_id.as_bytes());
    format!("whsec_{}", hex::encode(mac.finalize().into_bytes()))
}

pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

pub async fn run(app: AppState) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("webhook client could not start: {e}");
            return;
        }
    };
    loop {
        if let Err(e) = round(&app, &client).await {
            tracing::error!("webhook round failed: {e}");
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), app.webhook_wake.notified()).await;
    }
}

async fn round(app: &AppState, client: &reqwest::Client) -> store::Result<()> {
    let now = store::now_ms();
    for d in app.store.due_deliveries(now, 50).await? {
        let (Some(hook), Some(event)) = (
            app.store.webhook(&d.webhook_id).await?,
            app.store.event(d.event_seq).await?,
        ) else {
            app.store
                .record_delivery_try(&d.id, None, Some("webhook or event gone"), None, "failed")
                .await?;
            continue;
        };
        let body = serde_json::json!({
            "id": event.event_id, "seq": event.seq, "type": event.kind, "created_at": event.created_at,
            "data": serde_json::from_str::<serde_json::Value>(&event.payload).unwrap_or_default(),
        })
        .to_string();
        let ts = now / 1000;
        let signature = sign(&secret_for(&app.server_key, &hook.id), ts, body.as_bytes());
        let sent = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .header("x-faxhub-event", &event.kind)
            .header("x-faxhub-delivery", &d.id)
            .header("x-faxhub-signature", signature)
            .body(body)
            .send()
            .await;
        let (status, error) = match sent {
            Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
            Ok(r) => (
                Some(r.status().as_u16()),
                Some(format!("answered {}", r.status())),
            ),
            Err(e) => (None, Some(format!("request failed: {e}"))),
        };
        if error.is_none() {
            app.metrics.webhook_ok.inc();
            app.store
                .record_delivery_try(&d.id, status, None, None, "delivered")
                .await?;
        } else {
            app.metrics.webhook_failed.inc();
            // d.attempts counts the tries before this one; the policy caps them all.
            let max_attempts = app.live.with(|s| i64::from(s.webhooks.max_attempts));
            let next = usize::try_from(d.attempts)
                .ok()
                .filter(|_| d.attempts + 1 < max_attempts)
                .and_then(|i| BACKOFF_SECS.get(i).or(BACKOFF_SECS.last()))
                .map(|s| now + s * 1000);
            app.store
                .record_delivery_try(&d.id, status, error.as_deref(), next, "failed")
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_keyed_and_stable() {
        let key = [7u8; 32];
        let s1 = secret_for(&key, "wh_1");
        assert_eq!(s1, secret_for(&key, "wh_1"));
        assert_ne!(s1, secret_for(&key, "wh_2"));
        assert_ne!(s1, secret_for(&[8u8; 32], "wh_1"));
        let sig = sign(&s1, 1700000000, b"{}");
        assert!(
            sig.starts_with("t=1700000000,v1=") && sig.len() == 16 + 64,
            "{sig}"
        );
        assert_ne!(sig, sign(&s1, 1700000000, b"{ }"));
    }
}
