//! The crate's one error type.

use std::fmt;

/// A document format the loader recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Portable Document Format.
    Pdf,
    /// Portable Network Graphics.
    Png,
    /// JPEG (JFIF / Exif).
    Jpeg,
    /// GIF (first frame only).
    Gif,
    /// TIFF, single or multi-page.
    Tiff,
    /// Plain UTF-8 text.
    Text,
    /// PostScript: converted to PDF with ghostscript ([`crate::postscript_to_pdf`]), never read as text.
    PostScript,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Pdf => "PDF",
            Format::Png => "PNG",
            Format::Jpeg => "JPEG",
            Format::Gif => "GIF",
            Format::Tiff => "TIFF",
            Format::Text => "text",
            Format::PostScript => "PostScript",
        })
    }
}

/// Why a document could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input has no bytes at all.
    #[error("the document is empty")]
    Empty,
    /// The bytes are none of PDF, PNG, JPEG, GIF, TIFF or UTF-8 text.
    #[error("unrecognised document format (expected PDF, PNG, JPEG, GIF, TIFF or UTF-8 text)")]
    UnknownFormat,
    /// The input is larger than [`crate::Limits::max_input_bytes`].
    #[error("the document is {size} bytes, over the limit of {limit} bytes")]
    InputTooLarge {
        /// Size of the input.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The document has no page to render.
    #[error("the {format} document has no pages")]
    NoPages {
        /// Format of the document.
        format: Format,
    },
    /// The document has more pages than [`crate::Limits::max_pages`].
    #[error("the document has {pages} pages or more, over the limit of {limit}")]
    TooManyPages {
        /// Pages counted (counting stops just past the limit).
        pages: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A picture is larger than [`crate::Limits::max_image_pixels`] (a decompression bomb or
    /// simply too big to fax).
    #[error("the image is {width}×{height} pixels, over the limit of {limit} pixels")]
    ImageTooLarge {
        /// Width in pixels.
        width: u64,
        /// Height in pixels.
        height: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The PDF is encrypted with a password or an algorithm we cannot open.
    #[error("the PDF is encrypted: {0}")]
    Encrypted(&'static str),
    /// The bytes claim to be a format but are damaged or truncated.
    #[error("the {format} document is corrupt: {detail}")]
    Corrupt {
        /// Format of the document.
        format: Format,
        /// What was wrong, for a log.
        detail: String,
    },
    /// The document is valid but uses something this crate cannot render.
    #[error("unsupported {format} document: {detail}")]
    Unsupported {
        /// Format of the document.
        format: Format,
        /// What is not supported.
        detail: String,
    },
    /// A page index past the end of the document.
    #[error("page {index} does not exist (the document has {count} pages)")]
    PageOutOfRange {
        /// The index asked for (0-based).
        index: usize,
        /// The number of pages.
        count: usize,
    },
    /// A third-party rasterizer failed unexpectedly (it panicked) on this page.
    #[error("the {format} renderer failed on page {page}")]
    RendererFailed {
        /// Format of the document.
        format: Format,
        /// The page index (0-based).
        page: usize,
    },
    /// The ghostscript backend was chosen but the program cannot be run.
    #[error(
        "ghostscript ({program}) cannot be run: {reason}; install the Debian package `ghostscript`"
    )]
    GhostscriptMissing {
        /// The program we tried to run.
        program: String,
        /// Why it could not be started.
        reason: String,
    },
    /// Ghostscript ran but failed on the document.
    #[error("ghostscript failed: {0}")]
    Ghostscript(String),
    /// PostScript is not drawn directly (nor ever faxed as its source text): convert it to PDF first
    /// ([`crate::postscript_to_pdf`]), as the supervisor does with uploads.
    #[error("PostScript is rendered through ghostscript: convert it to PDF first")]
    PostScript,
    /// A temporary file for the ghostscript backend could not be written.
    #[error("temporary file: {0}")]
    Io(#[from] std::io::Error),
    /// A PNG preview could not be encoded.
    #[error("PNG encoding failed: {0}")]
    PngEncode(String),
    /// Coding the pages as TIFF-F failed (a page the coder cannot take).
    #[error("coding the fax pages failed: {0}")]
    Encode(String),
}

impl Error {
    pub(crate) fn corrupt(format: Format, detail: impl fmt::Display) -> Self {
        Error::Corrupt {
            format,
            detail: detail.to_string(),
        }
    }

    pub(crate) fn unsupported(format: Format, detail: impl fmt::Display) -> Self {
        Error::Unsupported {
            format,
            detail: detail.to_string(),
        }
    }
}
