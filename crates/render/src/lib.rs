//! Documents to bilevel fax pages.
//!
//! [`load`] sniffs PDF, PNG, JPEG, GIF, TIFF or plain UTF-8 text and returns a
//! [`Document`]; [`Document::render_page`] turns one page into a [`Page`] for a
//! [`PageSpec`] (fax resolution and paper). Pages follow the shared bitmap convention:
//! 1 bit per pixel, rows padded to whole bytes, most significant bit leftmost, 1 = black.
//!
//! Placement: content is centred on the fax scan line (1728 pixels for A4 and Letter at
//! 8 pels/mm, T.4 §2.2) and fitted into the paper width and length, keeping its physical
//! aspect ratio on the non-square fax grid. PDF pages are printed at true size and only
//! shrunk (Letter is 1734 pixels wide at 204 dpi, 6 more than the line); pictures are
//! scaled up or down to fill the paper. Pages are always the full paper length.
//!
//! Untrusted input never panics and is bounded by [`Limits`]: input size, page count and
//! picture pixels are checked before anything large is allocated, and the third-party
//! PDF rasterizer runs inside `catch_unwind` as a last line of defence.
//!
//! Bilevel TIFFs (fax files in G3 or G4, and any 1-bit TIFF) are read by the `t4` crate;
//! a page already on the requested fax grid keeps its bits and its length (see `fax`).
//! Grey and colour TIFFs are read by the `tiff` crate like other pictures.

pub mod convert;
pub mod cover;
mod error;
mod fax;
mod font;
pub mod geometry;
mod gs;
mod halftone;
pub mod header;
mod ink;
mod page;
mod pdf;
pub mod preview;
mod raster;
mod shared;
mod text;

use std::time::Duration;

pub use convert::FaxOptions;
pub use error::{Error, Format};
pub use geometry::{FaxWidth, Halftone, PageSpec, PaperSize, Resolution};
pub use gs::{is_postscript, postscript_to_pdf};
pub use header::HeaderLine;
pub use page::Page;
pub use shared::SharedBytes;
pub use text::TextOptions;

/// Bounds on what a document may cost to load and render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest input accepted, in bytes.
    pub max_input_bytes: usize,
    /// Most pages a document may have.
    pub max_pages: usize,
    /// Most pixels in one picture (a raster file, a TIFF page, or an image inside a PDF).
    pub max_image_pixels: u64,
}

impl Default for Limits {
    /// 64 MiB, 1000 pages, 64 megapixels (an A4 page scanned at 600 dpi is 35).
    fn default() -> Self {
        Limits {
            max_input_bytes: 64 << 20,
            max_pages: 1000,
            max_image_pixels: 64_000_000,
        }
    }
}

impl Limits {
    /// A document must have at least one page and at most `max_pages`.
    pub(crate) fn check_pages(&self, format: Format, pages: usize) -> Result<(), Error> {
        if pages == 0 {
            return Err(Error::NoPages { format });
        }
        if pages > self.max_pages {
            return Err(Error::TooManyPages {
                pages,
                limit: self.max_pages,
            });
        }
        Ok(())
    }
}

/// Which program rasterizes PDF pages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PdfBackend {
    /// The built-in pure-Rust `hayro` rasterizer.
    #[default]
    Hayro,
    /// A ghostscript subprocess; `program` is the command (normally `gs`).
    Ghostscript {
        /// Program to run.
        program: String,
        /// Longest one ghostscript run may take before it is killed.
        timeout: Duration,
    },
}

