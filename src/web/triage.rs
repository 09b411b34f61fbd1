//! Triage from the dashboard: dismiss a case as not a problem report, set the BR reason,
//! acknowledge a breach, mark a case answered elsewhere — one case from its page, or many
//! cases at once from the list (a spam wave of 500 is one form, one commit).
//!
//! Each action is recorded by the desk as a staff message by the logged-in user
//! ([`crate::desk::Action`]), exactly as the mail command would be, so the projector applies it
//! and the log keeps it with the user's name. Every handler takes [`StaffPost`]: a session and
//! its CSRF token, or 403.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::auth::{StaffPost, url_encode};
use super::html::{self, e};
use crate::desk::Action;
use crate::domain::ids::CaseId;
use crate::service::folder_sync::Request;

/// The desk commits a batch of actions within this, or the page says it is busy.
const WITHIN: std::time::Duration = std::time::Duration::from_secs(60);

/// The triage form on a case page.
#[derive(Deserialize)]
pub(crate) struct CaseAction {
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    item: String,
    #[serde(default)]
    text: String,
}

/// The triage form on a case page, for `csrf`, the case id and the current clocks' references.
pub(crate) fn case_form(csrf: &str, case: &str, targets: &[String]) -> String {
    let mut o = String::new();
    let options: String = targets
        .iter()
        .map(|t| format!("<option value=\"{}\">{}</option>", e(t), e(t)))
        .collect();
    let _ = write!(
        o,
        "<section><h2>Triage</h2><form method=\"post\" action=\"/case/{}/action\" class=\"triage\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <select name=\"action\">\
         <option value=\"dismiss\">dismiss: not a problem report</option>\
         <option value=\"reason\">set the BR reason (CPR-Reason)</option>\
         <option value=\"delayed\">acknowledge a breach (CPR-Delayed)</option>\
         <option value=\"answered\">answered elsewhere (CPR-Answered)</option></select> \
         <select name=\"target\"><option value=\"{}\">the case ({})</option>{options}</select> \
         <input name=\"item\" size=\"3\" placeholder=\"item\" title=\"BR 4.9.1.1 item 1-16, for the BR reason\"> \
         <input name=\"text\" size=\"50\" placeholder=\"reason, incident URL, or where it was answered\" required> \
         <button>Record</button></form>\
         <p class=\"muted\">Recorded as a staff command by you, in the case's log, as if mailed.</p></section>",
        e(&url_encode(case)),
        e(csrf),
        e(case),
        e(case)
    );
    o
}

/// `POST /case/<ID>/action`.
pub(crate) async fn case_action(
    State(state): State<AppState>,
    Path(id): Path<String>,
    post: StaffPost<CaseAction>,
) -> Response {
    let f = post.form;
    let case = CaseId::from_stored(&id);
    let target = if f.target.trim().is_empty() {
        id.clone()
    } else {
        f.target.trim().to_string()
    };
    let action = match f.action.as_str() {
        "dismiss" => Action::Dismiss { reason: f.text },
        "answered" => Action::Answered { place: f.text },
        "delayed" => Action::Delayed {
            target,
            reason: f.text,
        },
        "reason" => match f.item.trim().parse::<u8>() {
            Ok(item) => Action::Reason {
                target,
                item,
                note: Some(f.text).filter(|t| !t.trim().is_empty()),
            },
            Err(_) => {
                return html::error_page(
                    StatusCode::BAD_REQUEST,
                    "Give the BR 4.9.1.1 item (1 to 16) for the reason.",
                );
            }
        },
        _ => return html::error_page(StatusCode::BAD_REQUEST, "Choose an action."),
    };
    let back = format!("/case/{}", url_encode(&id));
    record(&state, &post.staff.name, vec![(case, action)], &back).await
}

/// `POST /triage/dismiss`: dismiss every case ticked (`pick_<case id>`), or with `all_shown`
/// every case the list showed (`shown`), with one reason.
pub(crate) async fn bulk_dismiss(
    State(state): State<AppState>,
    post: StaffPost<BTreeMap<String, String>>,
) -> Response {
    let reason = post.form.get("reason").cloned().unwrap_or_default();
    let mut cases: Vec<&str> = post
        .form
        .keys()
        .filter_map(|k| k.strip_prefix("pick_"))
        .collect();
    if post.form.contains_key("all_shown") {
        cases.extend(
            post.form
                .get("shown")
                .map(String::as_str)
                .unwrap_or("")
                .split_whitespace(),
        );
    }
    cases.sort_unstable();
    cases.dedup();
    let actions: Vec<(CaseId, Action)> = cases
        .into_iter()
        .map(|c| {
            (
                CaseId::from_stored(c),
                Action::Dismiss {
                    reason: reason.clone(),
                },
            )
        })
        .collect();
    if actions.is_empty() {
        return html::error_page(StatusCode::BAD_REQUEST, "Tick the cases to dismiss.");
    }
    record(&state, &post.staff.name, actions, "/").await
}

/// Hand the actions to the desk and go back to `back`, saying how many were recorded.
async fn record(
    state: &AppState,
    user: &str,
    actions: Vec<(CaseId, Action)>,
    back: &str,
) -> Response {
    let n = actions.len();
    let user = user.to_string();
    match state
        .ask_desk(WITHIN, |reply| Request::Actions {
            user,
            actions,
            reply,
        })
        .await
    {
        Some(Ok(_)) => {
            let sep = if back.contains('?') { '&' } else { '?' };
            (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, format!("{back}{sep}recorded={n}"))],
            )
                .into_response()
        }
        Some(Err(why)) => html::error_page(StatusCode::BAD_REQUEST, &why),
        None => html::error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The desk is busy (a large batch of mail); nothing was recorded. Try again in a minute.",
        ),
    }
}
