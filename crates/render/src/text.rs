//! Plain UTF-8 text: tabs, wrapping, pagination and drawing with the bundled font.

use crate::font::{Typeface, advance_em};
use crate::geometry::{PageSpec, PaperSize, mm_to_px};
use crate::page::Page;

/// How plain text is laid out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextOptions {
    /// Font size in points.
    pub font_size_pt: f32,
    /// Distance between baselines in points.
    pub line_height_pt: f32,
    /// Margin on every side in millimetres (the top one leaves room for the fax header).
    pub margin_mm: f32,
}

impl Default for TextOptions {
    /// 10-point type on 12-point lines (6 lines per inch) with 15 mm margins: 84 columns
    /// and 63 lines on A4.
    fn default() -> Self {
        TextOptions {
            font_size_pt: 10.0,
            line_height_pt: 12.0,
            margin_mm: 15.0,
        }
    }
}

const TAB: usize = 8;
const PT_MM: f32 = 25.4 / 72.0;

impl TextOptions {
    /// Characters per line and lines per page on this paper (at least one of each).
    pub fn grid(&self, paper: PaperSize) -> (usize, usize) {
        let (w, h) = paper.size_mm();
        let usable_w = w as f32 - 2.0 * self.margin_mm;
        let usable_h = h as f32 - 2.0 * self.margin_mm;
        let cell = advance_em() * self.font_size_pt * PT_MM;
        let cols = (usable_w / cell).floor().max(1.0) as usize;
        let rows = (usable_h / (self.line_height_pt * PT_MM)).floor().max(1.0) as usize;
        (cols, rows)
    }

    fn sane(self) -> Self {
        let ok = |v: f32, lo: f32, hi: f32, d: f32| {
            if v.is_finite() && v >= lo && v <= hi {
                v
            } else {
                d
            }
        };
        let d = TextOptions::default();
        TextOptions {
            font_size_pt: ok(self.font_size_pt, 4.0, 72.0, d.font_size_pt),
            line_height_pt: ok(self.line_height_pt, 4.0, 144.0, d.line_height_pt),
            margin_mm: ok(self.margin_mm, 0.0, 60.0, d.margin_mm),
        }
    }
}

/// Text broken into pages of lines.
#[derive(Debug, Clone)]
pub(crate) struct TextDoc {
    pages: Vec<Vec<String>>,
    options: TextOptions,
}

impl TextDoc {
    /// Expands tabs to multiples of 8 columns, wraps long lines at the column limit,
    /// starts a new page at form feed or when the page is full. Control characters other
    /// than tab, LF, CR and FF are dropped. Stops counting pages past `max_pages`.
    pub fn layout(
        text: &str,
        paper: PaperSize,
        options: TextOptions,
        max_pages: usize,
    ) -> Result<Self, usize> {
        let options = options.sane();
        let (cols, rows) = options.grid(paper);
        let mut pages: Vec<Vec<String>> = vec![Vec::new()];
        let push = |pages: &mut Vec<Vec<String>>, line: String| -> Result<(), usize> {
            if pages.last().is_some_and(|p| p.len() >= rows) {
                pages.push(Vec::new());
                if pages.len() > max_pages {
                    return Err(pages.len());
                }
            }
            if let Some(p) = pages.last_mut() {
                p.push(line);
            }
            Ok(())
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let text = text.strip_suffix('\n').unwrap_or(text);
        // A form feed ending the text does not start a blank page.
        let text = text.strip_suffix('\x0c').unwrap_or(text);
        for (i, chunk) in text.split('\x0c').enumerate() {
            if i > 0 {
                pages.push(Vec::new());
                if pages.len() > max_pages {
                    return Err(pages.len());
                }
            }
            for raw in chunk.split('\n') {
                let mut line = String::new();
                let mut col = 0usize;
                for c in raw.chars() {
                    let width = match c {
                        '\t' => TAB - col % TAB,
                        c if c.is_control() => continue,
                        _ => 1,
                    };
                    if col + width > cols && col > 0 {
                        push(&mut pages, std::mem::take(&mut line))?;
                        col = 0;
                    }
                    if c == '\t' {
                        // A tab at a wrap point only fills to the line end.
                        let width = (TAB - col % TAB).min(cols - col.min(cols));
                        line.extend(std::iter::repeat_n(' ', width));
                        col += width;
                    } else {
                        line.push(c);
                        col += 1;
                    }
                }
                push(&mut pages, line)?;
            }
        }
        Ok(TextDoc { pages, options })
    }

    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    pub fn lines(&self, index: usize) -> Option<&[String]> {
        self.pages.get(index).map(Vec::as_slice)
    }

    pub fn render(&self, index: usize, spec: &PageSpec) -> Option<Page> {
        let lines = self.lines(index)?;
        let mut page = Page::blank(spec.width(), spec.height(), spec.x_dpi(), spec.y_dpi());
        draw_lines(&mut page, spec, &self.options, lines);
        Some(page)
    }
}

/// Draws lines from the top-left margin of the paper.
pub(crate) fn draw_lines(
    page: &mut Page,
    spec: &PageSpec,
    options: &TextOptions,
    lines: &[String],
) {
    let mut face = Typeface::new(options.font_size_pt, spec.x_dpi(), spec.y_dpi());
    let (content_w, _) = spec.content_box();
    let left =
        (spec.width() - content_w) / 2 + mm_to_px(f64::from(options.margin_mm), spec.x_dpi());
    let top = mm_to_px(f64::from(options.margin_mm), spec.y_dpi()) as f32;
    let step = options.line_height_pt * spec.y_dpi() as f32 / 72.0;
    let ascent = face.ascent();
    for (i, line) in lines.iter().enumerate() {
        let baseline = (top + i as f32 * step + ascent).round() as i32;
        face.draw(page, left as f32, baseline, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(text: &str) -> TextDoc {
        TextDoc::layout(text, PaperSize::A4, TextOptions::default(), 1000).expect("within limits")
    }

    #[test]
    fn a4_grid_is_84_columns_by_63_lines() {
        assert_eq!(TextOptions::default().grid(PaperSize::A4), (84, 63));
    }

    #[test]
    fn tabs_stop_every_eight_columns() {
        let d = layout("a\tb\tc\n\tx");
        assert_eq!(
            d.lines(0).expect("page"),
            ["a       b       c", "        x"]
        );
    }

    #[test]
    fn long_lines_wrap_at_the_column_limit() {
        let long = "x".repeat(200);
        let d = layout(&long);
        let lines = d.lines(0).expect("page");
        assert_eq!(
            lines.iter().map(|l| l.chars().count()).collect::<Vec<_>>(),
            [84, 84, 32]
        );
    }

    #[test]
    fn pages_break_when_full_and_at_form_feed() {
        let text = (0..130)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let d = layout(&text);
        assert_eq!(d.page_count(), 3);
        assert_eq!(d.lines(2).expect("page").len(), 130 - 126);
        assert_eq!(layout("a\x0cb\x0c").page_count(), 2);
        assert_eq!(layout("a\x0c\x0cb").page_count(), 3);
    }

    #[test]
    fn crlf_and_control_characters() {
        let d = layout("a\r\nb\x07c\r\n");
        assert_eq!(d.lines(0).expect("page"), ["a", "bc"]);
    }

    #[test]
    fn page_limit_stops_layout() {
        let text = "\n".repeat(10_000);
        assert!(TextDoc::layout(&text, PaperSize::A4, TextOptions::default(), 3).is_err());
    }
}
