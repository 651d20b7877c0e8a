//! The content-addressed document store: every document is a file named by its SHA-256 under
//! `documents/ab/abcdef…`, written once through a temporary file and a rename, so a half-written upload is
//! never visible and the same bytes are stored once.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocError {
    #[error("the document is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("unsupported document type; send PDF, PostScript, TIFF, PNG, JPEG, GIF or UTF-8 text")]
    Unsupported,
    /// PostScript, which this supervisor cannot convert (the reason says why).
    #[error("{0}")]
    Unconvertible(String),
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
    checks: Checks,
    /// The ghostscript program that converts PostScript uploads to PDF; `None` refuses them.
    ghostscript: Option<String>,
}

/// Longest a PostScript conversion may take.
const POSTSCRIPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl DocStore {
    pub fn open(root: PathBuf, checks: Checks) -> std::io::Result<Self> {
        at_rest::private_dir(&root)?;
        at_rest::private_dir(&root.join("tmp"))?;
        Ok(Self {
            root,
            checks,
            ghostscript: None,
        })
    }

    /// Converts PostScript uploads to PDF with this ghostscript program (none when empty).
    pub fn with_ghostscript(mut self, program: &str) -> Self {
        self.ghostscript = Some(program.to_owned()).filter(|p| !p.is_empty());
        self
    }

    /// A PostScript upload as the PDF ghostscript makes of it (a blocking subprocess, run in the checks'
    /// pool within the memory budget).
    async fn postscript_to_pdf(&self, source: Source, size: u64) -> Result<Vec<u8>, DocError> {
        let Some(program) = self.ghostscript.clone() else {
            return Err(DocError::Unconvertible(
                "this supervisor does not convert PostScript (ghostscript is off in its configuration); \
                 send the document as PDF"
                    .into(),
            ));
        };
        let limits = load_options().limits;
        let converted = self
            .checks
            .run(size.saturating_mul(2).saturating_add(64 << 20), move || {
                let bytes = source.bytes()?;
                render::postscript_to_pdf(&bytes, &program, POSTSCRIPT_TIMEOUT, &limits).map_err(
                    |e| match e {
                        render::Error::GhostscriptMissing { .. } => DocError::Unconvertible(format!(
                            "PostScript documents are converted to PDF with ghostscript, which this \
                             supervisor cannot run ({e}); send the document as PDF"
                        )),
                        render::Error::InputTooLarge { limit, .. } => DocError::TooLarge {
                            limit: limit as u64,
                        },
                        other => {
                            DocError::Corrupt(format!("the PostScript could not be converted: {other}"))
                        }
                    },
                )
            })
            .await??;
        Ok(converted)
    }

    pub fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        let valid = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| self.root.join(&sha256[..2]).join(sha256))
    }

    /// Streams an upload to disk, then hashes and validates it in [`Checks`], and files it under its hash.
    /// Nothing is kept when the upload is too large, empty, unsupported or corrupt.
    pub async fn put_stream<S, E>(&self, mut body: S, limit: u64) -> Result<StoredDoc, DocError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let tmp = self.root.join("tmp").join(store::new_id("up"));
        let result = async {
            // Small uploads stay in memory; larger ones spill to a temporary file as they arrive. Hashing
            // waits for the check's thread: many large uploads at once would keep the runtime's threads
            // busy hashing.
            let mut memory: Vec<u8> = Vec::new();
            let mut file: Option<tokio::fs::File> = None;
            let mut size = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| DocError::Upload(e.to_string()))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(DocError::TooLarge { limit });
                }
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
            let (mut source, mut in_memory) = match file {
                Some(mut f) => {
                    f.flush().await?;
                    (Source::File(tmp.clone()), None)
                }
                None => {
                    let memory = render::SharedBytes::from(memory);
                    (Source::Memory(memory.clone()), Some(memory))
                }
            };
            // PostScript is stored as the PDF ghostscript makes of it (it replaces a spilled upload's
            // temporary file below): never as text, and fax servers need no ghostscript.
            if render::is_postscript(&source.head().await?) {
                let pdf = render::SharedBytes::from(self.postscript_to_pdf(source, size).await?);
                size = pdf.len() as u64;
                source = Source::Memory(pdf.clone());
                in_memory = Some(pdf);
            }
            let Checked {
                sha256,
                media_type,
                pages,
            } = self.checks.check(source, size).await?;
            let dest = self
                .path_of(&sha256)
                .ok_or_else(|| DocError::Corrupt("bad hash".into()))?;
            if let Some(memory) = in_memory
                && (!tokio::fs::try_exists(&dest).await.unwrap_or(false)
                    || tokio::fs::try_exists(&tmp).await.unwrap_or(false))
            {
                let mut f = create_private(&tmp).await?;
                f.write_all(&memory).await?;
                f.flush().await?;
            }
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

