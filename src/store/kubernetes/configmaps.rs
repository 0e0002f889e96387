//! The store's ConfigMaps that are not logs: the per-agent register (the id counter and the
//! incident being opened), backups (owned by their incident) and pauses.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::api::{Kube, WriteError, selector};
use super::names;
use super::object::{IncidentObject, ms};
use crate::store::{Backup, Pause, StoreError, parse_ts, ts};

/// How many times a backup's sequence number is taken again after losing a race.
const ATTEMPTS: usize = 20;

fn meta(name: String, role: &str, extra: &[(&str, String)]) -> ObjectMeta {
    let labels = [
        (
            names::MANAGED_BY.0.to_string(),
            names::MANAGED_BY.1.to_string(),
        ),
        (names::ROLE.to_string(), role.to_string()),
    ]
    .into_iter()
    .chain(extra.iter().map(|(k, v)| (k.to_string(), v.clone())))
    .collect();
    ObjectMeta {
        name: Some(name),
        labels: Some(labels),
        ..ObjectMeta::default()
    }
}

fn data(cm: &ConfigMap, key: &str) -> Option<String> {
    cm.data.as_ref().and_then(|d| d.get(key)).cloned()
}

/// An agent's register: how many incidents it has had (the `n` of the last id) and the
/// incident being opened, until it exists.
#[derive(Debug, Clone, Default)]
pub struct Register {
    /// The resourceVersion it was read at; `None` when it does not exist yet.
    pub resource_version: Option<String>,
    /// Incidents opened for the agent so far.
    pub count: u64,
    /// The incident whose create is under way (or was interrupted).
    pub pending: Option<IncidentObject>,
}

/// Reads `agent`'s register.
pub async fn register(kube: &Kube, agent: &str) -> Result<Register, StoreError> {
    let Some(cm) = kube.configmap(&names::agent_register(agent)).await? else {
        return Ok(Register::default());
    };
    let count = data(&cm, "count")
        .map(|c| {
            c.parse()
                .map_err(|e| StoreError::Corrupt(format!("register of {agent}: count {c:?}: {e}")))
        })
        .transpose()?
        .unwrap_or(0);
    let pending = data(&cm, "pending")
        .map(|p| serde_json::from_str(&p))
        .transpose()?;
    Ok(Register {
        resource_version: cm.metadata.resource_version,
        count,
        pending,
    })
}

/// Writes `agent`'s register over the one read (`read`): created when it did not exist,
/// else replaced at the resourceVersion it was read at.
pub async fn write_register(
    kube: &Kube,
    agent: &str,
    read: &Register,
    count: u64,
    pending: Option<&IncidentObject>,
) -> Result<String, WriteError> {
    let mut d = BTreeMap::from([
        ("agent".to_string(), agent.to_string()),
        ("count".to_string(), count.to_string()),
    ]);
    if let Some(p) = pending {
        d.insert(
            "pending".to_string(),
            serde_json::to_string(p).map_err(|e| WriteError::Other(e.into()))?,
        );
    }
    let mut m = meta(
        names::agent_register(agent),
        names::ROLE_AGENT,
        &[(names::AGENT, names::label_value(agent))],
    );
    m.resource_version = read.resource_version.clone();
    let cm = ConfigMap {
        metadata: m,
        data: Some(d),
        ..ConfigMap::default()
    };
    let written = match read.resource_version {
        Some(_) => kube.replace_configmap(&cm).await?,
        None => kube.create_configmap(&cm).await?,
    };
    Ok(written.metadata.resource_version.unwrap_or_default())
}

/// The backups of the incident named `incident`, in the order they were saved.
async fn backup_maps(kube: &Kube, incident: &str) -> Result<Vec<(u64, ConfigMap)>, StoreError> {
    let label = names::label_value(incident);
    let mut maps: Vec<(u64, ConfigMap)> = kube
        .configmaps_labelled(&selector(&[
            (names::ROLE, names::ROLE_BACKUP),
            (names::INCIDENT, &label),
        ]))
        .await?
        .into_iter()
        .filter(|cm| data(cm, "incident").as_deref() == Some(incident))
        .map(|cm| {
            (
                data(&cm, "seq").and_then(|s| s.parse().ok()).unwrap_or(0),
                cm,
            )
        })
        .collect();
    maps.sort_by_key(|(seq, _)| *seq);
    Ok(maps)
}

