//! `faxhub webhooks`: register, list and delete your webhooks, and read their delivery logs.
//! Webhooks reach only public addresses unless the supervisor's settings allow a network; an administrator
//! lets them reach the supervisor's own machine with
//! `faxhub settings set supervisor 'webhooks.allowed_networks=["127.0.0.0/8","::1"]'`.

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
    /// Delete a webhook; its pending deliveries are cancelled.
    Rm { webhook: String },
    /// A webhook's delivery log, newest first.
    Deliveries { webhook: String },
}

pub async fn run(cmd: WebhooksCommand) -> anyhow::Result<()> {
    let api = Api::load()?;
    match cmd {
        WebhooksCommand::List => {
            let hooks: Vec<WebhookView> = api.get_view("/v1/webhooks").await?;
            for h in hooks {
                println!(
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
            println!("webhook {}", h.id);
            println!(
                "signing secret (shown once): {}",
                h.secret.as_deref().unwrap_or("")
            );
        }
        WebhooksCommand::Rm { webhook } => {
            api.delete(&format!("/v1/webhooks/{webhook}")).await?;
            println!("webhook {webhook} deleted; its pending deliveries are cancelled");
        }
        WebhooksCommand::Deliveries { webhook } => {
            let log: Vec<DeliveryView> = api
                .get_view(&format!("/v1/webhooks/{webhook}/deliveries"))
                .await?;
            for d in log {
                println!(
                    "{}  event {}  {}  tries {}  {}",
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
