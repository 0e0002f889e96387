//! Per-image faults and the pod status each fault produces.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{Value, json};

use super::status::ApiError;

/// A failure mode injected for pods whose image matches a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The container starts and crashes: `CrashLoopBackOff`, restarts climbing, never ready.
    CrashLoop,
    /// The container is killed for memory: `lastState.terminated.reason: OOMKilled`.
    OomKilled,
    /// The container runs but its readiness probe never passes.
    NeverReady,
    /// The image cannot be pulled: waiting reason `ImagePullBackOff`.
    ImagePullBackOff,
}

impl std::str::FromStr for Fault {
    type Err = String;

    /// Parses `CrashLoop`, `OomKilled`, `NeverReady` or `ImagePullBackOff` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "crashloop" | "crashloopbackoff" => Ok(Fault::CrashLoop),
            "oomkilled" | "oom" => Ok(Fault::OomKilled),
            "neverready" => Ok(Fault::NeverReady),
            "imagepullbackoff" => Ok(Fault::ImagePullBackOff),
            other => Err(format!("unknown fault {other:?}")),
        }
    }
}

/// The HTTP path (outside the Kubernetes API) for injecting faults into a running simulator:
/// `POST {"image": "bad", "fault": "CrashLoop"}` adds a rule, `DELETE` clears all rules,
/// `GET` lists them. Meant for demos that run the simulator as a separate process.
pub const CONTROL_PATH: &str = "/sim/faults";

/// Handles a request to [`CONTROL_PATH`].
pub fn control(
    faults: &Faults,
    method: &axum::http::Method,
    body: &[u8],
) -> Result<Value, ApiError> {
    use axum::http::Method;
    if *method == Method::POST {
        let req: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid fault request: {e}")))?;
        let image = req["image"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::BadRequest("\"image\" (a substring) is required".into()))?;
        let fault: Fault = req["fault"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .map_err(ApiError::BadRequest)?;
        faults.inject(image, fault);
    } else if *method == Method::DELETE {
        faults.clear();
    } else if *method != Method::GET {
        return Err(ApiError::MethodNotAllowed("use GET, POST or DELETE".into()));
    }
    let rules: Vec<Value> = faults
        .rules()
        .into_iter()
        .map(|(image, fault)| json!({"image": image, "fault": format!("{fault:?}")}))
        .collect();
    Ok(json!({"faults": rules}))
}

/// The registry of injected faults, matched by image substring.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<(String, Fault)>>,
    /// Bumped on every change, so the controllers notice rule changes.
    generation: std::sync::atomic::AtomicU64,
}

impl Faults {
    /// Adds a rule: images containing `pattern` get `fault`.
    pub fn inject(&self, pattern: &str, fault: Fault) {
        let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        rules.retain(|(p, _)| p != pattern);
        rules.push((pattern.to_string(), fault));
        self.bump();
    }

    fn bump(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A number that changes whenever the rules change.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current rules, in the order they were added.
    pub fn rules(&self) -> Vec<(String, Fault)> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.bump();
    }

    /// The fault for one image, if any rule matches.
    pub fn for_image(&self, image: &str) -> Option<Fault> {
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(p, _)| image.contains(p.as_str()))
            .map(|(_, f)| *f)
    }

    /// The first fault matching any container image of a pod spec.
    pub fn for_pod_spec(&self, spec: &Value) -> Option<Fault> {
        spec.get("containers")
            .and_then(Value::as_array)?
            .iter()
            .filter_map(|c| c["image"].as_str())
            .find_map(|i| self.for_image(i))
    }
}

/// The lifecycle stage of a simulated container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Still being created.
    Creating,
    /// Running and ready (or, for run-to-completion pods, completed successfully).
    Healthy,
    /// Affected by a fault.
    Faulty(Fault),
}

/// Computes a container status for a container in a pod of the given age.
pub fn container_status(
    c: &Value,
    stage: Stage,
    age: Duration,
    ready_after: Duration,
    started: &str,
    completes: bool,
) -> Value {
    let name = c["name"].as_str().unwrap_or_default();
    let image = c["image"].as_str().unwrap_or_default();
    let period = ready_after.max(Duration::from_millis(50));
    let restarts = (age.saturating_sub(ready_after).as_millis() / period.as_millis()) as u64 + 1;
    let (state, last_state, ready, restart_count) = match stage {
        Stage::Creating => (
            json!({"waiting": {"reason": "ContainerCreating"}}),
            json!({}),
            false,
            0,
        ),
        Stage::Healthy if completes => (
            json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": started}}),
            json!({}),
            false,
            0,
        ),
        Stage::Healthy => (
            json!({"running": {"startedAt": started}}),
            json!({}),
            true,
            0,
        ),
        Stage::Faulty(_) if completes => (
            json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started, "finishedAt": started}}),
            json!({}),
            false,
            0,
        ),
        Stage::Faulty(Fault::CrashLoop) => (
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off restarting failed container {name}")}}),
            json!({"terminated": {"exitCode": 1, "reason": "Error", "startedAt": started, "finishedAt": started}}),
            false,
            restarts,
        ),
        Stage::Faulty(Fault::OomKilled) => (
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off restarting failed container {name}")}}),
            json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": started, "finishedAt": started}}),
            false,
            restarts,
        ),
        Stage::Faulty(Fault::NeverReady) => (
            json!({"running": {"startedAt": started}}),
            json!({}),
            false,
            0,
        ),
        Stage::Faulty(Fault::ImagePullBackOff) => (
            json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\"")}}),
            json!({}),
            false,
            0,
        ),
    };
    json!({
        "name": name,
        "image": image,
        "imageID": "",
        "ready": ready,
        "started": ready,
        "restartCount": restart_count,
        "state": state,
        "lastState": last_state,
    })
}
