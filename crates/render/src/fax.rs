//! Bilevel TIFFs (fax files: TIFF-F in G3 or G4, and any 1-bit TIFF libtiff writes) through the `t4`
//! reader. A page already on the requested fax grid (same line width and horizontal resolution) keeps its
//! bits: only its vertical resolution is converted, by repeating lines (coarse to fine) or by merging them
//! with a logical OR (fine to coarse, which keeps one-line rules), as fax software does. Such a page keeps its
//! own length, as a received fax has. Any other page is scaled through grey like a picture.

use crate::error::{Error, Format};
use crate::geometry::PageSpec;
use crate::halftone::Grey;
use crate::page::Page;
use crate::raster::Picture;
use crate::{Limits, SharedBytes};

/// A bilevel TIFF whose directories were walked and checked once, at load; pages are decoded when rendered.
pub(crate) struct FaxTiff {
    file: t4::tiff::TiffFile<SharedBytes>,
}

pub(crate) fn read_limits(limits: &Limits) -> t4::tiff::ReadLimits {
    t4::tiff::ReadLimits {
        max_pages: limits.max_pages,
        max_pixels: limits.max_image_pixels,
    }
}

fn t4_error(e: t4::Error) -> Error {
    match e {
        t4::Error::Unsupported(what) => Error::unsupported(Format::Tiff, what),
        other => Error::corrupt(Format::Tiff, other),
    }
}

impl FaxTiff {
    /// `Err(bytes)` gives the file back when it is a TIFF the bilevel reader does not take (colour, grey,
    /// tiled, BigTIFF): the general TIFF reader gets it.
    pub fn open(
        bytes: SharedBytes,
        limits: &Limits,
    ) -> Result<Result<FaxTiff, SharedBytes>, Error> {
        let file = match t4::tiff::TiffFile::try_open(bytes, &read_limits(limits)) {
            Ok(file) => file,
            Err((t4::Error::Unsupported(_), bytes)) => return Ok(Err(bytes)),
            Err((e, _)) => return Err(open_error(e)),
        };
        limits.check_pages(Format::Tiff, file.page_count())?;
        Ok(Ok(FaxTiff { file }))
    }

    pub fn page_count(&self) -> usize {
        self.file.page_count()
    }

    /// The page as stored (bits, size and resolution), without fitting it to a fax grid.
    pub fn raw_page(&self, index: usize) -> Result<t4::tiff::TiffPage, Error> {
        self.file.page(index).map_err(t4_error)
    }

    pub fn render(&self, index: usize, spec: &PageSpec) -> Result<Page, Error> {
        Ok(fit(self.raw_page(index)?, spec))
    }
}

fn open_error(e: t4::Error) -> Error {
    match e {
        t4::Error::PageTooLarge {
            width,
            height,
            limit,
        } => Error::ImageTooLarge {
            width,
            height,
            limit,
        },
        t4::Error::TooManyPages { limit } => Error::TooManyPages {
            pages: limit + 1,
            limit,
        },
        other => t4_error(other),
    }
}

/// The page's resolution, or the fax resolution its size suggests when the file states none.
fn dpi(p: &t4::tiff::TiffPage) -> (f64, f64) {
    let sane = |v: f64| v.is_finite() && v >= 10.0;
    match (p.x_dpi(), p.y_dpi()) {
        (Some(x), Some(y)) if sane(x) && sane(y) && p.resolution_unit != 1 => (x, y),
        // A fax line without a resolution: 8 pels/mm, and standard lines if it is short for A4.
        _ if matches!(p.width, 1728 | 2048 | 2432) => {
            (204.0, if p.height < 1500 { 98.0 } else { 196.0 })
        }
        _ => (200.0, 200.0),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= b * 0.03
}

/// Fits a bilevel page to the fax grid of `spec`.
pub(crate) fn fit(p: t4::tiff::TiffPage, spec: &PageSpec) -> Page {
    let (x_dpi, y_dpi) = dpi(&p);
    let (sx, sy) = (f64::from(spec.x_dpi()), f64::from(spec.y_dpi()));
    if p.width == spec.width() && close(x_dpi, sx) {
        let ratio = sy / y_dpi;
        for k in [1u32, 2, 4] {
            if close(ratio, f64::from(k)) {
                return repeat_lines(p, k, spec);
            }
            if k > 1 && close(1.0 / ratio, f64::from(k)) {
                return merge_lines(&p, k, spec);
            }
        }
    }
    let grey = Grey {
        width: p.width,
        height: p.height,
        data: (0..p.height)
            .flat_map(|y| {
                let row = &p.data[y as usize * t4::stride(p.width)..][..t4::stride(p.width)];
                (0..p.width).map(move |x| {
                    if row[x as usize / 8] & (0x80 >> (x % 8)) != 0 {
                        0
                    } else {
                        255
                    }
                })
            })
            .collect(),
    };
    Picture {
        grey,
        dpi: Some((x_dpi, y_dpi)),
    }
    .render(spec)
}

fn repeat_lines(p: t4::tiff::TiffPage, k: u32, spec: &PageSpec) -> Page {
    if k == 1 {
        return Page {
            width: p.width,
            height: p.height,
            x_dpi: spec.x_dpi(),
            y_dpi: spec.y_dpi(),
            data: p.data,
        };
    }
    let s = t4::stride(p.width);
    let mut data = Vec::with_capacity(p.data.len() * k as usize);
    for row in p.data.chunks_exact(s) {
        for _ in 0..k {
            data.extend_from_slice(row);
        }
    }
    Page {
        width: p.width,
        height: p.height * k,
        x_dpi: spec.x_dpi(),
        y_dpi: spec.y_dpi(),
        data,
    }
}

fn merge_lines(p: &t4::tiff::TiffPage, k: u32, spec: &PageSpec) -> Page {
    let s = t4::stride(p.width);
    let height = p.height.div_ceil(k);
    let mut data = vec![0u8; s * height as usize];
    for (y, row) in p.data.chunks_exact(s).enumerate() {
        let out = &mut data[(y / k as usize) * s..][..s];
        for (o, b) in out.iter_mut().zip(row) {
            *o |= b;
        }
    }
    Page {
        width: p.width,
        height,
        x_dpi: spec.x_dpi(),
        y_dpi: spec.y_dpi(),
        data,
    }
}
