//! vCard import and export: version 3.0 (RFC 2426) and 4.0 (RFC 6350); 2.1 cards without
//! quoted-printable also read. A phonebook entry is one card: FN (or N) is the name, ORG the company, the
//! TEL of type fax the fax number, another TEL the voice number, EMAIL, NOTE, CATEGORIES the tags, and
//! `X-FAXHUB-VISIBILITY` the visibility labels.

use crate::csv::{Row, RowError};
use crate::model::{Entry, EntryFields, Label};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V3,
    V4,
}

/// Text value escaping (RFC 6350 3.4): backslash, comma, semicolon and newline.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            ';' => out.push_str("\\;"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Splits a value on an unescaped separator and unescapes each part.
fn split_unescape(s: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let cur = parts.last_mut();
        let Some(cur) = cur else { break };
        match c {
            '\\' => match chars.next() {
                Some('n' | 'N') => cur.push('\n'),
                Some(other) => cur.push(other),
                None => {}
            },
            c if c == sep => parts.push(String::new()),
            c => cur.push(c),
        }
    }
    parts
}

fn unescape(s: &str) -> String {
    split_unescape(s, '\u{0}').concat()
}

/// Folds a content line at 75 octets (RFC 6350 3.2), never inside a UTF-8 sequence.
fn push_folded(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        if width + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += c.len_utf8();
    }
    out.push_str("\r\n");
}

/// Writes entries as cards; `label` renders a visibility label (`client:NAME`, ...).
pub fn write<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    version: Version,
    label: impl Fn(&Label) -> String,
) -> String {
    let mut out = String::new();
    for e in entries {
        let f = &e.fields;
        let mut lines = vec!["BEGIN:VCARD".to_owned()];
        lines.push(match version {
            Version::V3 => "VERSION:3.0".into(),
            Version::V4 => "VERSION:4.0".into(),
        });
        lines.push(format!("UID:{}", escape(&e.id)));
        lines.push(format!("FN:{}", escape(&f.name)));
        let (given, family) = f.name.rsplit_once(' ').unwrap_or(("", &f.name));
        lines.push(format!("N:{};{};;;", escape(family), escape(given)));
        if !f.company.is_empty() {
            lines.push(format!("ORG:{}", escape(&f.company)));
        }
        for (number, kind) in [(&f.fax_number, "fax"), (&f.voice_number, "voice")] {
            if number.is_empty() {
                continue;
            }
            lines.push(match version {
                Version::V3 => format!("TEL;TYPE=WORK,{}:{number}", kind.to_ascii_uppercase()),
                Version::V4 => format!("TEL;VALUE=uri;TYPE=\"work,{kind}\":tel:{number}"),
            });
        }
        if !f.email.is_empty() {
            lines.push(match version {
                Version::V3 => format!("EMAIL;TYPE=INTERNET:{}", escape(&f.email)),
                Version::V4 => format!("EMAIL:{}", escape(&f.email)),
            });
        }
        if !f.notes.is_empty() {
            lines.push(format!("NOTE:{}", escape(&f.notes)));
        }
        if !f.tags.is_empty() {
            let tags: Vec<String> = f.tags.iter().map(|t| escape(t)).collect();
            lines.push(format!("CATEGORIES:{}", tags.join(",")));
        }
        if !e.labels.is_empty() {
            let labels: Vec<String> = e.labels.iter().map(|l| escape(&label(l))).collect();
            lines.push(format!("X-FAXHUB-VISIBILITY:{}", labels.join(",")));
        }
        lines.push("END:VCARD".into());
        for l in lines {
            push_folded(&mut out, &l);
        }
    }
    out
}

/// One unfolded content line: where it started, property name (group removed, upper case), parameter
/// types (lower case), other parameters, value.
struct Property {
    name: String,
    types: Vec<String>,
    params: Vec<(String, String)>,
    value: String,
}

fn parse_property(line: &str) -> Option<Property> {
    // The value starts at the first colon outside a quoted parameter value.
    let mut quoted = false;
    let colon = line.char_indices().find(|&(_, c)| {
        if c == '"' {
            quoted = !quoted;
        }
        c == ':' && !quoted
    })?;
    let (head, value) = (&line[..colon.0], &line[colon.0 + 1..]);
    let mut parts = head.split(';');
    let name = parts
        .next()?
        .rsplit('.')
        .next()?
        .trim()
        .to_ascii_uppercase();
    if name.is_empty() {
        return None;
    }
    let mut types = Vec::new();
    let mut params = Vec::new();
    for p in parts {
        match p.split_once('=') {
            Some((k, v)) => {
                let k = k.trim().to_ascii_uppercase();
                let v = v.trim().trim_matches('"');
                if k == "TYPE" {
                    types.extend(
                        v.split(',')
                            .map(|t| t.trim().trim_matches('"').to_ascii_lowercase()),
                    );
                } else {
                    params.push((k, v.to_ascii_uppercase()));
                }
            }
            // vCard 2.1 bare types: TEL;FAX;WORK:...
            None => types.push(p.trim().to_ascii_lowercase()),
        }
    }
    Some(Property {
        name,
        types,
        params,
        value: value.to_owned(),
    })
}

