//! The phonebook face: search, entries, import and export (claims 17–22). Rules live in
//! `crate::phonebook`; every read is filtered by its visibility function.

use super::{Paged, created, rfc3339};
use crate::access::Caller;
use crate::api::error::{ApiError, ApiResult};
use crate::phonebook::{may_edit, may_label, require_reader, visible};
use crate::{AppState, audit, numbers};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use phonebook::{Entry, EntryFields, FieldError, Label, csv, vcard};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq, Eq)]
pub struct LabelBody {
    /// `everyone` (every client sharing a grouping with the owner), `client` or `grouping`.
    pub kind: String,
    /// The client or grouping id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct EntryView {
    pub id: String,
    pub owner_id: String,
    pub name: String,
    pub company: String,
    pub fax_number: String,
    pub voice_number: String,
    pub email: String,
    pub notes: String,
    pub tags: Vec<String>,
    /// Empty: a personal entry, visible to its owner only.
    pub visibility: Vec<LabelBody>,
    /// How the entry matched a search: `name`, `name_word`, `company` or `number`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

fn view(e: &Entry, matched: Option<phonebook::Tier>) -> EntryView {
    let f = &e.fields;
    EntryView {
        id: e.id.clone(),
        owner_id: e.owner_id.clone(),
        name: f.name.clone(),
        company: f.company.clone(),
        fax_number: f.fax_number.clone(),
        voice_number: f.voice_number.clone(),
        email: f.email.clone(),
        notes: f.notes.clone(),
        tags: f.tags.clone(),
        visibility: e
            .labels
            .iter()
            .map(|l| LabelBody {
                kind: l.kind().to_owned(),
                id: Some(l.reference().to_owned()).filter(|r| !r.is_empty()),
            })
            .collect(),
        matched: matched.map(|t| {
            match t {
                phonebook::Tier::Name => "name",
                phonebook::Tier::NameWord => "name_word",
                phonebook::Tier::Company => "company",
                phonebook::Tier::Number => "number",
            }
            .to_owned()
        }),
        created_at: rfc3339(e.created_at),
        updated_at: rfc3339(e.updated_at),
    }
}

#[derive(Deserialize, IntoParams)]
pub struct SearchQuery {
    /// Words starting the name or company, or the start of a number. Absent: every visible entry by name.
    pub q: Option<String>,
    /// At most this many (1 to 500, default 50).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page (listing only; a search answers its best matches).
    pub cursor: Option<String>,
}

/// Searches or lists the entries the caller may refer to, best matches first.
#[utoipa::path(get, path = "/v1/phonebook", params(SearchQuery), responses((status = 200, body = Paged<EntryView>), (status = 403, body = crate::api::error::ErrorBody)))]
pub async fn search(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Json<Paged<EntryView>>> {
    require_reader(&app.access, &caller)?;
    let limit = super::Page {
        limit: q.limit,
        cursor: None,
    }
    .limit()?;
    let n = usize::try_from(limit).unwrap_or(50);
    let seen = |e: &Entry| visible(&app.access, &caller.id, e);
    let index = app.phonebook.read();
    match q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(text) => {
            if text.chars().count() > 200 {
                return Err(ApiError::field("q", "at most 200 characters"));
            }
            let items = index
                .search(text, n, seen)
                .iter()
                .map(|h| view(&h.entry, Some(h.tier)))
                .collect();
            Ok(Json(Paged {
                items,
                next_cursor: None,
            }))
        }
        None => {
            let page = index.list(q.cursor.as_deref(), n, seen);
            let next_cursor = (page.len() == n)
                .then(|| page.last().map(|e| phonebook::Index::cursor_of(e)))
                .flatten();
            Ok(Json(Paged {
                items: page.iter().map(|e| view(e, None)).collect(),
                next_cursor,
            }))
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct EntryBody {
    pub name: String,
    #[serde(default)]
    pub company: String,
    /// E.164, or a local dial string normalized by the dial rules.
    pub fax_number: String,
    #[serde(default)]
    pub voice_number: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Absent or empty: a personal entry.
    #[serde(default)]
    pub visibility: Vec<LabelBody>,
}

#[derive(Deserialize, ToSchema, Default)]
pub struct EntryPatch {
    pub name: Option<String>,
    pub company: Option<String>,
    pub fax_number: Option<String>,
    pub voice_number: Option<String>,
    pub email: Option<String>,
    pub notes: Option<String>,
    pub tags: Option<Vec<String>>,
    pub visibility: Option<Vec<LabelBody>>,
}

fn field_error(prefix: &str, e: FieldError) -> ApiError {
    ApiError::field(&format!("{prefix}{}", e.field), e.message)
}

fn validate(app: &AppState, fields: EntryFields) -> Result<EntryFields, FieldError> {
    fields.validate(|n| numbers::normalize(n, &app.config.dial).map_err(|e| format!("{n:?} {e}")))
}

/// Checks API labels: known kinds, and clients and groupings the caller can see.
fn labels_from_body(app: &AppState, caller: &Caller, body: &[LabelBody]) -> ApiResult<Vec<Label>> {
    let mut out = Vec::with_capacity(body.len());
    for (i, l) in body.iter().enumerate() {
        let field = format!("visibility[{i}]");
        let id = l.id.clone().unwrap_or_default();
        let label = Label::from_parts(&l.kind, &id).ok_or_else(|| {
            ApiError::field(
                &field,
                "kind must be \"everyone\", or \"client\" / \"grouping\" with an id",
            )
        })?;
        let known = match &label {
            Label::Everyone => true,
            Label::Client(c) => {
                app.access.client_visible(caller, c)
                    || app.access.clients_share_grouping(&caller.id, c)
            }
            Label::Grouping(g) => app.access.grouping_visible(caller, g),
        };
        if !known {
            return Err(ApiError::field(
                &format!("{field}.id"),
                format!("no {} {id}", l.kind),
            ));
        }
        out.push(label);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Creates an entry owned by the caller.
#[utoipa::path(post, path = "/v1/phonebook", request_body = EntryBody, responses((status = 201, body = EntryView), (status = 403, body = crate::api::error::ErrorBody), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Json(body): Json<EntryBody>,
) -> ApiResult<Response> {
    require_reader(&app.access, &caller)?;
    let fields = EntryFields {
        name: body.name,
        company: body.company,
        fax_number: body.fax_number,
        voice_number: body.voice_number,
        email: body.email,
        notes: body.notes,
        tags: body.tags,
    };
    let fields = validate(&app, fields).map_err(|e| field_error("", e))?;
    let labels = labels_from_body(&app, &caller, &body.visibility)?;
    may_label(&app.access, &caller, &caller.id, &labels)?;
    let now = store::now_ms();
    let entry = Entry {
        id: store::new_id("pbe"),
        owner_id: caller.id.clone(),
        fields,
        labels,
        created_at: now,
        updated_at: now,
    };
    let v = view(&entry, None);
    let recorded = entry.is_shared().then(|| {
        audit::entry(
            Ok(&caller),
            "phonebook.created",
            Some(&entry.id),
            audit::NONE,
            Some(&v),
        )
    });
    app.phonebook
        .insert(&app.store, vec![entry], recorded)
        .await?;
    Ok(created(&format!("/v1/phonebook/{}", v.id), v))
}

fn visible_entry(app: &AppState, caller: &Caller, id: &str) -> ApiResult<Arc<Entry>> {
    require_reader(&app.access, caller)?;
    app.phonebook
        .visible_entry(&app.access, caller, id)
        .ok_or_else(|| ApiError::not_found("phonebook entry"))
}

/// One entry the caller may refer to.
#[utoipa::path(get, path = "/v1/phonebook/{id}", responses((status = 200, body = EntryView), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<EntryView>> {
    let entry = visible_entry(&app, &caller, &id)?;
    Ok(Json(view(&entry, None)))
}

/// Changes an entry: its owner for a personal one; `edit_shared_phonebook` over its labels for a shared one.
#[utoipa::path(patch, path = "/v1/phonebook/{id}", request_body = EntryPatch, responses((status = 200, body = EntryView), (status = 403, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn patch(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(p): Json<EntryPatch>,
) -> ApiResult<Json<EntryView>> {
    let old = visible_entry(&app, &caller, &id)?;
    may_edit(&app.access, &caller, &old)?;
    let mut fields = old.fields.clone();
    let set = |slot: &mut String, v: Option<String>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut fields.name, p.name);
    set(&mut fields.company, p.company);
    set(&mut fields.fax_number, p.fax_number);
    set(&mut fields.voice_number, p.voice_number);
    set(&mut fields.email, p.email);
    set(&mut fields.notes, p.notes);
    if let Some(t) = p.tags {
        fields.tags = t;
    }
    let fields = validate(&app, fields).map_err(|e| field_error("", e))?;
    let labels = match &p.visibility {
        Some(v) => labels_from_body(&app, &caller, v)?,
        None => old.labels.clone(),
    };
    may_label(&app.access, &caller, &old.owner_id, &labels)?;
    let entry = Entry {
        fields,
        labels,
        updated_at: store::now_ms(),
        ..(*old).clone()
    };
    let v = view(&entry, None);
    let recorded = (entry.is_shared() || old.is_shared()).then(|| {
        audit::entry(
            Ok(&caller),
            "phonebook.changed",
            Some(&entry.id),
            Some(&view(&old, None)),
            Some(&v),
        )
    });
    app.phonebook.replace(&app.store, entry, recorded).await?;
    Ok(Json(v))
}

/// Deletes an entry (same rule as changing it).
#[utoipa::path(delete, path = "/v1/phonebook/{id}", responses((status = 204), (status = 403, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody)))]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let old = visible_entry(&app, &caller, &id)?;
    may_edit(&app.access, &caller, &old)?;
    let recorded = old.is_shared().then(|| {
        audit::entry(
            Ok(&caller),
            "phonebook.deleted",
            Some(&old.id),
            Some(&view(&old, None)),
            audit::NONE,
        )
    });
    app.phonebook.delete(&app.store, &old.id, recorded).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
pub struct ImportQuery {
    /// `csv` (default) or `vcard` (2.1, 3.0 and 4.0 cards).
    pub format: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ImportProblem {
    /// The line in the file (of the card's BEGIN for vCard).
    pub line: u64,
    /// The field refused, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ImportReport {
    pub imported: usize,
    pub failed: usize,
    /// Every refused row, by line; the good rows are kept.
    pub problems: Vec<ImportProblem>,
}

/// Resolves `everyone`, `client:NAME|ID` and `grouping:NAME|ID` from files, caching lookups.
struct LabelResolver<'a> {
    app: &'a AppState,
    caller: &'a Caller,
    clients: HashMap<String, Option<String>>,
    groupings: HashMap<String, Option<String>>,
}

impl LabelResolver<'_> {
    async fn resolve(&mut self, text: &str) -> Result<Label, String> {
        let (kind, name) = match text.split_once(':') {
            None if text.eq_ignore_ascii_case("everyone") => return Ok(Label::Everyone),
            Some((k, n)) if !n.trim().is_empty() => {
                (k.trim().to_ascii_lowercase(), n.trim().to_owned())
            }
            _ => {
                return Err(format!(
                    "visibility {text:?}: use everyone, client:NAME or grouping:NAME"
                ));
            }
        };
        let (app, caller) = (self.app, self.caller);
        match kind.as_str() {
            "client" => {
                if !self.clients.contains_key(&name) {
                    let found = match app.store.client(&name).await {
                        Ok(Some(c)) => Some(c),
                        _ => app.store.client_by_name(&name).await.ok().flatten(),
                    };
                    let id = found.map(|c| c.id).filter(|id| {
                        app.access.client_visible(caller, id)
                            || app.access.clients_share_grouping(&caller.id, id)
                    });
                    self.clients.insert(name.clone(), id);
                }
                self.clients
                    .get(&name)
                    .cloned()
                    .flatten()
                    .map(Label::Client)
                    .ok_or(format!("visibility: no client {name:?}"))
            }
            "grouping" => {
                if !self.groupings.contains_key(&name) {
                    let found = match app.store.grouping(&name).await {
                        Ok(Some(g)) => Some(g),
                        _ => app
                            .store
                            .groupings()
                            .await
                            .ok()
                            .and_then(|all| all.into_iter().find(|g| g.name == name)),
                    };
                    let id = found
                        .map(|g| g.id)
                        .filter(|id| app.access.grouping_visible(caller, id));
                    self.groupings.insert(name.clone(), id);
                }
                self.groupings
                    .get(&name)
                    .cloned()
                    .flatten()
                    .map(Label::Grouping)
                    .ok_or(format!("visibility: no grouping {name:?}"))
            }
            _ => Err(format!(
                "visibility {text:?}: use everyone, client:NAME or grouping:NAME"
            )),
        }
    }
}

/// Imports entries owned by the caller from CSV or vCard. Bad rows are reported by line and the good ones
/// kept; a file that cannot be read at all changes nothing.
#[utoipa::path(post, path = "/v1/phonebook/import", params(ImportQuery), request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 422, body = crate::api::error::ErrorBody)))]
pub async fn import(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> ApiResult<Json<ImportReport>> {
    require_reader(&app.access, &caller)?;
    let vcard = match q.format.as_deref().unwrap_or("csv") {
        "csv" => false,
        "vcard" => true,
        other => {
            return Err(ApiError::field(
                "format",
                format!("{other:?}: use csv or vcard"),
            ));
        }
    };
    // A file of many megabytes takes a while to read: not on the async runtime's threads.
    let rows = tokio::task::spawn_blocking(move || {
        if vcard {
            Ok(vcard::read(&body))
        } else {
            csv::read(&body)
        }
    })
    .await
    .map_err(|e| ApiError::internal("reading an import", e))?
    .map_err(|e| ApiError::field("body", e.to_string()))?;
    let mut resolver = LabelResolver {
        app: &app,
        caller: &caller,
        clients: HashMap::new(),
        groupings: HashMap::new(),
    };
    let mut problems = Vec::new();
    let mut good = Vec::new();
    let now = store::now_ms();
    for row in rows {
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                problems.push(ImportProblem {
                    line: e.line,
                    field: None,
                    message: e.message,
                });
                continue;
            }
        };
        let fields = match validate(&app, row.fields) {
            Ok(f) => f,
            Err(e) => {
                problems.push(ImportProblem {
                    line: row.line,
                    field: Some(e.field),
                    message: e.message,
                });
                continue;
            }
        };
        let mut labels = Vec::new();
        let mut refused = None;
        for text in &row.visibility {
            match resolver.resolve(text).await {
                Ok(l) => labels.push(l),
                Err(m) => {
                    refused = Some(m);
                    break;
                }
            }
        }
        labels.sort();
        labels.dedup();
        if refused.is_none()
            && let Err(e) = may_label(&app.access, &caller, &caller.id, &labels)
        {
            refused = Some(e.to_string());
        }
        if let Some(message) = refused {
            problems.push(ImportProblem {
                line: row.line,
                field: Some("visibility".into()),
                message,
            });
            continue;
        }
        good.push(Entry {
            id: store::new_id("pbe"),
            owner_id: caller.id.clone(),
            fields,
            labels,
            created_at: now,
            updated_at: now,
        });
    }
    let imported = good.len();
    let shared = good.iter().filter(|e| e.is_shared()).count();
    let failed = problems.len();
    let after = serde_json::json!({"imported": imported, "shared": shared, "failed": failed});
    let recorded = audit::entry(
        Ok(&caller),
        "phonebook.imported",
        Some(&caller.id),
        audit::NONE,
        Some(&after),
    );
    if good.is_empty() {
        app.store.audit(recorded).await?;
    } else {
        app.phonebook
            .insert(&app.store, good, Some(recorded))
            .await?;
    }
    let report = ImportReport {
        imported,
        failed,
        problems,
    };
    tracing::info!(by = %caller.name, imported, failed, "phonebook import");
    Ok(Json(report))
}