/// How the renderer reads uploads: as a fax server will (the same limits: what it would refuse is refused
/// here, at upload).
fn load_options() -> render::LoadOptions {
    render::LoadOptions::default()
}

/// Recognises a document by its content, checks it as a fax server will read it (pictures and every TIFF
/// page decoded, text laid out as rendered) and counts its pages. Blocking and memory-hungry: uploads go
/// through [`Checks`].
pub fn inspect(bytes: render::SharedBytes) -> Result<(&'static str, u32), DocError> {
    let checked = render::check(bytes, &load_options()).map_err(|e| match e {
        render::Error::UnknownFormat => DocError::Unsupported,
        render::Error::Empty => DocError::Empty,
        render::Error::InputTooLarge { limit, .. } => DocError::TooLarge {
            limit: limit as u64,
        },
        other => DocError::Corrupt(other.to_string()),
    })?;
    let media_type = match checked.format {
        render::Format::Pdf => "application/pdf",
        render::Format::Png => "image/png",
        render::Format::Jpeg => "image/jpeg",
        render::Format::Gif => "image/gif",
        render::Format::Tiff => "image/tiff",
        render::Format::Text => "text/plain",
        render::Format::PostScript => "application/postscript",
    };
    Ok((media_type, u32::try_from(checked.pages).unwrap_or(u32::MAX)))
}

/// What a check found: the document's hash, type and pages.
#[derive(Debug, Clone)]
pub struct Checked {
    pub sha256: String,
    pub media_type: &'static str,
    pub pages: u32,
}

/// An upload waiting for its check: small ones are in memory, larger ones in their temporary file.
#[derive(Debug, Clone)]
pub enum Source {
    Memory(render::SharedBytes),
    File(PathBuf),
}

impl Source {
    /// Its first bytes, enough to tell the format.
    async fn head(&self) -> Result<Vec<u8>, DocError> {
        match self {
            Source::Memory(b) => Ok(b[..b.len().min(16)].to_vec()),
            Source::File(p) => {
                use tokio::io::AsyncReadExt;
                let mut head = Vec::with_capacity(16);
                tokio::fs::File::open(p)
                    .await?
                    .take(16)
                    .read_to_end(&mut head)
                    .await?;
                Ok(head)
            }
        }
    }

    fn bytes(&self) -> Result<render::SharedBytes, DocError> {
        match self {
            Source::Memory(b) => Ok(b.clone()),
            Source::File(p) => Ok(std::fs::read(p)?.into()),
        }
    }
}

/// The pool that checks uploads, away from the async runtime's threads: at most one check per worker (one
/// per core), and only as many at once as their memory fits in the budget. A check first reads the
/// document's headers (holding a reservation for its bytes) to learn what decoding will cost, then waits
/// for that much of the budget; one larger than the whole budget runs alone. Each wait takes one
/// reservation at a time, so no check holds memory while it waits for more.
#[derive(Debug, Clone)]
pub struct Checks {
    workers: Arc<Semaphore>,
    memory: Arc<Semaphore>,
    budget_mib: u32,
}

impl Checks {
    /// `workers` checks at a time (at least one) within `budget_bytes` (at least 1 MiB).
    pub fn new(workers: usize, budget_bytes: u64) -> Self {
        let budget_mib = u32::try_from(budget_bytes >> 20).unwrap_or(u32::MAX).max(1);
        Self {
            workers: Arc::new(Semaphore::new(workers.max(1))),
            memory: Arc::new(Semaphore::new(budget_mib as usize)),
            budget_mib,
        }
    }

