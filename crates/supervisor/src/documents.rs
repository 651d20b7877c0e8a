//! Documents (claim 2): uploads stored and checked as a fax server will read them, and the one rule of
//! who may use a stored document (to send it, to download it), for every face.

use crate::AppState;
use crate::access::Caller;
use crate::docstore::{DocError, StoredDoc};
use crate::error::{Error, Result};
use bytes::Bytes;
use futures::Stream;

/// A stored document the caller may use.
#[derive(Debug, Clone)]
pub struct Usable {
    pub size: i64,
    pub media_type: String,
    pub pages: i64,
}

/// Streams a client's upload into the document store within the supervisor's size limit, checks it as a
/// fax server will read it, and records the caller as one of its owners. `field` names the upload in errors.
pub async fn store<S, E>(
    app: &AppState,
    caller: &Caller,
    field: &str,
    stream: S,
) -> Result<StoredDoc>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let limit = app.live.with(|s| s.uploads.max_upload_bytes);
    keep(app, Some(&caller.id), limit, field, stream).await
}

/// Streams a document into the store within `limit` bytes, checks it, and records it with its owner
/// (none for a fax a fax server received: the inbox decides who sees it).
pub async fn keep<S, E>(
    app: &AppState,
    owner: Option<&str>,
    limit: u64,
    field: &str,
    stream: S,
) -> Result<StoredDoc>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let doc = app
        .docs
        .put_stream(stream, limit)
        .await
        .map_err(|e| refused(field, e))?;
    app.store
        .insert_document(&doc.sha256, doc.size, doc.media_type, doc.pages, owner)
        .await?;
    Ok(doc)
}

/// Why a document was not stored, naming the field it came in.
pub fn refused(field: &str, e: DocError) -> Error {
    match e {
        DocError::TooLarge { .. } => Error::TooLarge(format!("{field}: {e}")),
        DocError::Unsupported | DocError::Unconvertible(_) => Error::Unsupported {
            field: field.to_owned(),
            message: format!("{field}: {e}"),
        },
        DocError::Corrupt(_) | DocError::Empty => Error::field(field, e),
        DocError::Upload(ref m) if m.contains("length limit") => {
            Error::TooLarge(format!("{field}: the upload is over the limit"))
        }
        DocError::Upload(_) => Error::Malformed(format!("{field}: {e}")),
        DocError::Io(io) => Error::internal("document store", io),
    }
}

/// A stored document, if the caller may use it: one it uploaded, or one its groupings share with it
/// (`Access::may_use_document`). Any other is as unknown as one that does not exist.
pub async fn usable(app: &AppState, caller: &Caller, sha256: &str) -> Result<Option<Usable>> {
    let Some(((size, media_type, pages), owners)) = app.store.document_and_owners(sha256).await?
    else {
        return Ok(None);
    };
    if !app.access.may_use_document(caller, &owners) {
        return Ok(None);
    }
    Ok(Some(Usable {
        size,
        media_type,
        pages,
    }))
}
