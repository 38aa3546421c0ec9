//! PNG charts with plotters: the lr_find curve, losses, the schedule, and a labelled scatter.
//! Text uses the DejaVu Sans font compiled into the binary, so charts are legible on machines
//! without any fonts installed.
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::learner::lr_find::LrFind;
use crate::learner::recorder::Recorder;

const FONT: &str = "sans-serif";
static FONT_INIT: Once = Once::new();

fn register_font() {
    FONT_INIT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        plotters::style::register_font(FONT, FontStyle::Normal, bytes).map_err(|_| ()).expect("bundled font parses");
    });
}

fn plot_err(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |message| Error::Plot { path: path.to_path_buf(), message }
}

fn canvas(path: &Path, size: (u32, u32)) -> Result<DrawingArea<BitMapBackend<'_>, Shift>> {
    register_font();
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path)(e.to_string()))?;
    Ok(root)
}

/// Draws the series labels in a framed box at `position`.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 16))
        .draw()
        .map_err(|e| e.to_string())
}

fn range(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let lo = values.clone().filter(|v| v.is_finite()).fold(f64::INFINITY, f64::min);
    let hi = values.filter(|v| v.is_finite()).fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    (lo - pad, hi + pad)
}

/// The lr_find curve: smoothed loss against learning rate (log axis), dropping the first
/// `skip_start` and last `skip_end` points, with fastai's suggestions marked.
pub fn plot_lr_find(lr: &LrFind, path: &Path, skip_start: usize, skip_end: usize) -> Result<()> {
    let err = plot_err(path);
    let end = lr.lrs.len().saturating_sub(skip_end).max(skip_start.min(lr.lrs.len()));
    let pts: Vec<(f64, f64)> = lr.lrs[skip_start.min(end)..end]
        .iter()
        .copied()
        .zip(lr.losses[skip_start.min(end)..end].iter().copied())
        .collect();
    if pts.len() < 2 {
        return Err(err(format!(
            "only {} points left after skip_start {skip_start} and skip_end {skip_end}",
            pts.len()
        )));
    }
    let root = canvas(path, (900, 600))?;
    let (y0, y1) = range(pts.iter().map(|p| p.1));
    let mut chart = ChartBuilder::on(&root)
        .caption("Learning rate finder", (FONT, 28))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((pts[0].0..pts[pts.len() - 1].0).log_scale(), y0..y1)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("Learning Rate")
        .y_desc("Loss")
        .x_label_formatter(&|x| format!("{x:.0e}"))
        .label_style((FONT, 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart.draw_series(LineSeries::new(pts.clone(), BLUE.stroke_width(2))).map_err(|e| err(e.to_string()))?;
    let near =
        |x: f64| pts.iter().min_by(|a, b| (a.0.ln() - x.ln()).abs().total_cmp(&(b.0.ln() - x.ln()).abs())).copied();
    for (name, lr_value, color) in [("min gradient (v1)", lr.min_grad_lr, RED), ("valley (v2)", lr.valley_lr, GREEN)] {
        if let Some(p) = lr_value.and_then(near) {
            chart
                .draw_series([Circle::new(p, 7, color.filled())])
                .map_err(|e| err(e.to_string()))?
                .label(format!("{name}: {:.2e}", lr_value.unwrap_or(p.0)))
                .legend(move |(x, y)| Circle::new((x, y), 6, color.filled()));
        }
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Training loss per batch (smoothed) and validation loss per epoch, against batches processed.
pub fn plot_losses(rec: &Recorder, path: &Path) -> Result<()> {
    let err = plot_err(path);
    if rec.losses.is_empty() {
        return Err(err("nothing recorded yet: fit first".into()));
    }
    let train: Vec<(f64, f64)> = rec.losses.iter().enumerate().map(|(i, l)| (i as f64 + 1.0, *l)).collect();
    let valid: Vec<(f64, f64)> =
        rec.nb_batches().iter().zip(&rec.epochs).filter_map(|(b, e)| Some((*b as f64, e.valid_loss?))).collect();
    let root = canvas(path, (900, 600))?;
    let (y0, y1) = range(train.iter().chain(&valid).map(|p| p.1));
    let mut chart = ChartBuilder::on(&root)
        .caption("Training and validation loss", (FONT, 28))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..train.len() as f64 + 1.0, y0..y1)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("Batches processed")
        .y_desc("Loss")
        .label_style((FONT, 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(LineSeries::new(train, BLUE.stroke_width(2)))
        .map_err(|e| err(e.to_string()))?
        .label("Train")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(valid.clone(), RGBColor(230, 120, 0).stroke_width(2)))
        .map_err(|e| err(e.to_string()))?
        .label("Validation")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RGBColor(230, 120, 0).stroke_width(2)));
    chart
        .draw_series(valid.iter().map(|p| Circle::new(*p, 5, RGBColor(230, 120, 0).filled())))
        .map_err(|e| err(e.to_string()))?;
    legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))
}

