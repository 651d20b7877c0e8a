//! `faxhub clients|roles|groupings|fax-servers`: administering clients (their competences, tokens and
//! passwords), groupings and fax servers from the command line, through the same REST API (and so the same
//! authorization) as every other face.

use crate::cli::say;
use crate::cli::{Api, Named, resolve, view};
use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use supervisor::api::admin::{FaxServerView, GroupingView};
use supervisor::api::clients::{
    ClientDetail, ClientView, GrantView, NewClientResponse, RoleView, ScopeBody, TokenResponse,
    TokenView,
};

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// List the clients you manage.
    List,
    /// Show a client with its groupings and grants.
    Show {
        /// The client (id or name).
        client: String,
    },
    /// Create a client. People get their password from FAXHUB_NEW_PASSWORD or standard input.
    Create {
        /// The client's name (unique).
        name: String,
        /// person or application
        #[arg(long, default_value = "application")]
        kind: String,
        /// A grouping to put the client in (repeatable).
        #[arg(long = "grouping")]
        groupings: Vec<String>,
        /// ROLE@SCOPE, e.g. operator@grouping:grp_… or administrator@all (repeatable). Default: the user
        /// role in each grouping.
        #[arg(long = "grant")]
        grants: Vec<String>,
    },
    /// Grant a role in a scope: `all`, `grouping:ID` or `fax-server:ID`.
    Grant {
        /// The client (id or name).
        client: String,
        /// The role's name (e.g. user, operator).
        role: String,
        /// Where it applies: all, grouping:ID or fax-server:ID.
        scope: String,
    },
    /// Withdraw a grant (ids as `clients show` prints them).
    Revoke {
        /// The client (id or name).
        client: String,
        /// The grant's id (as `clients show` prints it).
        grant: String,
    },
    /// Issue an API token for a client (`me` for yourself).
    Token {
        /// The client (id, name, or `me` for yourself).
        client: String,
        /// A label that tells the token apart in `clients tokens`.
        #[arg(long, default_value = "cli")]
        label: String,
        /// The token stops working after this many seconds; without it, never.
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// List a client's live tokens (`me` for yourself): ids, labels, expiry and last use, never secrets.
    Tokens {
        /// The client (id, name, or `me` for yourself).
        client: String,
    },
    /// Revoke a token (ids as `clients tokens` prints them): refused from the next request on.
    RevokeToken {
        /// The client (id, name, or `me` for yourself).
        client: String,
        /// The token's id (as `clients tokens` prints it).
        token: String,
    },
    /// Set a person's password, from FAXHUB_NEW_PASSWORD or standard input. For your own (`me`), give the
    /// current one in FAXHUB_CURRENT_PASSWORD.
    Password {
        /// The client (id, name, or `me` for yourself).
        client: String,
    },
    /// Disable a client: its tokens and password open nothing until it is enabled again.
    Disable {
        /// The client (id or name).
        client: String,
    },
    /// Enable a disabled client.
    Enable {
        /// The client (id or name).
        client: String,
    },
    /// Delete a client: tokens, grants, memberships, webhooks and personal phonebook entries go, queued jobs
    /// are cancelled.
    Delete {
        /// The client (id or name).
        client: String,
    },
}

#[derive(Subcommand)]
pub enum FaxServersCommand {
    /// List the fax servers you share a grouping with or administer.
    List,
    /// Register a fax server; prints the one-time command that enrolls it (run it on the fax server).
    Create {
        /// The fax server's name (unique).
        name: String,
        /// A grouping it serves (id; repeatable).
        #[arg(long = "grouping")]
        groupings: Vec<String>,
        /// A number prefix it may dial, E.164 (repeatable; none: any).
        #[arg(long = "prefix")]
        prefixes: Vec<String>,
    },
    /// Show one fax server.
    Show {
        /// The fax server (id or name).
        fax_server: String,
    },
    /// Revoke a fax server's credential: its link closes, its jobs move to another fax server.
    Revoke {
        /// The fax server (id or name).
        fax_server: String,
    },
    /// Delete a fax server (revoked, out of every grouping, its inbound rules gone).
    Delete {
        /// The fax server (id or name).
        fax_server: String,
    },
}

