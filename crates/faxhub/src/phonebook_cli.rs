//! `faxhub phonebook`: search, add, show, change, remove, import and export entries.

use crate::cli::say;
use crate::cli::{Api, view};
use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use std::path::PathBuf;
use supervisor::api::Paged;
use supervisor::api::phonebook::{EntryView, ImportReport};

#[derive(Subcommand)]
pub enum PhonebookCommand {
    /// Search by name, company or number (no query: list by name).
    Search {
        /// Text or digits to look for in names, companies and numbers.
        query: Option<String>,
        /// How many to show at most.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Show one entry.
    Show {
        /// The phonebook entry's id.
        entry: String,
    },
    /// Add an entry you own.
    Add {
        /// The contact's name.
        name: String,
        /// Fax number (E.164 or a local dial string).
        #[arg(long)]
        fax: String,
        /// The contact's company.
        #[arg(long, default_value = "")]
        company: String,
        /// A voice number.
        #[arg(long, default_value = "")]
        voice: String,
        /// An e-mail address.
        #[arg(long, default_value = "")]
        email: String,
        /// Free notes.
        #[arg(long, default_value = "")]
        notes: String,
        /// A tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// `everyone`, `client:ID` or `grouping:ID` (repeatable); none: a personal entry.
        #[arg(long = "visible-to")]
        visible_to: Vec<String>,
    },
    /// Change fields: `field=value` pairs (name, company, fax_number, voice_number, email, notes).
    Edit {
        /// The phonebook entry's id.
        entry: String,
        /// `field=value` pairs.
        changes: Vec<String>,
    },
    /// Remove an entry.
    Rm {
        /// The phonebook entry's id.
        entry: String,
    },
    /// Import a CSV file or vCard file (by extension: .csv, .vcf). Bad lines are reported by number (a
    /// quote never closed is reported on its line; the lines after it are read on their own).
    Import {
        /// The file to import: .csv or .vcf.
        file: PathBuf,
    },
    /// Export what you may see as CSV, vCard 3.0 or vCard 4.0. CSV cells a spreadsheet would run as a
    /// formula (starting with = + - @, tab or CR) get a leading ' (an import takes it off again).
    Export {
        /// csv, vcard3 or vcard4.
        #[arg(long, default_value = "csv", value_parser = ["csv", "vcard3", "vcard4"])]
        format: String,
        /// Where to write the export.
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

fn print_entry(e: &EntryView) {
    let company = if e.company.is_empty() {
        String::new()
    } else {
        format!(" ({})", e.company)
    };
    let vis: Vec<String> = e
        .visibility
        .iter()
        .map(|l| match &l.id {
            Some(id) => format!("{}:{id}", l.kind),
            None => l.kind.clone(),
        })
        .collect();
    let vis = if vis.is_empty() {
        "personal".to_owned()
    } else {
        vis.join(", ")
    };
    say!(
        "{}  {}{company}  fax {}  [{vis}]",
        e.id,
        e.name,
        e.fax_number
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
            let page: Paged<EntryView> = api
                .get_view(&format!("/v1/phonebook?limit={limit}{q}"))
                .await?;
            say!("ID  NAME (COMPANY)  FAX  VISIBLE TO");
            for e in &page.items {
                print_entry(e);
            }
        }
        PhonebookCommand::Show { entry } => {
            let e = api.get(&format!("/v1/phonebook/{entry}")).await?;
            say!("{}", serde_json::to_string_pretty(&e)?);
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
            print_entry(&view(api.post_json("/v1/phonebook", &body).await?)?);
        }
        PhonebookCommand::Edit { entry, changes } => {
            let mut patch = serde_json::Map::new();
            for c in &changes {
                let (k, v) = c
                    .split_once('=')
                    .with_context(|| format!("{c:?} is not field=value"))?;
                patch.insert(k.to_owned(), Value::String(v.to_owned()));
            }
            print_entry(&view(
                api.send(
                    reqwest::Method::PATCH,
                    &format!("/v1/phonebook/{entry}"),
                    Some(&Value::Object(patch)),
                )
                .await?,
            )?);
        }
        PhonebookCommand::Rm { entry } => {
            api.delete(&format!("/v1/phonebook/{entry}")).await?;
            say!("{entry} removed");
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
            let report: ImportReport = view(
                api.post_bytes(&format!("/v1/phonebook/import?format={format}"), bytes)
                    .await?,
            )?;
            say!("{} imported, {} refused", report.imported, report.failed);
            for p in report.problems {
                let field = p.field.map(|f| format!("{f}: ")).unwrap_or_default();
                say!("  line {}: {field}{}", p.line, p.message);
            }
        }
        PhonebookCommand::Export { format, output } => {
            let text = api
                .get_text(&format!("/v1/phonebook/export?format={format}"))
                .await?;
            std::fs::write(&output, &text)
                .with_context(|| format!("writing {}", output.display()))?;
            say!("{} bytes written to {}", text.len(), output.display());
        }
    }
    Ok(())
}
