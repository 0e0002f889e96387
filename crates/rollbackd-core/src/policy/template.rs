//! Message templates: `{placeholder}` text with `{{`/`}}` escapes, checked at load time and
//! rendered by the notifiers.

use std::collections::BTreeMap;

use super::model::Stage;

/// Every placeholder a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "agent_id",
    "agent_name",
    "namespace",
    "workload",
    "severity",
    "row",
    "method",
    "reason",
    "evidence",
    "from_version",
    "to_version",
    "from_revision",
    "to_revision",
    "eta",
    "status_url",
    "pods_updated",
    "pods_total",
    "duration",
    "watch",
    "incident_id",
    "mention",
    "error",
    "approver",
];

/// The placeholders a public (status page) template may use: what the service is, which
/// versions and how long. Row ids, rollbackd's incident ids, mentions, evidence, reasons
/// and errors are for the team, not for customers.
pub const PUBLIC_PLACEHOLDERS: &[&str] = &[
    "agent_id",
    "agent_name",
    "from_version",
    "to_version",
    "eta",
    "duration",
    "watch",
    "status_url",
];

/// Slack spellings a public template must not carry: broadcast mentions and `<…>` control
/// sequences (user, channel and group mentions, `<url|label>` links).
const SLACK_MARKUP: &[&str] = &[
    "@here",
    "@channel",
    "@everyone",
    "<!",
    "<@",
    "<#",
    "<http",
    "<mailto:",
];

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Brace(char),
    Placeholder(&'a str),
}

fn parse(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find(['{', '}']) {
        pieces.push(Piece::Text(&rest[..pos]));
        let tail = &rest[pos..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            pieces.push(Piece::Brace(tail.as_bytes()[0] as char));
            rest = &tail[2..];
        } else if tail.starts_with('}') {
            return Err("unmatched '}' (write '}}' for a literal brace)".into());
        } else {
            let end = tail
                .find('}')
                .ok_or("unclosed '{' (write '{{' for a literal brace)")?;
            let name = &tail[1..end];
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "unknown placeholder {{{name}}} (known: {})",
                    PLACEHOLDERS.join(", ")
                ));
            }
            pieces.push(Piece::Placeholder(name));
            rest = &tail[end + 1..];
        }
    }
    pieces.push(Piece::Text(rest));
    Ok(pieces)
}

/// Checks a template; the error names the first problem.
pub fn check(text: &str) -> Result<(), String> {
    parse(text).map(|_| ())
}

/// Checks a public (status page) template: well-formed, only [`PUBLIC_PLACEHOLDERS`], no
/// Slack mentions or links. The error names the first problem.
pub fn check_public(text: &str) -> Result<(), String> {
    for piece in parse(text)? {
        match piece {
            Piece::Placeholder(name) if !PUBLIC_PLACEHOLDERS.contains(&name) => {
                return Err(format!(
                    "placeholder {{{name}}} is not for a public status page (allowed: {})",
                    PUBLIC_PLACEHOLDERS.join(", ")
                ));
            }
            Piece::Text(t) => {
                if let Some(markup) = SLACK_MARKUP.iter().find(|m| t.contains(**m)) {
                    return Err(format!(
                        "{markup:?} is Slack markup: a public status page shows it as is (write plain text)"
                    ));
                }
            }
            Piece::Placeholder(_) | Piece::Brace(_) => {}
        }
    }
    Ok(())
}

/// Fills a template; placeholders without a value render as `n/a`.
pub fn render(text: &str, values: &BTreeMap<&str, String>) -> String {
    let Ok(pieces) = parse(text) else {
        return text.to_string();
    };
    let mut out = String::with_capacity(text.len() + 64);
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Brace(c) => out.push(c),
            Piece::Placeholder(name) => {
                out.push_str(values.get(name).map_or("n/a", String::as_str));
            }
        }
    }
    out
}