#[derive(Subcommand)]
pub enum InboundRulesCommand {
    /// List the rules, in the order they are tried.
    List,
    /// Add a rule: faxes matching every condition given go to the targets (the first rule that matches
    /// wins; a fax no rule takes goes to the shared inbox of its fax server's groupings).
    Add {
        /// Send matching faxes to this client (id; repeatable).
        #[arg(long = "to-client")]
        clients: Vec<String>,
        /// Send matching faxes to this grouping's shared inbox (id; repeatable).
        #[arg(long = "to-grouping")]
        groupings: Vec<String>,
        /// Only faxes received by this fax server.
        #[arg(long)]
        fax_server: Option<String>,
        /// Only faxes to this number (E.164).
        #[arg(long)]
        called: Option<String>,
        /// Only faxes whose sender's station identity is this.
        #[arg(long)]
        tsi: Option<String>,
        /// Only faxes from numbers starting so.
        #[arg(long)]
        caller_prefix: Option<String>,
        /// Lower numbers are tried first (default 100).
        #[arg(long)]
        priority: Option<i64>,
    },
    /// Delete a rule.
    Rm {
        /// The rule's id.
        rule: String,
    },
}

#[derive(Subcommand)]
pub enum RolesCommand {
    /// List the roles and their competences.
    List,
    /// Define a role from competences (e.g. send_faxes read_phonebook).
    Create {
        /// The role's name.
        name: String,
        /// Its competences, e.g. send_faxes read_phonebook.
        competences: Vec<String>,
    },
    /// Delete a role nobody holds.
    Delete {
        /// The role's id.
        role: String,
    },
}

#[derive(Subcommand)]
pub enum GroupingsCommand {
    /// List the groupings you belong to or manage.
    List,
    /// Show a grouping with its members.
    Show {
        /// The grouping (id or name).
        grouping: String,
    },
    /// Create a grouping.
    Create {
        /// The grouping's name.
        name: String,
    },
    /// Add a member: KIND is client or fax-server.
    Add {
        /// The grouping (id or name).
        grouping: String,
        /// What the member is: client or fax-server.
        kind: String,
        /// The member (id or name).
        member: String,
    },
    /// Remove a member.
    Remove {
        /// The grouping (id or name).
        grouping: String,
        /// What the member is: client or fax-server.
        kind: String,
        /// The member (id or name).
        member: String,
    },
}

/// `all`, `grouping:ID`, `fax-server:ID` as the API's scope object.
pub fn parse_scope(s: &str) -> anyhow::Result<Value> {
    match s.split_once(':') {
        None if s == "all" => Ok(json!({"kind": "all"})),
        Some(("grouping", id)) if !id.is_empty() => Ok(json!({"kind": "grouping", "id": id})),
        Some(("fax-server" | "fax_server", id)) if !id.is_empty() => {
            Ok(json!({"kind": "fax_server", "id": id}))
        }
        _ => bail!("scope {s:?}: use all, grouping:ID or fax-server:ID"),
    }
}

fn parse_grant(s: &str) -> anyhow::Result<Value> {
    let (role, scope) = s
        .rsplit_once('@')
        .with_context(|| format!("grant {s:?}: use ROLE@SCOPE"))?;
    Ok(json!({"role": role, "scope": parse_scope(scope)?}))
}

fn member_kind(kind: &str) -> anyhow::Result<&'static str> {
    match kind {
        "client" => Ok("client"),
        "fax-server" | "fax_server" => Ok("fax_server"),
        _ => bail!("member kind {kind:?}: use client or fax-server"),
    }
}

fn scope_text(scope: &ScopeBody) -> String {
    match &scope.id {
        Some(id) => format!("{}:{id}", scope.kind),
        None => scope.kind.clone(),
    }
}

fn print_grant(g: &GrantView) {
    say!("  grant {}: {} in {}", g.id, g.role, scope_text(&g.scope));
}

fn print_client(c: &ClientDetail) {
    say!("{}  {}  {}", c.client.id, c.client.name, c.client.kind);
    if !c.groupings.is_empty() {
        say!("  groupings: {}", c.groupings.join(", "));
    }
    for g in &c.grants {
        print_grant(g);
    }
}

/// A client's id from what was typed: its id, its name, or `me` for the signed-in client.
async fn client_id(api: &Api, client: String) -> anyhow::Result<String> {
    if client != "me" {
        return resolve(api, Named::Client, &client).await;
    }
    let me: ClientDetail = api.get_view("/v1/me").await?;
    Ok(me.client.id)
}

/// A group member's id from what was typed (`kind` as the API has it).
async fn member_id(api: &Api, kind: &str, member: &str) -> anyhow::Result<String> {
    match kind {
        "client" => resolve(api, Named::Client, member).await,
        _ => resolve(api, Named::FaxServer, member).await,
    }
}

