//! Documents to the pages a fax call sends: the one conversion the fax server's calls and
//! `faxhub t38 send` share, with the same checks.

use protocol::settings::{HeaderPart, HeaderTemplate};
use render::{Document, FaxOptions, HeaderLine, header::HeaderText};

/// Why documents could not become fax pages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PagesError {
    #[error("rendering the documents: {0}")]
    Render(#[from] render::Error),
    #[error(
        "page {page}: {x_dpi} x {y_dpi} dpi cannot be sent over T.30 (use standard, fine or superfine)"
    )]
    NotFaxResolution { page: usize, x_dpi: u32, y_dpi: u32 },
}

/// Renders `docs` as `options` say and turns every page into a T.30 page: 204 dpi across and one of the
/// T.30 vertical resolutions, or an error naming the page.
pub fn fax_pages(docs: &[Document], options: &FaxOptions) -> Result<Vec<t30::Page>, PagesError> {
    let mut rendered = Vec::new();
    render::convert::pages(docs, options, |p| {
        rendered.push(p);
        Ok(())
    })?;
    rendered
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let resolution = t30::Resolution::from_dpi(f64::from(p.y_dpi))
                .filter(|_| (f64::from(p.x_dpi) - 204.0).abs() < 10.0)
                .ok_or(PagesError::NotFaxResolution {
                    page: i + 1,
                    x_dpi: p.x_dpi,
                    y_dpi: p.y_dpi,
                })?;
            Ok(t30::Page {
                width: p.width,
                height: p.height,
                resolution,
                data: p.data,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> Document {
        render::load_owned(
            b"one line of text\n".to_vec(),
            &render::LoadOptions::default(),
        )
        .expect("text")
    }

    #[test]
    fn fax_resolutions_become_t30_pages_and_others_are_refused_by_page() {
        let fine = FaxOptions {
            spec: render::PageSpec::new(render::Resolution::Fine, render::PaperSize::A4),
            ..FaxOptions::default()
        };
        let pages = fax_pages(&[text()], &fine).expect("fine");
        assert_eq!(pages.len(), 1);
        assert_eq!(pages[0].resolution, t30::Resolution::Fine);
        assert_eq!(pages[0].width, 1728);
        let r300 = FaxOptions {
            spec: render::PageSpec::new(render::Resolution::R300, render::PaperSize::A4),
            ..FaxOptions::default()
        };
        assert!(matches!(
            fax_pages(&[text(), text()], &r300),
            Err(PagesError::NotFaxResolution {
                page: 1,
                x_dpi: 300,
                ..
            })
        ));
    }
}

/// The header line a fax server stamps on a job's pages: `template` (the fax server's `header_template`)
/// with its values filled in, the date and time at `now` in `zone` (its `time_zone`); `None` for an
/// empty template. `from` is the job's header name, or the station identity when it has none.
pub fn header_line(
    template: &HeaderTemplate,
    from: &str,
    station: &str,
    zone: &jiff::tz::TimeZone,
    now: jiff::Timestamp,
) -> Option<HeaderLine> {
    if template.fields.is_empty() {
        return None;
    }
    let local = now.to_zoned_datetime(zone.clone());
    let fields = template
        .fields
        .iter()
        .map(|field| {
            field
                .iter()
                .map(|part| match part {
                    HeaderPart::Text(t) => HeaderText::Text(t.clone()),
                    HeaderPart::From => HeaderText::Text(from.to_owned()),
                    HeaderPart::Station => HeaderText::Text(station.to_owned()),
                    HeaderPart::Date => HeaderText::Text(local.strftime("%Y-%m-%d").to_string()),
                    HeaderPart::Time => HeaderText::Text(local.strftime("%H:%M").to_string()),
                    HeaderPart::Zone => HeaderText::Text(local.strftime("%Z").to_string()),
                    HeaderPart::Page => HeaderText::Page,
                    HeaderPart::Pages => HeaderText::Pages,
                })
                .collect()
        })
        .collect();
    Some(HeaderLine { fields })
}

#[cfg(test)]
mod header_tests {
    use super::*;

    #[test]
    fn the_header_shows_the_time_in_the_fax_servers_zone() {
        let template: HeaderTemplate =
            "From {from} ({station})|{date} {time} {zone}|Page {page}/{pages}"
                .parse()
                .expect("template");
        // 2026-07-01 22:30 UTC is the next day in Tokyo and summer time in Berlin.
        let now: jiff::Timestamp = "2026-07-01T22:30:00Z".parse().expect("time");
        for (zone, when) in [
            ("UTC", "2026-07-01 22:30 UTC"),
            ("Europe/Berlin", "2026-07-02 00:30 CEST"),
            ("Asia/Tokyo", "2026-07-02 07:30 JST"),
            ("America/New_York", "2026-07-01 18:30 EDT"),
        ] {
            let tz = protocol::settings::time_zone(zone).expect("zone");
            let h = header_line(&template, "ACME", "+1 555 0100", &tz, now).expect("header");
            assert_eq!(
                h.expand(2, 3),
                vec![
                    "From ACME (+1 555 0100)".to_owned(),
                    when.to_owned(),
                    "Page 2/3".to_owned()
                ],
                "{zone}"
            );
        }
        let none: HeaderTemplate = "".parse().expect("empty");
        let utc = protocol::settings::time_zone("UTC").expect("UTC");
        assert!(header_line(&none, "a", "b", &utc, now).is_none());
    }
}
