//! `/sla`: the SLA report of `cprwatch audit report` as a page, with two charts drawn on the
//! server as SVG (no script, no outside library): how long the preliminary report took, and
//! how many clocks ended late or are breached, by the month of their deadline.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::Staff;
use super::html::{e, page};
use crate::deciding::sla::SlaReport;
use crate::domain::event::{ClockKind, ClockState};
use crate::domain::model::Timestamp;
use crate::domain::timefmt;

#[derive(Deserialize)]
pub(crate) struct SlaQuery {
    from: Option<String>,
    to: Option<String>,
}

/// Time-to-preliminary-report buckets: (upper bound in hours, label).
const BUCKETS: [(i64, &str); 6] = [
    (1, "< 1 h"),
    (4, "1–4 h"),
    (12, "4–12 h"),
    (24, "12–24 h"),
    (48, "24–48 h"),
    (i64::MAX, "> 48 h"),
];

/// What the page draws: the report, the preliminary-report times in buckets, breaches by month.
struct Figures {
    report: SlaReport,
    buckets: [usize; 6],
    breaches: BTreeMap<String, usize>,
}

pub(crate) async fn sla(
    State(state): State<AppState>,
    staff: Staff,
    Query(q): Query<SlaQuery>,
) -> Response {
    let at = timefmt::now();
    let default_from = timefmt::format(at - time::Duration::days(365));
    let default_to = timefmt::format(at + time::Duration::seconds(1));
    let from = q
        .from
        .filter(|f| !f.trim().is_empty())
        .unwrap_or(default_from);
    let to = q.to.filter(|t| !t.trim().is_empty()).unwrap_or(default_to);
    let (f, t) = (from.clone(), to.clone());
    let figures = match state
        .read(move |s, _| {
            let period = crate::cli::audit::period(&f, &t).map_err(|e| e.to_string())?;
            let audit = crate::cli::audit::load(s, period, at).map_err(|e| e.to_string())?;
            let report = audit.sla();
            let mut buckets = [0usize; 6];
            let mut breaches: BTreeMap<String, usize> = BTreeMap::new();
            for c in audit.projection.clocks.values() {
                let status = c.status(at);
                if c.kind == ClockKind::PreliminaryReport
                    && matches!(status.state, ClockState::Met | ClockState::Late)
                    && let Some(stop) = status.stopped_at
                {
                    let hours = (stop - c.started_at).whole_seconds() / 3600;
                    let i = BUCKETS.iter().position(|(h, _)| hours < *h).unwrap_or(5);
                    buckets[i] += 1;
                }
                if matches!(status.state, ClockState::Late | ClockState::Breached) {
                    *breaches.entry(month(c.deadline)).or_default() += 1;
                }
            }
            Ok(Figures {
                report,
                buckets,
                breaches,
            })
        })
        .await
    {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut o = String::new();
    let r = &figures.report;
    let _ = write!(
        o,
        "<h1>SLA report</h1>\
         <form method=\"get\" action=\"/sla\" class=\"filters\">from <input name=\"from\" value=\"{}\"> \
         to <input name=\"to\" value=\"{}\"> <button>Show</button></form>\
         <p>Cases opened from {} to {} (excluded), clocks as at {}: <strong>{}</strong> reports, \
         <strong>{}</strong> cases, <strong>{}</strong> certificates, <strong>{}</strong> keys. \
         <code>cprwatch audit report</code> prints the same.</p>",
        e(&from),
        e(&to),
        timefmt::format(r.period.from),
        timefmt::format(r.period.to),
        timefmt::format(r.at),
        r.reports,
        r.cases,
        r.certificates,
        r.keys
    );
    o.push_str(
        "<table><thead><tr><th>clock</th><th>total</th><th>met</th><th>late</th><th>breached</th>\
         <th>open</th><th>dismissed</th><th>not required</th><th>median</th><th>p90</th><th>max</th>\
         </tr></thead><tbody>",
    );
    for k in &r.clocks {
        let span = |s: Option<i64>| s.map(timefmt::human_span).unwrap_or_else(|| "–".into());
        let t = k.time_to_stop.as_ref();
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            k.kind.as_str(),
            k.total,
            k.met,
            k.late,
            k.breached,
            k.open,
            k.dismissed,
            k.not_required,
            span(t.map(|t| t.median_seconds)),
            span(t.map(|t| t.p90_seconds)),
            span(t.map(|t| t.max_seconds))
        );
    }
    o.push_str("</tbody></table>");
    let labels: Vec<String> = BUCKETS.iter().map(|(_, l)| l.to_string()).collect();
    o.push_str("<section><h2>Time to the preliminary report</h2>");
    o.push_str(&bars(&labels, &figures.buckets, 3));
    o.push_str("</section><section><h2>Late or breached clocks, by month of the deadline</h2>");
    if figures.breaches.is_empty() {
        o.push_str("<p class=\"muted\">none in this period</p>");
    } else {
        let (months, counts): (Vec<String>, Vec<usize>) = figures
            .breaches
            .iter()
            .map(|(m, n)| (m.clone(), *n))
            .unzip();
        o.push_str(&bars(&months, &counts, usize::MAX));
    }
    o.push_str("</section>");
    if !r.exceptions.is_empty() {
        let _ = write!(
            o,
            "<section><h2>Late or breached ({})</h2><table><thead><tr><th>case</th><th>clock</th>\
             <th>state</th><th>deadline</th><th>stopped</th><th>overdue</th></tr></thead><tbody>",
            r.exceptions.len()
        );
        for x in &r.exceptions {
            let _ = write!(
                o,
                "<tr><td><a href=\"/case/{}\">{}</a></td><td class=\"mono\">{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                e(&super::auth::url_encode(&x.case)),
                e(&x.case),
                e(&x.clock),
                x.state.as_str(),
                timefmt::format(x.deadline),
                x.stopped_at.map(timefmt::format).unwrap_or_default(),
                timefmt::human_span(x.overdue_seconds)
            );
        }
        o.push_str("</tbody></table></section>");
    }
    page("SLA report", Some(&staff), &o).into_response()
}