#[derive(Deserialize, IntoParams)]
pub struct ExportQuery {
    /// `csv` (default), `vcard3` or `vcard4`.
    pub format: Option<String>,
}

/// Exports every entry the caller may refer to, by name.
#[utoipa::path(get, path = "/v1/phonebook/export", params(ExportQuery), responses((status = 200, content_type = "text/csv", body = String)))]
pub async fn export(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Response> {
    require_reader(&app.access, &caller)?;
    let format = q.format.unwrap_or_else(|| "csv".into());
    if !matches!(format.as_str(), "csv" | "vcard3" | "vcard4") {
        return Err(ApiError::field(
            "format",
            format!("{format:?}: use csv, vcard3 or vcard4"),
        ));
    }
    let entries = app
        .phonebook
        .read()
        .list(None, usize::MAX, |e| visible(&app.access, &caller.id, e));
    let clients: HashMap<String, String> = app
        .store
        .clients()
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    let groupings: HashMap<String, String> = app
        .store
        .groupings()
        .await?
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect();
    let label = |l: &Label| match l {
        Label::Everyone => "everyone".to_owned(),
        Label::Client(id) => format!("client:{}", clients.get(id).unwrap_or(id)),
        Label::Grouping(id) => format!("grouping:{}", groupings.get(id).unwrap_or(id)),
    };
    let refs = entries.iter().map(|e| &**e);
    let (body, content_type, ext) = match format.as_str() {
        "csv" => (csv::write(refs, label), "text/csv; charset=utf-8", "csv"),
        "vcard3" => (
            vcard::write(refs, vcard::Version::V3, label),
            "text/vcard; charset=utf-8",
            "vcf",
        ),
        _ => (
            vcard::write(refs, vcard::Version::V4, label),
            "text/vcard; charset=utf-8",
            "vcf",
        ),
    };
    let disposition = format!("attachment; filename=\"phonebook.{ext}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