    /// One worker per core but one, which stays with the runtime so that requests are answered while
    /// uploads are checked (at least one worker).
    pub fn per_core(budget_bytes: u64) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(cores.saturating_sub(1).max(1), budget_bytes)
    }

    /// Runs `job` on a blocking thread once a worker and `bytes` of the budget are free.
    async fn run<T: Send + 'static>(
        &self,
        bytes: u64,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, DocError> {
        let mib = u32::try_from(bytes.div_ceil(1 << 20))
            .unwrap_or(u32::MAX)
            .clamp(1, self.budget_mib);
        let closed = |_| DocError::Corrupt("the document checks have stopped".into());
        let _memory = self.memory.acquire_many(mib).await.map_err(closed)?;
        let _worker = self.workers.acquire().await.map_err(closed)?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| DocError::Corrupt(format!("the check failed: {e}")))
    }

    /// Hashes and checks an upload of `size` bytes (see [`inspect`]).
    pub async fn check(&self, source: Source, size: u64) -> Result<Checked, DocError> {
        self.check_with(source, size, inspect).await
    }

    async fn check_with(
        &self,
        source: Source,
        size: u64,
        inspect: fn(render::SharedBytes) -> Result<(&'static str, u32), DocError>,
    ) -> Result<Checked, DocError> {
        let headers = source.clone();
        let (sha256, cost) = self
            .run(size, move || {
                headers.bytes().map(|b| {
                    let sha256 = hex::encode(Sha256::digest(&b));
                    (sha256, render::check_cost(&b, &load_options()))
                })
            })
            .await??;
        let (media_type, pages) = self
            .run(size.saturating_add(cost), move || inspect(source.bytes()?))
            .await??;
        Ok(Checked {
            sha256,
            media_type,
            pages,
        })
    }
}

