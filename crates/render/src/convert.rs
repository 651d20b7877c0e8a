//! Documents to a fax transmission: a cover page, every page of every document fitted to one fax grid,
//! the header line stamped on each, coded into TIFF Class F page by page (only the coded pages are held).

use crate::Document;
use crate::cover::{self, CoverInfo};
use crate::error::Error;
use crate::geometry::PageSpec;
use crate::header::{self, HeaderInfo};
use crate::page::Page;

/// How a transmission is put together.
#[derive(Debug, Clone, Default)]
pub struct FaxOptions {
    /// Resolution, paper and halftoning of every page.
    pub spec: PageSpec,
    /// The sender's header line (`From <from> <date> Page n/N`); `None` stamps nothing.
    pub header: Option<HeaderLine>,
    /// A cover page to put first; its page count is filled in.
    pub cover: Option<CoverInfo>,
}

/// The fixed parts of the header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderLine {
    pub from: String,
    /// Already formatted (this crate has no clock).
    pub date: String,
}

/// Pages in the transmission: the documents' pages plus the cover.
pub fn page_total(docs: &[Document], o: &FaxOptions) -> usize {
    docs.iter().map(Document::page_count).sum::<usize>() + usize::from(o.cover.is_some())
}

/// Renders every page in transmission order, calling `each(page)` with it; stops at the first error.
pub fn pages(
    docs: &[Document],
    o: &FaxOptions,
    mut each: impl FnMut(Page) -> Result<(), Error>,
) -> Result<(), Error> {
    let total = page_total(docs, o);
    let mut number = 0;
    let mut emit = |mut page: Page, each: &mut dyn FnMut(Page) -> Result<(), Error>| {
        number += 1;
        if let Some(h) = &o.header {
            header::stamp(
                &mut page,
                &HeaderInfo {
                    from: &h.from,
                    date: &h.date,
                    page: number,
                    pages: total,
                },
            );
        }
        each(page)
    };
    if let Some(info) = &o.cover {
        let info = CoverInfo {
            pages: total,
            ..info.clone()
        };
        emit(cover::render(&info, &o.spec), &mut each)?;
    }
    for doc in docs {
        let mut failed = None;
        doc.render_all(&o.spec, |_, page| {
            match page.and_then(|p| emit(p, &mut each)) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
}

/// The coding of a TIFF-F file.
pub type Coding = t4::Coding;

/// Renders the transmission and codes it as one TIFF Class F file (`None`: uncompressed TIFF) into `out`,
/// page by page.
pub fn to_tiff<W: std::io::Write>(
    docs: &[Document],
    o: &FaxOptions,
    coding: Option<Coding>,
    software: Option<String>,
    date_time: Option<String>,
    out: W,
) -> Result<W, Error> {
    let options = t4::tiff::WriteOptions {
        coding,
        software,
        date_time,
    };
    let mut w = t4::tiff::Writer::new(out, options, page_total(docs, o))
        .map_err(|e| Error::Encode(e.to_string()))?;
    pages(docs, o, |page| {
        w.add(&t4::tiff::WritePage {
            page: t4::PageRef {
                width: page.width,
                height: page.height,
                data: &page.data,
            },
            x_dpi: f64::from(page.x_dpi),
            y_dpi: f64::from(page.y_dpi),
            bad_fax_lines: None,
            consecutive_bad_fax_lines: None,
            clean_fax_data: None,
        })
        .map_err(|e| Error::Encode(e.to_string()))
    })?;
    w.finish().map_err(|e| Error::Encode(e.to_string()))
}