/// A password from the environment variable, else a line of standard input.
fn password_from(var: &str, prompt: &str) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(var) {
        return Ok(p);
    }
    eprint!("{prompt}: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn print_fax_server(f: &FaxServerView) {
    let state = if f.revoked_at.is_some() {
        "revoked"
    } else if f.online {
        "online"
    } else {
        "offline"
    };
    say!(
        "{}  {}  {state}  groupings: {}",
        f.id,
        f.name,
        f.groupings.join(", ")
    );
}

pub async fn clients(cmd: ClientsCommand) -> anyhow::Result<()> {
    let api = Api::load()?;
    match cmd {
        ClientsCommand::List => {
            let all: Vec<ClientView> = api.get_view("/v1/clients").await?;
            say!("ID  NAME  KIND");
            for c in all {
                say!("{}  {}  {}", c.id, c.name, c.kind);
            }
        }
        ClientsCommand::Show { client } => {
            let client = client_id(&api, client).await?;
            print_client(&api.get_view(&format!("/v1/clients/{client}")).await?)
        }
        ClientsCommand::Create {
            name,
            kind,
            groupings,
            grants,
        } => {
            let mut body = json!({"name": name, "kind": kind, "groupings": groupings});
            if !grants.is_empty() {
                body["grants"] = Value::Array(
                    grants
                        .iter()
                        .map(|g| parse_grant(g))
                        .collect::<anyhow::Result<_>>()?,
                );
            }
            if kind == "person" {
                let password =
                    password_from("FAXHUB_NEW_PASSWORD", &format!("password for {name}"))?;
                body["password"] = json!(password);
            }
            let made: NewClientResponse = view(api.post_json("/v1/clients", &body).await?)?;
            print_client(&made.client);
            if let Some(t) = made.token {
                say!("token (shown once): {t}");
            }
        }
        ClientsCommand::Grant {
            client,
            role,
            scope,
        } => {
            let client = client_id(&api, client).await?;
            let g: GrantView = view(
                api.post_json(
                    &format!("/v1/clients/{client}/grants"),
                    &json!({"role": role, "scope": parse_scope(&scope)?}),
                )
                .await?,
            )?;
            say!("grant {}: {} in {}", g.id, g.role, scope_text(&g.scope));
        }
        ClientsCommand::Revoke { client, grant } => {
            let client = client_id(&api, client).await?;
            api.delete(&format!("/v1/clients/{client}/grants/{grant}"))
                .await?;
            say!("grant {grant} withdrawn");
        }
        ClientsCommand::Token {
            client,
            label,
            expires_in,
        } => {
            let client = client_id(&api, client).await?;
            let t: TokenResponse = view(
                api.post_json(
                    &format!("/v1/clients/{client}/tokens"),
                    &json!({"label": label, "expires_in_secs": expires_in}),
                )
                .await?,
            )?;
            say!(
                "token {} (expires {})",
                t.token_id,
                t.expires_at.as_deref().unwrap_or("never")
            );
            say!("token (shown once): {}", t.token);
        }
        ClientsCommand::Tokens { client } => {
            let client = client_id(&api, client).await?;
            let tokens: Vec<TokenView> = api
                .get_view(&format!("/v1/clients/{client}/tokens"))
                .await?;
            say!("ID  LABEL  CREATED  EXPIRES  LAST USED");
            for t in tokens {
                say!(
                    "{}  {:<16} created {}  expires {}  last used {}{}",
                    t.id,
                    t.label,
                    t.created_at,
                    t.expires_at.as_deref().unwrap_or("never"),
                    t.last_used_at.as_deref().unwrap_or("never"),
                    if t.current { "  (this one)" } else { "" }
                );
            }
        }
        ClientsCommand::RevokeToken { client, token } => {
            let client = client_id(&api, client).await?;
            api.delete(&format!("/v1/clients/{client}/tokens/{token}"))
                .await?;
            say!("token {token} revoked");
        }
        ClientsCommand::Password { client } => {
            let client = client_id(&api, client).await?;
            let mut body =
                json!({"password": password_from("FAXHUB_NEW_PASSWORD", "new password")?});
            if let Ok(current) = std::env::var("FAXHUB_CURRENT_PASSWORD") {
                body["current_password"] = json!(current);
            }
            api.put_json(&format!("/v1/clients/{client}/password"), &body)
                .await?;
            say!("password of {client} set");
        }
        ClientsCommand::Disable { client } => set_disabled(&api, &client, true).await?,
        ClientsCommand::Enable { client } => set_disabled(&api, &client, false).await?,
        ClientsCommand::Delete { client } => {
            let client = client_id(&api, client).await?;
            api.delete(&format!("/v1/clients/{client}")).await?;
            say!("client {client} deleted");
        }
    }
    Ok(())
}