fn tel_value(v: &str) -> String {
    let v = v.trim();
    let v = v.strip_prefix("tel:").unwrap_or(v);
    v.split(';').next().unwrap_or("").to_owned()
}

/// A card being read.
#[derive(Default)]
struct Card {
    line: u64,
    version: Option<String>,
    fn_name: Option<String>,
    n_name: Option<String>,
    fields: EntryFields,
    visibility: Vec<String>,
    problem: Option<String>,
}

impl Card {
    fn take(&mut self, p: Property) {
        if p.params.iter().any(|(k, v)| k == "ENCODING" && v != "8BIT")
            || p.types.iter().any(|t| t == "quoted-printable")
        {
            self.problem.get_or_insert_with(|| {
                format!("{} uses an encoding this importer does not read", p.name)
            });
            return;
        }
        let f = &mut self.fields;
        match p.name.as_str() {
            "VERSION" => self.version = Some(p.value.trim().to_owned()),
            "FN" => self.fn_name = Some(unescape(&p.value)),
            "N" => {
                let parts = split_unescape(&p.value, ';');
                let family = parts.first().map(String::as_str).unwrap_or("");
                let given = parts.get(1).map(String::as_str).unwrap_or("");
                self.n_name = Some(format!("{given} {family}").trim().to_owned());
            }
            "ORG" if f.company.is_empty() => {
                f.company = split_unescape(&p.value, ';')
                    .into_iter()
                    .next()
                    .unwrap_or_default()
            }
            "TEL" => {
                let number = tel_value(&p.value);
                let slot = if p.types.iter().any(|t| t == "fax") {
                    &mut f.fax_number
                } else {
                    &mut f.voice_number
                };
                if slot.is_empty() {
                    *slot = number;
                }
            }
            "EMAIL" if f.email.is_empty() => f.email = unescape(&p.value),
            "NOTE" if f.notes.is_empty() => f.notes = unescape(&p.value),
            "CATEGORIES" => f.tags.extend(
                split_unescape(&p.value, ',')
                    .into_iter()
                    .map(|t| t.trim().to_owned())
                    .filter(|t| !t.is_empty()),
            ),
            "X-FAXHUB-VISIBILITY" => {
                self.visibility.extend(
                    split_unescape(&p.value, ',')
                        .into_iter()
                        .map(|t| t.trim().to_owned())
                        .filter(|t| !t.is_empty()),
                );
            }
            _ => {}
        }
    }

    fn finish(mut self) -> Result<Row, RowError> {
        let line = self.line;
        let fail = |message: String| Err(RowError { line, message });
        if let Some(p) = self.problem {
            return fail(p);
        }
        match self.version.as_deref() {
            Some("2.1" | "3.0" | "4.0") => {}
            Some(v) => {
                return fail(format!(
                    "vCard version {v:?} is not supported (2.1, 3.0 and 4.0 are)"
                ));
            }
            None => return fail("the card has no VERSION".into()),
        }
        self.fields.name = self.fn_name.or(self.n_name).unwrap_or_default();
        Ok(Row {
            line,
            fields: self.fields,
            visibility: self.visibility,
        })
    }
}