/// The backups of the incident named `incident`.
pub async fn backups(kube: &Kube, incident: &str) -> Result<Vec<Backup>, StoreError> {
    backup_maps(kube, incident)
        .await?
        .into_iter()
        .map(|(_, cm)| {
            let field = |k: &str| data(&cm, k).unwrap_or_default();
            let object = serde_json::from_str(&field("object.json"))?;
            Ok((field("kind"), field("namespace"), field("name"), object))
        })
        .collect()
}

/// Saves a backup as a ConfigMap owned by its incident.
pub async fn save_backup(
    kube: &Kube,
    owner: &IncidentObject,
    kind: &str,
    namespace: &str,
    name: &str,
    object: &serde_json::Value,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let incident = owner.name().to_string();
    let uid = owner.metadata.uid.clone().unwrap_or_default();
    let text = serde_json::to_string(object)?;
    for _ in 0..ATTEMPTS {
        let seq = backup_maps(kube, &incident)
            .await?
            .last()
            .map_or(1, |(s, _)| s + 1);
        let mut m = meta(
            names::backup_name(&incident, seq),
            names::ROLE_BACKUP,
            &[(names::INCIDENT, names::label_value(&incident))],
        );
        m.owner_references = Some(vec![OwnerReference {
            api_version: format!("{}/{}", names::GROUP, names::VERSION),
            kind: names::KIND.to_string(),
            name: incident.clone(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: None,
        }]);
        let cm = ConfigMap {
            metadata: m,
            data: Some(BTreeMap::from([
                ("incident".to_string(), incident.clone()),
                ("seq".to_string(), seq.to_string()),
                ("kind".to_string(), kind.to_string()),
                ("namespace".to_string(), namespace.to_string()),
                ("name".to_string(), name.to_string()),
                ("at".to_string(), ts(ms(at))),
                ("object.json".to_string(), text.clone()),
            ])),
            ..ConfigMap::default()
        };
        match kube.create_configmap(&cm).await {
            Ok(_) => return Ok(()),
            Err(WriteError::AlreadyExists) => continue,
            Err(e) => return Err(e.into_store("saving a backup")),
        }
    }
    Err(StoreError::Kube(format!(
        "backups of {incident} kept racing: gave up after {ATTEMPTS} attempts"
    )))
}

/// Deletes the backups of the incident named `incident`; returns how many.
pub async fn delete_backups(kube: &Kube, incident: &str) -> Result<usize, StoreError> {
    let mut n = 0;
    for (_, cm) in backup_maps(kube, incident).await? {
        let name = cm.metadata.name.unwrap_or_default();
        match kube.delete_configmap(&name, None).await {
            Ok(()) => n += 1,
            // the garbage collector was faster (it follows the owner reference)
            Err(WriteError::NotFound) => n += 1,
            Err(e) => return Err(e.into_store("deleting a backup")),
        }
    }
    Ok(n)
}

/// Pauses a scope; the first pause's record is kept.
pub async fn pause(kube: &Kube, pause: &Pause) -> Result<(), StoreError> {
    let cm = ConfigMap {
        metadata: meta(names::pause_name(&pause.scope), names::ROLE_PAUSE, &[]),
        data: Some(BTreeMap::from([
            ("scope".to_string(), pause.scope.clone()),
            ("pausedBy".to_string(), pause.paused_by.clone()),
            ("reason".to_string(), pause.reason.clone()),
            ("at".to_string(), ts(ms(pause.at))),
        ])),
        ..ConfigMap::default()
    };
    match kube.create_configmap(&cm).await {
        Ok(_) | Err(WriteError::AlreadyExists) => Ok(()),
        Err(e) => Err(e.into_store("pausing")),
    }
}

/// Resumes a scope; whether it was paused.
pub async fn resume(kube: &Kube, scope: &str) -> Result<bool, StoreError> {
    match kube.delete_configmap(&names::pause_name(scope), None).await {
        Ok(()) => Ok(true),
        Err(WriteError::NotFound) => Ok(false),
        Err(e) => Err(e.into_store("resuming")),
    }
}

/// Every active pause, by scope.
pub async fn pauses(kube: &Kube) -> Result<Vec<Pause>, StoreError> {
    let mut out = Vec::new();
    for cm in kube
        .configmaps_labelled(&selector(&[(names::ROLE, names::ROLE_PAUSE)]))
        .await?
    {
        let field = |k: &str| data(&cm, k).unwrap_or_default();
        out.push(Pause {
            scope: field("scope"),
            paused_by: field("pausedBy"),
            reason: field("reason"),
            at: parse_ts(&field("at"))?,
        });
    }
    out.sort_by(|a, b| a.scope.cmp(&b.scope));
    Ok(out)
}
