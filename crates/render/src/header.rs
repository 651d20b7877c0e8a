//! The header line a sending fax machine prints at the top of each page
//! (`From <header> <date> Page n/N`; T.30 leaves its form to the sender).

use crate::font::Typeface;
use crate::page::Page;

/// Size of the header type in points: small, like machine-printed headers.
pub const HEADER_FONT_PT: f32 = 8.0;

/// A piece of a header field: text, or the page numbers filled in page by page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderText {
    Text(String),
    /// This page's number, from 1.
    Page,
    /// Pages in the transmission.
    Pages,
}

/// The header line: fields spread across the top of the page, the first at the left margin, the last
/// against the right one, those between centred in equal parts of the line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeaderLine {
    pub fields: Vec<Vec<HeaderText>>,
}

impl HeaderLine {
    /// The classic header: `From <from>`, the date (already formatted: this crate has no clock) in the
    /// middle, `Page n/N` at the right.
    pub fn classic(from: &str, date: &str) -> Self {
        use HeaderText::*;
        Self {
            fields: vec![
                vec![Text(format!("From {from}"))],
                vec![Text(date.to_owned())],
                vec![Text("Page ".into()), Page, Text("/".into()), Pages],
            ],
        }
    }

    /// The fields' text on page `page` of `pages`.
    pub fn expand(&self, page: usize, pages: usize) -> Vec<String> {
        self.fields
            .iter()
            .map(|f| {
                f.iter()
                    .map(|t| match t {
                        HeaderText::Text(s) => s.clone(),
                        HeaderText::Page => page.to_string(),
                        HeaderText::Pages => pages.to_string(),
                    })
                    .collect()
            })
            .collect()
    }
}

/// Height of the header band in rows on a page of `y_dpi`.
pub fn band_height(y_dpi: u32) -> u32 {
    // 1.5 lines of 8-point type.
    (HEADER_FONT_PT * 1.5 * y_dpi as f32 / 72.0).ceil() as u32
}

/// Clears a band at the top of the page and prints the fields: the first at the left margin, the last
/// against the right one, those between centred in equal parts of the line (moved right past a long
/// field before them, and left out when they would run into the last).
pub fn stamp(page: &mut Page, fields: &[String]) {
    let band = band_height(page.y_dpi);
    page.clear_rows(0, band);
    let Some((first, rest)) = fields.split_first() else {
        return;
    };
    let mut face = Typeface::new(HEADER_FONT_PT, page.x_dpi, page.y_dpi);
    let adv = face.advance();
    let baseline =
        (HEADER_FONT_PT * 0.25 * page.y_dpi as f32 / 72.0 + face.ascent()).round() as i32;
    let margin = page.x_dpi as f32 / 8.0;
    let width = |s: &str| adv * s.chars().count() as f32;
    let mut end = face.draw(page, margin, baseline, first);
    let Some((last, middle)) = rest.split_last() else {
        return;
    };
    let right_x = (page.width as f32 - margin - width(last)).max(0.0);
    let parts = (fields.len() - 1) as f32;
    for (i, field) in middle.iter().enumerate() {
        let centre = page.width as f32 * (i + 1) as f32 / parts;
        let x = (centre - width(field) / 2.0).max(end + 2.0 * adv);
        if x + width(field) < right_x - adv {
            end = face.draw(page, x, baseline, field);
        }
    }
    face.draw(page, right_x, baseline, last);
}