impl PdfBackend {
    /// Ghostscript as `gs` on the `PATH`, 60 seconds per run.
    pub fn ghostscript() -> Self {
        PdfBackend::Ghostscript {
            program: "gs".into(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// How [`load`] reads a document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadOptions {
    /// Resource bounds.
    pub limits: Limits,
    /// PDF rasterizer.
    pub pdf_backend: PdfBackend,
    /// Paper that plain text is paginated for (render it with the same paper).
    pub text_paper: PaperSize,
    /// Plain-text layout.
    pub text: TextOptions,
    /// Worker threads [`Document::render_all`] may use for PDF pages; 0 or 1 renders in
    /// the calling thread.
    pub threads: usize,
}

/// A loaded document.
pub struct Document {
    kind: Kind,
    limits: Limits,
    threads: usize,
}

enum Kind {
    Pdf(pdf::PdfDoc),
    Gs(gs::GsDoc),
    Picture(raster::Picture, Format),
    Tiff(raster::Tiff),
    Fax(fax::FaxTiff),
    Text(text::TextDoc),
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document")
            .field("format", &self.format())
            .field("pages", &self.page_count())
            .finish()
    }
}

/// Identifies the format from the first bytes; `None` if it is none we read.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    let head = bytes.get(..1024).unwrap_or(bytes);
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if bytes.starts_with(b"\xff\xd8\xff") {
        Some(Format::Jpeg)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(Format::Gif)
    } else if [&b"II*\0"[..], b"MM\0*", b"II+\0", b"MM\0+"]
        .iter()
        .any(|m| bytes.starts_with(m))
    {
        Some(Format::Tiff)
    } else if head.windows(5).any(|w| w == b"%PDF-") {
        // Readers accept a header anywhere in the first KiB (ISO 32000-1 Annex H.3).
        Some(Format::Pdf)
    } else if gs::is_postscript(bytes) {
        Some(Format::PostScript)
    } else if let Ok(s) = std::str::from_utf8(bytes) {
        let binary = s
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c'));
        (!binary).then_some(Format::Text)
    } else {
        None
    }
}

/// Loads a document, sniffing its format.
pub fn load(bytes: &[u8], options: &LoadOptions) -> Result<Document, Error> {
    load_owned(bytes.to_vec(), options)
}

/// [`load`] for bytes the caller can give away: PDFs and TIFFs keep them without a copy.
pub fn load_owned(bytes: Vec<u8>, options: &LoadOptions) -> Result<Document, Error> {
    load_shared(SharedBytes::from(bytes), options)
}

/// [`load`] for bytes held elsewhere (a memory-mapped file, say): PDFs and TIFFs keep a reference.
pub fn load_shared(bytes: SharedBytes, options: &LoadOptions) -> Result<Document, Error> {
    let limits = options.limits;
    if bytes.is_empty() {
        return Err(Error::Empty);
    }
    if bytes.len() > limits.max_input_bytes {
        return Err(Error::InputTooLarge {
            size: bytes.len(),
            limit: limits.max_input_bytes,
        });
    }
    let kind = match sniff(&bytes).ok_or(Error::UnknownFormat)? {
        Format::Pdf => match &options.pdf_backend {
            PdfBackend::Hayro => Kind::Pdf(pdf::PdfDoc::open(bytes, &limits)?),
            PdfBackend::Ghostscript { program, timeout } => {
                Kind::Gs(gs::GsDoc::open(&bytes, program, *timeout, &limits)?)
            }
        },
        f @ (Format::Png | Format::Jpeg | Format::Gif) => {
            Kind::Picture(raster::decode_image(&bytes, f, &limits)?, f)
        }
        Format::Tiff => match fax::FaxTiff::open(bytes, &limits)? {
            Ok(f) => Kind::Fax(f),
            Err(bytes) => Kind::Tiff(raster::Tiff::open(bytes, &limits)?),
        },
        Format::PostScript => return Err(Error::PostScript),
        Format::Text => {
            let s = std::str::from_utf8(&bytes).map_err(|_| Error::UnknownFormat)?;
            let doc = text::TextDoc::layout(s, options.text_paper, options.text, limits.max_pages)
                .map_err(|pages| Error::TooManyPages {
                    pages,
                    limit: limits.max_pages,
                })?;
            Kind::Text(doc)
        }
    };
    Ok(Document {
        kind,
        limits,
        threads: options.threads,
    })
}

/// What [`check`] found in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// The format loaded.
    pub format: Format,
    /// Its pages, as the renderer paginates them.
    pub pages: usize,
}

/// Loads a document as a fax server will and decodes what loading leaves for later (every page of a
/// TIFF), so that a document this accepts is one a fax server can render. PDF pages are parsed, not
/// drawn; pictures are decoded whole, as the renderer decodes them. [`check_cost`] tells beforehand how
/// much memory this takes.
pub fn check(bytes: SharedBytes, options: &LoadOptions) -> Result<Checked, Error> {
    let doc = load_shared(bytes, options)?;
    match &doc.kind {
        Kind::Fax(f) => {
            for i in 0..f.page_count() {
                f.raw_page(i)?;
            }
        }
        Kind::Tiff(t) => {
            for i in 0..t.page_count() {
                t.picture(i, &doc.limits)?;
            }
        }
        Kind::Pdf(_) | Kind::Gs(_) | Kind::Picture(..) | Kind::Text(_) => {}
    }
    Ok(Checked {
        format: doc.format(),
        pages: doc.page_count(),
    })
}

