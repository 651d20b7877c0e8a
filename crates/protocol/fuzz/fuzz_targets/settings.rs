//! Settings come from clients (the REST API, the console, the HylaFAX gateway) and reach the fax server
//! over the link: any text must parse or be refused without a panic. A header template that parses has
//! at most five fields and no empty text parts, and writing it back out parses to the same template; a
//! settings document that validates serialises and parses back to itself and validates again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::settings::{FaxServerSettings, HeaderPart, HeaderTemplate};

/// The template's text form: `{name}` for values, braces in text doubled.
fn unparse(t: &HeaderTemplate) -> String {
    let fields: Vec<String> = t
        .fields
        .iter()
        .map(|parts| {
            parts
                .iter()
                .map(|p| match p {
                    HeaderPart::Text(s) => s.replace('{', "{{").replace('}', "}}"),
                    HeaderPart::From => "{from}".into(),
                    HeaderPart::Station => "{station}".into(),
                    HeaderPart::Date => "{date}".into(),
                    HeaderPart::Time => "{time}".into(),
                    HeaderPart::Zone => "{zone}".into(),
                    HeaderPart::Page => "{page}".into(),
                    HeaderPart::Pages => "{pages}".into(),
                })
                .collect()
        })
        .collect();
    fields.join("|")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(t) = text.parse::<HeaderTemplate>() {
        assert!(t.fields.len() <= 5, "{} fields", t.fields.len());
        for parts in &t.fields {
            assert!(!parts.iter().any(|p| matches!(p, HeaderPart::Text(s) if s.is_empty())));
            // Text parts are joined: two never follow each other.
            assert!(!parts.windows(2).any(|w| matches!(w, [HeaderPart::Text(_), HeaderPart::Text(_)])));
        }
        // A template of text without '|' is one field, so the text form of an empty field list is "".
        if !(t.fields.len() == 1 && t.fields[0].is_empty()) {
            let again: HeaderTemplate = unparse(&t).parse().expect("a template's text form parses");
            assert_eq!(again, t);
        }
    }
    if let Ok(settings) = serde_json::from_str::<FaxServerSettings>(text)
        && settings.validate().is_ok()
    {
        let json = serde_json::to_string(&settings).expect("settings serialise");
        let again: FaxServerSettings = serde_json::from_str(&json).expect("serialised settings parse");
        assert_eq!(again, settings);
        assert!(again.validate().is_ok());
        assert!(again.header().is_ok());
    }
});
