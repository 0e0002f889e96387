//! Re-evaluating a policy's guards against the latest reading of each signal, for a human's
//! approval and for the runner right before it mutates anything: the world may have changed
//! since the decision. Pure: the readings and `now` come in as data.
//!
//! Same semantics as the engine (the same [`judge`] of a condition's latest value): a guard
//! whose conditions all hold, or that cannot be evaluated (no reading, a stale reading, no
//! data, a non-finite value, no baseline), blocks.
//! From one reading a condition's `for` cannot be confirmed: a condition that holds now is
//! taken as holding (fail safe), and its evidence says so.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::condition::judge;
use super::decision::{ConditionEvidence, GuardEvidence, Truth};
use super::format_value;
use super::observations::Sample;
use crate::policy::duration::format_duration;
use crate::policy::{Condition, GuardScope, Policy};

/// One signal's latest reading: when it was read and its value (`None`: no data).
pub type Reading = (DateTime<Utc>, Option<f64>);

/// The guards of `policy` that apply to `row` (every guard when there is no row), each with
/// whether it blocks now, and its scope.
pub fn guards_now(
    policy: &Policy,
    row: Option<&str>,
    baselines: &BTreeMap<String, f64>,
    reading: impl Fn(&str) -> Option<Reading>,
    now: DateTime<Utc>,
) -> Vec<(GuardScope, GuardEvidence)> {
    policy
        .guards
        .iter()
        .filter(|g| row.is_none_or(|r| g.applies_to(r)))
        .map(|g| {
            let evidence = GuardEvidence::of(g, |c| {
                condition_now(policy, c, baselines, reading(&c.signal), now)
            });
            (g.scope, evidence)
        })
        .collect()
}

/// The first `always` guard that blocks now: no approval lifts it.
pub fn always_blocking(guards: &[(GuardScope, GuardEvidence)]) -> Option<&GuardEvidence> {
    guards
        .iter()
        .find(|(scope, g)| *scope == GuardScope::Always && g.blocks)
        .map(|(_, g)| g)
}

/// One sentence for a human: which guard, whether it holds or cannot be evaluated, and its
/// description, with the values read.
pub fn guard_sentence(guard: &GuardEvidence) -> String {
    let why = guard.why();
    let detail: Vec<String> = guard
        .conditions
        .iter()
        .map(|c| {
            let value = c.value.map_or("no data".to_string(), format_value);
            match &c.note {
                Some(note) => format!("{} = {value}, needs {} ({note})", c.signal, c.threshold),
                None => format!("{} = {value}, needs {}", c.signal, c.threshold),
            }
        })
        .collect();
    format!(
        "guard {} {why}: {} [{}]",
        guard.guard,
        guard.description,
        detail.join("; ")
    )
}

fn condition_now(
    policy: &Policy,
    cond: &Condition,
    baselines: &BTreeMap<String, f64>,
    reading: Option<Reading>,
    now: DateTime<Utc>,
) -> ConditionEvidence {
    let latest = reading.map(|(at, value)| Sample::new(at, value));
    let baseline = cond
        .relative_to_baseline
        .then(|| baselines.get(&cond.signal).copied())
        .flatten();
    let stale = Some((now, policy.window.stale_after));
    let (mut evidence, _) = judge(cond, latest, stale, baseline);
    if evidence.truth == Truth::True
        && let Some(required) = cond.held_for
    {
        evidence.note = Some(format!(
            "holds now; its `for` {} cannot be confirmed from one reading (fail safe)",
            format_duration(required)
        ));
    }
    evidence
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn gl001() -> Policy {
        crate::policy::load_file(&crate::policy::seed_policy("gl-001.toml")).expect("loads")
    }

    fn life_safety(
        policy: &Policy,
        reading: Option<Reading>,
        now: DateTime<Utc>,
    ) -> (GuardScope, GuardEvidence) {
        guards_now(
            policy,
            None,
            &BTreeMap::new(),
            |s| (s == "backup_heat_available").then_some(reading).flatten(),
            now,
        )
        .into_iter()
        .find(|(_, g)| g.guard == "life-safety-heat")
        .expect("GL-001 has its life-safety guard")
    }

    #[test]
    fn the_life_safety_guard_blocks_when_it_holds_or_cannot_be_evaluated() {
        let p = gl001();
        let now: DateTime<Utc> = "2026-01-15T03:00:00Z".parse().expect("a time");
        let (scope, g) = life_safety(&p, Some((now, Some(0.0))), now);
        assert_eq!(scope, GuardScope::Always);
        assert!(g.blocks, "backup heat 0: holds");
        assert!(
            guard_sentence(&g).contains("holds: Never rollback"),
            "{}",
            guard_sentence(&g)
        );
        assert!(life_safety(&p, None, now).1.blocks, "no reading");
        assert!(life_safety(&p, Some((now, None)), now).1.blocks, "no data");
        assert!(
            life_safety(&p, Some((now, Some(f64::INFINITY))), now)
                .1
                .blocks,
            "+Inf is no data"
        );
        let stale = now - p.window.stale_after - TimeDelta::seconds(1);
        assert!(
            life_safety(&p, Some((stale, Some(1.0))), now).1.blocks,
            "stale"
        );
        let (_, ok) = life_safety(&p, Some((now, Some(1.0))), now);
        assert!(!ok.blocks, "backup heat available: passes");
    }

    #[test]
    fn only_always_guards_survive_an_approval() {
        let p = gl001();
        let now: DateTime<Utc> = "2026-01-15T03:00:00Z".parse().expect("a time");
        // every guard blocks (no readings at all): the `always` one is the one that counts
        let guards = guards_now(&p, None, &BTreeMap::new(), |_| None, now);
        assert!(guards.len() > 1);
        assert_eq!(
            always_blocking(&guards).map(|g| g.guard.as_str()),
            Some("life-safety-heat")
        );
        let fine = guards_now(&p, None, &BTreeMap::new(), |_| Some((now, Some(1.0))), now);
        assert!(always_blocking(&fine).is_none());
    }
}
