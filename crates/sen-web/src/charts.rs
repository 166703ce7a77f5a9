//! The dashboard's charts: requests, server errors, jobs completed and
//! job failures per minute over the last hour, drawn on the server as
//! SVG polylines (no script, no chart library; the numbers are the
//! deployment-wide counts of `sen_core::activity`).

use sen_core::AppContext;
use sen_core::activity::Minute;

use crate::i18n::Texts;

/// Chart width in SVG units.
const W: f64 = 300.0;
/// Chart height in SVG units.
const H: f64 = 80.0;

/// One chart.
pub struct Chart {
    /// Element id.
    pub id: &'static str,
    /// Title.
    pub title: &'static str,
    /// `x,y x,y …` of the line (numbers only).
    pub points: String,
    /// Sum over the hour.
    pub total: i64,
    /// Highest minute.
    pub max: i64,
    /// Drawn in the error colour.
    pub bad: bool,
}

/// The polyline of `values` scaled into the chart box (a flat line at the
/// bottom when all are zero).
pub fn points(values: &[i64]) -> String {
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = if values.len() > 1 {
        W / (values.len() - 1) as f64
    } else {
        0.0
    };
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = i as f64 * step;
            let y = H - 2.0 - (*v as f64 / max) * (H - 4.0);
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn chart(
    id: &'static str,
    title: &'static str,
    minutes: &[Minute],
    pick: fn(&Minute) -> i64,
    bad: bool,
) -> Chart {
    let values: Vec<i64> = minutes.iter().map(pick).collect();
    Chart {
        id,
        title,
        points: points(&values),
        total: values.iter().sum(),
        max: values.iter().copied().max().unwrap_or(0),
        bad,
    }
}

/// The last hour's charts and the hour's server error rate (percent, one
/// decimal). This process's counts are written first, so the page is
/// current for the instance rendering it and at most a heartbeat behind
/// for the others.
pub async fn last_hour(ctx: &AppContext, tx: &'static Texts) -> (Vec<Chart>, String) {
    if let Err(e) = ctx.activity().flush(ctx).await {
        tracing::debug!(error = %e, "activity flush before the charts failed");
    }
    let minutes = sen_core::activity::recent(ctx, 60)
        .await
        .unwrap_or_default();
    let charts = vec![
        chart(
            "chart-requests",
            tx.requests_per_min,
            &minutes,
            |m| m.requests,
            false,
        ),
        chart(
            "chart-errors",
            tx.errors_per_min,
            &minutes,
            |m| m.errors,
            true,
        ),
        chart(
            "chart-jobs-done",
            tx.jobs_done_per_min,
            &minutes,
            |m| m.jobs_done,
            false,
        ),
        chart(
            "chart-jobs-failed",
            tx.jobs_failed_per_min,
            &minutes,
            |m| m.jobs_failed,
            true,
        ),
    ];
    let requests = charts[0].total;
    let rate = if requests == 0 {
        "0.0 %".to_string()
    } else {
        format!("{:.1} %", charts[1].total as f64 * 100.0 / requests as f64)
    };
    (charts, rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_minute_touches_the_top_and_zero_the_bottom() {
        let p = points(&[0, 5, 10]);
        assert_eq!(p, "0.0,78.0 150.0,40.0 300.0,2.0");
        assert_eq!(points(&[0, 0]), "0.0,78.0 300.0,78.0");
        assert_eq!(points(&[]), "");
    }
}
