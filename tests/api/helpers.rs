//! `spawn_app`: the real gateway on port 0 with a throwaway SQLite file, the demo registry and
//! agreement, a shared development PKI, and a manual clock.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use cgc_gateway::app::Application;
use cgc_gateway::client::{GatewayClient, Reply};
use cgc_gateway::clock::ManualClock;
use cgc_gateway::config::{self, Config};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

/// "Now" for every test: well inside the demo agreement's validity.
pub const NOW: OffsetDateTime = datetime!(2026-11-20 12:00:00 +09:00);

/// One development PKI for the whole test run (generating it is the slow part).
pub fn pki() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        cgc_gateway::dev::pki::write_dev_pki(dir.path(), config::DEV_AUDIT_ORIGIN).unwrap();
        dir
    })
    .path()
}

pub struct TestApp {
    pub app: Application,
    pub clock: Arc<ManualClock>,
    pub data: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_, _| {}).await
}

/// Like `spawn_app`, with a chance to adjust the configuration (given the data folder).
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config, &Path)) -> TestApp {
    let data = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(NOW));
    let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
    let mut config = Config::development(pki(), data.path(), &policies, "127.0.0.1:0".parse().unwrap());
    adjust(&mut config, data.path());
    let app = Application::build(&config, clock.clone()).await.unwrap();
    TestApp { app, clock, data }
}

impl TestApp {
    pub fn client(&self, name: &str) -> GatewayClient {
        GatewayClient::from_dev_certs(self.app.addr(), pki(), name).unwrap()
    }

    /// A development token for `client`, issued at the test clock's now.
    pub fn token(&self, client: &str, subject: &str) -> String {
        cgc_gateway::cli::dev_token(pki(), client, subject, time::Duration::hours(1), self.clock.now_at()).unwrap()
    }

    /// Stops this gateway and starts a new process over the same data folder and clock.
    pub async fn restart(self) -> TestApp {
        let TestApp { app, clock, data } = self;
        app.stop().await;
        let policies = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("policies");
        let config = Config::development(pki(), data.path(), &policies, "127.0.0.1:0".parse().unwrap());
        let app = Application::build(&config, clock.clone()).await.unwrap();
        TestApp { app, clock, data }
    }

    pub fn db_path(&self) -> PathBuf {
        self.data.path().join("gateway.db")
    }

    /// Pushes a case as its center; panics unless it is stored.
    pub async fn push(&self, case: &Value) -> Reply {
        let center = case["center_id"].as_str().unwrap();
        let id = case["case_id"].as_str().unwrap();
        let reply = self
            .client(&format!("center-{center}"))
            .put_json(&format!("/v1/cases/{id}"), case)
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "push of {id}: {}", reply.text());
        reply
    }

    /// The list a terminal sees, as its officer.
    pub async fn list(&self, terminal: &str) -> Reply {
        let token = self.token(terminal, "officer-1");
        self.client(terminal)
            .get("/v1/terminal/cases", Some(&token))
            .await
            .unwrap()
    }

    pub async fn detail(&self, terminal: &str, case_ref: &str) -> Reply {
        let token = self.token(terminal, "officer-1");
        self.client(terminal)
            .get(&format!("/v1/terminal/cases/{case_ref}"), Some(&token))
            .await
            .unwrap()
    }

    /// Makes the audit log's storage refuse every write, as a full disk or a failing volume
    /// would: from outside the gateway, on its real SQLite file.
    pub async fn break_audit_log(&self) -> BrokenLog {
        let url = format!("sqlite://{}", self.db_path().display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER audit_broken BEFORE INSERT ON audit_entries BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END",
        )
        .execute(&pool)
        .await
        .unwrap();
        BrokenLog { pool }
    }

    /// Waits until the audit log holds a line containing all of `needles` (refusals are
    /// recorded in the background).
    pub async fn audit_has(&self, needles: &[&str]) -> bool {
        for _ in 0..50 {
            if self
                .audit_lines()
                .await
                .iter()
                .any(|l| needles.iter().all(|n| l.contains(n)))
            {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    }

    /// Every audit line stored so far.
    pub async fn audit_lines(&self) -> Vec<String> {
        let ctx = self.app.context();
        let size = ctx.audit.size();
        ctx.store
            .audit_entries(0, size)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.line)
            .collect()
    }
}

