//! Object names, labels and annotations of the Kubernetes store: every name is derived
//! from what it holds, so finding an object never needs a search.

/// The API group of rollbackd's own resources.
pub const GROUP: &str = "rollbackd.io";
/// The version of [`KIND`] served and stored.
pub const VERSION: &str = "v1alpha1";
/// The incident kind.
pub const KIND: &str = "RollbackIncident";
/// Its plural (the resource).
pub const PLURAL: &str = "rollbackincidents";

/// On every object the store writes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "rollbackd");
/// Which record a ConfigMap holds: [`ROLE_AGENT`], [`ROLE_BACKUP`], [`ROLE_PAUSE`], or a
/// log's name ([`LOG_ALERTS`], [`LOG_AUDIT`]).
pub const ROLE: &str = "rollbackd.io/role";
/// An incident's agent (label-safe, see [`label_value`]).
pub const AGENT: &str = "rollbackd.io/agent";
/// An incident's revision (`none` when it has none).
pub const REVISION: &str = "rollbackd.io/revision";
/// An incident's trigger (`automatic` or `manual`).
pub const TRIGGER: &str = "rollbackd.io/trigger";
/// The incident a ConfigMap belongs to (label-safe object name).
pub const INCIDENT: &str = "rollbackd.io/incident";
/// Annotation: the incident id as the API and Slack show it.
pub const ID: &str = "rollbackd.io/id";
/// The label marking a notice's object (`"true"`): a decision that only tells people
/// (no data, inconclusive), kept for its notifications; never listed as an incident.
pub const NOTICE: &str = "rollbackd.io/notice";
/// Annotation: the incident's first status, written with the object (a create cannot
/// write status); read only while the status is still empty.
pub const OPENING: &str = "rollbackd.io/opening";
/// Annotation of a segment: its position in its log.
pub const SEQ: &str = "rollbackd.io/seq";

/// The per-agent register: the id counter and the incident being opened.
pub const ROLE_AGENT: &str = "agent";
/// A backup taken before the first mutating step of an incident.
pub const ROLE_BACKUP: &str = "backup";
/// An active pause.
pub const ROLE_PAUSE: &str = "pause";
/// The log of received alerts.
pub const LOG_ALERTS: &str = "alerts";
/// The log of audit entries about no stored incident (agents, `global`).
pub const LOG_AUDIT: &str = "audit";

/// FNV-1a, 64 bits: stable across builds and platforms (names and outbox ids depend on it).
pub fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Lower case, with anything but `a-z`, `0-9` and `-` replaced by `-`, no leading or
/// trailing `-`, at most `max` bytes.
fn sanitize(s: &str, max: usize) -> String {
    let mut out: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(max);
    out.trim_matches('-').to_string()
}

/// Whether `s` is a valid DNS-1123 subdomain of lower-case letters, digits and `-`
/// (what object names allow, less the dots).
fn is_plain_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A readable, unique name part for any text: its sanitized form plus a hash of the text
/// (so `GL-002` and `gl-002` never share a name).
pub fn slug(s: &str) -> String {
    let base = sanitize(s, 40);
    let h = format!("{:08x}", hash(s) & 0xffff_ffff);
    if base.is_empty() {
        h
    } else {
        format!("{base}-{h}")
    }
}

/// The object name of an incident: its id in lower case, which is a valid name for every
/// id rollbackd builds from a plain agent id (`gl-002-20251117t143000z-1`); other ids get
/// a sanitized name with a hash of the id.
pub fn incident_name(id: &str) -> String {
    let lower = id.to_lowercase();
    if is_plain_name(&lower, 200) {
        lower
    } else {
        slug(id)
    }
}

/// `value` as a label value: itself when it is one (at most 63 of `A-Za-z0-9-_.`, starting
/// and ending alphanumeric), else a sanitized form with a hash.
pub fn label_value(value: &str) -> String {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric();
    if ok {
        value.to_string()
    } else {
        let h = format!("{:08x}", hash(value) & 0xffff_ffff);
        let base = sanitize(value, 50);
        if base.is_empty() {
            format!("h{h}")
        } else {
            format!("{base}-{h}")
        }
    }
}

/// The label value of a revision.
pub fn revision_label(revision: Option<u64>) -> String {
    revision.map_or_else(|| "none".to_string(), |r| r.to_string())
}

/// The per-agent register of `agent`.
pub fn agent_register(agent: &str) -> String {
    format!("rollbackd-agent-{}", slug(agent))
}

/// The ConfigMap of an active pause of `scope`.
pub fn pause_name(scope: &str) -> String {
    format!("rollbackd-pause-{}", slug(scope))
}

/// The ConfigMap of the `seq`-th backup of an incident.
pub fn backup_name(incident: &str, seq: u64) -> String {
    let name = format!("{incident}-backup-{seq}");
    if name.len() <= 253 {
        name
    } else {
        format!("rollbackd-backup-{}-{seq}", slug(incident))
    }
}

/// The `seq`-th segment of a log.
pub fn segment_name(log: &str, seq: u64) -> String {
    format!("rollbackd-{log}-{seq:010}")
}

/// The outbox row id of the `seq`-th notification of an incident: 47 bits of the object
/// name's hash, then 16 bits of `seq` (an incident queues far fewer than 65,536).
pub fn outbox_id(incident: &str, seq: u64) -> i64 {
    let prefix = (hash(incident) >> 17) as i64;
    (prefix << 16) | (seq & 0xffff) as i64
}

/// The name hash part and the sequence of an outbox row id.
pub fn split_outbox_id(id: i64) -> (i64, u64) {
    (id >> 16, (id & 0xffff) as u64)
}

/// The name hash part of an outbox row id of an incident.
pub fn outbox_prefix(incident: &str) -> i64 {
    (hash(incident) >> 17) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incident_names_are_the_ids_in_lower_case() {
        assert_eq!(
            incident_name("gl-002-20251117T143000Z-1"),
            "gl-002-20251117t143000z-1"
        );
        let odd = incident_name("My Agent_1-20251117T143000Z-1");
        assert!(is_plain_name(&odd, 253), "{odd}");
        assert_ne!(odd, incident_name("my-agent-1-20251117T143000Z-1"));
    }

    #[test]
    fn label_values_and_slugs_are_valid_and_distinct() {
        assert_eq!(label_value("GL-002"), "GL-002");
        let long = "x".repeat(80);
        for v in ["a b", "-x-", "", long.as_str(), "é"] {
            let l = label_value(v);
            assert!(l.len() <= 63 && !l.is_empty(), "{v:?} → {l:?}");
            assert!(l.as_bytes()[0].is_ascii_alphanumeric(), "{l}");
        }
        assert_ne!(slug("GL-002"), slug("gl-002"));
        assert!(is_plain_name(&slug("GL-002"), 63));
    }

    #[test]
    fn outbox_ids_are_positive_and_split_back() {
        let id = outbox_id("gl-002-20251117t143000z-1", 7);
        assert!(id > 0);
        assert_eq!(
            split_outbox_id(id),
            (outbox_prefix("gl-002-20251117t143000z-1"), 7)
        );
    }
}