async fn set_disabled(api: &Api, client: &str, disabled: bool) -> anyhow::Result<()> {
    let client = client_id(api, client.to_owned()).await?;
    api.send(
        reqwest::Method::PATCH,
        &format!("/v1/clients/{client}"),
        Some(&json!({"disabled": disabled})),
    )
    .await?;
    say!(
        "client {client} {}",
        if disabled { "disabled" } else { "enabled" }
    );
    Ok(())
}

pub async fn fax_servers(cmd: FaxServersCommand) -> anyhow::Result<()> {
    let api = Api::load()?;
    match cmd {
        FaxServersCommand::List => {
            let all: Vec<FaxServerView> = api.get_view("/v1/fax-servers").await?;
            say!("ID  NAME  STATE  GROUPINGS");
            for f in &all {
                print_fax_server(f);
            }
        }
        FaxServersCommand::Create {
            name,
            groupings,
            prefixes,
        } => {
            let made: supervisor::api::admin::NewFaxServerResponse = view(
                api.post_json(
                    "/v1/fax-servers",
                    &json!({"name": name, "groupings": groupings, "dial_prefixes": prefixes}),
                )
                .await?,
            )?;
            print_fax_server(&made.fax_server);
            say!(
                "enroll it (once, within its token's life, until {}) on the fax server with:",
                made.enrollment_expires_at
            );
            say!(
                "  faxhub node --supervisor {} --state-dir /var/lib/faxhub-node --enroll {}",
                api.base,
                made.enrollment_token
            );
        }
        FaxServersCommand::Show { fax_server } => {
            let fax_server = resolve(&api, Named::FaxServer, &fax_server).await?;
            print_fax_server(
                &api.get_view(&format!("/v1/fax-servers/{fax_server}"))
                    .await?,
            );
        }
        FaxServersCommand::Revoke { fax_server } => {
            let fax_server = resolve(&api, Named::FaxServer, &fax_server).await?;
            let f: FaxServerView = view(
                api.post_json(&format!("/v1/fax-servers/{fax_server}/revoke"), &json!({}))
                    .await?,
            )?;
            print_fax_server(&f);
        }
        FaxServersCommand::Delete { fax_server } => {
            let fax_server = resolve(&api, Named::FaxServer, &fax_server).await?;
            api.delete(&format!("/v1/fax-servers/{fax_server}")).await?;
            say!("fax server {fax_server} deleted");
        }
    }
    Ok(())
}

pub async fn roles(cmd: RolesCommand) -> anyhow::Result<()> {
    let api = Api::load()?;
    match cmd {
        RolesCommand::List => {
            let roles: Vec<RoleView> = api.get_view("/v1/roles").await?;
            say!("ID  NAME: COMPETENCES");
            for r in roles {
                let comps: Vec<&str> = r.competences.iter().map(|c| c.as_str()).collect();
                let builtin = if r.builtin { " (built in)" } else { "" };
                say!("{}  {}{builtin}: {}", r.id, r.name, comps.join(", "));
            }
        }
        RolesCommand::Create { name, competences } => {
            let r: RoleView = view(
                api.post_json(
                    "/v1/roles",
                    &json!({"name": name, "competences": competences}),
                )
                .await?,
            )?;
            say!("role {} created", r.id);
        }
        RolesCommand::Delete { role } => {
            api.delete(&format!("/v1/roles/{role}")).await?;
            say!("role {role} deleted");
        }
    }
    Ok(())
}

pub async fn groupings(cmd: GroupingsCommand) -> anyhow::Result<()> {
    let api = Api::load()?;
    match cmd {
        GroupingsCommand::List => {
            let all: Vec<GroupingView> = api.get_view("/v1/groupings").await?;
            say!("ID  NAME");
            for g in all {
                say!("{}  {}", g.id, g.name);
            }
        }
        GroupingsCommand::Show { grouping } => {
            let grouping = resolve(&api, Named::Grouping, &grouping).await?;
            let g: GroupingView = api.get_view(&format!("/v1/groupings/{grouping}")).await?;
            say!("{}  {}", g.id, g.name);
            for m in g.members.unwrap_or_default() {
                say!("  {} {}", m.kind, m.id);
            }
        }
        GroupingsCommand::Create { name } => {
            let g: GroupingView = view(
                api.post_json("/v1/groupings", &json!({"name": name}))
                    .await?,
            )?;
            say!("grouping {} created", g.id);
        }
        GroupingsCommand::Add {
            grouping,
            kind,
            member,
        } => {
            let grouping = resolve(&api, Named::Grouping, &grouping).await?;
            let member = member_id(&api, member_kind(&kind)?, &member).await?;
            let body = json!({"kind": member_kind(&kind)?, "id": member});
            api.put_json(&format!("/v1/groupings/{grouping}/members"), &body)
                .await?;
            say!("{kind} {member} added to {grouping}");
        }
        GroupingsCommand::Remove {
            grouping,
            kind,
            member,
        } => {
            let grouping = resolve(&api, Named::Grouping, &grouping).await?;
            let member = member_id(&api, member_kind(&kind)?, &member).await?;
            api.delete(&format!(
                "/v1/groupings/{grouping}/members/{}/{member}",
                member_kind(&kind)?
            ))
            .await?;
            say!("{kind} {member} removed from {grouping}");
        }
    }
    Ok(())
}

