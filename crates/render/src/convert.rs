//! Documents to a fax transmission: a cover page, every page of every document fitted to one fax grid,
//! the header line stamped on each, coded into TIFF Class F page by page (only the coded pages are held).

use crate::Document;
use crate::cover::{self, CoverInfo};
use crate::error::Error;
use crate::geometry::PageSpec;
use crate::header::{self, HeaderLine};
use crate::page::Page;

/// How a transmission is put together.
#[derive(Debug, Clone, Default)]
pub struct FaxOptions {
    /// Resolution, paper and halftoning of every page.
    pub spec: PageSpec,
    /// The sender's header line; `None` stamps nothing.
    pub header: Option<HeaderLine>,
    /// A cover page to put first; its page count is filled in.
    pub cover: Option<CoverInfo>,
    /// Threads that code pages while the next ones are rendered (0 or 1: the calling thread codes).
    pub coder_threads: usize,
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
            header::stamp(&mut page, &h.expand(number, total));
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

fn write_page(p: &Page) -> t4::tiff::WritePage<'_> {
    t4::tiff::WritePage {
        page: t4::PageRef {
            width: p.width,
            height: p.height,
            data: &p.data,
        },
        x_dpi: f64::from(p.x_dpi),
        y_dpi: f64::from(p.y_dpi),
        bad_fax_lines: None,
        consecutive_bad_fax_lines: None,
        clean_fax_data: None,
    }
}

fn encode_error(e: t4::Error) -> Error {
    Error::Encode(e.to_string())
}

/// Renders the transmission and codes it as one TIFF Class F file (`None`: uncompressed TIFF) into `out`,
/// page by page. With [`FaxOptions::coder_threads`] above 1, pages are coded on that many threads while the
/// calling thread renders the next ones, and written in order; at most a few pages per thread are in flight.
pub fn to_tiff<W: std::io::Write + Send>(
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
    let mut w = t4::tiff::Writer::new(out, options, page_total(docs, o)).map_err(encode_error)?;
    if o.coder_threads <= 1 || coding.is_none() {
        pages(docs, o, |page| {
            w.add(&write_page(&page)).map_err(encode_error)
        })?;
        return w.finish().map_err(encode_error);
    }
    use std::sync::mpsc::sync_channel;
    use std::sync::{Arc, Mutex};
    let threads = o.coder_threads;
    std::thread::scope(|scope| {
        let (page_tx, page_rx) = sync_channel::<(usize, Page)>(threads * 2);
        let page_rx = Arc::new(Mutex::new(page_rx));
        let (coded_tx, coded_rx) =
            sync_channel::<(usize, Page, Result<Vec<u8>, t4::Error>)>(threads * 2);
        for _ in 0..threads {
            let (rx, tx) = (Arc::clone(&page_rx), coded_tx.clone());
            scope.spawn(move || {
                loop {
                    // The lock is held only to take the next page, never while coding.
                    let next = rx
                        .lock()
                        .map_err(|_| ())
                        .and_then(|r| r.recv().map_err(|_| ()));
                    let Ok((i, page)) = next else { return };
                    let page_ref = t4::PageRef {
                        width: page.width,
                        height: page.height,
                        data: &page.data,
                    };
                    let strip = t4::tiff::strip(page_ref, coding).map(std::borrow::Cow::into_owned);
                    if tx.send((i, page, strip)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(coded_tx);
        let writer = scope.spawn(move || {
            let mut waiting = std::collections::BTreeMap::new();
            let mut next = 0usize;
            for (i, page, strip) in coded_rx {
                waiting.insert(i, (page, strip));
                while let Some((page, strip)) = waiting.remove(&next) {
                    w.add_strip(&write_page(&page), &strip.map_err(encode_error)?)
                        .map_err(encode_error)?;
                    next += 1;
                }
            }
            w.finish().map_err(encode_error)
        });
        let mut n = 0usize;
        let rendered = pages(docs, o, |page| {
            page_tx
                .send((n, page))
                .map_err(|_| Error::Encode("the page coder stopped".into()))?;
            n += 1;
            Ok(())
        });
        drop(page_tx);
        let written = writer
            .join()
            .unwrap_or_else(|_| Err(Error::Encode("the page writer panicked".into())));
        // A writer error explains a stopped pipeline better than the rendering side's view of it.
        match (rendered, written) {
            (_, Err(e)) => Err(e),
            (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(out)) => Ok(out),
        }
    })
}
