//! Fax page geometry: resolutions (T.30 DIS/DCS), scan-line widths (T.4 §2) and paper sizes.

/// A fax resolution, as negotiated in T.30 DIS/DCS.
///
/// The dots-per-inch figures are the nominal ones fax software writes into TIFF-F
/// (`XResolution`/`YResolution`): the metric resolutions of T.4 §2.1 (8 pels/mm,
/// 3.85/7.7/15.4 lines/mm, 16 pels/mm) rounded to whole dots per inch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Resolution {
    /// R8 × 3.85 lines/mm: 204 × 98 dpi.
    Standard,
    /// R8 × 7.7 lines/mm: 204 × 196 dpi.
    #[default]
    Fine,
    /// R8 × 15.4 lines/mm ("superfine", T.30 calls it R8 × 15.4): 204 × 391 dpi.
    Superfine,
    /// 300 × 300 pels/25.4 mm (inch-based, T.30 DIS bit 42).
    R300,
    /// R16 × 15.4 lines/mm: 408 × 391 dpi (T.30 DIS bit 43).
    R16,
}

impl Resolution {
    /// Every resolution, coarsest first.
    pub const ALL: [Resolution; 5] = [
        Resolution::Standard,
        Resolution::Fine,
        Resolution::Superfine,
        Resolution::R300,
        Resolution::R16,
    ];

    /// Horizontal resolution in dots per inch.
    pub fn x_dpi(self) -> u32 {
        match self {
            Resolution::Standard | Resolution::Fine | Resolution::Superfine => 204,
            Resolution::R300 => 300,
            Resolution::R16 => 408,
        }
    }

    /// Vertical resolution in lines per inch.
    pub fn y_dpi(self) -> u32 {
        match self {
            Resolution::Standard => 98,
            Resolution::Fine => 196,
            Resolution::Superfine | Resolution::R16 => 391,
            Resolution::R300 => 300,
        }
    }

    /// T.4's K parameter for two-dimensional (MR) coding: at most K - 1 lines in a row are coded
    /// two-dimensionally (T.4 §4.2.1: 2 at 3.85 lines/mm, 4 at 7.7, 6 at 300 lines/inch, 8 at 15.4).
    pub fn mr_k(self) -> u32 {
        match self {
            Resolution::Standard => 2,
            Resolution::Fine => 4,
            Resolution::R300 => 6,
            Resolution::Superfine | Resolution::R16 => 8,
        }
    }

    /// Pixels in one scan line for a recording width (T.4 §2.2, Table 1 and 2).
    pub fn line_width(self, width: FaxWidth) -> u32 {
        match (self, width) {
            (Resolution::R300, FaxWidth::A4) => 2592,
            (Resolution::R300, FaxWidth::B4) => 3072,
            (Resolution::R300, FaxWidth::A3) => 3648,
            (Resolution::R16, FaxWidth::A4) => 3456,
            (Resolution::R16, FaxWidth::B4) => 4096,
            (Resolution::R16, FaxWidth::A3) => 4864,
            (_, FaxWidth::A4) => 1728,
            (_, FaxWidth::B4) => 2048,
            (_, FaxWidth::A3) => 2432,
        }
    }
}

/// Recording width of a fax line (T.4 §2.2): 215 mm, 255 mm or 303 mm nominal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaxWidth {
    /// 1728 pixels at 8 pels/mm.
    A4,
    /// 2048 pixels at 8 pels/mm.
    B4,
    /// 2432 pixels at 8 pels/mm.
    A3,
}

/// The paper a page is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PaperSize {
    /// ISO A4, 210 × 297 mm.
    #[default]
    A4,
    /// US Letter, 8.5 × 11 in.
    Letter,
    /// ISO B4, 250 × 353 mm.
    B4,
    /// ISO A3, 297 × 420 mm.
    A3,
}

impl PaperSize {
    /// Width and height in millimetres.
    pub fn size_mm(self) -> (f64, f64) {
        match self {
            PaperSize::A4 => (210.0, 297.0),
            PaperSize::Letter => (215.9, 279.4),
            PaperSize::B4 => (250.0, 353.0),
            PaperSize::A3 => (297.0, 420.0),
        }
    }

    /// The fax recording width this paper is sent with (Letter goes as A4 width).
    pub fn fax_width(self) -> FaxWidth {
        match self {
            PaperSize::A4 | PaperSize::Letter => FaxWidth::A4,
            PaperSize::B4 => FaxWidth::B4,
            PaperSize::A3 => FaxWidth::A3,
        }
    }
}

