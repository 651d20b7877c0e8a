//! Entries, labels and field validation.

use serde::{Deserialize, Serialize};

/// Who besides the owner may refer to an entry (claims 18, 19, 21, 22).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Label {
    /// Every client sharing a grouping with the owner.
    Everyone,
    Client(String),
    Grouping(String),
}

impl Label {
    pub fn kind(&self) -> &'static str {
        match self {
            Label::Everyone => "everyone",
            Label::Client(_) => "client",
            Label::Grouping(_) => "grouping",
        }
    }

    pub fn reference(&self) -> &str {
        match self {
            Label::Everyone => "",
            Label::Client(id) | Label::Grouping(id) => id,
        }
    }

    pub fn from_parts(kind: &str, reference: &str) -> Option<Self> {
        match (kind, reference) {
            ("everyone", _) => Some(Label::Everyone),
            ("client", r) if !r.is_empty() => Some(Label::Client(r.to_owned())),
            ("grouping", r) if !r.is_empty() => Some(Label::Grouping(r.to_owned())),
            _ => None,
        }
    }
}

/// The fields a client writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryFields {
    pub name: String,
    #[serde(default)]
    pub company: String,
    /// E.164 (`+` and digits) once validated.
    pub fax_number: String,
    #[serde(default)]
    pub voice_number: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub id: String,
    pub owner_id: String,
    #[serde(flatten)]
    pub fields: EntryFields,
    pub labels: Vec<Label>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Entry {
    /// Personal entries have no labels: only the owner refers to them.
    pub fn is_shared(&self) -> bool {
        !self.labels.is_empty()
    }
}

/// A field that was refused, named as the API names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

fn bad(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

const MAX_TAGS: usize = 20;

impl EntryFields {
    /// Checks and tidies the fields. `number` turns a dial string into E.164 (the supervisor's dial rules)
    /// or says why it cannot.
    pub fn validate(
        mut self,
        number: impl Fn(&str) -> Result<String, String>,
    ) -> Result<Self, FieldError> {
        self.name = self.name.trim().to_owned();
        self.company = self.company.trim().to_owned();
        self.email = self.email.trim().to_owned();
        if self.name.is_empty() {
            return Err(bad("name", "is required"));
        }
        for (field, value, max) in [
            ("name", &self.name, 200),
            ("company", &self.company, 200),
            ("email", &self.email, 254),
            ("notes", &self.notes, 4000),
        ] {
            if value.chars().count() > max {
                return Err(bad(field, format!("is longer than {max} characters")));
            }
            if field != "notes" && value.chars().any(char::is_control) {
                return Err(bad(field, "contains control characters"));
            }
        }
        if self.fax_number.trim().is_empty() {
            return Err(bad("fax_number", "is required"));
        }
        self.fax_number = number(&self.fax_number).map_err(|m| bad("fax_number", m))?;
        if !self.voice_number.trim().is_empty() {
            self.voice_number = number(&self.voice_number).map_err(|m| bad("voice_number", m))?;
        } else {
            self.voice_number.clear();
        }
        if !self.email.is_empty() {
            let ok = self
                .email
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'));
            if !ok || self.email.contains(char::is_whitespace) {
                return Err(bad("email", "is not an address like name@example.com"));
            }
        }
        if self.tags.len() > MAX_TAGS {
            return Err(bad("tags", format!("at most {MAX_TAGS} tags")));
        }
        for (i, t) in self.tags.iter_mut().enumerate() {
            *t = t.trim().to_owned();
            if t.is_empty()
                || t.chars().count() > 40
                || t.contains([',', ';'])
                || t.chars().any(char::is_control)
            {
                return Err(bad(
                    &format!("tags[{i}]"),
                    "use 1 to 40 characters, no ',' or ';'",
                ));
            }
        }
        self.tags.sort();
        self.tags.dedup();
        Ok(self)
    }
}

/// Lower case, accents kept, runs of whitespace as one space: the form the index compares.
pub fn normalize_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e164(s: &str) -> Result<String, String> {
        let digits: String = s.chars().filter(char::is_ascii_digit).collect();
        if s.trim_start().starts_with('+') && (8..=15).contains(&digits.len()) {
            Ok(format!("+{digits}"))
        } else {
            Err("is not an E.164 number".into())
        }
    }

    fn fields(name: &str, fax: &str) -> EntryFields {
        EntryFields {
            name: name.into(),
            fax_number: fax.into(),
            ..EntryFields::default()
        }
    }

    #[test]
    fn validation_names_the_field() {
        let ok = fields("  Ann  Lee ", "+1 555 010 2000")
            .validate(e164)
            .expect("valid");
        assert_eq!(
            (ok.name.as_str(), ok.fax_number.as_str()),
            ("Ann  Lee", "+15550102000")
        );
        let check = |f: EntryFields, field: &str| {
            assert_eq!(f.validate(e164).expect_err("refused").field, field)
        };
        check(fields("", "+15550102000"), "name");
        check(fields("a", ""), "fax_number");
        check(fields("a", "555"), "fax_number");
        check(
            EntryFields {
                voice_number: "x".into(),
                ..fields("a", "+15550102000")
            },
            "voice_number",
        );
        check(
            EntryFields {
                email: "nobody".into(),
                ..fields("a", "+15550102000")
            },
            "email",
        );
        check(
            EntryFields {
                tags: vec!["ok".into(), "a;b".into()],
                ..fields("a", "+15550102000")
            },
            "tags[1]",
        );
        check(fields(&"x".repeat(201), "+15550102000"), "name");
    }

    #[test]
    fn labels_round_trip_their_parts() {
        for l in [
            Label::Everyone,
            Label::Client("c".into()),
            Label::Grouping("g".into()),
        ] {
            assert_eq!(Label::from_parts(l.kind(), l.reference()), Some(l.clone()));
        }
        assert_eq!(Label::from_parts("client", ""), None);
        assert_eq!(normalize_text("  Ünïcode   NAME "), "ünïcode name");
    }
}
