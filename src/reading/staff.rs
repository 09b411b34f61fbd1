//! Is a message staff-authored? (README "Configuration", **Staff**.)
//!
//! Staff mail stops clocks, so a reporter who could pass for staff could close their own case.
//! `From:` is whatever the sender typed; what cannot be forged from outside is (a) the folder the
//! desk's own client saved the mail in, and (b) a DKIM verdict recorded by the CA's *own* MTA in
//! an `Authentication-Results` header (RFC 8601) carrying the CA's authserv-id. RFC 8601 §5 has
//! the MTA delete any incoming A-R header claiming its own authserv-id, so one from a trusted
//! authserv-id was written by us; one from any other authserv-id is the sender's say-so and counts
//! for nothing.

use crate::domain::model::{FolderRole, ParsedMail};

/// Who counts as staff. Domains and addresses are compared case-insensitively.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StaffPolicy {
    /// The CA's own mail domains; subdomains count too.
    pub staff_domains: Vec<String>,
    /// Individual staff addresses outside the staff domains (a contractor, a parent company).
    /// Such an address counts when DKIM passes for exactly its own domain.
    pub staff_addresses: Vec<String>,
    /// authserv-ids of the CA's own receiving MTAs, whose Authentication-Results are believed.
    pub trusted_authserv_ids: Vec<String>,
}

/// Why a message counts as staff-authored, or None. `Some("sent-folder")` for
/// [`FolderRole::Sent`]; `Some("dkim:<d> via <authserv-id>")` for a DKIM pass.
///
/// A DKIM pass counts when its signing domain `d` (`header.d`, else the domain of `header.i`)
/// is a staff domain (or a subdomain of one) and the `From:` domain is `d` or a subdomain of it;
/// or when the `From:` address is listed in `staff_addresses` and `d` is exactly its domain.
pub(crate) fn staff_proof(
    mail: &ParsedMail,
    folder: FolderRole,
    policy: &StaffPolicy,
) -> Option<String> {
    if folder == FolderRole::Sent {
        return Some("sent-folder".into());
    }
    let from = mail.from.as_deref()?.to_ascii_lowercase();
    let (_, from_domain) = from.rsplit_once('@')?;
    for header in &mail.authentication_results {
        let Some(results) = parse_authentication_results(header) else {
            continue;
        };
        if !policy
            .trusted_authserv_ids
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&results.authserv_id))
        {
            continue;
        }
        for dkim in results.dkim_passes() {
            let staff_domain = policy
                .staff_domains
                .iter()
                .any(|s| is_same_or_sub(&dkim, &s.to_ascii_lowercase()));
            let aligned = staff_domain && is_same_or_sub(from_domain, &dkim);
            let listed = from_domain == dkim
                && policy
                    .staff_addresses
                    .iter()
                    .any(|a| a.trim().eq_ignore_ascii_case(&from));
            if aligned || listed {
                return Some(format!("dkim:{dkim} via {}", results.authserv_id));
            }
        }
    }
    None
}

/// `domain` equals `parent` or is a subdomain of it. Both lowercase.
fn is_same_or_sub(domain: &str, parent: &str) -> bool {
    let parent = parent.trim_end_matches('.');
    let domain = domain.trim_end_matches('.');
    !parent.is_empty()
        && (domain == parent
            || domain
                .strip_suffix(parent)
                .is_some_and(|head| head.ends_with('.')))
}

/// One parsed `Authentication-Results` header.
#[derive(Debug, PartialEq, Eq)]
struct AuthResults {
    /// Lowercase.
    authserv_id: String,
    /// One entry per `method=result …` clause.
    results: Vec<MethodResult>,
}

#[derive(Debug, PartialEq, Eq)]
struct MethodResult {
    /// Lowercase method without version (`dkim`).
    method: String,
    /// Lowercase result (`pass`).
    result: String,
    /// `(ptype.property lowercase, value)` pairs such as `("header.d", "example.com")`.
    props: Vec<(String, String)>,
}