/// How grey is turned into black and white.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Halftone {
    /// Threshold for text-like pictures, dither for photographs, decided from the histogram.
    #[default]
    Auto,
    /// Black below mid-grey: crisp text and line art.
    Threshold,
    /// Floyd–Steinberg error diffusion: photographs.
    Dither,
}

/// What a rendered page should look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PageSpec {
    /// Fax resolution.
    pub resolution: Resolution,
    /// Paper size; decides the scan-line width and the page length.
    pub paper: PaperSize,
    /// Halftoning of pictures (PDF pages are always thresholded unless this is `Dither`).
    pub halftone: Halftone,
}

impl PageSpec {
    /// A spec for this resolution and paper with automatic halftoning.
    pub fn new(resolution: Resolution, paper: PaperSize) -> Self {
        PageSpec {
            resolution,
            paper,
            halftone: Halftone::Auto,
        }
    }

    /// Pixels in each row of the page: the fax scan-line width.
    pub fn width(&self) -> u32 {
        self.resolution.line_width(self.paper.fax_width())
    }

    /// Rows in the page: the paper length at the vertical resolution.
    pub fn height(&self) -> u32 {
        mm_to_px(self.paper.size_mm().1, self.resolution.y_dpi())
    }

    /// The area content is fitted into: the paper width (but never wider than the scan
    /// line) by the paper length, in pixels.
    pub fn content_box(&self) -> (u32, u32) {
        let paper_w = mm_to_px(self.paper.size_mm().0, self.resolution.x_dpi());
        (paper_w.min(self.width()), self.height())
    }

    /// Horizontal dots per inch.
    pub fn x_dpi(&self) -> u32 {
        self.resolution.x_dpi()
    }

    /// Vertical lines per inch.
    pub fn y_dpi(&self) -> u32 {
        self.resolution.y_dpi()
    }
}

/// Millimetres to whole pixels at `dpi`.
pub fn mm_to_px(mm: f64, dpi: u32) -> u32 {
    (mm / 25.4 * f64::from(dpi)).round() as u32
}

/// Where content of physical size `w_in` × `h_in` inches lands on a page: scaled by the
/// largest factor ≤ `max_scale` that fits the content box, centred horizontally, at the top.
/// Returns (x offset, width, height) in page pixels.
pub(crate) fn fit(spec: &PageSpec, w_in: f64, h_in: f64, max_scale: f64) -> Option<Placement> {
    if !(w_in.is_finite() && h_in.is_finite() && w_in > 0.0 && h_in > 0.0) {
        return None;
    }
    let (bw, bh) = spec.content_box();
    let xd = f64::from(spec.x_dpi());
    let yd = f64::from(spec.y_dpi());
    let scale = (f64::from(bw) / (w_in * xd))
        .min(f64::from(bh) / (h_in * yd))
        .min(max_scale);
    let width = ((w_in * scale * xd).round() as u32).clamp(1, bw);
    let height = ((h_in * scale * yd).round() as u32).clamp(1, bh);
    Some(Placement {
        x: (spec.width() - width) / 2,
        width,
        height,
        scale,
    })
}

/// Result of [`fit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Placement {
    pub x: u32,
    pub width: u32,
    pub height: u32,
    /// Physical scale factor applied to the content.
    pub scale: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fine_a4_page_is_1728_by_2292() {
        let s = PageSpec::new(Resolution::Fine, PaperSize::A4);
        assert_eq!((s.width(), s.height()), (1728, 2292));
        assert_eq!(s.content_box(), (1687, 2292));
    }

    #[test]
    fn letter_is_narrowed_to_the_a4_line() {
        let s = PageSpec::new(Resolution::Fine, PaperSize::Letter);
        assert_eq!(s.content_box(), (1728, 2156));
        let p = fit(&s, 8.5, 11.0, 1.0).expect("fits");
        assert_eq!((p.x, p.width), (0, 1728));
        assert!(p.height < 2156);
    }

    #[test]
    fn line_widths_follow_t4_tables() {
        use Resolution::*;
        let w = |r: Resolution| [FaxWidth::A4, FaxWidth::B4, FaxWidth::A3].map(|f| r.line_width(f));
        assert_eq!(w(Standard), [1728, 2048, 2432]);
        assert_eq!(w(Superfine), [1728, 2048, 2432]);
        assert_eq!(w(R300), [2592, 3072, 3648]);
        assert_eq!(w(R16), [3456, 4096, 4864]);
    }

    #[test]
    fn degenerate_sizes_do_not_fit() {
        let s = PageSpec::default();
        assert!(fit(&s, 0.0, 1.0, 1.0).is_none());
        assert!(fit(&s, f64::NAN, 1.0, 1.0).is_none());
        assert!(fit(&s, 1.0, f64::INFINITY, 1.0).is_none());
    }
}