/// Reads every card. A card with a problem is reported with the line of its BEGIN; the others are kept.
/// Text outside cards is reported too.
pub fn read(data: &[u8]) -> Vec<Result<Row, RowError>> {
    let text = String::from_utf8_lossy(data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(data));
    // Unfold: a line beginning with a space or tab continues the previous one.
    let mut logical: Vec<(u64, String)> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let number = u64::try_from(i).unwrap_or(u64::MAX).saturating_add(1);
        match (raw.strip_prefix([' ', '\t']), logical.last_mut()) {
            (Some(rest), Some((_, prev))) => prev.push_str(rest),
            _ => logical.push((number, raw.to_owned())),
        }
    }
    let mut out = Vec::new();
    let mut card: Option<Card> = None;
    for (line, text) in logical {
        if text.trim().is_empty() {
            continue;
        }
        let Some(p) = parse_property(&text) else {
            match card.as_mut() {
                Some(c) => {
                    c.problem
                        .get_or_insert_with(|| format!("line {line} is not a vCard property"));
                }
                None => out.push(Err(RowError {
                    line,
                    message: "is not a vCard property".into(),
                })),
            }
            continue;
        };
        match (
            p.name.as_str(),
            p.value.trim().to_ascii_uppercase().as_str(),
        ) {
            ("BEGIN", "VCARD") => {
                if let Some(open) = card.take() {
                    out.push(Err(RowError {
                        line: open.line,
                        message: "the card has no END:VCARD".into(),
                    }));
                }
                card = Some(Card {
                    line,
                    ..Card::default()
                });
            }
            ("END", "VCARD") => match card.take() {
                Some(c) => out.push(c.finish()),
                None => out.push(Err(RowError {
                    line,
                    message: "END:VCARD without BEGIN:VCARD".into(),
                })),
            },
            _ => match card.as_mut() {
                Some(c) => c.take(p),
                None => out.push(Err(RowError {
                    line,
                    message: "is outside BEGIN:VCARD and END:VCARD".into(),
                })),
            },
        }
    }
    if let Some(open) = card {
        out.push(Err(RowError {
            line: open.line,
            message: "the card has no END:VCARD".into(),
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Entry {
        Entry {
            id: "pbe_1".into(),
            owner_id: "o".into(),
            fields: EntryFields {
                name: "Zoë d'Arc, Jr.".into(),
                company: "Acme; Sons".into(),
                fax_number: "+15550100001".into(),
                voice_number: "+15550100002".into(),
                email: "zoe@example.com".into(),
                notes: "calls back\nafter 5, always; ".to_owned() + &"long ".repeat(30),
                tags: vec!["a,b".into(), "vip".into()],
            },
            labels: vec![Label::Everyone, Label::Grouping("sales".into())],
            created_at: 0,
            updated_at: 0,
        }
    }

    fn label(l: &Label) -> String {
        match l {
            Label::Everyone => "everyone".into(),
            other => format!("{}:{}", other.kind(), other.reference()),
        }
    }

    #[test]
    fn both_versions_round_trip() {
        for version in [Version::V3, Version::V4] {
            let e = sample();
            let text = write([&e], version, label);
            assert!(text.lines().all(|l| l.len() <= 76), "folded: {text}");
            let rows = read(text.as_bytes());
            assert_eq!(rows.len(), 1);
            let row = rows[0].as_ref().expect("card");
            assert_eq!(row.fields, e.fields, "{version:?}\n{text}");
            assert_eq!(row.visibility, ["everyone", "grouping:sales"]);
        }
    }

    #[test]
    fn reads_cards_written_elsewhere() {
        let text = "BEGIN:VCARD\nVERSION:2.1\nN:Lee;Ann\nTEL;WORK;FAX:+1 555 010 0003\nTEL;CELL:+1 555 010 0004\nEND:VCARD\n\
                    BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Bo\r\nitem1.TEL;TYPE=fax:tel:+15550100005;ext=12\r\nEND:VCARD\r\n";
        let rows = read(text.as_bytes());
        let ann = rows[0].as_ref().expect("ann");
        assert_eq!(
            (ann.fields.name.as_str(), ann.fields.fax_number.as_str()),
            ("Ann Lee", "+1 555 010 0003")
        );
        assert_eq!(ann.fields.voice_number, "+1 555 010 0004");
        let bo = rows[1].as_ref().expect("bo");
        assert_eq!(
            (bo.line, bo.fields.fax_number.as_str()),
            (7, "+15550100005")
        );
    }

    #[test]
    fn bad_cards_are_reported_by_line_and_the_rest_kept() {
        let text = "BEGIN:VCARD\nVERSION:9.9\nFN:x\nEND:VCARD\n\
                    garbage\n\
                    BEGIN:VCARD\nVERSION:3.0\nFN:ok\nTEL;TYPE=FAX:+15550100006\nEND:VCARD\n\
                    BEGIN:VCARD\nVERSION:3.0\nNOTE;ENCODING=QUOTED-PRINTABLE:=41\nEND:VCARD\n\
                    BEGIN:VCARD\nVERSION:3.0\n";
        let rows = read(text.as_bytes());
        let lines: Vec<Result<u64, u64>> = rows
            .iter()
            .map(|r| r.as_ref().map(|r| r.line).map_err(|e| e.line))
            .collect();
        assert_eq!(lines, [Err(1), Err(5), Ok(6), Err(11), Err(15)], "{rows:?}");
    }
}
