//! Writes that reach the standby, with real processes: one `rollbackd sim`, two `rollbackd
//! run` on the Kubernetes store (the CRD applied with kubectl) electing a leader on a 2 s
//! Lease, each advertising its API on it, and the real Alertmanager (Debian
//! `prometheus-alertmanager`).
//!
//! - A pause set through the standby (forwarded to the leader) holds after both replicas
//!   are killed with SIGKILL and started again: both show it, a manual trigger through
//!   either answers 423, and a breach (a P0 alert) is decided but not rolled back.
//! - Alertmanager's webhook pointed at the standby: the standby forwards the notification
//!   (with Alertmanager's bearer token) and the leader records it and rolls back; both
//!   replicas show the incident. With the leader killed, the standby answers 503 until the
//!   Lease expires and it leads, and Alertmanager's retries then get the next alert through.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use serde_json::{Value, json};
use support::ChildGuard;
use support::alertmanager::AlertmanagerProcess;
use support::free_port;
use support::process::{kubectl, spawn, start_sim, with_verification};

const TOKEN: &str = "operator-token-0123456789";
const HOOK: &str = "alertmanager-token-0123456789";
const DEPLOYMENT: &str = "deployment/gl-002-boiler-efficiency";

/// The processes of one file share the machine's two cores: one test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn wait<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The simulator seeded with GL-002, v2 rolled out, the CRD applied; the policy the
/// replicas run (GL-002 with a verification this test passes without agents).
struct Cluster {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    policies: PathBuf,
    _sim: ChildGuard,
}

impl Cluster {
    async fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        let policy = with_verification(
            &std::fs::read_to_string("policies/gl-002.toml").unwrap(),
            "rollout_timeout = \"1m\"\nready_hold = \"1s\"\nwatch = \"2s\"\n",
        );
        std::fs::write(policies.join("gl-002.toml"), policy).unwrap();
        let (sim, kubeconfig, _) = start_sim(dir.path(), &policies, &[]);
        let c = Cluster {
            dir,
            kubeconfig,
            policies,
            _sim: sim,
        };
        c.rolled_out("v1").await;
        c.kubectl(&[
            "-n",
            "greenlang",
            "set",
            "image",
            DEPLOYMENT,
            "boiler-optimizer=registry.local/greenlang/gl-002-boiler-efficiency:v2",
        ]);
        c.rolled_out("v2").await;
        let out = c.kubectl(&["apply", "-f", "deploy/crds/rollbackincidents.yaml"]);
        assert!(out.contains("created"), "{out}");
        c
    }

    fn kubectl(&self, args: &[&str]) -> String {
        kubectl(&self.kubeconfig, args)
    }

    async fn rolled_out(&self, what: &str) {
        wait(
            &format!("{what} to roll out"),
            Duration::from_secs(60),
            async || {
                self.kubectl(&[
                    "-n",
                    "greenlang",
                    "rollout",
                    "status",
                    DEPLOYMENT,
                    "--timeout=1s",
                ])
                .contains("successfully rolled out")
                .then_some(())
            },
        )
        .await;
    }

    /// The Deployment's revision annotation.
    fn revision(&self) -> String {
        self.kubectl(&[
            "-n",
            "greenlang",
            "get",
            DEPLOYMENT,
            "-o",
            "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}",
        ])
        .trim()
        .to_string()
    }

    /// The Lease's holder and the API URL it advertises.
    fn lease(&self) -> (String, String) {
        let out = self.kubectl(&[
            "-n",
            "rollbackd",
            "get",
            "lease",
            "rollbackd-leader",
            "-o",
            "jsonpath={.spec.holderIdentity} {.metadata.annotations.rollbackd\\.io/api-url}",
        ]);
        let mut parts = out.trim().splitn(2, ' ');
        (
            parts.next().unwrap_or_default().to_string(),
            parts.next().unwrap_or_default().to_string(),
        )
    }

    /// Waits until the Lease names a holder; returns it.
    async fn holder(&self) -> String {
        wait("a Lease holder", Duration::from_secs(20), async || {
            let (holder, _) = self.lease();
            (holder.starts_with("pod-")).then_some(holder)
        })
        .await
    }

    /// A replica's configuration: its own port, advertised, the shared store and Lease.
    fn replica(&self, identity: &str) -> Replica {
        let port = free_port();
        let config = self.dir.path().join(format!("{identity}.toml"));
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\nadvertise_url = \"http://127.0.0.1:{port}\"\n\
                 [store]\nbackend = \"kubernetes\"\nnamespace = \"rollbackd\"\n\
                 [kubernetes]\nmode = \"kubeconfig\"\nkubeconfig = \"{}\"\n\
                 [prometheus]\ntimeout = \"1s\"\n\
                 [evaluation]\ninterval = \"500ms\"\njitter = \"0s\"\n\
                 [policies]\npaths = [\"{}\"]\n\
                 [webhook]\nbearer_token = \"{HOOK}\"\n\
                 [[auth.tokens]]\nname = \"oncall\"\nrole = \"operator\"\ntoken = \"{TOKEN}\"\n\
                 [logging]\nformat = \"json\"\n\
                 [leader]\nenabled = true\nidentity = \"{identity}\"\nlease_duration = \"2s\"\nrenew_every = \"250ms\"\n",
                self.kubeconfig.display(),
                self.policies.display()
            ),
        )
        .unwrap();
        Replica {
            identity: identity.into(),
            url: format!("http://127.0.0.1:{port}"),
            config,
            log: self.dir.path().join(format!("{identity}.log")),
            proc: None,
        }
    }
}

