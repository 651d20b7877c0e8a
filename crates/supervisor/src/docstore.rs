//! The content-addressed document store: every document is a file named by its SHA-256 under
//! `documents/ab/abcdef…`, written once through a temporary file and a rename, so a half-written upload is
//! never visible and the same bytes are stored once.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    #[error("the document is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("unsupported document type; send PDF, TIFF, PNG, JPEG, GIF or UTF-8 text")]
    Unsupported,
    #[error("the document is corrupt: {0}")]
    Corrupt(String),
    #[error("the document is empty")]
    Empty,
    #[error("reading the upload failed: {0}")]
    Upload(String),
    #[error("document storage failed: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone)]
pub struct StoredDoc {
    pub sha256: String,
    pub size: u64,
    pub media_type: &'static str,
    pub pages: u32,
}

#[derive(Debug, Clone)]
pub struct DocStore {
    root: PathBuf,
}

impl DocStore {
    pub fn open(root: PathBuf) -> std::io::Result<Self> {
        at_rest::private_dir(&root)?;
        at_rest::private_dir(&root.join("tmp"))?;
        Ok(Self { root })
    }

    pub fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        let valid = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| self.root.join(&sha256[..2]).join(sha256))
    }

    /// Streams an upload to disk while hashing it, validates it, and files it under its hash. Nothing is
    /// kept when the upload is too large, empty, unsupported or corrupt.
    pub async fn put_stream<S, E>(&self, mut body: S, limit: u64) -> Result<StoredDoc, DocError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let tmp = self.root.join("tmp").join(store::new_id("up"));
        let result = async {
            // Small uploads stay in memory; larger ones spill to a temporary file as they arrive.
            let mut memory: Vec<u8> = Vec::new();
            let mut file: Option<tokio::fs::File> = None;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| DocError::Upload(e.to_string()))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(DocError::TooLarge { limit });
                }
                hasher.update(&chunk);
                match file.as_mut() {
                    Some(f) => f.write_all(&chunk).await?,
                    None if memory.len() + chunk.len() <= IN_MEMORY => {
                        memory.extend_from_slice(&chunk)
                    }
                    None => {
                        let mut f = create_private(&tmp).await?;
                        f.write_all(&memory).await?;
                        f.write_all(&chunk).await?;
                        memory = Vec::new();
                        file = Some(f);
                    }
                }
            }
            if size == 0 {
                return Err(DocError::Empty);
            }
            let sha256 = hex::encode(hasher.finalize());
            let dest = self
                .path_of(&sha256)
                .ok_or_else(|| DocError::Corrupt("bad hash".into()))?;
            let (media_type, pages) = match file {
                Some(mut f) => {
                    f.flush().await?;
                    drop(f);
                    let tmp = tmp.clone();
                    tokio::task::spawn_blocking(move || {
                        std::fs::read(&tmp)
                            .map_err(DocError::Io)
                            .and_then(|b| inspect(&b))
                    })
                    .await
                    .map_err(|e| DocError::Corrupt(format!("inspection failed: {e}")))??
                }
                None => {
                    let checked = inspect(&memory)?;
                    if !tokio::fs::try_exists(&dest).await.unwrap_or(false) {
                        let mut f = create_private(&tmp).await?;
                        f.write_all(&memory).await?;
                        f.flush().await?;
                    }
                    checked
                }
            };
            if tokio::fs::try_exists(&tmp).await.unwrap_or(false) {
                if let Some(dir) = dest.parent() {
                    tokio::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(at_rest::DIR_MODE)
                        .create(dir)
                        .await?;
                }
                tokio::fs::rename(&tmp, &dest).await?;
            }
            Ok(StoredDoc {
                sha256,
                size,
                media_type,
                pages,
            })
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

/// A new document file, readable by the supervisor's user alone.
async fn create_private(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(at_rest::FILE_MODE)
        .open(path)
        .await
}

/// Uploads up to this size are hashed and checked in memory.
const IN_MEMORY: usize = 256 * 1024;

/// Recognises a document by its content and counts its pages.
pub fn inspect(bytes: &[u8]) -> Result<(&'static str, u32), DocError> {
    if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        return tiff_pages(bytes).map(|p| ("image/tiff", p));
    }
    let media_type = match render::sniff(bytes) {
        Some(render::Format::Pdf) => Some("application/pdf"),
        Some(render::Format::Png) => Some("image/png"),
        Some(render::Format::Jpeg) => Some("image/jpeg"),
        Some(render::Format::Gif) => Some("image/gif"),
        _ => None,
    };
    if let Some(media_type) = media_type {
        // The renderer's own parse: what it cannot open now, the fax server could not send later.
        let options = render::LoadOptions {
            limits: render::Limits {
                max_input_bytes: usize::MAX,
                ..Default::default()
            },
            ..Default::default()
        };
        return match render::load(bytes, &options) {
            Ok(doc) => Ok((
                media_type,
                u32::try_from(doc.page_count()).unwrap_or(u32::MAX),
            )),
            Err(e) => Err(DocError::Corrupt(e.to_string())),
        };
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') => {
            // 66 lines a page, as the text renderer paginates at standard settings.
            let lines = u32::try_from(text.lines().count()).unwrap_or(u32::MAX);
            Ok(("text/plain", lines.div_ceil(66).max(1)))
        }
        _ => Err(DocError::Unsupported),
    }
}

