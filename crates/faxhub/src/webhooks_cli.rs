//! `faxhub webhooks`: register, change, list and delete your webhooks, rotate their secrets, ping them,
//! read their delivery logs and deliver a past event again. Deliveries follow the Standard Webhooks
//! specification (`webhook-id`, `webhook-timestamp`, `webhook-signature`), so its libraries verify them.
//! Webhooks reach only public addresses unless the supervisor's settings allow a network; an administrator
//! lets them reach the supervisor's own machine with
//! `faxhub settings set supervisor 'webhooks.allowed_networks=["127.0.0.0/8","::1"]'`.

use crate::cli::say;
use crate::cli::{Api, view};
use clap::Subcommand;
use serde_json::json;
use supervisor::api::events::{DeliveryView, WebhookView};

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// List your webhooks.
    List,
    /// Register a webhook; prints its signing secret (shown this once).
    Add {
        /// http(s) URL that receives the events as POSTs.
        url: String,
        /// An event kind (job.sent), a pattern (job.*) or * (repeatable; default *).
        #[arg(long = "event")]
        events: Vec<String>,
    },
    /// Change a webhook's URL or event kinds.
    Edit {
        /// The webhook's id.
        webhook: String,
        /// A new URL, checked as at creation.
        #[arg(long)]
        url: Option<String>,
        /// The new event kinds (repeatable; replaces the old ones).
        #[arg(long = "event")]
        events: Vec<String>,
    },
    /// Give a webhook a new signing secret (printed, shown this once); the old one also signs for
    /// --overlap seconds.
    RotateSecret {
        /// The webhook's id.
        webhook: String,
        /// Seconds the previous secret still signs deliveries too.
        #[arg(long, default_value_t = 86_400)]
        overlap: u64,
    },
    /// Send a webhook.ping event to a webhook, to try the endpoint.
    Ping {
        /// The webhook's id.
        webhook: String,
    },
    /// Delete a webhook; its pending deliveries are cancelled.
    Rm {
        /// The webhook's id.
        webhook: String,
    },
    /// A webhook's delivery log, newest first.
    Deliveries {
        /// The webhook's id.
        webhook: String,
    },
    /// Deliver a past event again (same webhook-id).
    Redeliver {
        /// The webhook's id.
        webhook: String,
        /// The delivery's id (as `webhooks deliveries` prints it).
        delivery: String,
    },
}

pub async fn run(cmd: WebhooksCommand) -> anyhow::Result<()> {
    let api = Api::load()?;
    match cmd {
        WebhooksCommand::List => {
            let hooks: Vec<WebhookView> = api.get_view("/v1/webhooks").await?;
            say!("ID  STATE  URL  EVENTS");
            for h in hooks {
                say!(
                    "{}  {}  {}  {}",
                    h.id,
                    if h.active { "active " } else { "deleted" },
                    h.url,
                    h.events.join(",")
                );
            }
        }
        WebhooksCommand::Add { url, events } => {
            let h: WebhookView = view(
                api.post_json("/v1/webhooks", &json!({"url": url, "events": events}))
                    .await?,
            )?;
            say!("webhook {}", h.id);
            say!(
                "signing secret (shown once): {}",
                h.secret.as_deref().unwrap_or("")
            );
        }
        WebhooksCommand::Edit {
            webhook,
            url,
            events,
        } => {
            let mut change = json!({});
            if let Some(u) = url {
                change["url"] = json!(u);
            }
            if !events.is_empty() {
                change["events"] = json!(events);
            }
            let h: WebhookView = view(
                api.send(
                    reqwest::Method::PATCH,
                    &format!("/v1/webhooks/{webhook}"),
                    Some(&change),
                )
                .await?,
            )?;
            say!("webhook {}  {}  {}", h.id, h.url, h.events.join(","));
        }
        WebhooksCommand::RotateSecret { webhook, overlap } => {
            let h: WebhookView = view(
                api.post_json(
                    &format!("/v1/webhooks/{webhook}/rotate-secret"),
                    &json!({"overlap_secs": overlap}),
                )
                .await?,
            )?;
            say!(
                "new signing secret (shown once): {}",
                h.secret.as_deref().unwrap_or("")
            );
            if let Some(until) = h.previous_secret_valid_until {
                say!("the previous secret also signs until {until}");
            }
        }
        WebhooksCommand::Ping { webhook } => {
            let d: DeliveryView = view(
                api.post_json(&format!("/v1/webhooks/{webhook}/ping"), &json!({}))
                    .await?,
            )?;
            say!("ping queued as delivery {}", d.id);
        }
        WebhooksCommand::Redeliver { webhook, delivery } => {
            let d: DeliveryView = view(
                api.post_json(
                    &format!("/v1/webhooks/{webhook}/deliveries/{delivery}/redeliver"),
                    &json!({}),
                )
                .await?,
            )?;
            say!("delivery {} is {} again", d.id, d.status);
        }
        WebhooksCommand::Rm { webhook } => {
            api.delete(&format!("/v1/webhooks/{webhook}")).await?;
            say!("webhook {webhook} deleted; its pending deliveries are cancelled");
        }
        WebhooksCommand::Deliveries { webhook } => {
            let log: Vec<DeliveryView> = api
                .get_view(&format!("/v1/webhooks/{webhook}/deliveries"))
                .await?;
            say!("ID  UPDATED  EVENT  STATUS  TRIES  ERROR");
            for d in log {
                say!(
                    "{}  {}  event {}  {}  tries {}  {}",
                    d.id,
                    d.updated_at,
                    d.event_seq,
                    d.status,
                    d.attempts,
                    d.last_error.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}