/// An upper bound of the memory [`check`] allocates besides the input, read from the headers alone
/// (nothing is decoded), so that a caller can admit checks within a memory budget. A document whose
/// headers cannot be read costs what the limits allow at most.
pub fn check_cost(bytes: &[u8], options: &LoadOptions) -> u64 {
    let limits = &options.limits;
    let len = bytes.len() as u64;
    // Allocators round up and decoders keep small buffers of their own: an eighth more, and a MiB.
    let estimate = match sniff(bytes) {
        None => 0,
        Some(f @ (Format::Png | Format::Jpeg | Format::Gif)) => {
            raster::decode_cost(bytes, f, limits)
        }
        Some(Format::Tiff) => {
            match t4::tiff::TiffFile::try_open(bytes, &fax::read_limits(limits)) {
                // One bilevel page at a time, and a strip's copy when its bits are reversed.
                Ok(_) => limits.max_image_pixels / 8 * 2 + len,
                Err(_) => raster::tiff_cost(bytes, limits),
            }
        }
        // hayro keeps the file and its parsed objects; ghostscript works in a process of its own.
        Some(Format::Pdf) => 2 * len + (16 << 20),
        // Lines are copies of the text (a tab becomes up to 8 spaces), no more than the page limit holds.
        Some(Format::Text) => (8 * len).min(limits.max_pages as u64 * 64 * 1024),
        // Refused by loading before anything is decoded.
        Some(Format::PostScript) => 0,
    };
    estimate + estimate / 8 + (1 << 20)
}

impl Document {
    /// The format that was loaded.
    pub fn format(&self) -> Format {
        match &self.kind {
            Kind::Pdf(_) | Kind::Gs(_) => Format::Pdf,
            Kind::Picture(_, f) => *f,
            Kind::Tiff(_) | Kind::Fax(_) => Format::Tiff,
            Kind::Text(_) => Format::Text,
        }
    }

    /// Number of pages (at least 1).
    pub fn page_count(&self) -> usize {
        match &self.kind {
            Kind::Pdf(d) => d.page_count(),
            Kind::Gs(d) => d.page_count(),
            Kind::Picture(..) => 1,
            Kind::Tiff(t) => t.page_count(),
            Kind::Fax(f) => f.page_count(),
            Kind::Text(t) => t.page_count(),
        }
    }

    /// Renders page `index` (from 0).
    pub fn render_page(&self, index: usize, spec: &PageSpec) -> Result<Page, Error> {
        let count = self.page_count();
        if index >= count {
            return Err(Error::PageOutOfRange { index, count });
        }
        match &self.kind {
            Kind::Pdf(d) => d.render(index, spec),
            Kind::Gs(d) => d.render(index, spec),
            Kind::Picture(p, _) => Ok(p.render(spec)),
            Kind::Tiff(t) => Ok(t.picture(index, &self.limits)?.render(spec)),
            Kind::Fax(f) => f.render(index, spec),
            Kind::Text(t) => t
                .render(index, spec)
                .ok_or(Error::PageOutOfRange { index, count }),
        }
    }

    /// Renders every page in order, calling `each(index, result)` until it returns
    /// `false`. Faster than [`Document::render_page`] in a loop for PDFs, whose font
    /// caches are then shared between pages, and spread over [`LoadOptions::threads`].
    pub fn render_all(
        &self,
        spec: &PageSpec,
        mut each: impl FnMut(usize, Result<Page, Error>) -> bool,
    ) {
        let lanes = self.threads.clamp(1, self.page_count());
        match &self.kind {
            Kind::Pdf(d) => d.render_all(spec, self.threads, each),
            Kind::Fax(_) | Kind::Text(_) if lanes > 1 => self.render_lanes(spec, lanes, each),
            _ => {
                for i in 0..self.page_count() {
                    if !each(i, self.render_page(i, spec)) {
                        break;
                    }
                }
            }
        }
    }

    /// Page `i` on lane `i % lanes`, each lane a thread one page ahead; delivered in order.
    fn render_lanes(
        &self,
        spec: &PageSpec,
        lanes: usize,
        mut each: impl FnMut(usize, Result<Page, Error>) -> bool,
    ) {
        std::thread::scope(|scope| {
            let mut rxs = Vec::with_capacity(lanes);
            for k in 0..lanes {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Page, Error>>(1);
                let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                    for i in (k..self.page_count()).step_by(lanes) {
                        // A closed channel means the caller stopped early.
                        if tx.send(self.render_page(i, spec)).is_err() {
                            break;
                        }
                    }
                });
                if spawned.is_err() {
                    break;
                }
                rxs.push(rx);
            }
            for i in 0..self.page_count() {
                let page = match rxs.get(i % lanes.max(1)).filter(|_| rxs.len() == lanes) {
                    Some(rx) => rx.recv().unwrap_or(Err(Error::RendererFailed {
                        format: self.format(),
                        page: i,
                    })),
                    // Could not start every thread: render here.
                    None => self.render_page(i, spec),
                };
                if !each(i, page) {
                    break;
                }
            }
        });
    }
}
