//! Documents to the pages a fax call sends: the one conversion the fax server's calls and
//! `faxhub t38 send` share, with the same checks.

use render::{Document, FaxOptions};

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
