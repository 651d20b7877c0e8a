//! Scan conversion of device-space paths into horizontal spans of whole pixels.
//!
//! A pixel is inside a shape when its centre is (the rule of bilevel printers and of
//! ghostscript without anti-aliasing), with one refinement: a stretch of a row that the
//! shape covers without reaching a pixel centre still inks the pixel it lies in, so vertical
//! stems thinner than a pixel do not drop out of small text.
//!
//! Edges are kept in an active-edge table, so memory grows with the number of edges, never
//! with edges × rows, whatever a hostile document asks for.

use hayro::kurbo::{PathEl, Point, Rect};

/// Flattening tolerance in device pixels.
const TOLERANCE: f64 = 0.2;

/// Largest extent, in device pixels, of a curve that crosses the window. Curves wholly
/// outside the window are replaced by their chords (exact for every point in the window), so
/// only a hostile document reaches this.
const MAX_CURVE_EXTENT: f64 = 1.0e6;

/// One run of inked pixels: row `y`, columns `x0..x1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub y: i32,
    pub x0: i32,
    pub x1: i32,
}

/// How overlapping sub-paths combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    NonZero,
    EvenOdd,
}

/// Why a path was not scan-converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TooLarge {
    /// A coordinate is not finite.
    NotFinite,
    /// A curve crossing the window is larger than [`MAX_CURVE_EXTENT`].
    Curve,
}

/// An edge of the flattened path, stepped from row to row.
#[derive(Debug, Clone, Copy)]
struct Edge {
    /// First row whose centre the edge crosses.
    top: i32,
    /// One past the last such row.
    bottom: i32,
    /// x where the edge crosses the centre of row `top`.
    x: f64,
    /// x step per row.
    dxdy: f64,
    /// +1 downwards, -1 upwards.
    dir: i32,
}

/// The window a path is converted in: columns `x0..x1`, rows `y0..y1` (pixels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
}

impl Window {
    fn rect(&self) -> Rect {
        Rect::new(
            f64::from(self.x0),
            f64::from(self.y0),
            f64::from(self.x1),
            f64::from(self.y1),
        )
    }
}

/// A reusable scan converter (its buffers survive from path to path).
#[derive(Default)]
pub(crate) struct Scan {
    edges: Vec<Edge>,
    active: Vec<usize>,
    row: Vec<(i64, i32)>,
}

impl Scan {
    /// Converts `path` (device space) within `window` and appends its spans, row by row and
    /// left to right, to `out`.
    pub fn fill(
        &mut self,
        path: impl IntoIterator<Item = PathEl>,
        rule: Rule,
        window: Window,
        out: &mut Vec<Span>,
    ) -> Result<(), TooLarge> {
        self.edges.clear();
        if window.x0 >= window.x1 || window.y0 >= window.y1 {
            return Ok(());
        }
        let area = window.rect();
        let mut start = Point::ZERO;
        let mut last = Point::ZERO;
        let mut open = false;
        for el in path {
            match el {
                PathEl::MoveTo(p) => {
                    check(p)?;
                    if open {
                        self.line(last, start, window);
                    }
                    start = p;
                    last = p;
                    open = true;
                }
                PathEl::LineTo(p) => {
                    check(p)?;
                    self.line(last, p, window);
                    last = p;
                    open = true;
                }
                PathEl::QuadTo(a, p) => {
                    check(a)?;
                    check(p)?;
                    let hull = Rect::from_points(last, a).union_pt(p);
                    self.curve(last, el, hull, area, window)?;
                    last = p;
                    open = true;
                }
                PathEl::CurveTo(a, b, p) => {
                    check(a)?;
                    check(b)?;
                    check(p)?;
                    let hull = Rect::from_points(last, a).union_pt(b).union_pt(p);
                    self.curve(last, el, hull, area, window)?;
                    last = p;
                    open = true;
                }
                PathEl::ClosePath => {
                    if open {
                        self.line(last, start, window);
                    }
                    last = start;
                    open = false;
                }
            }
        }
        if open {
            self.line(last, start, window);
        }
        self.sweep(rule, window, out);
        Ok(())
    }