/// Path helper for tests and tools.
pub fn root_of(data_dir: &Path) -> PathBuf {
    data_dir.join("documents")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8]) -> Result<(&'static str, u32), DocError> {
        inspect(bytes.to_vec().into())
    }

    /// A bilevel TIFF of `pages` pages, each 8 × 1 pixels in one uncompressed strip, its directory edited by
    /// `edit` (a StripOffsets of `u32::MAX` stands for the page's own data).
    fn tiff(pages: u32, edit: impl Fn(&mut Vec<(u16, u16, u32, u32)>)) -> Vec<u8> {
        let mut b = b"II*\0".to_vec();
        b.extend_from_slice(&8u32.to_le_bytes());
        for p in 0..pages {
            let mut entries = vec![
                (256, 3, 1, 8),        // ImageWidth
                (257, 3, 1, 1),        // ImageLength
                (258, 3, 1, 1),        // BitsPerSample
                (259, 3, 1, 1),        // Compression none
                (262, 3, 1, 0),        // WhiteIsZero
                (273, 4, 1, u32::MAX), // StripOffsets
                (278, 3, 1, 1),        // RowsPerStrip
                (279, 4, 1, 1),        // StripByteCounts
            ];
            edit(&mut entries);
            let data_at = b.len() + 2 + entries.len() * 12 + 4;
            b.extend_from_slice(&(entries.len() as u16).to_le_bytes());
            for (tag, ty, count, value) in entries {
                let value = if value == u32::MAX {
                    data_at as u32
                } else {
                    value
                };
                b.extend_from_slice(&tag.to_le_bytes());
                b.extend_from_slice(&ty.to_le_bytes());
                b.extend_from_slice(&count.to_le_bytes());
                b.extend_from_slice(&value.to_le_bytes());
            }
            let next = if p + 1 < pages { data_at as u32 + 1 } else { 0 };
            b.extend_from_slice(&next.to_le_bytes());
            b.push(0b1010_1010);
        }
        b
    }

    fn set(tag: u16, value: u32) -> impl Fn(&mut Vec<(u16, u16, u32, u32)>) {
        move |e| {
            if let Some(entry) = e.iter_mut().find(|x| x.0 == tag) {
                entry.3 = value;
            }
        }
    }

    #[test]
    fn recognises_and_counts() {
        assert_eq!(check(&tiff(3, |_| {})).expect("tiff"), ("image/tiff", 3));
        assert_eq!(check(b"hello\n").expect("text"), ("text/plain", 1));
        assert!(matches!(
            check(b"%PDF-1.4 truncated"),
            Err(DocError::Corrupt(_))
        ));
        assert!(matches!(
            check(b"\x89PNG\r\n\x1a\nnot really"),
            Err(DocError::Corrupt(_))
        ));
        let pdf = include_bytes!("../../render/tests/data/sample.pdf");
        let (media_type, pages) = check(pdf).expect("a real PDF");
        assert_eq!(media_type, "application/pdf");
        assert!(pages >= 1);
        let mut cut = pdf.to_vec();
        cut.truncate(pdf.len() / 3);
        assert!(
            matches!(check(&cut), Err(DocError::Corrupt(_))),
            "a truncated PDF is refused"
        );
        assert!(matches!(
            check(&[0u8, 159, 146, 150]),
            Err(DocError::Unsupported)
        ));
        let mut looping = tiff(1, |_| {});
        let at = 8 + 2 + 8 * 12;
        looping[at..at + 4].copy_from_slice(&8u32.to_le_bytes());
        assert!(matches!(check(&looping), Err(DocError::Corrupt(m)) if m.contains("loops")));
        let mut cut = tiff(2, |_| {});
        cut.truncate(30);
        assert!(matches!(check(&cut), Err(DocError::Corrupt(_))));
    }

    #[test]
    fn tiffs_are_read_as_the_fax_server_reads_them() {
        let refused = [
            ("a strip past the end of the file", tiff(1, set(273, 5000))),
            ("a strip shorter than its rows", tiff(1, set(256, 64))),
            ("an unknown compression", tiff(1, set(259, 12345))),
            ("a page over the pixel limit", {
                tiff(1, |e| {
                    set(256, 100_000)(e);
                    set(257, 100_000)(e);
                })
            }),
            ("no StripByteCounts", tiff(1, |e| e.retain(|x| x.0 != 279))),
        ];
        for (what, file) in refused {
            assert!(
                matches!(check(&file), Err(DocError::Corrupt(_))),
                "{what}: {:?}",
                check(&file)
            );
        }
    }

    #[test]
    fn text_pages_follow_the_wrapping() {
        // 100 lines of 200 characters wrap to 300 lines of 84 columns: 5 pages of 63 lines on A4.
        let text = format!("{}\n", "x".repeat(200)).repeat(100);
        assert_eq!(check(text.as_bytes()).expect("text"), ("text/plain", 5));
        // Control characters other than tab and line and page breaks: not text the renderer takes.
        assert!(matches!(check(b"bell\x07\n"), Err(DocError::Unsupported)));
    }

    static RUNNING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static MOST: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    static THREADS: std::sync::Mutex<Vec<std::thread::ThreadId>> =
        std::sync::Mutex::new(Vec::new());

    /// Records where and how many checks run at once.
    fn probe(_: render::SharedBytes) -> Result<(&'static str, u32), DocError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = RUNNING.fetch_add(1, SeqCst) + 1;
        MOST.fetch_max(now, SeqCst);
        THREADS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(std::thread::current().id());
        std::thread::sleep(std::time::Duration::from_millis(20));
        RUNNING.fetch_sub(1, SeqCst);
        Ok(("text/plain", 1))
    }

    /// Eight checks of 256 KiB of text at once; answers the most that ran together.
    async fn most_at_once(checks: &Checks) -> usize {
        MOST.store(0, std::sync::atomic::Ordering::SeqCst);
        let (text, size) = text();
        let runs = (0..8).map(|_| checks.check_with(Source::Memory(text.clone()), size, probe));
        for r in futures::future::join_all(runs).await {
            assert_eq!(r.expect("checked").pages, 1);
        }
        MOST.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn text() -> (render::SharedBytes, u64) {
        let text = render::SharedBytes::from(b"ab\tcd\n".repeat(256 * 1024 / 6));
        let size = text.len() as u64;
        (text, size)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn checks_run_off_the_runtime_one_per_worker_within_the_memory_budget() {
        let runtime_thread = std::thread::current().id();
        // What one check reserves: its bytes and what decoding them costs (a few MiB for this text).
        let (bytes, size) = text();
        let one = (size + render::check_cost(&bytes, &load_options())).div_ceil(1 << 20) << 20;
        assert!(one >= 2 << 20, "{one}");
        assert_eq!(
            most_at_once(&Checks::new(2, 64 << 20)).await,
            2,
            "two workers"
        );
        assert_eq!(
            most_at_once(&Checks::new(2, one + one / 2)).await,
            1,
            "the budget holds one check"
        );
        assert_eq!(most_at_once(&Checks::new(4, 2 * one + one / 2)).await, 2);
        assert_eq!(
            most_at_once(&Checks::new(2, 1 << 20)).await,
            1,
            "a check over the whole budget runs alone"
        );
        let threads = THREADS.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(threads.len(), 32);
        assert!(
            threads.iter().all(|t| *t != runtime_thread),
            "no check ran on the runtime's thread"
        );
    }
}