fn month(t: Timestamp) -> String {
    format!("{:04}-{:02}", t.year(), u8::from(t.month()))
}

/// A bar chart as inline SVG: one bar per label, its count written above it. Bars past
/// `red_from` are drawn in the breach colour.
fn bars(labels: &[String], counts: &[usize], red_from: usize) -> String {
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let (w, h, gap) = (64usize, 160usize, 12usize);
    let width = labels.len() * (w + gap) + gap;
    let mut o = format!(
        "<svg class=\"chart\" role=\"img\" width=\"{width}\" height=\"{}\" viewBox=\"0 0 {width} {}\">",
        h + 40,
        h + 40
    );
    for (i, (label, n)) in labels.iter().zip(counts).enumerate() {
        let bh = n * h / max;
        let x = gap + i * (w + gap);
        let colour = if i >= red_from || red_from == usize::MAX {
            "#c0392b"
        } else {
            "#2e7d32"
        };
        let _ = write!(
            o,
            "<rect x=\"{x}\" y=\"{}\" width=\"{w}\" height=\"{bh}\" fill=\"{colour}\"><title>{}: {n}</title></rect>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\">{n}</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"12\">{}</text>",
            h - bh + 16,
            e(label),
            x + w / 2,
            h - bh + 12,
            x + w / 2,
            h + 34,
            e(label)
        );
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_escape_labels() {
        let svg = bars(&["<a>".into(), "b".into()], &[2, 4], usize::MAX);
        assert!(svg.contains("height=\"80\""), "{svg}");
        assert!(svg.contains("height=\"160\""), "{svg}");
        assert!(svg.contains("&lt;a&gt;") && !svg.contains("<a>"), "{svg}");
    }
}
