//! A fax cover page from a fixed template.
//!
//! Template fields, top to bottom: the title "FAX", then one labelled line each for
//! `To`, `Fax` (recipient number), `From`, `Fax` (sender number), `Date`, `Subject` and
//! `Pages`, a rule, and the free-form `note` wrapped to the page width. Empty optional
//! fields are left out; a note too long for the page is cut with "…".

use crate::font::Typeface;
use crate::geometry::{PageSpec, mm_to_px};
use crate::page::Page;
use crate::text::{TextOptions, draw_lines};

/// What the cover page says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CoverInfo {
    /// Sender name.
    pub from: String,
    /// Sender fax number.
    pub from_fax: String,
    /// Recipient name.
    pub to: String,
    /// Recipient fax number.
    pub to_fax: String,
    /// Subject line.
    pub subject: String,
    /// Free text; newlines are kept, long lines wrap.
    pub note: String,
    /// Date, formatted by the caller.
    pub date: String,
    /// Page count to announce (the caller decides whether it includes the cover).
    pub pages: usize,
}

const TITLE_PT: f32 = 36.0;
const MARGIN_MM: f32 = 20.0;

/// Renders the cover page.
pub fn render(info: &CoverInfo, spec: &PageSpec) -> Page {
    let mut page = Page::blank(spec.width(), spec.height(), spec.x_dpi(), spec.y_dpi());
    let (content_w, _) = spec.content_box();
    let left =
        ((spec.width() - content_w) / 2 + mm_to_px(f64::from(MARGIN_MM), spec.x_dpi())) as f32;
    let right = spec.width() as f32 - left;
    let top = mm_to_px(f64::from(MARGIN_MM), spec.y_dpi()) as f32;
    let mut title = Typeface::new(TITLE_PT, spec.x_dpi(), spec.y_dpi());
    let title_base = (top + title.ascent()).round() as i32;
    title.draw(&mut page, left, title_base, "FAX");
    let y_px = |pt: f32| pt * spec.y_dpi() as f32 / 72.0;
    let rule = |page: &mut Page, y: f32| {
        let thick = (spec.y_dpi() / 100).max(1);
        for dy in 0..thick {
            for x in left as u32..right as u32 {
                page.set(x, y as u32 + dy, true);
            }
        }
    };
    let first_rule = title_base as f32 + y_px(12.0);
    rule(&mut page, first_rule);

    let fields = [
        ("To:", info.to.as_str()),
        ("Fax:", info.to_fax.as_str()),
        ("From:", info.from.as_str()),
        ("Fax:", info.from_fax.as_str()),
        ("Date:", info.date.as_str()),
        ("Subject:", info.subject.as_str()),
    ];
    let pages = info.pages.to_string();
    let mut lines: Vec<String> = fields
        .iter()
        .chain(std::iter::once(&("Pages:", pages.as_str())))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k:<9}{}", v.replace(['\n', '\r', '\t'], " ")))
        .collect();
    let opts = TextOptions {
        font_size_pt: 14.0,
        line_height_pt: 20.0,
        margin_mm: MARGIN_MM,
    };
    let body_top = first_rule + y_px(20.0);
    let shift = |lines: &[String], skip_lines: f32| -> Vec<String> {
        // draw_lines starts at the top margin; pad with blank lines to start lower.
        let blank = ((skip_lines - top) / y_px(opts.line_height_pt))
            .ceil()
            .max(0.0) as usize;
        std::iter::repeat_n(String::new(), blank)
            .chain(lines.iter().cloned())
            .collect()
    };
    let field_lines = shift(&lines, body_top);
    draw_lines(&mut page, spec, &opts, &field_lines);

    let note_rule = top + field_lines.len() as f32 * y_px(opts.line_height_pt) + y_px(10.0);
    rule(&mut page, note_rule);
    let note_opts = TextOptions {
        font_size_pt: 12.0,
        line_height_pt: 15.0,
        margin_mm: MARGIN_MM,
    };
    let (cols, rows) = note_opts.grid(spec.paper);
    let note_start = note_rule + y_px(15.0);
    let first_row = ((note_start - top) / y_px(note_opts.line_height_pt)).ceil() as usize;
    let room = rows.saturating_sub(first_row);
    lines = wrap(&info.note, cols);
    if lines.len() > room {
        lines.truncate(room);
        if let Some(last) = lines.last_mut() {
            last.push('…');
        }
    }
    let note_lines: Vec<String> = std::iter::repeat_n(String::new(), first_row)
        .chain(lines)
        .collect();
    draw_lines(&mut page, spec, &note_opts, &note_lines);
    page
}

/// Word-wraps `text` at `cols` characters, breaking words longer than a line.
fn wrap(text: &str, cols: usize) -> Vec<String> {
    let cols = cols.max(1);
    let mut out = Vec::new();
    for para in text.lines() {
        let mut line = String::new();
        for word in para.split_whitespace() {
            let mut word: Vec<char> = word.chars().collect();
            let used = line.chars().count();
            if used > 0 && used + 1 + word.len() > cols {
                out.push(std::mem::take(&mut line));
            }
            while word.len() > cols {
                let rest = word.split_off(cols);
                if !line.is_empty() {
                    out.push(std::mem::take(&mut line));
                }
                out.push(word.iter().collect());
                word = rest;
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.extend(word);
        }
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_and_splits_long_words() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert_eq!(wrap("x\n\ny", 10), ["x", "", "y"]);
    }
}
