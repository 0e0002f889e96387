//! The web console in a real browser: Debian's `chromium`, headless, driven through
//! `chromedriver` (WebDriver) by `fantoccini`, against the real `rollbackd demo
//! --keep-running` process. The demo leaves GL-008's Severity 2 incident awaiting approval;
//! the test signs in as the operator, finds GL-008 needing attention, approves it behind
//! the confirmation and watches it roll back and resolve without reloading the page. A
//! viewer sees no action buttons and the API refuses its writes; a bad token gets a clear
//! sign-in error. Screenshots go to `target/console-screenshots/`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver`); `tests/run.sh` installs them.

// A test fails by panicking: unwrap and expect are how it says what broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use support::{ChildGuard, free_port, process::spawn};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The demo as its `--keep-running` banner announces it.
struct Demo {
    _process: ChildGuard,
    url: String,
    operator: String,
    viewer: String,
    log: PathBuf,
}

impl Demo {
    /// Stops the demo as Ctrl-C would (SIGTERM), so it removes its temporary directory; the
    /// guard's SIGKILL remains for a demo that does not stop within 20 s.
    fn stop(&mut self) {
        let pid = self._process.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self._process.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Starts `rollbackd demo --keep-running` and waits for its console banner (the scenarios
/// take ~40 s).
fn start_demo(dir: &Path) -> Demo {
    let log = dir.join("demo.log");
    let process = spawn(&["demo", "--keep-running"], &log);
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.starts_with("--keep-running: console "))
        {
            // --keep-running: console http://A/ (sign in with operator token X or viewer token Y)
            let words: Vec<&str> = line.split_whitespace().collect();
            let after = |w: &str| {
                let i = words.iter().position(|x| *x == w).unwrap();
                words[i + 2].trim_end_matches(')').to_string()
            };
            return Demo {
                _process: process,
                url: words[2].to_string(),
                operator: after("operator"),
                viewer: after("viewer"),
                log,
            };
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "the demo printed no console URL in 240 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// chromedriver on a free port, ready for sessions.
async fn start_chromedriver(dir: &Path) -> (ChildGuard, String) {
    for binary in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(binary).is_file(),
            "{binary} is missing: the console's browser tests drive Debian's chromium through \
             chromedriver. Run the project's test command (tests/run.sh), which installs them, \
             or `apt-get install -y chromium chromium-driver`."
        );
    }
    let port = free_port();
    let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
    let child = ChildGuard(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if let Ok(res) = http.get(format!("{url}/status")).send().await
            && let Ok(v) = res.json::<Value>().await
            && v["value"]["ready"] == true
        {
            return (child, url);
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A headless Chromium session with a fresh profile. Without the background-networking
/// flags Chromium reaches for Google's services, which a closed network refuses.
async fn browser(driver: &str, profile: &Path) -> Client {
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
        &format!("--user-data-dir={}", profile.display()),
    ];
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": CHROMIUM, "args": args}),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a chromium session through chromedriver")
}

/// Where people look at the screenshots: `target/console-screenshots/`.
fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A screenshot tall enough for the whole page (WebDriver shoots the viewport only), then
/// the window as it was.
async fn full_page_screenshot(c: &Client, name: &str) {
    let (w, h) = c.get_window_size().await.unwrap();
    let height = c
        .execute("return document.documentElement.scrollHeight", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(h)
        .clamp(h, 4000);
    // the window's frame: the viewport is a little smaller than the window
    c.set_window_size(w as u32, height as u32 + 150)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    screenshot(c, name).await;
    c.set_window_size(w as u32, h as u32).await.unwrap();
}

/// Nothing on the page is wider than the window but inside a sideways-scrolling table.
async fn fits_the_width(c: &Client, page: &str) {
    let wide = c
        .execute(
            r#"const w = document.documentElement.clientWidth;
               return [...document.querySelectorAll('body *')]
                 .filter((e) => !(e.parentElement && e.parentElement.closest('.table-wrap')))
                 .filter((e) => e.getBoundingClientRect().right > w + 1)
                 .map((e) => `${e.tagName}.${e.className}: ${e.textContent.slice(0, 60)}`);"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(wide, json!([]), "{page} is wider than a phone");
    let width = c
        .execute(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(width[0], width[1], "{page} scrolls sideways on a phone");
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
}

/// Runs `script` in the page until it returns something other than `null`/`false`.
async fn wait_js(c: &Client, what: &str, timeout: Duration, script: &str) -> Value {
    let start = Instant::now();
    loop {
        let v = c.execute(script, vec![]).await.unwrap();
        if !v.is_null() && v != json!(false) {
            return v;
        }
        if start.elapsed() > timeout {
            let page = c
                .execute("return document.body.innerText", vec![])
                .await
                .unwrap();
            panic!("timed out after {timeout:?} waiting for {what}; the page shows:\n{page}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the element `css` selects; the page redraws every 2 s, so a stale element is
/// looked up again.
async fn click(c: &Client, css: &str) {
    let start = Instant::now();
    loop {
        // to the middle of the window: WebDriver only scrolls an element that is out of
        // view, and one just under the sticky bar is "in view" but covered
        let _ = c
            .execute(
                "const e = document.querySelector(arguments[0]); if (e) e.scrollIntoView({block: 'center'});",
                vec![json!(css)],
            )
            .await;
        let error = match c.find(Locator::Css(css)).await {
            Ok(e) => match e.click().await {
                Ok(()) => return,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "could not click {css}: {error}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sign_in(c: &Client, url: &str, token: &str) {
    c.goto(url).await.unwrap();
    let input = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#token"))
        .await
        .unwrap();
    input.send_keys(token).await.unwrap();
    click(c, "#signin-button").await;
}

async fn sign_out(c: &Client) {
    click(c, "#sign-out").await;
    wait_js(
        c,
        "the sign-in form",
        Duration::from_secs(5),
        "return !document.getElementById('signin').hidden",
    )
    .await;
}

/// The id of GL-008's incident, once the agents page lists GL-008 as needing attention.
async fn gl008_needs_attention(c: &Client) -> String {
    let id = wait_js(
        c,
        "GL-008 first among the agents needing attention, with its incident linked",
        Duration::from_secs(15),
        r#"const card = document.querySelector('article[data-agent="GL-008"]');
           if (!card || !card.classList.contains('attention')) return null;
           if (!card.textContent.includes('needs attention')) return null;
           const link = card.querySelector('a[data-incident]');
           return link ? link.dataset.incident : null;"#,
    )
    .await;
    id.as_str().unwrap().to_string()
}

fn state_script() -> &'static str {
    "const s = document.getElementById('incident-state'); return s ? s.dataset.state : null;"
}

async fn bad_token_gets_a_clear_error(c: &Client, url: &str) {
    sign_in(c, url, "not-a-token").await;
    let error = wait_js(
        c,
        "the sign-in error",
        Duration::from_secs(10),
        "const e = document.getElementById('signin-error').textContent; return e || null;",
    )
    .await;
    assert!(
        error.as_str().unwrap().contains("not accepted"),
        "sign-in error: {error}"
    );
    let nav_hidden = c
        .execute("return document.getElementById('nav').hidden", vec![])
        .await
        .unwrap();
    assert_eq!(nav_hidden, json!(true), "a bad token must not get in");
}

async fn viewer_sees_no_buttons(c: &Client, url: &str, viewer: &str) {
    sign_in(c, url, viewer).await;
    let id = gl008_needs_attention(c).await;
    let who = c
        .find(Locator::Css("#who"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(who.contains("viewer"), "{who}");
    let buttons = c
        .find_all(Locator::Css("button[data-action]"))
        .await
        .unwrap();
    assert!(
        buttons.is_empty(),
        "a viewer sees {} action buttons on the agents page",
        buttons.len()
    );
    click(c, &format!("a[data-incident=\"{id}\"]")).await;
    let state = wait_js(
        c,
        "the incident page",
        Duration::from_secs(10),
        state_script(),
    )
    .await;
    assert_eq!(state, json!("awaiting_approval"));
    let buttons = c
        .find_all(Locator::Css("button[data-action]"))
        .await
        .unwrap();
    assert!(
        buttons.is_empty(),
        "a viewer sees {} action buttons on {id}",
        buttons.len()
    );
    // and the server refuses a viewer's write whatever the page shows
    let res = reqwest::Client::new()
        .post(format!("{url}api/v1/rollbacks/{id}/approve"))
        .bearer_auth(viewer)
        .json(&json!({"reason": "a viewer tries"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "a viewer's approval must be refused");
    full_page_screenshot(c, "viewer-incident").await;
    sign_out(c).await;
}

async fn operator_approves_gl008(c: &Client, url: &str, operator: &str) {
    sign_in(c, url, operator).await;
    let id = gl008_needs_attention(c).await;
    let now = c.current_url().await.unwrap();
    assert!(!now.as_str().contains(operator), "token in the URL: {now}");
    // a page that reloads loses this; live updates must not
    c.execute("window.__noReload = 'still here'", vec![])
        .await
        .unwrap();
    // GL-008's signals unfolded: its error rate against the rows' thresholds; the table
    // stays unfolded across the 2 s redraws
    click(c, "article[data-agent=\"GL-008\"] details summary").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let sev2 = wait_js(
        c,
        "GL-008's error rate meeting sev2-error-rate's thresholds",
        Duration::from_secs(10),
        r#"const card = document.querySelector('article[data-agent="GL-008"]');
           const d = card && card.querySelector('details');
           if (!d || !d.open) return null;
           const row = [...d.querySelectorAll('tr.meets')].find((r) => r.textContent.includes('sev2-error-rate'));
           return row ? row.textContent : null;"#,
    )
    .await;
    assert!(
        sev2.as_str().unwrap().contains(">= 0.2 and <= 0.5"),
        "{sev2}"
    );
    screenshot(c, "agents").await;
    pause_and_resume_gl002(c).await;
    manual_rollback_says_what_it_runs_and_can_be_called_off(c, url, operator).await;
    incidents_filtered_by_state(c).await;
    click(c, "#nav-agents").await;
    gl008_needs_attention(c).await;

    click(c, &format!("a[data-incident=\"{id}\"]")).await;
    let state = wait_js(
        c,
        "the incident page",
        Duration::from_secs(10),
        state_script(),
    )
    .await;
    assert_eq!(state, json!("awaiting_approval"));
    full_page_screenshot(c, "incident-awaiting-approval").await;

    click(c, "button[data-action=\"approve\"]").await;
    let text = wait_js(
        c,
        "the approval's confirmation",
        Duration::from_secs(5),
        "const d = document.getElementById('confirm'); return d.open ? d.innerText : null;",
    )
    .await;
    let text = text.as_str().unwrap();
    for words in [
        "Approve the rollback of GL-008",
        &id,
        "method standard",
        "steps",
        "set the image of deployment greenlang-gl008/steam-trap-inspector back to",
        "restore ConfigMap ml-model-config",
    ] {
        assert!(
            text.contains(words),
            "the confirmation lacks {words:?}:\n{text}"
        );
    }
    screenshot(c, "confirm-approval").await;
    c.find(Locator::Css("#confirm-reason"))
        .await
        .unwrap()
        .send_keys("engineering manager approved in #incident-gl008")
        .await
        .unwrap();
    click(c, "#confirm-yes").await;

    let moving = wait_js(
        c,
        "the incident to move past awaiting approval",
        Duration::from_secs(20),
        &format!(
            "const s = ({})(); return s && s !== 'awaiting_approval' ? s : null;",
            format_args!("() => {{ {} }}", state_script())
        ),
    )
    .await;
    assert!(
        ["rolling_back", "verifying", "monitoring", "resolved"].contains(&moving.as_str().unwrap()),
        "after the approval {id} is {moving}"
    );
    // the timeline shows the rollback starting, whichever state the page first caught
    wait_js(
        c,
        "the timeline to show rolling back",
        Duration::from_secs(20),
        "return document.querySelector('[data-state=\"rolling_back\"]') !== null",
    )
    .await;
    let resolved = wait_js(
        c,
        "the incident to resolve",
        Duration::from_secs(90),
        &format!(
            "const s = ({})(); return s === 'resolved' || s === 'failed' || s === 'escalated' ? s : null;",
            format_args!("() => {{ {} }}", state_script())
        ),
    )
    .await;
    assert_eq!(resolved, json!("resolved"), "{id} ended {resolved}");
    let kept = c
        .execute("return window.__noReload || null", vec![])
        .await
        .unwrap();
    assert_eq!(kept, json!("still here"), "the page reloaded");
    let audit = c
        .execute("return document.body.innerText", vec![])
        .await
        .unwrap();
    assert!(
        audit.as_str().unwrap().contains("rollback.approve"),
        "the audit table lacks the approval"
    );
    full_page_screenshot(c, "incident-resolved").await;

    // the same pages at phone width: one column, nothing wider than the screen
    c.set_window_size(390, 844).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    fits_the_width(c, "the incident page").await;
    screenshot(c, "phone-incident").await;
    click(c, "#nav-agents").await;
    gl008_needs_attention_or_resolved(c).await;
    fits_the_width(c, "the agents page").await;
    screenshot(c, "phone-agents").await;
}

/// Pause then resume GL-002 from its card, each behind its confirmation.
async fn pause_and_resume_gl002(c: &Client) {
    let card = r#"article[data-agent="GL-002"]"#;
    click(c, &format!("{card} button[data-action=\"pause\"]")).await;
    let text = wait_js(
        c,
        "the pause confirmation",
        Duration::from_secs(5),
        "const d = document.getElementById('confirm'); return d.open ? d.innerText : null;",
    )
    .await;
    assert!(
        text.as_str().unwrap().contains("opens no rollback"),
        "{text}"
    );
    // no reason: the dialog says why it will not go on
    click(c, "#confirm-yes").await;
    wait_js(
        c,
        "the dialog asking for a reason",
        Duration::from_secs(5),
        "return document.getElementById('confirm-error').textContent.includes('Say why') || null",
    )
    .await;
    c.find(Locator::Css("#confirm-reason"))
        .await
        .unwrap()
        .send_keys("maintenance on the boiler fleet")
        .await
        .unwrap();
    click(c, "#confirm-yes").await;
    wait_js(
        c,
        "GL-002 shown paused",
        Duration::from_secs(10),
        &format!(
            "const c = document.querySelector('{card}'); return c && c.textContent.includes('paused by demo') && c.querySelector('button[data-action=\"resume\"]') !== null;"
        ),
    )
    .await;
    click(c, &format!("{card} button[data-action=\"resume\"]")).await;
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css("#confirm-reason"))
        .await
        .unwrap()
        .send_keys("maintenance done")
        .await
        .unwrap();
    click(c, "#confirm-yes").await;
    wait_js(
        c,
        "GL-002 shown active again",
        Duration::from_secs(10),
        &format!(
            "const c = document.querySelector('{card}'); return c && c.querySelector('button[data-action=\"pause\"]') !== null;"
        ),
    )
    .await;
}

/// GL-006's *Roll back…* confirmation names the method and its steps; *Go back* changes
/// nothing.
async fn manual_rollback_says_what_it_runs_and_can_be_called_off(
    c: &Client,
    url: &str,
    token: &str,
) {
    let before = incident_count(url, token, "GL-006").await;
    click(
        c,
        r#"article[data-agent="GL-006"] button[data-action="trigger"]"#,
    )
    .await;
    let text = wait_js(
        c,
        "the manual rollback's confirmation",
        Duration::from_secs(5),
        "const d = document.getElementById('confirm'); return d.open ? d.innerText : null;",
    )
    .await;
    let text = text.as_str().unwrap();
    for words in [
        "Roll back GL-006 now, by hand?",
        "method quick",
        "2 steps",
        "kubectl rollout undo deployment greenlang/gl-006-heatreclaim to the previous revision",
    ] {
        assert!(
            text.contains(words),
            "the confirmation lacks {words:?}:\n{text}"
        );
    }
    click(c, "#confirm-no").await;
    wait_js(
        c,
        "the dialog to close",
        Duration::from_secs(5),
        "return !document.getElementById('confirm').open",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        incident_count(url, token, "GL-006").await,
        before,
        "Go back opened an incident"
    );
}

async fn incident_count(url: &str, token: &str, agent: &str) -> usize {
    let v: Value = reqwest::Client::new()
        .get(format!("{url}api/v1/rollbacks?agent={agent}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["rollbacks"].as_array().unwrap().len()
}

/// The incidents list, filtered by state: only GL-008's incident awaits approval.
async fn incidents_filtered_by_state(c: &Client) {
    click(c, "#nav-incidents").await;
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#filter-state"))
        .await
        .unwrap()
        .select_by_value("awaiting_approval")
        .await
        .unwrap();
    let agents = wait_js(
        c,
        "the list filtered to incidents awaiting approval",
        Duration::from_secs(10),
        r#"if (!location.hash.includes('state=awaiting_approval')) return null;
           const rows = [...document.querySelectorAll('tr[data-incident]')];
           // the list redrawn with the filter: every row awaits approval
           if (!rows.length || !rows.every((r) => r.querySelector('[data-state]').dataset.state === 'awaiting_approval')) return null;
           return rows.map((r) => r.children[1].textContent);"#,
    )
    .await;
    assert_eq!(agents, json!(["GL-008"]), "incidents awaiting approval");
    full_page_screenshot(c, "incidents-awaiting-approval").await;
    click(c, "#nav-incidents").await;
    wait_js(
        c,
        "every incident listed",
        Duration::from_secs(10),
        "return !location.hash.includes('state=') && document.querySelectorAll('tr[data-incident]').length >= 6 || null",
    )
    .await;
    full_page_screenshot(c, "incidents").await;
}

/// The agents page is drawn (GL-008 no longer needs attention once resolved).
async fn gl008_needs_attention_or_resolved(c: &Client) {
    wait_js(
        c,
        "the agents page",
        Duration::from_secs(10),
        r#"return document.querySelector('article[data-agent="GL-008"]') !== null"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_approves_gl008_in_a_browser_and_a_viewer_gets_no_buttons() {
    let dir = tempfile::tempdir().unwrap();
    let (_driver, driver_url) = start_chromedriver(dir.path()).await;
    let mut demo = start_demo(dir.path());
    let c = browser(&driver_url, &dir.path().join("profile")).await;
    // the session is closed (and Chromium with it) whether the checks pass or panic
    let (session, url) = (c.clone(), demo.url.clone());
    let (operator, viewer) = (demo.operator.clone(), demo.viewer.clone());
    let checks = tokio::spawn(async move {
        bad_token_gets_a_clear_error(&session, &url).await;
        viewer_sees_no_buttons(&session, &url, &viewer).await;
        operator_approves_gl008(&session, &url, &operator).await;
    })
    .await;
    let _ = c.close().await;
    if let Err(e) = checks {
        std::panic::resume_unwind(e.into_panic());
    }
    demo.stop();
    let log = std::fs::read_to_string(&demo.log).unwrap();
    assert!(
        log.contains("GL-008     approve → rolling_back"),
        "the demo's timeline does not show the console's approval:\n{log}"
    );
}