    /// A curve from `from`: flattened when its hull meets the window, else its chord.
    fn curve(
        &mut self,
        from: Point,
        el: PathEl,
        hull: Rect,
        area: Rect,
        window: Window,
    ) -> Result<(), TooLarge> {
        let to = match el {
            PathEl::QuadTo(_, p) | PathEl::CurveTo(_, _, p) => p,
            _ => return Ok(()),
        };
        // A point of the window is inside the region between a curve and its chord only if
        // it is inside the curve's hull: a hull wholly outside changes no winding number.
        if !hull.overlaps(area) && !hull.contains_rect(area) {
            self.line(from, to, window);
            return Ok(());
        }
        if hull.width() > MAX_CURVE_EXTENT || hull.height() > MAX_CURVE_EXTENT {
            return Err(TooLarge::Curve);
        }
        let mut last = from;
        hayro::kurbo::flatten([PathEl::MoveTo(from), el], TOLERANCE, |e| {
            if let PathEl::LineTo(p) = e {
                self.line(last, p, window);
                last = p;
            }
        });
        if last != to {
            self.line(last, to, window);
        }
        Ok(())
    }

    /// Records the edge from `a` to `b` if it crosses a row centre inside the window.
    fn line(&mut self, a: Point, b: Point, window: Window) {
        if a.y == b.y {
            return;
        }
        let (p, q, dir) = if a.y < b.y { (a, b, 1) } else { (b, a, -1) };
        // Rows whose centre c + 0.5 lies in [p.y, q.y).
        let top = ceil_i32(p.y - 0.5).max(window.y0);
        let bottom = ceil_i32(q.y - 0.5).min(window.y1);
        if top >= bottom {
            return;
        }
        let dxdy = (q.x - p.x) / (q.y - p.y);
        let x = p.x + (f64::from(top) + 0.5 - p.y) * dxdy;
        self.edges.push(Edge {
            top,
            bottom,
            x,
            dxdy,
            dir,
        });
    }

    /// Walks the rows of the window with an active-edge table and emits the spans.
    fn sweep(&mut self, rule: Rule, window: Window, out: &mut Vec<Span>) {
        if self.edges.is_empty() {
            return;
        }
        self.edges.sort_unstable_by_key(|e| e.top);
        self.active.clear();
        let mut next = 0;
        let mut y = self.edges[0].top;
        // Crossings are compared in 1/256 pixel, clamped just outside the window.
        let lo = f64::from(window.x0) - 1.0;
        let hi = f64::from(window.x1) + 1.0;
        while y < window.y1 && (next < self.edges.len() || !self.active.is_empty()) {
            if self.active.is_empty() {
                y = y.max(self.edges[next].top);
            }
            while next < self.edges.len() && self.edges[next].top <= y {
                self.active.push(next);
                next += 1;
            }
            self.row.clear();
            let edges = &mut self.edges;
            self.active.retain(|&i| {
                let e = &mut edges[i];
                if e.bottom <= y {
                    return false;
                }
                let x = if e.top == y {
                    e.x
                } else {
                    e.x + f64::from(y - e.top) * e.dxdy
                };
                let fixed = (x.clamp(lo, hi) * 256.0).round() as i64;
                self.row.push((fixed, e.dir));
                true
            });
            self.row.sort_unstable_by_key(|c| c.0);
            emit_row(&self.row, rule, y, window, out);
            y += 1;
        }
    }
}

