//! CSV import and export. The first row names the columns (any order, case-insensitive): `name` and
//! `fax_number` are required; `company`, `voice_number`, `email`, `notes`, `tags` (separated by `;`) and
//! `visibility` (`everyone`, `client:NAME`, `grouping:NAME`, separated by `;`; empty for a personal entry)
//! are optional. A bad row is reported with its line number and does not stop the others, nor does a
//! broken quote swallow the lines after it. Cells a spreadsheet would run as formulas are exported with a
//! leading `'` (and read back without it).

use crate::model::{Entry, EntryFields, Label};

/// One row read: its line in the file, its fields (not yet validated) and its raw visibility labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub fields: EntryFields,
    pub visibility: Vec<String>,
}

/// A row (or card) that could not be read or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

/// The file as a whole cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    #[error("the first row must name the columns; missing required column {0:?}")]
    MissingColumn(&'static str),
    #[error(
        "unknown column {0:?}; known columns: name, company, fax_number, voice_number, email, notes, tags, visibility"
    )]
    UnknownColumn(String),
    #[error("column {0:?} appears twice")]
    DuplicateColumn(String),
    #[error("the file is empty")]
    Empty,
    #[error("line {line}: {message}")]
    Unreadable { line: u64, message: String },
}

const COLUMNS: [&str; 8] = [
    "name",
    "company",
    "fax_number",
    "voice_number",
    "email",
    "notes",
    "tags",
    "visibility",
];

fn column_of(header: &str) -> Option<usize> {
    let h = header.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    let h = match h.as_str() {
        "fax" => "fax_number",
        "voice" | "phone" => "voice_number",
        other => other,
    };
    COLUMNS.iter().position(|c| *c == h)
}

fn split_list(s: &str) -> Vec<String> {
    s.split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads every row; the outer error is for a file that cannot be read as a phonebook at all.
pub fn read(data: &[u8]) -> Result<Vec<Result<Row, RowError>>, CsvError> {
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data);
    let mut records = Records::new(data).filter(|(_, r)| !r.as_ref().is_ok_and(|f| blank(f)));
    let header = match records.next() {
        None => return Err(CsvError::Empty),
        Some((line, Err(message))) => return Err(CsvError::Unreadable { line, message }),
        Some((_, Ok(h))) => h,
    };
    let mut map = Vec::with_capacity(header.len());
    let mut present = [false; COLUMNS.len()];
    for raw in &header {
        let name = String::from_utf8_lossy(raw).into_owned();
        let col = column_of(&name).ok_or_else(|| CsvError::UnknownColumn(name.clone()))?;
        if std::mem::replace(&mut present[col], true) {
            return Err(CsvError::DuplicateColumn(name));
        }
        map.push(col);
    }
    for required in ["name", "fax_number"] {
        if !COLUMNS
            .iter()
            .zip(present)
            .any(|(c, p)| *c == required && p)
        {
            return Err(CsvError::MissingColumn(required));
        }
    }
    let mut rows = Vec::new();
    for (line, record) in records {
        let record = match record {
            Ok(r) => r,
            Err(message) => {
                rows.push(Err(RowError { line, message }));
                continue;
            }
        };
        if record.len() != map.len() {
            rows.push(Err(RowError {
                line,
                message: format!("has {} fields; the header has {}", record.len(), map.len()),
            }));
            continue;
        }
        let mut values: [String; COLUMNS.len()] = Default::default();
        let mut bad_utf8 = false;
        for (raw, col) in record.iter().zip(&map) {
            match std::str::from_utf8(raw) {
                Ok(v) => values[*col] = unescape_formula(v).to_owned(),
                Err(_) => bad_utf8 = true,
            }
        }
        if bad_utf8 {
            rows.push(Err(RowError {
                line,
                message: "is not UTF-8 text".into(),
            }));
            continue;
        }
        let [
            name,
            company,
            fax_number,
            voice_number,
            email,
            notes,
            tags,
            visibility,
        ] = values;
        rows.push(Ok(Row {
            line,
            fields: EntryFields {
                name,
                company,
                fax_number,
                voice_number,
                email,
                notes,
                tags: split_list(&tags),
            },
            visibility: split_list(&visibility),
        }));
    }
    Ok(rows)
}

fn blank(fields: &[Vec<u8>]) -> bool {
    fields.iter().all(|f| f.iter().all(u8::is_ascii_whitespace))
}

/// The records of a CSV file (RFC 4180, lenient as spreadsheets are: LF, CRLF or CR ends a line, a quote
/// inside an unquoted field is text), each with the line it starts on. A quoted field that is never closed,
/// or closed with text after it, would swallow the lines that follow: that record is reported on its first
/// line and reading starts again on the line after its opening quote, so every line is read or reported.
struct Records<'a> {
    data: &'a [u8],
    at: usize,
    line: u64,
}