/// One `rollbackd run`.
struct Replica {
    identity: String,
    url: String,
    config: PathBuf,
    log: PathBuf,
    proc: Option<ChildGuard>,
}

/// An answer: status, the `x-rollbackd-forwarded-to` header, JSON body.
struct Answer {
    code: u16,
    forwarded_to: Option<String>,
    body: Value,
}

impl Replica {
    /// Starts it and waits for its API.
    async fn start(&mut self) {
        self.proc = Some(spawn(
            &["run", "--config", self.config.to_str().unwrap()],
            &self.log,
        ));
        wait(
            &format!("{}'s API", self.identity),
            Duration::from_secs(30),
            async || (self.get("/api/v1/agents").await.0 == 200).then_some(()),
        )
        .await;
    }

    /// SIGKILL: nothing is released, the Lease runs out on its own.
    fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.0.kill().unwrap();
            p.0.wait().unwrap();
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let Ok(r) = reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(5))
            .send()
            .await
        else {
            return (0, Value::Null);
        };
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> Answer {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .json(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap();
        let forwarded_to = r
            .headers()
            .get("x-rollbackd-forwarded-to")
            .map(|v| v.to_str().unwrap().to_string());
        Answer {
            code: r.status().as_u16(),
            forwarded_to,
            body: r.json().await.unwrap_or(Value::Null),
        }
    }

    /// Posts until the answer is not a 503 (a standby that has not read the Lease yet, or
    /// a replica elected a moment ago).
    async fn post_until_taken(&self, path: &str, token: &str, body: &Value) -> Answer {
        wait(
            &format!("{} to take {path}", self.identity),
            Duration::from_secs(20),
            async || {
                let a = self.post(path, token, body).await;
                (a.code != 503).then_some(a)
            },
        )
        .await
    }

    /// GL-002 as `GET /api/v1/agents` shows it.
    async fn gl002(&self) -> Value {
        let (code, body) = self.get("/api/v1/agents").await;
        assert_eq!(code, 200, "{body}");
        body["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == "GL-002")
            .unwrap()
            .clone()
    }

    async fn rollbacks(&self) -> Vec<Value> {
        let (code, body) = self.get("/api/v1/rollbacks").await;
        assert_eq!(code, 200, "{body}");
        body["rollbacks"].as_array().unwrap().clone()
    }

    /// The value of a sample line of `/metrics` (`name{labels}`), 0 when absent.
    async fn metric(&self, sample: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The JSON log lines whose message is `message`.
    fn logged(&self, message: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["fields"]["message"] == message)
            .collect()
    }
}

/// Starts `a` and waits until it holds the Lease (advertising its URL), then starts `b`:
/// `a` leads, `b` stands by.
async fn leader_then_standby(c: &Cluster, a: &mut Replica, b: &mut Replica) {
    a.start().await;
    assert_eq!(c.holder().await, a.identity);
    assert_eq!(c.lease(), (a.identity.clone(), a.url.clone()));
    b.start().await;
}

/// A P0 alert for GL-002 as Prometheus would post it to Alertmanager, begun now.
fn alert(alertname: &str, condition: &str) -> Value {
    let now = Utc::now();
    json!([{
        "labels": {"alertname": alertname, "agent": "GL-002", "condition": condition},
        "annotations": {"summary": "test"},
        "startsAt": now.to_rfc3339(),
        "endsAt": (now + TimeDelta::hours(1)).to_rfc3339(),
    }])
}

/// The same alert as Alertmanager's webhook carries it (payload version 4).
fn webhook_payload(alertname: &str, condition: &str) -> Value {
    let a = &alert(alertname, condition)[0];
    json!({"version": "4", "status": "firing", "receiver": "rollbackd", "alerts": [{
        "status": "firing", "labels": a["labels"], "annotations": a["annotations"],
        "startsAt": a["startsAt"], "endsAt": "0001-01-01T00:00:00Z"}]})
}

/// Waits until the leader's window of revision 2 is open (the replicas started after it).
async fn window_open(leader: &Replica) {
    wait(
        "the leader's window of revision 2",
        Duration::from_secs(20),
        async || {
            let s = leader.gl002().await["status"].clone();
            (s["revision"] == 2 && s["window_open"] == true).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_set_through_the_standby_holds_after_both_replicas_restart() {
    let _one = ONE_AT_A_TIME.lock().await;
    let t0 = Instant::now();
    let c = Cluster::start().await;
    let (mut a, mut b) = (c.replica("pod-a"), c.replica("pod-b"));
    leader_then_standby(&c, &mut a, &mut b).await;

    // Paused through the standby: forwarded to the leader, which records it.
    let reason = json!({"reason": "boiler maintenance"});
    let paused = b
        .post_until_taken("/api/v1/agents/GL-002/pause", TOKEN, &reason)
        .await;
    assert_eq!(paused.code, 200, "{}", paused.body);
    assert_eq!(paused.forwarded_to.as_deref(), Some("pod-a"));
    assert_eq!(paused.body["by"], "oncall");
    assert_eq!(b.logged("forwarded a write to the leader").len(), 1);
    for r in [&a, &b] {
        let p = &r.gl002().await["paused"];
        assert_eq!(p["paused_by"], "oncall", "{}: {p}", r.identity);
    }

    // Both killed, both started again: the pause is on the API, not in either process.
    a.kill();
    b.kill();
    a.start().await;
    b.start().await;
    for r in [&a, &b] {
        let p = &r.gl002().await["paused"];
        assert_eq!(
            (&p["paused_by"], &p["reason"]),
            (&json!("oncall"), &json!("boiler maintenance")),
            "{}: {p}",
            r.identity
        );
    }
    let holder = c.holder().await;
    let (leader, standby) = if holder == a.identity {
        (&a, &b)
    } else {
        (&b, &a)
    };
    eprintln!("after the restart {} leads", leader.identity);

    // A manual rollback is refused with 423 through either replica.
    let trigger = json!({"agent": "GL-002", "method": "quick", "reason": "restart test"});
    for r in [leader, standby] {
        let answer = r
            .post_until_taken("/api/v1/rollbacks", TOKEN, &trigger)
            .await;
        assert_eq!(answer.code, 423, "{}: {}", r.identity, answer.body);
        assert!(
            answer.body["error"].as_str().unwrap().contains("paused"),
            "{}",
            answer.body
        );
    }
    // A breach: a P0 alert for the deploy, through the standby. The leader decides to roll
    // back, and does not.
    window_open(leader).await;
    let sent = standby
        .post_until_taken(
            "/api/v1/alerts",
            HOOK,
            &webhook_payload("GL002ServiceOutage", "service_outage"),
        )
        .await;
    assert_eq!(
        (sent.code, sent.forwarded_to.as_deref()),
        (200, Some(leader.identity.as_str())),
        "{}",
        sent.body
    );
    wait(
        "the leader's rollback decision",
        Duration::from_secs(10),
        async || {
            let d = leader.gl002().await["status"]["decision"].clone();
            (d["decision"] == "rollback" && d["row"] == "p0-service-outage-alert").then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await; // six evaluation intervals
    for r in [leader, standby] {
        assert_eq!(r.rollbacks().await, Vec::<Value>::new(), "{}", r.identity);
    }
    assert_eq!(c.revision(), "2", "nothing rolled back");
    assert!(
        !leader
            .logged("automation paused: not acting until it is resumed")
            .is_empty()
    );
    eprintln!(
        "pause across both replicas' restarts: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_pointed_at_the_standby_gets_the_leader_to_roll_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let t0 = Instant::now();
    let c = Cluster::start().await;
    let (mut a, mut b) = (c.replica("pod-a"), c.replica("pod-b"));
    leader_then_standby(&c, &mut a, &mut b).await;
    window_open(&a).await;

    // Alertmanager's only webhook receiver is the standby, with the webhook's bearer token.
    let am =
        AlertmanagerProcess::start_with_bearer(&format!("{}/api/v1/alerts", b.url), Some(HOOK))
            .await;
    let fire = async |alerts: Value| {
        let r = reqwest::Client::new()
            .post(format!("http://{}/api/v2/alerts", am.host_port()))
            .json(&alerts)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    };
    let fired = Instant::now();
    fire(alert("GL002ServiceOutage", "service_outage")).await;

    // The leader records it and rolls back; both replicas show the incident.
    let incident = wait(
        "the incident, through the standby",
        Duration::from_secs(30),
        async || b.rollbacks().await.into_iter().next(),
    )
    .await;
    eprintln!(
        "alert posted to Alertmanager → incident visible on the standby: {:.2} s",
        fired.elapsed().as_secs_f64()
    );
    assert_eq!(incident["row"], "p0-service-outage-alert", "{incident}");
    assert_eq!(incident["trigger"], "automatic", "{incident}");
    let on_leader: Vec<Value> = a.rollbacks().await;
    assert_eq!(on_leader.len(), 1);
    assert_eq!(on_leader[0]["id"], incident["id"]);
    wait(
        "the undo (revision 3)",
        Duration::from_secs(30),
        async || (c.revision() == "3").then_some(()),
    )
    .await;
    // The standby forwarded, the leader answered and recorded it.
    let forwarded = b.logged("forwarded a write to the leader");
    assert!(!forwarded.is_empty());
    assert_eq!(
        forwarded[0]["fields"]["leader"], "pod-a",
        "{}",
        forwarded[0]
    );
    assert_eq!(forwarded[0]["fields"]["path"], "/api/v1/alerts");
    assert!(
        b.metric("rollbackd_forwarded_requests_total{outcome=\"200\"}")
            .await
            >= 1.0
    );
    assert!(
        a.metric("rollbackd_webhook_alerts_total{result=\"new\"}")
            .await
            >= 1.0
    );
    assert_eq!(
        b.metric("rollbackd_webhook_alerts_total{result=\"new\"}")
            .await,
        0.0,
        "the standby recorded nothing itself"
    );

    // The leader dies. Until its Lease expires the standby cannot forward (503), and
    // Alertmanager retries; once the standby leads, the retry is recorded by it.
    a.kill();
    let killed = Instant::now();
    fire(alert("GL002DataCorruption", "data_corruption")).await;
    wait(
        "the retried alert, recorded by the new leader",
        Duration::from_secs(30),
        async || {
            (b.metric("rollbackd_webhook_alerts_total{result=\"new\"}")
                .await
                >= 1.0)
                .then_some(())
        },
    )
    .await;
    eprintln!(
        "leader killed → the next alert recorded by the former standby: {:.2} s",
        killed.elapsed().as_secs_f64()
    );
    assert_eq!(c.lease(), (b.identity.clone(), b.url.clone()));
    let refused = b
        .metric("rollbackd_forwarded_requests_total{outcome=\"unreachable\"}")
        .await
        + b.metric("rollbackd_forwarded_requests_total{outcome=\"no_leader\"}")
            .await;
    assert!(
        refused >= 1.0,
        "the standby answered 503 before it led, and Alertmanager retried"
    );
    assert!(
        b.metric("rollbackd_webhook_requests_total{code=\"503\"}")
            .await
            >= 1.0
    );
    eprintln!(
        "webhook to the standby with the real Alertmanager: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}