impl AuthResults {
    /// Lowercase signing domains of every `dkim=pass` result.
    fn dkim_passes(&self) -> impl Iterator<Item = String> + '_ {
        self.results
            .iter()
            .filter(|r| r.method == "dkim" && r.result == "pass")
            .filter_map(|r| {
                let prop = |name: &str| {
                    r.props
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())
                };
                let d = prop("header.d").map(str::to_string).or_else(|| {
                    prop("header.i")
                        .and_then(|i| i.rsplit_once('@'))
                        .map(|(_, d)| d.to_string())
                })?;
                let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
                (!d.is_empty()).then_some(d)
            })
    }
}

/// Parse an RFC 8601 header value tolerantly: comments and folding removed, `;`-separated
/// clauses, optional version after the authserv-id, CFWS around `=`, quoted values.
/// `None` when there is not even an authserv-id.
fn parse_authentication_results(value: &str) -> Option<AuthResults> {
    let clean = strip_comments(value);
    let mut clauses = split_outside_quotes(&clean, ';').into_iter();
    let authserv_id = unquote(clauses.next()?.split_whitespace().next()?).to_ascii_lowercase();
    if authserv_id.is_empty() {
        return None;
    }
    let mut results = Vec::new();
    for clause in clauses {
        let tokens = tokens(&clause);
        let Some((first, rest)) = tokens.split_first() else {
            continue;
        };
        let Some((method, result)) = first.split_once('=') else {
            continue; // `none`, or junk
        };
        let method = method
            .split('/')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let props = rest
            .iter()
            .filter_map(|t| t.split_once('='))
            .map(|(k, v)| (k.to_ascii_lowercase(), unquote(v).to_string()))
            .collect();
        results.push(MethodResult {
            method,
            result: unquote(result).to_ascii_lowercase(),
            props,
        });
    }
    Some(AuthResults {
        authserv_id,
        results,
    })
}

