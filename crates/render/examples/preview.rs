//! Renders page 1 of a document at fine A4 and writes a PNG preview: `preview IN OUT.png [W H]`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (input, output) = (args.get(1).ok_or("input")?, args.get(2).ok_or("output")?);
    let w = args.get(3).map_or(Ok(1728), |s| s.parse())?;
    let h = args.get(4).map_or(Ok(2400), |s| s.parse())?;
    let res = match std::env::var("RES").as_deref() {
        Ok("standard") => render::Resolution::Standard,
        Ok("superfine") => render::Resolution::Superfine,
        _ => render::Resolution::Fine,
    };
    let spec = render::PageSpec::new(res, render::PaperSize::A4);
    let (mut page, count) = if input == "cover" {
        let info = render::cover::CoverInfo {
            from: "Alice Example".into(),
            from_fax: "+1 555 0100".into(),
            to: "Bob Example".into(),
            to_fax: "+44 20 7946 0000".into(),
            subject: "Quarterly figures".into(),
            note: "Please find the figures attached. ".repeat(20),
            date: "2026-11-24".into(),
            pages: 4,
        };
        (render::cover::render(&info, &spec), 1)
    } else {
        let doc = render::load(&std::fs::read(input)?, &render::LoadOptions::default())?;
        (doc.render_page(0, &spec)?, doc.page_count())
    };
    render::header::stamp(
        &mut page,
        &render::HeaderLine::classic("faxhub test", "2026-11-24 19:30").expand(1, count),
    );
    std::fs::write(output, render::preview::png(&page, w, h)?)?;
    Ok(())
}