/// The spans of one row from its sorted crossings.
fn emit_row(crossings: &[(i64, i32)], rule: Rule, y: i32, window: Window, out: &mut Vec<Span>) {
    let mut winding = 0i32;
    let mut enter = 0i64;
    let inside = |w: i32| match rule {
        Rule::NonZero => w != 0,
        Rule::EvenOdd => w & 1 != 0,
    };
    for &(x, dir) in crossings {
        let was = inside(winding);
        winding += dir;
        let now = inside(winding);
        if !was && now {
            enter = x;
        } else if was && !now {
            // Pixels whose centre lies in [enter, x): first = ceil(enter - ½), end = ceil(x - ½).
            let mut x0 = ceil_fixed(enter - 128);
            let mut x1 = ceil_fixed(x - 128);
            if x0 == x1 && x > enter {
                // Covered without a centre: ink the pixel holding the middle (dropout control).
                x0 = ((enter + x) / 2).div_euclid(256) as i32;
                x1 = x0 + 1;
            }
            let x0 = x0.max(window.x0);
            let x1 = x1.min(window.x1);
            if x0 < x1 {
                // Touching runs of one row (sub-paths side by side) merge.
                match out.last_mut() {
                    Some(s) if s.y == y && s.x1 >= x0 => s.x1 = s.x1.max(x1),
                    _ => out.push(Span { y, x0, x1 }),
                }
            }
        }
    }
}

/// ⌈v / 256⌉ for a 1/256-pixel fixed-point value.
fn ceil_fixed(v: i64) -> i32 {
    (v + 255).div_euclid(256) as i32
}

/// ⌈v⌉ saturated into i32 (callers clamp to the window).
fn ceil_i32(v: f64) -> i32 {
    v.ceil()
        .clamp(f64::from(i32::MIN / 2), f64::from(i32::MAX / 2)) as i32
}

fn check(p: Point) -> Result<(), TooLarge> {
    if p.x.is_finite() && p.y.is_finite() {
        Ok(())
    } else {
        Err(TooLarge::NotFinite)
    }
}

/// The bounding box of a device-space path's control points, or `None` for an empty path.
pub(crate) fn control_box(path: impl IntoIterator<Item = PathEl>) -> Option<Rect> {
    let mut b: Option<Rect> = None;
    let mut add = |p: Point| {
        b = Some(match b {
            Some(r) => r.union_pt(p),
            None => Rect::from_points(p, p),
        });
    };
    for el in path {
        match el {
            PathEl::MoveTo(p) | PathEl::LineTo(p) => add(p),
            PathEl::QuadTo(a, p) => {
                add(a);
                add(p);
            }
            PathEl::CurveTo(a, c, p) => {
                add(a);
                add(c);
                add(p);
            }
            PathEl::ClosePath => {}
        }
    }
    b
}

/// An axis-aligned rectangle path (one closed sub-path of four sides), if `path` is one.
pub(crate) fn as_rect(path: &[PathEl]) -> Option<Rect> {
    // Closing is implied: drop a final ClosePath, then a final side back to the start.
    let path = match path {
        [rest @ .., PathEl::ClosePath] => rest,
        p => p,
    };
    let path = match path {
        [PathEl::MoveTo(a), .., PathEl::LineTo(e)] if path.len() == 5 && a == e => &path[..4],
        p => p,
    };
    let &[
        PathEl::MoveTo(a),
        PathEl::LineTo(b),
        PathEl::LineTo(c),
        PathEl::LineTo(d),
    ] = path
    else {
        return None;
    };
    let pts = [a, b, c, d];
    let sides = (0..4).all(|i| {
        let (p, q) = (pts[i], pts[(i + 1) % 4]);
        p.x == q.x || p.y == q.y
    });
    // Alternating horizontal and vertical sides make a rectangle (not a bow tie).
    let alternate = (a.x == b.x) != (b.x == c.x);
    if sides && alternate {
        let r = Rect::from_points(a, c);
        r.is_finite().then_some(r)
    } else {
        None
    }
}

/// The pixel columns and rows whose centres lie inside `r`, within `window`.
pub(crate) fn rect_pixels(r: Rect, window: Window) -> Window {
    let c = |v: f64| ceil_i32(v - 0.5);
    Window {
        x0: c(r.x0).max(window.x0),
        y0: c(r.y0).max(window.y0),
        x1: c(r.x1).min(window.x1),
        y1: c(r.y1).min(window.y1),
    }
}