impl<'a> Records<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            at: 0,
            line: 1,
        }
    }

    /// Steps over a line end at `i` (counting it); `None` if there is none there.
    fn line_end(&mut self, i: usize) -> Option<usize> {
        match self.data.get(i)? {
            b'\n' => Some(i + 1),
            b'\r' if self.data.get(i + 1) == Some(&b'\n') => Some(i + 2),
            b'\r' => Some(i + 1),
            _ => None,
        }
    }

    /// The line after the one holding byte `i`, and its number relative to `i`'s line.
    fn next_line_after(&self, i: usize) -> (usize, u64) {
        let mut j = i;
        while let Some(b) = self.data.get(j) {
            match b {
                b'\n' => return (j + 1, 1),
                b'\r' if self.data.get(j + 1) == Some(&b'\n') => return (j + 2, 1),
                b'\r' => return (j + 1, 1),
                _ => j += 1,
            }
        }
        (j, 0)
    }
}

impl Iterator for Records<'_> {
    type Item = (u64, Result<Vec<Vec<u8>>, String>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.data.len() {
            return None;
        }
        let (start_line, data) = (self.line, self.data);
        let mut fields = Vec::new();
        let mut i = self.at;
        loop {
            let mut field = Vec::new();
            if data.get(i) == Some(&b'"') {
                let (open_at, open_line) = (i, self.line);
                i += 1;
                let closed = loop {
                    match data.get(i) {
                        None => break false,
                        Some(b'"') if data.get(i + 1) == Some(&b'"') => {
                            field.push(b'"');
                            i += 2;
                        }
                        Some(b'"') => {
                            i += 1;
                            break true;
                        }
                        Some(&b) => {
                            if b == b'\n' || (b == b'\r' && data.get(i + 1) != Some(&b'\n')) {
                                self.line += 1;
                            }
                            field.push(b);
                            i += 1;
                        }
                    }
                };
                let followed = matches!(data.get(i), None | Some(b',' | b'\n' | b'\r'));
                if !closed || !followed {
                    // Start again on the line after the opening quote.
                    let (resume, more) = self.next_line_after(open_at);
                    self.at = resume;
                    self.line = open_line + more;
                    let message = if closed {
                        "a quoted field has text after its closing quote; the lines it spans are read on their own"
                    } else {
                        "a quote (\") opened on this line is never closed; the lines after it are read on their own"
                    };
                    return Some((start_line, Err(message.to_owned())));
                }
            } else {
                while let Some(&b) = data.get(i) {
                    if matches!(b, b',' | b'\n' | b'\r') {
                        break;
                    }
                    field.push(b);
                    i += 1;
                }
            }
            fields.push(field);
            if data.get(i) == Some(&b',') {
                i += 1;
                continue;
            }
            self.at = match self.line_end(i) {
                Some(next) => {
                    self.line += 1;
                    next
                }
                None => data.len(),
            };
            return Some((start_line, Ok(fields)));
        }
    }
}

/// Characters that make a spreadsheet read a cell as a formula (or as part of one) when they start it.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell a spreadsheet would run as a formula: it starts with a formula character, or with the quote
/// that escapes one.
fn needs_escape(cell: &str) -> bool {
    cell.starts_with(FORMULA_START) || cell.strip_prefix('\'').is_some_and(needs_escape)
}

/// Escapes a cell for spreadsheets (OWASP's CSV injection advice): a leading `'` makes it text. Undone by
/// [`unescape_formula`], so an export reads back as it was.
fn escape_formula(cell: &str) -> std::borrow::Cow<'_, str> {
    if needs_escape(cell) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// Removes the quote [`escape_formula`] added; a cell that merely starts with `'` keeps it.
fn unescape_formula(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if needs_escape(rest) => rest,
        _ => cell,
    }
}