/// Replace `(comments)` (nested, with `\` escapes) by a space; quoted strings are left alone.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    let mut in_quote = false;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' if in_quote || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                in_quote = !in_quote;
                out.push(c);
            }
            '(' if !in_quote => depth += 1,
            ')' if !in_quote && depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(' ');
                }
            }
            _ if depth > 0 => {}
            '\r' | '\n' | '\t' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut in_quote = false;
    for c in s.chars() {
        if c == '"' {
            in_quote = !in_quote;
        }
        if c == sep && !in_quote {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// Whitespace-separated tokens with `a = b` glued back to `a=b`.
fn tokens(clause: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut glue = false;
    for word in clause.split_whitespace() {
        let starts_eq = word.starts_with('=');
        match out.last_mut() {
            Some(last) if glue || starts_eq => last.push_str(word),
            _ => out.push(word.to_string()),
        }
        glue = word.ends_with('=');
    }
    out
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> StaffPolicy {
        StaffPolicy {
            staff_domains: vec!["CA.example".into()],
            staff_addresses: vec!["Vendor-Desk@Partner.example".into()],
            trusted_authserv_ids: vec!["mx.ca.example".into()],
        }
    }

    fn mail(from: &str, ar: &[&str]) -> ParsedMail {
        ParsedMail {
            parsed_ok: true,
            from: Some(from.into()),
            authentication_results: ar.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn proof(from: &str, ar: &[&str]) -> Option<String> {
        staff_proof(&mail(from, ar), FolderRole::Inbox, &policy())
    }

    #[test]
    fn sent_folder_is_staff() {
        let m = ParsedMail::default();
        assert_eq!(
            staff_proof(&m, FolderRole::Sent, &policy()).as_deref(),
            Some("sent-folder")
        );
        assert_eq!(staff_proof(&m, FolderRole::Junk, &policy()), None);
    }

    #[test]
    fn spoofed_from_without_ar_is_not_staff() {
        assert_eq!(proof("desk@ca.example", &[]), None);
    }

    #[test]
    fn forged_ar_from_untrusted_authserv_id_changes_nothing() {
        assert_eq!(
            proof(
                "desk@ca.example",
                &["mx.attacker.example; dkim=pass header.d=ca.example"]
            ),
            None
        );
        // Look-alike id is not the trusted one.
        assert_eq!(
            proof(
                "desk@ca.example",
                &["mx.ca.example.evil; dkim=pass header.d=ca.example"]
            ),
            None
        );
    }

    #[test]
    fn trusted_pass_for_staff_domain() {
        let ar = "MX.CA.example 1;\r\n\tspf=pass (sender IP is 192.0.2.1) smtp.mailfrom=ca.example;\r\n\
                  \tdkim=pass (2048-bit key; unprotected) header.d=CA.example header.s=sel1 \
                  header.b=\"abc;def\"; dmarc=pass header.from=ca.example";
        assert_eq!(
            proof("desk@ca.example", &[ar]).as_deref(),
            Some("dkim:ca.example via mx.ca.example")
        );
        let ar_i = "mx.ca.example; dkim = pass header.i = @ca.example";
        assert_eq!(
            proof("desk@ca.example", &[ar_i]).as_deref(),
            Some("dkim:ca.example via mx.ca.example")
        );
    }

    #[test]
    fn pass_for_non_staff_domain_with_staff_from_is_misaligned() {
        assert_eq!(
            proof(
                "desk@ca.example",
                &["mx.ca.example; dkim=pass header.d=reporter.example"]
            ),
            None
        );
        // A staff-domain signature on mail From: an outsider is not staff mail either.
        assert_eq!(
            proof(
                "alice@reporter.example",
                &["mx.ca.example; dkim=pass header.d=ca.example"]
            ),
            None
        );
    }

    #[test]
    fn dkim_fail_or_neutral_never_counts() {
        for result in ["fail", "neutral", "none", "temperror", "policy", "softfail"] {
            let ar = format!("mx.ca.example; dkim={result} header.d=ca.example");
            assert_eq!(proof("desk@ca.example", &[&ar]), None, "{result}");
        }
        // A pass in a comment is not a pass.
        assert_eq!(
            proof(
                "desk@ca.example",
                &[
                    "mx.ca.example; dkim=fail (was dkim=pass header.d=ca.example) header.d=ca.example"
                ]
            ),
            None
        );
    }

    #[test]
    fn subdomains() {
        let ar = "mx.ca.example; dkim=pass header.d=mail.ca.example";
        assert_eq!(
            proof("desk@ops.mail.ca.example", &[ar]).as_deref(),
            Some("dkim:mail.ca.example via mx.ca.example")
        );
        // From: the parent while only the subdomain signed: not aligned.
        assert_eq!(proof("desk@ca.example", &[ar]), None);
        // A suffix that is not a label boundary is not a subdomain.
        assert_eq!(
            proof(
                "desk@evilca.example",
                &["mx.ca.example; dkim=pass header.d=evilca.example"]
            ),
            None
        );
    }

    #[test]
    fn staff_addresses_need_their_own_domain_signature() {
        let ar = "mx.ca.example; dkim=pass header.d=partner.example";
        assert_eq!(
            proof("vendor-desk@partner.example", &[ar]).as_deref(),
            Some("dkim:partner.example via mx.ca.example")
        );
        assert_eq!(proof("someone-else@partner.example", &[ar]), None);
        assert_eq!(
            proof(
                "vendor-desk@partner.example",
                &["mx.ca.example; dkim=pass header.d=other.example"]
            ),
            None
        );
    }

    #[test]
    fn second_ar_header_can_carry_the_pass() {
        let ars = [
            "mx.attacker.example; dkim=pass header.d=ca.example",
            "mx.ca.example; none",
            "mx.ca.example; dkim=pass header.d=ca.example",
        ];
        assert!(proof("desk@ca.example", &ars).is_some());
        assert_eq!(proof("no-at-sign", &ars), None);
    }
}