/// The pixels a filled rectangle inks: those whose centres it covers, and where it is thinner
/// than a pixel and covers no centre across or along, the pixel row or column holding its middle
/// (a hairline rule drawn as a thin filled rectangle must not vanish).
pub(crate) fn rect_fill_pixels(r: Rect, window: Window) -> Window {
    let span = |a: f64, b: f64| {
        let (lo, hi) = (ceil_i32(a - 0.5), ceil_i32(b - 0.5));
        if lo == hi && b > a {
            let mid = ((a + b) / 2.0)
                .floor()
                .clamp(f64::from(i32::MIN / 2), f64::from(i32::MAX / 2))
                as i32;
            (mid, mid + 1)
        } else {
            (lo, hi)
        }
    };
    let (x0, x1) = span(r.x0, r.x1);
    let (y0, y1) = span(r.y0, r.y1);
    Window {
        x0: x0.max(window.x0),
        y0: y0.max(window.y0),
        x1: x1.min(window.x1),
        y1: y1.min(window.y1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hayro::kurbo::{BezPath, Circle, Shape};

    const PAGE: Window = Window {
        x0: 0,
        y0: 0,
        x1: 100,
        y1: 100,
    };

    fn spans(path: &BezPath, rule: Rule) -> Vec<Span> {
        let mut out = Vec::new();
        Scan::default()
            .fill(path.iter(), rule, PAGE, &mut out)
            .expect("converts");
        out
    }

    fn area(s: &[Span]) -> i64 {
        s.iter().map(|s| i64::from(s.x1 - s.x0)).sum()
    }

    #[test]
    fn a_rectangle_inks_the_pixels_whose_centres_it_covers() {
        let r = Rect::new(10.2, 20.5, 30.6, 25.4).to_path(0.1);
        let s = spans(&r, Rule::NonZero);
        // Centres x + 0.5 in [10.2, 30.6): columns 10..31; rows y + 0.5 in [20.5, 25.4): 20..25.
        assert_eq!(s.len(), 5);
        for (i, span) in s.iter().enumerate() {
            assert_eq!(
                *span,
                Span {
                    y: 20 + i as i32,
                    x0: 10,
                    x1: 31
                }
            );
        }
        assert_eq!(
            rect_pixels(Rect::new(10.2, 20.5, 30.6, 25.4), PAGE),
            Window {
                x0: 10,
                y0: 20,
                x1: 31,
                y1: 25
            }
        );
    }

    #[test]
    fn fill_rules_differ_on_a_doubled_square() {
        let mut p = BezPath::new();
        for _ in 0..2 {
            p.extend(Rect::new(0.0, 0.0, 10.0, 10.0).path_elements(0.1));
        }
        assert_eq!(area(&spans(&p, Rule::NonZero)), 100);
        assert_eq!(area(&spans(&p, Rule::EvenOdd)), 0);
        // A square inside a square drawn the other way round is a hole under both rules.
        let mut ring = Rect::new(0.0, 0.0, 20.0, 20.0).to_path(0.1);
        let inner = [(5.0, 5.0), (5.0, 15.0), (15.0, 15.0), (15.0, 5.0)];
        ring.move_to(inner[0]);
        for p in &inner[1..] {
            ring.line_to(*p);
        }
        ring.close_path();
        assert_eq!(area(&spans(&ring, Rule::NonZero)), 400 - 100);
        assert_eq!(area(&spans(&ring, Rule::EvenOdd)), 400 - 100);
    }

    #[test]
    fn a_circle_covers_about_its_area_and_a_thin_stem_survives() {
        let c = Circle::new((50.0, 50.0), 20.0).to_path(0.01);
        let a = area(&spans(&c, Rule::NonZero)) as f64;
        let exact = std::f64::consts::PI * 400.0;
        assert!((a - exact).abs() < exact * 0.02, "{a} vs {exact}");
        // A 0.3-pixel-wide stem between two centres still inks one pixel per row.
        let stem = Rect::new(40.1, 10.0, 40.4, 20.0).to_path(0.1);
        let s = spans(&stem, Rule::NonZero);
        assert_eq!(s.len(), 10);
        assert!(s.iter().all(|s| s.x0 == 40 && s.x1 == 41), "{s:?}");
    }

    #[test]
    fn hostile_paths_are_bounded() {
        // Far outside: nothing, quickly, even for a curve a billion pixels away.
        let mut p = BezPath::new();
        p.move_to((-1e9, -1e9));
        p.curve_to((1e9, -1e9), (1e9, -2e9), (-1e9, -2e9));
        p.close_path();
        assert!(spans(&p, Rule::NonZero).is_empty());
        // A huge triangle with straight sides covers the whole window.
        let mut t = BezPath::new();
        t.move_to((-1e12, -1e12));
        t.line_to((1e12, -1e12));
        t.line_to((0.0, 1e12));
        t.close_path();
        assert_eq!(area(&spans(&t, Rule::NonZero)), 100 * 100);
        // A huge curve through the window is refused, not flattened into billions of lines.
        let mut c = BezPath::new();
        c.move_to((-1e9, 50.0));
        c.curve_to((0.0, 1e9), (50.0, -1e9), (1e9, 50.0));
        let mut out = Vec::new();
        assert_eq!(
            Scan::default().fill(c.iter(), Rule::NonZero, PAGE, &mut out),
            Err(TooLarge::Curve)
        );
        let mut n = BezPath::new();
        n.move_to((f64::NAN, 0.0));
        n.line_to((1.0, 1.0));
        assert_eq!(
            Scan::default().fill(n.iter(), Rule::NonZero, PAGE, &mut out),
            Err(TooLarge::NotFinite)
        );
    }

    #[test]
    fn a_hairline_rectangle_keeps_one_row() {
        // 0.3 pixel tall, between two row centres: the row holding its middle.
        let w = rect_fill_pixels(Rect::new(10.0, 20.6, 50.0, 20.9), PAGE);
        assert_eq!(
            w,
            Window {
                x0: 10,
                y0: 20,
                x1: 50,
                y1: 21
            }
        );
        // Wide enough to cover centres: exactly those.
        let w = rect_fill_pixels(Rect::new(10.0, 20.2, 50.0, 22.0), PAGE);
        assert_eq!(
            w,
            Window {
                x0: 10,
                y0: 20,
                x1: 50,
                y1: 22
            }
        );
        // Empty stays empty.
        let w = rect_fill_pixels(Rect::new(10.0, 20.6, 50.0, 20.6), PAGE);
        assert!(w.y0 >= w.y1);
    }

    #[test]
    fn rectangles_are_recognised() {
        let r = Rect::new(1.0, 2.0, 3.0, 4.0);
        let p = r.to_path(0.1);
        assert_eq!(as_rect(p.elements()), Some(r));
        let mut bow = BezPath::new();
        bow.move_to((0.0, 0.0));
        bow.line_to((10.0, 0.0));
        bow.line_to((0.0, 10.0));
        bow.line_to((10.0, 10.0));
        bow.close_path();
        assert_eq!(as_rect(bow.elements()), None);
        // Closed by a fourth side back to the start, with or without ClosePath; an open L is not one.
        let mut closed = BezPath::new();
        closed.move_to((1.0, 2.0));
        closed.line_to((3.0, 2.0));
        closed.line_to((3.0, 4.0));
        closed.line_to((1.0, 4.0));
        closed.line_to((1.0, 2.0));
        assert_eq!(as_rect(closed.elements()), Some(r));
        closed.close_path();
        assert_eq!(as_rect(closed.elements()), Some(r));
        let mut open = BezPath::new();
        open.move_to((1.0, 2.0));
        open.line_to((3.0, 2.0));
        open.line_to((3.0, 4.0));
        assert_eq!(as_rect(open.elements()), None);
        assert_eq!(control_box(p.iter()), Some(r));
    }
}
