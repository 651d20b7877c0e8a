//! Receiving (claims 3–4): a fax that a fax server received goes to the proper clients. Routing rules map
//! (fax server, called number, sender's TSI, caller number) to clients or to a grouping's shared inbox;
//! every target must share a grouping with the fax server (claim 14); a fax that matches no rule lands in
//! the shared inbox of the fax server's groupings, never dropped.

use crate::AppState;
use store::{InboundRule, InboxEntry, NewEvent, NewInbound, RuleTarget};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InboundError {
    #[error("the fax's document {0} was not uploaded first")]
    MissingDocument(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

fn matches(rule: &InboundRule, fs_id: &str, fax: &protocol::InboundFax) -> bool {
    let eq = |want: &Option<String>, have: &Option<String>| {
        want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
    };
    rule.fax_server_id.as_deref().is_none_or(|f| f == fs_id)
        && eq(&rule.called_number, &fax.called_number)
        && eq(&rule.tsi, &fax.tsi.as_ref().map(|t| t.trim().to_owned()))
        && rule.caller_prefix.as_ref().is_none_or(|p| {
            fax.caller_number
                .as_ref()
                .is_some_and(|c| c.starts_with(p.as_str()))
        })
}

/// Chooses the inbox entries of a received fax.
pub fn route(
    app: &AppState,
    rules: &[InboundRule],
    fs_id: &str,
    fax: &protocol::InboundFax,
) -> Vec<InboxEntry> {
    let allowed = |t: &RuleTarget| match t {
        RuleTarget::Client(c) => app.access.may_receive(c, fs_id),
        RuleTarget::Grouping(g) => app.access.server_in_grouping(fs_id, g),
    };
    for rule in rules.iter().filter(|r| matches(r, fs_id, fax)) {
        let entries: Vec<InboxEntry> = rule
            .targets()
            .into_iter()
            .filter(|t| {
                let ok = allowed(t);
                if !ok {
                    tracing::warn!(rule = %rule.id, target = ?t, "routing target shares no grouping with the fax server; skipped");
                }
                ok
            })
            .map(|target| InboxEntry { target, rule_id: Some(rule.id.clone()) })
            .collect();
        if !entries.is_empty() {
            return entries;
        }
    }
    app.access
        .groupings_of_server(fs_id)
        .into_iter()
        .map(|g| InboxEntry {
            target: RuleTarget::Grouping(g),
            rule_id: None,
        })
        .collect()
}

pub async fn receive(
    app: &AppState,
    fs_id: &str,
    fax: protocol::InboundFax,
) -> Result<(), InboundError> {
    if app.store.document(&fax.document.sha256).await?.is_none() {
        return Err(InboundError::MissingDocument(fax.document.sha256));
    }
    let rules = app.store.inbound_rules().await?;
    let mut entries = route(app, &rules, fs_id, &fax);
    let mut audience: Vec<String> = Vec::new();
    for e in &entries {
        match &e.target {
            RuleTarget::Client(c) => audience.push(c.clone()),
            RuleTarget::Grouping(g) => {
                audience.extend(
                    app.access
                        .clients_of_grouping(g)
                        .into_iter()
                        .filter(|c| app.access.may_receive(c, fs_id)),
                );
            }
        }
    }
    if entries.is_empty() {
        // A fax server in no grouping: keep the fax for those who receive faxes everywhere rather than drop it.
        for c in app
            .access
            .holders_everywhere(crate::competence::Competence::ReceiveFaxes)
        {
            audience.push(c.clone());
            entries.push(InboxEntry {
                target: RuleTarget::Client(c),
                rule_id: None,
            });
        }
    }
    audience.sort();
    audience.dedup();
    let record = NewInbound {
        id: fax.inbound_id.clone(),
        fax_server_id: fs_id.to_owned(),
        sha256: fax.document.sha256.clone(),
        pages: i64::from(fax.pages),
        caller_number: fax.caller_number.clone(),
        called_number: fax.called_number.clone(),
        tsi: fax.tsi.clone(),
        started_at: fax.started_at.clone(),
        ended_at: fax.ended_at.clone(),
        received_at: store::now_ms(),
        page_info: fax.page_info.clone(),
        failure: fax.failure.clone(),
    };
    let event = NewEvent::new(
        "inbound.received",
        serde_json::json!({"inbound_id": fax.inbound_id, "fax_server_id": fs_id, "pages": fax.pages,
            "caller_number": fax.caller_number, "called_number": fax.called_number, "tsi": fax.tsi,
            "sha256": fax.document.sha256, "complete": protocol::received_whole(&fax.page_info, fax.failure.as_deref()),
            "failure": fax.failure}),
        audience,
    );
    if app
        .store
        .insert_inbound(&record, &entries, &[event])
        .await?
    {
        let whole = protocol::received_whole(&fax.page_info, fax.failure.as_deref());
        app.metrics
            .inbound
            .add(&[fs_id, if whole { "true" } else { "false" }], 1);
        app.metrics
            .pages_received
            .add(&[fs_id], u64::from(fax.pages));
        app.events.committed();
        app.webhook_wake.notify_one();
        tracing::info!(inbound = %fax.inbound_id, fax_server = %fs_id, targets = entries.len(), "inbound fax delivered");
    }
    Ok(())
}