pub trait ClockExt {
    fn now_at(&self) -> OffsetDateTime;
}

impl ClockExt for ManualClock {
    fn now_at(&self) -> OffsetDateTime {
        cgc_gateway::clock::Clock::now(self)
    }
}

/// A case with every field present, so that field-set assertions are exact. Canary strings
/// make leaks findable: the address text, the assessment and the household are unique.
pub fn full_case(center: &str, case_id: &str, municipality: &str) -> Value {
    json!({
        "case_id": case_id,
        "center_id": center,
        "version": 1,
        "updated_at": "2026-11-20T09:00:00+09:00",
        "child": {
            "name": "山田　花子",
            "name_kana": "ヤマダ　ハナコ",
            "sex": "female",
            "birth_date": "2019-05-04",
            "address": { "municipality_code": municipality, "text": format!("ADDRCANARY-{case_id}") }
        },
        "guardians": [
            { "name": "山田　太郎", "name_kana": "ヤマダ　タロウ", "relationship": "father", "employer": format!("EMPLOYERCANARY-{case_id}") },
            { "name": "山田　良子", "name_kana": "ヤマダ　ヨシコ", "relationship": "mother" }
        ],
        "household": format!("HOUSEHOLDCANARY-{case_id}"),
        "care_setting": "保育所に通所",
        "upbringing": format!("UPBRINGINGCANARY-{case_id}"),
        "welfare_services": format!("WELFARECANARY-{case_id}"),
        "abuse": { "types": ["physical"], "injury": true },
        "risk_level": "high",
        "status": "investigating",
        "intake_at": "2026-11-19T08:00:00+09:00",
        "safety_confirmed_at": "2026-11-19T10:00:00+09:00",
        "flags": { "dv": false, "missing": false },
        "assessment": { "findings": format!("ASSESSCANARY-{case_id}"), "plan": "週1回訪問", "progress": "経過観察" },
        "center_contact": { "name": "佐藤　一郎", "phone": "045-000-0000" }
    })
}

/// The field paths (agreement vocabulary) present in a projected case.
pub fn field_paths(case: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (k, v) in case.as_object().unwrap() {
        match (k.as_str(), v) {
            ("child" | "flags", Value::Object(inner)) => {
                out.extend(inner.keys().map(|f| format!("{k}.{f}")));
            }
            ("guardians", Value::Array(gs)) => {
                for g in gs {
                    out.extend(g.as_object().unwrap().keys().map(|f| format!("guardians.{f}")));
                }
            }
            _ => {
                out.insert(k.clone());
            }
        }
    }
    out
}

pub fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|s| (*s).to_owned()).collect()
}

/// The case ids in a list response.
pub fn listed(reply: &Reply) -> BTreeSet<String> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json().unwrap()["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ref"].as_str().unwrap().to_owned())
        .collect()
}

pub const TERMINALS: &[&str] = &[
    "terminal-kagacho-1",
    "terminal-tsurumi-1",
    "terminal-kawasaki-1",
    "terminal-sagamihara-minami-1",
    "terminal-yokosuka-1",
    "terminal-atsugi-1",
    "terminal-hq-1",
];

/// The audit log's storage, broken by `TestApp::break_audit_log`.
pub struct BrokenLog {
    pool: sqlx::SqlitePool,
}

impl BrokenLog {
    pub async fn repair(self) {
        sqlx::query("DROP TRIGGER audit_broken")
            .execute(&self.pool)
            .await
            .unwrap();
    }
}