/// Counts the images of a TIFF file by walking its IFD chain, checking every offset.
fn tiff_pages(b: &[u8]) -> Result<u32, DocError> {
    let little = b[0] == b'I';
    let corrupt = |m: &str| DocError::Corrupt(format!("TIFF: {m}"));
    let u16_at = |o: usize| -> Result<u16, DocError> {
        let s = b
            .get(o..o + 2)
            .ok_or_else(|| corrupt("offset beyond the end of the file"))?;
        Ok(if little {
            u16::from_le_bytes([s[0], s[1]])
        } else {
            u16::from_be_bytes([s[0], s[1]])
        })
    };
    let u32_at = |o: usize| -> Result<u32, DocError> {
        let s = b
            .get(o..o + 4)
            .ok_or_else(|| corrupt("offset beyond the end of the file"))?;
        let a = [s[0], s[1], s[2], s[3]];
        Ok(if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        })
    };
    let mut offset = u32_at(4)? as usize;
    let mut pages = 0u32;
    let mut seen = std::collections::HashSet::new();
    while offset != 0 {
        if !seen.insert(offset) {
            return Err(corrupt("the directory chain loops"));
        }
        if pages >= 10_000 {
            return Err(corrupt("more than 10000 pages"));
        }
        let entries = usize::from(u16_at(offset)?);
        let (mut width, mut length, mut strips) = (false, false, false);
        for i in 0..entries {
            let e = offset + 2 + i * 12;
            match u16_at(e)? {
                256 => width = true,
                257 => length = true,
                273 | 324 => strips = true,
                _ => {}
            }
        }
        if !(width && length && strips) {
            return Err(corrupt(
                "an image directory lacks ImageWidth, ImageLength or image data",
            ));
        }
        pages += 1;
        offset = u32_at(offset + 2 + entries * 12)? as usize;
    }
    if pages == 0 {
        return Err(corrupt("no images"));
    }
    Ok(pages)
}

/// Path helper for tests and tools.
pub fn root_of(data_dir: &Path) -> PathBuf {
    data_dir.join("documents")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid one-strip TIFF with `pages` images.
    pub fn tiny_tiff(pages: u32) -> Vec<u8> {
        let mut b = b"II*\0".to_vec();
        b.extend_from_slice(&8u32.to_le_bytes());
        for p in 0..pages {
            let ifd = b.len();
            b.extend_from_slice(&3u16.to_le_bytes());
            for (tag, val) in [(256u16, 8u32), (257, 1), (273, 0)] {
                b.extend_from_slice(&tag.to_le_bytes());
                b.extend_from_slice(&4u16.to_le_bytes());
                b.extend_from_slice(&1u32.to_le_bytes());
                b.extend_from_slice(&val.to_le_bytes());
            }
            let next = if p + 1 < pages {
                (ifd + 2 + 36 + 4) as u32
            } else {
                0
            };
            b.extend_from_slice(&next.to_le_bytes());
        }
        b
    }

    #[test]
    fn recognises_and_counts() {
        assert_eq!(inspect(&tiny_tiff(3)).expect("tiff"), ("image/tiff", 3));
        assert_eq!(inspect(b"hello\n").expect("text"), ("text/plain", 1));
        assert!(matches!(
            inspect(b"%PDF-1.4 truncated"),
            Err(DocError::Corrupt(_))
        ));
        assert!(matches!(
            inspect(b"\x89PNG\r\n\x1a\nnot really"),
            Err(DocError::Corrupt(_))
        ));
        let pdf = include_bytes!("../../render/tests/data/sample.pdf");
        let (media_type, pages) = inspect(pdf).expect("a real PDF");
        assert_eq!(media_type, "application/pdf");
        assert!(pages >= 1);
        let mut cut = pdf.to_vec();
        cut.truncate(pdf.len() / 3);
        assert!(
            matches!(inspect(&cut), Err(DocError::Corrupt(_))),
            "a truncated PDF is refused"
        );
        assert!(matches!(
            inspect(&[0u8, 159, 146, 150]),
            Err(DocError::Unsupported)
        ));
        let mut looping = tiny_tiff(1);
        let n = looping.len();
        looping[n - 4..].copy_from_slice(&8u32.to_le_bytes());
        assert!(matches!(inspect(&looping), Err(DocError::Corrupt(m)) if m.contains("loops")));
        let mut cut = tiny_tiff(2);
        cut.truncate(30);
        assert!(matches!(inspect(&cut), Err(DocError::Corrupt(_))));
    }
}
