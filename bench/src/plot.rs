//! SVG charts (plotters' SVG backend only: no fontconfig or freetype, text sizes come from
//! plotters' built-in estimator). Each chart overlays every broker of a comparison run:
//! latency percentile curves on a log "nines" x-axis (x = -log10(1 - q), so 90%, 99%, 99.9%
//! are evenly spaced) with a log latency axis, and throughput over time.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::report::{BrokerRun, ReportError};
use crate::workload::Workload;

const SIZE_PX: (u32, u32) = (1000, 600);
/// The nines axis ends where the data runs out (log10 of the sample count), within these.
const NINES_MIN: f64 = 2.0;
const NINES_MAX: f64 = 6.0;

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn color(i: usize) -> RGBColor {
    PALETTE
        .get(i % PALETTE.len())
        .copied()
        .unwrap_or(RGBColor(0, 0, 0))
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> ReportError {
    ReportError::Plot {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Writes the charts that have data; returns their paths.
pub fn write_plots(
    dir: &Path,
    workload: &Workload,
    runs: &[BrokerRun],
) -> Result<Vec<PathBuf>, ReportError> {
    let mut paths = Vec::new();
    let publish: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .map(|r| (r.result.broker.clone(), r.publish.quantile_points()))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    if !publish.is_empty() {
        let path = dir.join("latency-publish.svg");
        let title = format!("{}: publish-to-ack latency", workload.name);
        let samples = runs.iter().map(|r| r.publish.len()).max().unwrap_or(0);
        latency_chart(&path, &title, &publish, samples)?;
        paths.push(path);
    }
    let e2e: Vec<(String, Vec<(f64, f64)>)> = runs
        .iter()
        .filter(|r| r.result.consumers_enabled)
        .map(|r| (r.result.broker.clone(), r.end_to_end.quantile_points()))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    if !e2e.is_empty() {
        let path = dir.join("latency-end-to-end.svg");
        let title = format!("{}: end-to-end latency", workload.name);
        let samples = runs.iter().map(|r| r.end_to_end.len()).max().unwrap_or(0);
        latency_chart(&path, &title, &e2e, samples)?;
        paths.push(path);
    }
    if runs.iter().any(|r| !r.result.timeline.is_empty()) {
        let path = dir.join("throughput.svg");
        throughput_chart(&path, workload, runs)?;
        paths.push(path);
    }
    Ok(paths)
}

/// x position of quantile `q` on a nines axis ending at `limit` (where q = 1, the max, goes).
pub fn nines(q: f64, limit: f64) -> f64 {
    if q >= 1.0 {
        limit
    } else {
        (-(1.0 - q).log10()).clamp(0.0, limit)
    }
}

/// Axis end for `samples` values: a histogram of n values resolves about log10(n) nines.
pub fn nines_limit(samples: u64) -> f64 {
    (samples.max(1) as f64)
        .log10()
        .ceil()
        .clamp(NINES_MIN, NINES_MAX)
}

/// Axis label for a nines position: 0 -> "0%", 1 -> "90%", 3 -> "99.9%".
pub fn nines_label(x: f64) -> String {
    let percent = 100.0 * (1.0 - 10f64.powf(-x));
    let decimals = (x.ceil() as i32 - 2).clamp(0, 6) as usize;
    format!("{percent:.decimals$}%")
}

fn latency_chart(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    samples_max: u64,
) -> Result<(), ReportError> {
    let limit = nines_limit(samples_max);
    let (mut y_min, mut y_max) = (f64::MAX, 0.0f64);
    for (_, points) in series {
        for (_, ms) in points {
            y_min = y_min.min(*ms);
            y_max = y_max.max(*ms);
        }
    }
    let y_range = (y_min.max(0.001) / 1.5)..(y_max.max(0.002) * 1.5);
    let root = SVGBackend::new(path, SIZE_PX).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .margin_right(45)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..limit, y_range.log_scale())
        .map_err(|e| plot_err(path, e))?;
    let x_fmt = |x: &f64| nines_label(*x);
    let y_fmt = |y: &f64| format!("{y}");
    chart
        .configure_mesh()
        .x_labels(limit as usize + 1)
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (i, (name, points)) in series.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|(q, ms)| (nines(*q, limit), *ms)),
                c.stroke_width(2),
            ))
            .map_err(|e| plot_err(path, e))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

fn throughput_chart(
    path: &Path,
    workload: &Workload,
    runs: &[BrokerRun],
) -> Result<(), ReportError> {
    let t_max = runs
        .iter()
        .flat_map(|r| r.result.timeline.iter().map(|s| s.t_s))
        .fold(1.0f64, f64::max);
    let y_max = runs
        .iter()
        .flat_map(|r| {
            r.result
                .timeline
                .iter()
                .map(|s| s.produce_msgs_per_s.max(s.consume_msgs_per_s))
        })
        .fold(1.0f64, f64::max);
    let root = SVGBackend::new(path, SIZE_PX).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let title = format!(
        "{}: throughput (solid: produced/acked, dashed: consumed)",
        workload.name
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..t_max, 0f64..y_max * 1.1)
        .map_err(|e| plot_err(path, e))?;
    let y_fmt = |y: &f64| crate::report::human(*y);
    chart
        .configure_mesh()
        .y_label_formatter(&y_fmt)
        .x_desc("time (s)")
        .y_desc("messages / s")
        .draw()
        .map_err(|e| plot_err(path, e))?;
    for (i, run) in runs.iter().enumerate() {
        let c = color(i);
        let timeline = &run.result.timeline;
        chart
            .draw_series(LineSeries::new(
                timeline.iter().map(|s| (s.t_s, s.produce_msgs_per_s)),
                c.stroke_width(2),
            ))
            .map_err(|e| plot_err(path, e))?
            .label(run.result.broker.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        if run.result.consumers_enabled {
            chart
                .draw_series(DashedLineSeries::new(
                    timeline.iter().map(|s| (s.t_s, s.consume_msgs_per_s)),
                    6,
                    4,
                    c.stroke_width(1),
                ))
                .map_err(|e| plot_err(path, e))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis_positions_and_labels() {
        assert_eq!(nines(0.0, 6.0), 0.0);
        assert!((nines(0.9, 6.0) - 1.0).abs() < 1e-9);
        assert!((nines(0.999, 6.0) - 3.0).abs() < 1e-9);
        assert_eq!(nines(1.0, 4.0), 4.0);
        assert_eq!(nines(0.999_999, 4.0), 4.0);
        assert_eq!(nines_limit(4_000), 4.0);
        assert_eq!(nines_limit(10), NINES_MIN);
        assert_eq!(nines_limit(u64::MAX), NINES_MAX);
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(2.0), "99%");
        assert_eq!(nines_label(3.0), "99.9%");
        assert_eq!(nines_label(5.0), "99.999%");
    }
}
