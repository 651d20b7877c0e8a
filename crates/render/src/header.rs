//! The header line a sending fax machine prints at the top of each page
//! (`From <header> <date> Page n/N`; T.30 leaves its form to the sender).

use crate::font::Typeface;
use crate::page::Page;

/// Size of the header type in points: small, like machine-printed headers.
pub const HEADER_FONT_PT: f32 = 8.0;

/// The variable parts of a header line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderInfo<'a> {
    /// Sender identification as configured (typically name and fax number).
    pub from: &'a str,
    /// Date and time, already formatted by the caller (this crate has no clock).
    pub date: &'a str,
    /// This page's number, from 1.
    pub page: usize,
    /// Total pages in the transmission.
    pub pages: usize,
}

/// Height of the header band in rows on a page of `y_dpi`.
pub fn band_height(y_dpi: u32) -> u32 {
    // 1.5 lines of 8-point type.
    (HEADER_FONT_PT * 1.5 * y_dpi as f32 / 72.0).ceil() as u32
}

/// Clears a band at the top of the page and prints, left to right: `From <from>`,
/// the date, and "Page n/N" against the right edge.
pub fn stamp(page: &mut Page, info: &HeaderInfo<'_>) {
    let band = band_height(page.y_dpi);
    page.clear_rows(0, band);
    let mut face = Typeface::new(HEADER_FONT_PT, page.x_dpi, page.y_dpi);
    let adv = face.advance();
    let baseline =
        (HEADER_FONT_PT * 0.25 * page.y_dpi as f32 / 72.0 + face.ascent()).round() as i32;
    let margin = page.x_dpi as f32 / 8.0;
    let right = format!("Page {}/{}", info.page, info.pages);
    let right_x = page.width as f32 - margin - adv * right.chars().count() as f32;
    let left = format!("From {}", info.from);
    let end = face.draw(page, margin, baseline, &left);
    // The date goes in the middle, or just after the sender if that runs long.
    let date_w = adv * info.date.chars().count() as f32;
    let date_x = ((page.width as f32 - date_w) / 2.0).max(end + 2.0 * adv);
    if date_x + date_w < right_x - adv {
        face.draw(page, date_x, baseline, info.date);
    }
    face.draw(page, right_x.max(0.0), baseline, &right);
}