/// Learning rate and momentum against iteration, side by side (fastai's `plot_lr(show_moms=True)`).
pub fn plot_lr(rec: &Recorder, path: &Path) -> Result<()> {
    let err = plot_err(path);
    if rec.lrs.is_empty() {
        return Err(err("nothing recorded yet: fit first".into()));
    }
    let root = canvas(path, (1200, 500))?;
    let panels = root.split_evenly((1, 2));
    for (area, (title, ylabel, values)) in
        panels.iter().zip([("Learning rate", "lr", &rec.lrs), ("Momentum", "momentum (β1)", &rec.moms)])
    {
        let (y0, y1) = range(values.iter().copied());
        let mut chart = ChartBuilder::on(area)
            .caption(title, (FONT, 26))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..values.len() as f64, y0..y1)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("Iterations")
            .y_desc(ylabel)
            .y_label_formatter(&|y| format!("{y:.2e}"))
            .label_style((FONT, 15))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        chart
            .draw_series(LineSeries::new(values.iter().enumerate().map(|(i, v)| (i as f64, *v)), BLUE.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))
}

/// Several named series of points as lines with markers (e.g. RMSE against the number of known
/// ratings).
pub fn plot_lines(
    series: &[(&str, Vec<(f64, f64)>)],
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
) -> Result<()> {
    let err = plot_err(path);
    if series.iter().all(|s| s.1.is_empty()) {
        return Err(err("no points to draw".into()));
    }
    let root = canvas(path, (900, 600))?;
    let (x0, x1) = range(series.iter().flat_map(|s| s.1.iter().map(|p| p.0)));
    let (y0, y1) = range(series.iter().flat_map(|s| s.1.iter().map(|p| p.1)));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, 16))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let colors = [BLUE, RGBColor(230, 120, 0), RGBColor(40, 160, 60), RGBColor(200, 30, 30)];
    for ((name, points), color) in series.iter().zip(colors.iter().cycle()) {
        let color = *color;
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 5, color.filled()))).map_err(|e| err(e.to_string()))?;
    }
    legend(&mut chart, SeriesLabelPosition::MiddleRight).map_err(&err)?;
    root.present().map_err(|e| err(e.to_string()))
}

/// A label's box in pixels: left, right, top, bottom.
type Rect = (i32, i32, i32, i32);

/// A scatter plot with a text label next to every point. Labels are placed greedily on one of
/// eight sides of their point so that they do not overlap each other or leave the plot; the axes
/// get room for the labels at the edges.
pub fn plot_labelled_scatter(
    points: &[(f64, f64, String)],
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
) -> Result<()> {
    let err = plot_err(path);
    if points.is_empty() {
        return Err(err("no points to draw".into()));
    }
    let (w, h) = (1500u32, 1500u32);
    let root = canvas(path, (w, h))?;
    let (x0, x1) = range(points.iter().map(|p| p.0));
    let (y0, y1) = range(points.iter().map(|p| p.1));
    // Extra room for labels around the extreme points.
    let (xpad, ypad) = ((x1 - x0) * 0.12, (y1 - y0) * 0.04);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 32))
        .margin(25)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(x0 - xpad..x1 + xpad, y0 - ypad..y1 + ypad)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, 18))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(points.iter().map(|p| Circle::new((p.0, p.1), 5, BLUE.filled())))
        .map_err(|e| err(e.to_string()))?;
    let style = (FONT, 15).into_font().color(&BLACK);
    let area = chart.plotting_area();
    let (xs, ys) = area.get_pixel_range();
    let inside = |b: &Rect| b.0 >= xs.start && b.1 <= xs.end && b.2 >= ys.start && b.3 <= ys.end;
    let overlaps = |b: &Rect, placed: &[Rect]| placed.iter().any(|q| b.0 < q.1 && q.0 < b.1 && b.2 < q.3 && q.2 < b.3);
    let mut placed: Vec<Rect> = Vec::new();
    for p in points {
        let (px, py) = area.map_coordinate(&(p.0, p.1));
        let (tw, th) = root.estimate_text_size(&p.2, &style).map_err(|e| err(e.to_string()))?;
        let (tw, th) = (tw as i32, th as i32);
        // Right, left, above, below, then the four diagonals, then the same again further out.
        let offsets = [
            (8, -th / 2),
            (-8 - tw, -th / 2),
            (-tw / 2, -th - 6),
            (-tw / 2, 6),
            (8, -th - 4),
            (8, 4),
            (-8 - tw, -th - 4),
            (-8 - tw, 4),
        ];
        let boxes: Vec<Rect> = [1, 3]
            .iter()
            .flat_map(|k| {
                offsets.iter().map(move |(dx, dy)| (dx * k - if *k > 1 && *dx < 0 { tw * (k - 1) } else { 0 }, dy * k))
            })
            .map(|(dx, dy)| (px + dx, px + dx + tw, py + dy, py + dy + th))
            .collect();
        let best = boxes
            .iter()
            .find(|b| inside(b) && !overlaps(b, &placed))
            .or_else(|| boxes.iter().find(|b| inside(b)))
            .unwrap_or(&boxes[0]);
        placed.push(*best);
        root.draw(&Text::new(p.2.clone(), (best.0, best.2), style.clone())).map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))
}
