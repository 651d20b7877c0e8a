//! `faxhub phonebook`: search, add, show, change, remove, import and export entries.

use crate::cli::Api;
use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum PhonebookCommand {
    /// Search by name, company or number (no query: list by name).
    Search {
        query: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show one entry.
    Show { entry: String },
    /// Add an entry you own.
    Add {
        name: String,
        /// Fax number (E.164 or a local dial string).
        #[arg(long)]
        fax: String,
        #[arg(long, default_value = "")]
        company: String,
        #[arg(long, default_value = "")]
        voice: String,
        #[arg(long, default_value = "")]
        email: String,
        #[arg(long, default_value = "")]
        notes: String,
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// `everyone`, `client:ID` or `grouping:ID` (repeatable); none: a personal entry.
        #[arg(long = "visible-to")]
        visible_to: Vec<String>,
    },
    /// Change fields: `field=value` pairs (name, company, fax_number, voice_number, email, notes).
    Edit { entry: String, changes: Vec<String> },
    /// Remove an entry.
    Rm { entry: String },
    /// Import a CSV file or vCard file (by extension: .csv, .vcf). Bad lines are reported by number (a
    /// quote never closed is reported on its line; the lines after it are read on their own).
    Import { file: PathBuf },
    /// Export what you may see as CSV, vCard 3.0 or vCard 4.0. CSV cells a spreadsheet would run as a
    /// formula (starting with = + - @, tab or CR) get a leading ' (an import takes it off again).
    Export {
        #[arg(long, default_value = "csv", value_parser = ["csv", "vcard3", "vcard4"])]
        format: String,
        #[arg(short, long)]
        output: PathBuf,
    },
}

fn label(s: &str) -> anyhow::Result<Value> {
    match s.split_once(':') {
        None if s == "everyone" => Ok(json!({"kind": "everyone"})),
        Some((kind @ ("client" | "grouping"), id)) if !id.is_empty() => {
            Ok(json!({"kind": kind, "id": id}))
        }
        _ => bail!("{s:?}: use everyone, client:ID or grouping:ID"),
    }
}

fn print_entry(e: &Value) {
    let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
    let company = if s("company").is_empty() {
        String::new()
    } else {
        format!(" ({})", s("company"))
    };
    let vis: Vec<String> = e["visibility"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| match l["id"].as_str() {
            Some(id) => format!("{}:{id}", l["kind"].as_str().unwrap_or("")),
            None => l["kind"].as_str().unwrap_or("").to_owned(),
        })
        .collect();
    let vis = if vis.is_empty() {
        "personal".to_owned()
    } else {
        vis.join(", ")
    };
    println!(
        "{}  {}{company}  fax {}  [{vis}]",
        s("id"),
        s("name"),
        s("fax_number")
    );
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub async fn run(cmd: PhonebookCommand) -> anyhow::Result<()> {
    let api = Api::load()?;
    match cmd {
        PhonebookCommand::Search { query, limit } => {
            let q = query
                .map(|q| format!("&q={}", query_escape(&q)))
                .unwrap_or_default();
            let page = api.get(&format!("/v1/phonebook?limit={limit}{q}")).await?;
            for e in page["items"].as_array().into_iter().flatten() {
                print_entry(e);
            }
        }
        PhonebookCommand::Show { entry } => {
            let e = api.get(&format!("/v1/phonebook/{entry}")).await?;
            println!("{}", serde_json::to_string_pretty(&e)?);
        }
        PhonebookCommand::Add {
            name,
            fax,
            company,
            voice,
            email,
            notes,
            tags,
            visible_to,
        } => {
            let visibility = visible_to
                .iter()
                .map(|v| label(v))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let body = json!({"name": name, "fax_number": fax, "company": company, "voice_number": voice,
                "email": email, "notes": notes, "tags": tags, "visibility": visibility});
            print_entry(&api.post_json("/v1/phonebook", &body).await?);
        }
        PhonebookCommand::Edit { entry, changes } => {
            let mut patch = serde_json::Map::new();
            for c in &changes {
                let (k, v) = c
                    .split_once('=')
                    .with_context(|| format!("{c:?} is not field=value"))?;
                patch.insert(k.to_owned(), Value::String(v.to_owned()));
            }
            print_entry(
                &api.send(
                    reqwest::Method::PATCH,
                    &format!("/v1/phonebook/{entry}"),
                    Some(&Value::Object(patch)),
                )
                .await?,
            );
        }
        PhonebookCommand::Rm { entry } => {
            api.delete(&format!("/v1/phonebook/{entry}")).await?;
            println!("{entry} removed");
        }
        PhonebookCommand::Import { file } => {
            let format = match file
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("vcf" | "vcard") => "vcard",
                Some("csv") => "csv",
                _ => bail!("{}: name a .csv or .vcf file", file.display()),
            };
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let report = api
                .post_bytes(&format!("/v1/phonebook/import?format={format}"), bytes)
                .await?;
            println!(
                "{} imported, {} refused",
                report["imported"], report["failed"]
            );
            for p in report["problems"].as_array().into_iter().flatten() {
                let field = p["field"]
                    .as_str()
                    .map(|f| format!("{f}: "))
                    .unwrap_or_default();
                println!(
                    "  line {}: {field}{}",
                    p["line"],
                    p["message"].as_str().unwrap_or("")
                );
            }
        }
        PhonebookCommand::Export { format, output } => {
            let text = api
                .get_text(&format!("/v1/phonebook/export?format={format}"))
                .await?;
            std::fs::write(&output, &text)
                .with_context(|| format!("writing {}", output.display()))?;
            println!("{} bytes written to {}", text.len(), output.display());
        }
    }
    Ok(())
}