/// The default wording per stage, after GL-002's Communication Plan.
pub fn default_template(stage: Stage) -> &'static str {
    match stage {
        Stage::Initiated => {
            "{mention}ROLLBACK INITIATED: {agent_id} {agent_name}\nInitiator: rollbackd ({severity}, row {row})\nCurrent Version: {from_version} (revision {from_revision})\nTarget Version: {to_version} (revision {to_revision})\nReason: {reason}\nETA: {eta}\nStatus: {status_url}"
        }
        Stage::InProgress => {
            "ROLLBACK IN PROGRESS: {agent_id} {from_version} -> {to_version}\nStatus: Rolling back deployment\nETA: {eta}\nCurrent: {pods_updated}/{pods_total} pods updated\nReason: {reason}"
        }
        Stage::Complete => {
            "ROLLBACK COMPLETE: {agent_id} {to_version} Restored\nStatus: Monitoring\nDuration: {duration}\nResult: All pods healthy ({pods_updated}/{pods_total})\nMonitoring: Will monitor for {watch} before resolving incident"
        }
        Stage::Failed => {
            "{mention}ROLLBACK FAILED: {agent_id} {agent_name}\nFrom: {from_version} (revision {from_revision})\nError: {error}\nEvidence: {evidence}\nA human must take over now."
        }
        Stage::Resolved => {
            "RESOLVED: {agent_id} stable for {watch} after rollback to {to_version} (revision {to_revision})."
        }
        Stage::AwaitingApproval => {
            "APPROVAL NEEDED: {agent_id} {agent_name} {severity} (row {row})\nProposed: {method} from {from_version} (revision {from_revision})\nReason: {reason}\nApprover: {approver}\nApprove: POST /api/v1/rollbacks/{incident_id}/approve"
        }
        Stage::Blocked => {
            "{mention}ROLLBACK BLOCKED: {agent_id} {agent_name} {severity} (row {row})\nReason: {reason}\nEvidence: {evidence}\nrollbackd will not act; a human must decide."
        }
        Stage::Notice => {
            "NOTICE: {agent_id} {agent_name} {severity} (row {row}): {reason}\nThe runbook says monitor / fix forward: rollbackd takes no action."
        }
        Stage::Superseded => {
            "SUPERSEDED: {agent_id} {agent_name}: no rollback of revision {from_revision}.\nWhy: {error}\nIncident: {incident_id}"
        }
        Stage::Stopped => {
            "{mention}ROLLBACK STOPPED: {agent_id} {agent_name} (revision {from_revision})\n{error}\nIncident: {incident_id}\nA human has the rollback now."
        }
        Stage::Preexisting => {
            "NOTICE: {agent_id} {agent_name} {severity} (row {row}) holds, but it held before revision {from_revision} was deployed.\nReason: {reason}\nrollbackd does not roll a deploy back for what was wrong before it; please check the service."
        }
        Stage::Escalated => {
            "{mention}DECIDE NOW: {agent_id} {agent_name} {severity} (row {row})\nReason: {reason}\nrollbackd cannot decide without data and the runbook's deadline has passed: a human must decide."
        }
        Stage::Continued => {
            "ROLLBACK CONTINUES: {agent_id} {agent_name} (revision {from_revision})\n{error}\nIncident: {incident_id}"
        }
        Stage::Inconclusive => {
            "NO DATA: {agent_id} {agent_name}: rollbackd cannot evaluate the rollback policy.\nReason: {reason}\nrollbackd will not act while data is missing; please check."
        }
    }
}

/// The default public wording per stage for the status page, after GL-002's "Status Page
/// Updates": what customers notice and what is being done, without rollbackd's internals.
/// A line whose placeholders are all unknown at its stage is left out.
pub fn default_public_template(stage: Stage) -> &'static str {
    match stage {
        Stage::Initiated => {
            "We have identified an issue with {agent_id} {agent_name} caused by a recent deployment. We are rolling back to the previous stable version.\nExpected resolution time: {eta}."
        }
        Stage::InProgress => {
            "The rollback of {agent_id} {agent_name} is in progress.\nRolling back to version {to_version}.\nExpected resolution time: {eta}."
        }
        Stage::Complete => {
            "The rollback of {agent_id} {agent_name} has been completed and the service is operating normally. We are monitoring it to ensure stability before closing this incident.\nRestored version: {to_version}."
        }
        Stage::Failed => {
            "We are still working on the issue affecting {agent_id} {agent_name}. Our engineers have taken over and we will post an update shortly."
        }
        Stage::Resolved => {
            "This incident has been resolved. {agent_id} {agent_name} is operating normally following the rollback.\nThe service has been stable for {watch}."
        }
        Stage::AwaitingApproval | Stage::Blocked | Stage::Escalated => {
            "We are investigating an issue with {agent_id} {agent_name} following a recent deployment. Our engineers are working on it and we will post an update shortly."
        }
        Stage::Inconclusive | Stage::Notice | Stage::Preexisting => {
            "We are investigating reports of an issue with {agent_id} {agent_name}."
        }
        Stage::Superseded => {
            "A newer version of {agent_id} {agent_name} has been deployed. We are monitoring the service."
        }
        Stage::Stopped => {
            "Our engineers have taken over the rollback of {agent_id} {agent_name} and are working on the issue."
        }
        Stage::Continued => "The rollback of {agent_id} {agent_name} is continuing.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders_and_escapes() {
        let mut values = BTreeMap::new();
        values.insert("agent_id", "GL-002".to_string());
        assert_eq!(
            render("{{literal}} {agent_id} {eta}", &values),
            "{literal} GL-002 n/a"
        );
    }

    #[test]
    fn rejects_unknown_and_unbalanced() {
        assert!(
            check("{agnet_id}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(check("oops {agent_id").unwrap_err().contains("unclosed"));
        assert!(check("oops }").unwrap_err().contains("unmatched"));
    }

    #[test]
    fn every_default_template_is_valid() {
        for (_, stage) in Stage::ALL {
            assert_eq!(check(default_template(stage)), Ok(()), "{stage:?}");
            assert_eq!(
                check_public(default_public_template(stage)),
                Ok(()),
                "{stage:?}"
            );
        }
    }

    #[test]
    fn public_templates_refuse_internal_placeholders_and_slack_markup() {
        let err = check_public("Rolled back (row {row})").unwrap_err();
        assert!(
            err.contains("{row} is not for a public status page"),
            "{err}"
        );
        assert!(check_public("{incident_id}").is_err());
        assert!(check_public("{mention}fixed").is_err());
        let err = check_public("@here fixed").unwrap_err();
        assert!(err.contains("Slack markup"), "{err}");
        assert!(check_public("see <https://x|status>").is_err());
        assert!(check_public("{agent_id} is back on {to_version}.").is_ok());
        assert!(check_public("oops {agent_id").is_err());
    }
}
