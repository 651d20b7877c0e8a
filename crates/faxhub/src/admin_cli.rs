//! `faxhub clients|roles|groupings`: administering clients, their competences and groupings from the
//! command line, through the same REST API (and so the same authorization) as every other face.

use crate::cli::Api;
use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// List the clients you manage.
    List,
    /// Show a client with its groupings and grants.
    Show { client: String },
    /// Create a client. People get their password from FAXHUB_NEW_PASSWORD or standard input.
    Create {
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
        client: String,
        role: String,
        scope: String,
    },
    /// Withdraw a grant (ids as `clients show` prints them).
    Revoke { client: String, grant: String },
    /// Issue an API token for a client.
    Token {
        client: String,
        #[arg(long, default_value = "cli")]
        label: String,
    },
}

#[derive(Subcommand)]
pub enum RolesCommand {
    /// List the roles and their competences.
    List,
    /// Define a role from competences (e.g. send_faxes read_phonebook).
    Create {
        name: String,
        competences: Vec<String>,
    },
    /// Delete a role nobody holds.
    Delete { role: String },
}

#[derive(Subcommand)]
pub enum GroupingsCommand {
    /// List the groupings you belong to or manage.
    List,
    /// Show a grouping with its members.
    Show { grouping: String },
    /// Create a grouping.
    Create { name: String },
    /// Add a member: KIND is client or fax-server.
    Add {
        grouping: String,
        kind: String,
        member: String,
    },
    /// Remove a member.
    Remove {
        grouping: String,
        kind: String,
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

fn scope_text(scope: &Value) -> String {
    match scope["id"].as_str() {
        Some(id) => format!("{}:{id}", scope["kind"].as_str().unwrap_or("?")),
        None => scope["kind"].as_str().unwrap_or("?").to_owned(),
    }
}

fn print_client(c: &Value) {
    println!(
        "{}  {}  {}",
        c["id"].as_str().unwrap_or(""),
        c["name"].as_str().unwrap_or(""),
        c["kind"].as_str().unwrap_or("")
    );
    let groupings: Vec<&str> = c["groupings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !groupings.is_empty() {
        println!("  groupings: {}", groupings.join(", "));
    }
    for g in c["grants"].as_array().into_iter().flatten() {
        println!(
            "  grant {}: {} in {}",
            g["id"].as_str().unwrap_or(""),
            g["role"].as_str().unwrap_or(""),
            scope_text(&g["scope"])
        );
    }
}

fn list(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

pub async fn clients(cmd: ClientsCommand) -> anyhow::Result<()> {
    let api = Api::load()?;
    match cmd {
        ClientsCommand::List => {
            for c in list(&api.get("/v1/clients").await?) {
                println!(
                    "{}  {}  {}",
                    c["id"].as_str().unwrap_or(""),
                    c["name"].as_str().unwrap_or(""),
                    c["kind"].as_str().unwrap_or("")
                );
            }
        }
        ClientsCommand::Show { client } => {
            print_client(&api.get(&format!("/v1/clients/{client}")).await?)
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
                let password = match std::env::var("FAXHUB_NEW_PASSWORD") {
                    Ok(p) => p,
                    Err(_) => {
                        eprint!("password for {name}: ");
                        let mut line = String::new();
                        std::io::stdin().read_line(&mut line)?;
                        line.trim_end_matches(['\r', '\n']).to_owned()
                    }
                };
                body["password"] = json!(password);
            }
            let made = api.post_json("/v1/clients", &body).await?;
            print_client(&made["client"]);
            if let Some(t) = made["token"].as_str() {
                println!("token (shown once): {t}");
            }
        }
        ClientsCommand::Grant {
            client,
            role,
            scope,
        } => {
            let g = api
                .post_json(
                    &format!("/v1/clients/{client}/grants"),
                    &json!({"role": role, "scope": parse_scope(&scope)?}),
                )
                .await?;
            println!(
                "grant {}: {} in {}",
                g["id"].as_str().unwrap_or(""),
                g["role"].as_str().unwrap_or(""),
                scope_text(&g["scope"])
            );
        }
        ClientsCommand::Revoke { client, grant } => {
            api.delete(&format!("/v1/clients/{client}/grants/{grant}"))
                .await?;
            println!("grant {grant} withdrawn");
        }
        ClientsCommand::Token { client, label } => {
            let t = api
                .post_json(
                    &format!("/v1/clients/{client}/tokens"),
                    &json!({"label": label}),
                )
                .await?;
            println!("token (shown once): {}", t["token"].as_str().unwrap_or(""));
        }
    }
    Ok(())
}

pub async fn roles(cmd: RolesCommand) -> anyhow::Result<()> {
    let api = Api::load()?;
    match cmd {
        RolesCommand::List => {
            for r in list(&api.get("/v1/roles").await?) {
                let comps: Vec<&str> = list(&r["competences"]).filter_map(Value::as_str).collect();
                let builtin = if r["builtin"] == true {
                    " (built in)"
                } else {
                    ""
                };
                println!(
                    "{}  {}{builtin}: {}",
                    r["id"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or(""),
                    comps.join(", ")
                );
            }
        }
        RolesCommand::Create { name, competences } => {
            let r = api
                .post_json(
                    "/v1/roles",
                    &json!({"name": name, "competences": competences}),
                )
                .await?;
            println!("role {} created", r["id"].as_str().unwrap_or(""));
        }
        RolesCommand::Delete { role } => {
            api.delete(&format!("/v1/roles/{role}")).await?;
            println!("role {role} deleted");
        }
    }
    Ok(())
}

pub async fn groupings(cmd: GroupingsCommand) -> anyhow::Result<()> {
    let api = Api::load()?;
    match cmd {
        GroupingsCommand::List => {
            for g in list(&api.get("/v1/groupings").await?) {
                println!(
                    "{}  {}",
                    g["id"].as_str().unwrap_or(""),
                    g["name"].as_str().unwrap_or("")
                );
            }
        }
        GroupingsCommand::Show { grouping } => {
            let g = api.get(&format!("/v1/groupings/{grouping}")).await?;
            println!(
                "{}  {}",
                g["id"].as_str().unwrap_or(""),
                g["name"].as_str().unwrap_or("")
            );
            for m in list(&g["members"]) {
                println!(
                    "  {} {}",
                    m["kind"].as_str().unwrap_or(""),
                    m["id"].as_str().unwrap_or("")
                );
            }
        }
        GroupingsCommand::Create { name } => {
            let g = api
                .post_json("/v1/groupings", &json!({"name": name}))
                .await?;
            println!("grouping {} created", g["id"].as_str().unwrap_or(""));
        }
        GroupingsCommand::Add {
            grouping,
            kind,
            member,
        } => {
            let body = json!({"kind": member_kind(&kind)?, "id": member});
            api.put_json(&format!("/v1/groupings/{grouping}/members"), &body)
                .await?;
            println!("{kind} {member} added to {grouping}");
        }
        GroupingsCommand::Remove {
            grouping,
            kind,
            member,
        } => {
            api.delete(&format!(
                "/v1/groupings/{grouping}/members/{}/{member}",
                member_kind(&kind)?
            ))
            .await?;
            println!("{kind} {member} removed from {grouping}");
        }
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