/// Writes entries with a header row; `label` renders a visibility label (`client:NAME`, ...).
pub fn write<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    label: impl Fn(&Label) -> String,
) -> String {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    // Writing to a Vec cannot fail; a failure would only lose the export, never panic.
    let _ = w.write_record(COLUMNS);
    for e in entries {
        let f = &e.fields;
        let tags = f.tags.join(";");
        let vis: Vec<String> = e.labels.iter().map(&label).collect();
        let vis = vis.join(";");
        let _ = w.write_record(
            [
                &f.name,
                &f.company,
                &f.fax_number,
                &f.voice_number,
                &f.email,
                &f.notes,
                &tags,
                &vis,
            ]
            .map(|cell| escape_formula(cell).into_owned()),
        );
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_and_reports_bad_ones_by_line() {
        let data = "Name,Fax,Company,Tags,Visibility\n\
                    Ann,+15550100001,Acme,\"a; b\",everyone\n\
                    Bob,+15550100002\n\
                    \n\
                    \"Cy \"\"the\"\" Fax\",+15550100003,,,client:ann;grouping:sales\n";
        let rows = read(data.as_bytes()).expect("readable");
        assert_eq!(rows.len(), 3);
        let ann = rows[0].as_ref().expect("ann");
        assert_eq!(
            (
                ann.line,
                ann.fields.name.as_str(),
                ann.fields.company.as_str()
            ),
            (2, "Ann", "Acme")
        );
        assert_eq!(ann.fields.tags, ["a", "b"]);
        assert_eq!(ann.visibility, ["everyone"]);
        assert_eq!(rows[1].as_ref().expect_err("short").line, 3);
        let cy = rows[2].as_ref().expect("cy");
        assert_eq!((cy.line, cy.fields.name.as_str()), (5, "Cy \"the\" Fax"));
        assert_eq!(cy.visibility, ["client:ann", "grouping:sales"]);
    }

    #[test]
    fn a_broken_quote_swallows_no_line() {
        let data = "name,fax_number,notes\n\
                    Ann,+15550100001,\"oops\n\
                    Bob,+15550100002,x\r\n\
                    Cy,+15550100003,\"fine\"\n\
                    Dan,+15550100004,\"two\nlines\"\n\
                    Eve,+15550100005,\"never closed\n\
                    \n\
                    Fay,+15550100006,y";
        let rows = read(data.as_bytes()).expect("readable");
        let got: Vec<(u64, Option<&str>)> = rows
            .iter()
            .map(|r| match r {
                Ok(row) => (row.line, Some(row.fields.name.as_str())),
                Err(e) => (e.line, None),
            })
            .collect();
        assert_eq!(
            got,
            [
                (2, None),
                (3, Some("Bob")),
                (4, Some("Cy")),
                (5, Some("Dan")),
                (7, None),
                (9, Some("Fay"))
            ]
        );
        let dan = rows[3].as_ref().expect("dan");
        assert_eq!(
            dan.fields.notes, "two\nlines",
            "a closed multi-line field is kept"
        );
        assert!(
            rows[4]
                .as_ref()
                .expect_err("eve")
                .message
                .contains("never closed"),
            "{:?}",
            rows[4]
        );
        assert!(matches!(
            read(b"\"name,fax_number\n"),
            Err(CsvError::Unreadable { line: 1, .. })
        ));
    }

    #[test]
    fn formulas_are_escaped_for_spreadsheets_and_read_back() {
        let fields = EntryFields {
            name: "=HYPERLINK(\"http://evil.example\",\"x\")".into(),
            company: "@SUM(A1:A9)".into(),
            fax_number: "+15550100001".into(),
            voice_number: "-2+3".into(),
            email: "'=already quoted".into(),
            notes: "\tcmd|' /C calc'!A0".into(),
            tags: vec!["+x".into()],
        };
        let e = Entry {
            id: "1".into(),
            owner_id: "o".into(),
            fields: fields.clone(),
            labels: vec![],
            created_at: 0,
            updated_at: 0,
        };
        let text = write([&e], |_| String::new());
        let row = text.lines().nth(1).expect("row");
        for cell in row.split(',').filter(|c| !c.is_empty()) {
            let cell = cell.trim_start_matches('"');
            assert!(
                !cell.starts_with(FORMULA_START),
                "{cell:?} would run as a formula in {row:?}"
            );
        }
        let back = read(text.as_bytes()).expect("read");
        assert_eq!(back[0].as_ref().expect("row").fields, fields);
        let plain = read(b"name,fax\n'Tis me,+15550100001\n").expect("read");
        assert_eq!(plain[0].as_ref().expect("row").fields.name, "'Tis me");
    }

    #[test]
    fn refuses_files_without_the_required_columns() {
        assert_eq!(
            read(b"name,company\nx,y\n"),
            Err(CsvError::MissingColumn("fax_number"))
        );
        assert_eq!(
            read(b"name,fax,colour\n"),
            Err(CsvError::UnknownColumn("colour".into()))
        );
        assert_eq!(
            read(b"name,fax,Name\n"),
            Err(CsvError::DuplicateColumn("Name".into()))
        );
        assert_eq!(read(b""), Err(CsvError::Empty));
    }

    #[test]
    fn export_reads_back() {
        let e = Entry {
            id: "1".into(),
            owner_id: "o".into(),
            fields: EntryFields {
                name: "Ann, \"A\"".into(),
                fax_number: "+15550100001".into(),
                notes: "two\nlines".into(),
                tags: vec!["x".into(), "y".into()],
                ..EntryFields::default()
            },
            labels: vec![Label::Everyone, Label::Client("c1".into())],
            created_at: 0,
            updated_at: 0,
        };
        let text = write([&e], |l| match l {
            Label::Everyone => "everyone".into(),
            other => format!("{}:{}", other.kind(), other.reference()),
        });
        let rows = read(text.as_bytes()).expect("read");
        let row = rows[0].as_ref().expect("row");
        assert_eq!(row.fields, e.fields);
        assert_eq!(row.visibility, ["everyone", "client:c1"]);
    }
}