fn print_rule(r: &supervisor::inbound_rules::RuleBody) {
    let mut when = Vec::new();
    for (what, v) in [
        ("fax server", &r.fax_server_id),
        ("called", &r.called_number),
        ("tsi", &r.tsi),
        ("caller starts with", &r.caller_prefix),
    ] {
        if let Some(v) = v {
            when.push(format!("{what} {v}"));
        }
    }
    let to: Vec<String> = r
        .targets
        .iter()
        .map(|t| format!("{} {}", t.kind, t.id))
        .collect();
    say!(
        "{}  priority {}  when {}  to {}",
        r.id,
        r.priority.unwrap_or(100),
        if when.is_empty() {
            "any fax".to_owned()
        } else {
            when.join(", ")
        },
        to.join(", ")
    );
}

pub async fn inbound_rules(cmd: InboundRulesCommand) -> anyhow::Result<()> {
    let api = Api::load()?;
    match cmd {
        InboundRulesCommand::List => {
            let rules: Vec<supervisor::inbound_rules::RuleBody> =
                api.get_view("/v1/inbound-rules").await?;
            say!("ID  PRIORITY  WHEN  TO");
            for r in &rules {
                print_rule(r);
            }
        }
        InboundRulesCommand::Add {
            clients,
            groupings,
            fax_server,
            called,
            tsi,
            caller_prefix,
            priority,
        } => {
            let targets: Vec<Value> = clients
                .iter()
                .map(|c| json!({"kind": "client", "id": c}))
                .chain(
                    groupings
                        .iter()
                        .map(|g| json!({"kind": "grouping", "id": g})),
                )
                .collect();
            if targets.is_empty() {
                bail!("give --to-client or --to-grouping (or both)");
            }
            let rule: supervisor::inbound_rules::RuleBody = view(
                api.post_json(
                    "/v1/inbound-rules",
                    &json!({"targets": targets, "fax_server_id": fax_server, "called_number": called,
                            "tsi": tsi, "caller_prefix": caller_prefix, "priority": priority}),
                )
                .await?,
            )?;
            print_rule(&rule);
        }
        InboundRulesCommand::Rm { rule } => {
            api.delete(&format!("/v1/inbound-rules/{rule}")).await?;
            say!("rule {rule} deleted");
        }
    }
    Ok(())
}

pub async fn audit(
    target: Option<String>,
    action: Option<String>,
    actor: Option<String>,
    limit: u32,
) -> anyhow::Result<()> {
    let api = Api::load()?;
    let mut query = vec![("limit", limit.to_string())];
    query.extend(target.map(|t| ("target", t)));
    query.extend(action.map(|a| ("action", a)));
    query.extend(actor.map(|a| ("actor", a)));
    let url = reqwest::Url::parse_with_params("http://faxhub/v1/audit", &query)?;
    let page: supervisor::api::Paged<supervisor::api::audit::AuditView> = api
        .get_view(&format!(
            "{}?{}",
            url.path(),
            url.query().unwrap_or_default()
        ))
        .await?;
    say!("{:<25} {:<20} {:<24} TARGET", "AT", "ACTOR", "ACTION");
    for e in page.items {
        say!(
            "{:<25} {:<20} {:<24} {}",
            e.at,
            e.actor_name,
            e.action,
            e.target.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_grants_parse() {
        assert_eq!(parse_scope("all").expect("all"), json!({"kind": "all"}));
        assert_eq!(
            parse_scope("fax-server:fs_1").expect("fs"),
            json!({"kind": "fax_server", "id": "fs_1"})
        );
        assert!(parse_scope("grouping:").is_err());
        assert!(parse_scope("planet:x").is_err());
        assert_eq!(
            parse_grant("grouping administrator@grouping:grp_1").expect("grant"),
            json!({"role": "grouping administrator", "scope": {"kind": "grouping", "id": "grp_1"}})
        );
        assert!(parse_grant("operator").is_err());
    }
}
