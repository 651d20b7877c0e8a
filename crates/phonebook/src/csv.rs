//! CSV import and export. The first row names the columns (any order, case-insensitive): `name` and
//! `fax_number` are required; `company`, `voice_number`, `email`, `notes`, `tags` (separated by `;`) and
//! `visibility` (`everyone`, `client:NAME`, `grouping:NAME`, separated by `;`; empty for a personal entry)
//! are optional. A bad row is reported with its line number and does not stop the others.

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
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data);
    let mut records = reader.byte_records();
    let header = match records.next() {
        None => return Err(CsvError::Empty),
        Some(Err(e)) => {
            return Err(CsvError::Unreadable {
                line: 1,
                message: e.to_string(),
            });
        }
        Some(Ok(h)) => h,
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
    // The reader's own line count skips blank lines; count newlines up to each record's byte offset instead.
    let mut lines = LineCounter {
        data,
        offset: 0,
        line: 1,
    };
    let mut rows = Vec::new();
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.at(p.byte()));
                rows.push(Err(RowError {
                    line,
                    message: format!("unreadable: {e}"),
                }));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| lines.at(p.byte()));
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
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
                Ok(v) => values[*col] = v.to_owned(),
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

struct LineCounter<'a> {
    data: &'a [u8],
    offset: usize,
    line: u64,
}

impl LineCounter<'_> {
    /// The line of a byte offset; offsets come in increasing order.
    fn at(&mut self, byte: u64) -> u64 {
        let mut to = usize::try_from(byte)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        // A record's position is where the reader resumed, before any blank lines it skipped.
        while self
            .data
            .get(to)
            .is_some_and(|b| matches!(b, b'\n' | b'\r'))
        {
            to += 1;
        }
        if to > self.offset {
            let n = self
                .data
                .get(self.offset..to)
                .map_or(0, |s| s.iter().filter(|b| **b == b'\n').count());
            self.line += u64::try_from(n).unwrap_or(0);
            self.offset = to;
        }
        self.line
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
        let _ = w.write_record([
            &f.name,
            &f.company,
            &f.fax_number,
            &f.voice_number,
            &f.email,
            &f.notes,
            &tags,
            &vis,
        ]);
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
