//! Data minimisation a center can audit, over real mTLS: lists, search and the stream disclose
//! each case's summary; only an officer who opens a case (detail) or prints it gets the full
//! view, each its own entry; the owning center asks "opened" apart from "listed".

use cgc_gateway::audit::receipt::verify_receipt;
use cgc_gateway::audit::verify::parse_key_lines;
use hyper::Method;
use serde_json::{Value, json};

use crate::admin::{AGREEMENT, PREF, admin, demo_agreement};
use crate::helpers::{TestApp, field_paths, full_case, pki, set, spawn_app};
use crate::live::open;

const CENTER: &str = "center-yokohama-central";
const DISCLOSURES: &str = "/v1/centers/yokohama-central/cases/SU-1/disclosures";

async fn print(app: &TestApp, terminal: &str, reference: &str) -> cgc_gateway::client::Reply {
    let token = app.token(terminal, "officer-1");
    app.client(terminal)
        .send(
            Method::POST,
            &format!("/v1/terminal/cases/{reference}/print"),
            Some(&token),
            None,
        )
        .await
        .unwrap()
}

fn entry(app_lines: &[String], receipt: &Value) -> Value {
    let index = receipt["audit_index"].as_u64().unwrap() as usize;
    serde_json::from_str(&app_lines[index]).unwrap()
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect()
}

#[tokio::test]
async fn lists_and_streams_carry_the_summary_and_only_opening_discloses_the_view() {
    let app = spawn_app().await;
    app.push(&full_case("yokohama-central", "SU-1", "141046")).await;
    let list = app.list("terminal-kagacho-1").await.json().unwrap();
    let item = &list["cases"][0];
    assert!(item.get("case").is_none());
    let summary = field_paths(&item["summary"]);
    assert!(summary.contains("risk_level") && summary.contains("abuse") && summary.contains("flags.dv"));
    for hidden in ["guardians.name", "center_contact", "child.name_kana", "child.sex"] {
        assert!(!summary.contains(hidden), "{hidden} is not in the summary");
    }
    let text = serde_json::to_string(item).unwrap();
    assert!(
        !text.contains("ADDRCANARY") && !text.contains("佐藤"),
        "no street, no contact: {text}"
    );
    assert_eq!(
        item["summary"]["child"]["address"],
        json!({"municipality_code": "141046"})
    );
    assert!(names(&item["allowed"]).contains(&"child.address.municipality_code"));

    // The stream sends the same summary.
    let (_, mut s) = open(&app, "terminal-kagacho-1", None).await;
    let events = s.until_synced().await;
    let event = events.iter().find(|e| e.event == "case").unwrap();
    assert_eq!(event.data["summary"], item["summary"]);
    assert!(event.data.get("case").is_none());

    // Opening it discloses the full view, recorded as its own entry.
    let detail = app
        .detail("terminal-kagacho-1", "yokohama-central:SU-1")
        .await
        .json()
        .unwrap();
    assert!(field_paths(&detail["case"]).contains("guardians.name"));
    assert!(detail["case"]["child"]["address"]["text"].is_string());
    let lines = app.audit_lines().await;
    let listed = entry(&lines, &item["receipt"]);
    let streamed = entry(&lines, &event.data["receipt"]);
    let opened = entry(&lines, &detail["receipt"]);
    assert_eq!(
        (listed["channel"].as_str(), listed["set"].as_str()),
        (Some("list"), Some("summary"))
    );
    assert_eq!(
        (streamed["channel"].as_str(), streamed["set"].as_str()),
        (Some("stream"), Some("summary"))
    );
    assert_eq!(
        (opened["channel"].as_str(), opened["set"].as_str()),
        (Some("detail"), Some("view"))
    );
    assert!(!names(&listed["fields"]).contains(&"guardians.name"));
    assert!(names(&listed["fields"]).contains(&"child.address.municipality_code"));
    assert!(names(&opened["fields"]).contains(&"guardians.name"));
}

#[tokio::test]
async fn an_agreements_own_summary_is_what_lists_show() {
    let app = spawn_app().await;
    app.push(&full_case("yokohama-central", "SU-1", "141046")).await;
    let v2 = format!(
        "{}\n[summary]\nhq = [\"child.name\", \"risk_level\"]\n",
        demo_agreement().replacen("version = 1", "version = 2", 1)
    );
    let put = admin(&app, PREF, Method::PUT, AGREEMENT, Some(&v2)).await;
    assert_eq!(put.status, 201, "{}", put.text());
    let hq = app.list("terminal-hq-1").await.json().unwrap();
    assert_eq!(
        field_paths(&hq["cases"][0]["summary"]),
        set(&["child.name", "risk_level"])
    );
    // Without its own summary the covering station gets the default, within its view.
    let kagacho = app.list("terminal-kagacho-1").await.json().unwrap();
    assert!(field_paths(&kagacho["cases"][0]["summary"]).contains("intake_at"));
    // A summary beyond the view is refused, naming the line and the field.
    let wider = v2.replacen("version = 2", "version = 3", 1).replacen(
        "hq = [\"child.name\", \"risk_level\"]",
        "hq = [\"child.name\", \"assessment\"]",
        1,
    );
    let reply = admin(&app, PREF, Method::PUT, AGREEMENT, Some(&wider)).await;
    assert_eq!(reply.status, 400);
    let detail = reply.json().unwrap()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("summary.hq lists `assessment`, which views.hq does not grant"),
        "{detail}"
    );
}

#[tokio::test]
async fn printing_is_an_audited_disclosure_of_its_own_before_the_answer() {
    let app = spawn_app().await;
    app.push(&full_case("yokohama-central", "SU-1", "141046")).await;
    let reply = print(&app, "terminal-kagacho-1", "yokohama-central:SU-1").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let printed = reply.json().unwrap();
    let detail = app
        .detail("terminal-kagacho-1", "yokohama-central:SU-1")
        .await
        .json()
        .unwrap();
    assert_eq!(printed["case"], detail["case"], "the same body as the detail");
    assert_ne!(printed["receipt"]["audit_index"], detail["receipt"]["audit_index"]);
    let e = entry(&app.audit_lines().await, &printed["receipt"]);
    assert_eq!(
        (e["channel"].as_str(), e["set"].as_str()),
        (Some("print"), Some("view"))
    );
    assert_eq!(e["actor"]["subject"], "officer-1");
    // A case outside the view cannot be printed, like one that does not exist.
    app.push(&full_case("kawasaki-central", "SU-KW", "141313")).await;
    assert_eq!(
        print(&app, "terminal-kawasaki-1", "kawasaki-central:SU-KW")
            .await
            .status,
        404
    );
    // Fail closed: without its entry nothing is printed.
    let broken = app.break_audit_log().await;
    let reply = print(&app, "terminal-kagacho-1", "yokohama-central:SU-1").await;
    assert_eq!(reply.status, 503);
    assert!(!reply.text().contains("山田"));
    broken.repair().await;
}

#[tokio::test]
async fn the_center_asks_opened_apart_from_listed_with_verifiable_receipts() {
    let app = spawn_app().await;
    app.push(&full_case("yokohama-central", "SU-1", "141046")).await;
    for terminal in ["terminal-kagacho-1", "terminal-hq-1"] {
        assert_eq!(app.list(terminal).await.status, 200);
    }
    assert_eq!(
        app.detail("terminal-kagacho-1", "yokohama-central:SU-1").await.status,
        200
    );
    assert_eq!(print(&app, "terminal-hq-1", "yokohama-central:SU-1").await.status, 200);
    let get = |q: &'static str| {
        let app = &app;
        async move {
            let reply = app
                .client(CENTER)
                .get(&format!("{DISCLOSURES}{q}"), None)
                .await
                .unwrap();
            assert_eq!(reply.status, 200, "{}", reply.text());
            reply.json().unwrap()["disclosures"].as_array().unwrap().clone()
        }
    };
    let trusted = parse_key_lines(&std::fs::read_to_string(pki().join("audit/verifier-key.txt")).unwrap()).unwrap();
    let opened = get("?kind=opened").await;
    assert_eq!(opened.len(), 2);
    let seen: Vec<_> = opened
        .iter()
        .map(|d| (d["channel"].as_str().unwrap(), d["station"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, [("detail", "kagacho"), ("print", "hq")]);
    for d in &opened {
        assert_eq!((d["kind"].as_str(), d["set"].as_str()), (Some("opened"), Some("view")));
        assert_eq!(d["officer"], "officer-1");
        assert!(d["terminal"].as_str().unwrap().starts_with("urn:cgc-gateway:terminal:"));
        assert!(names(&d["fields"]).contains(&"guardians.name"));
        assert!(
            d["clause"]
                .as_str()
                .unwrap()
                .starts_with("kanagawa-2026@v1/providers/141003/criteria/views/")
        );
        assert_eq!(d["receipt"]["entry"], d["line"]);
        let verified = verify_receipt(&serde_json::to_vec(&d["receipt"]).unwrap(), &trusted).unwrap();
        assert_eq!(verified.index, d["audit_index"].as_u64().unwrap());
    }
    let listed = get("?kind=listed").await;
    assert_eq!(listed.len(), 2);
    assert!(
        listed
            .iter()
            .all(|d| d["kind"] == "listed" && d["channel"] == "list" && d["set"] == "summary")
    );
    assert_eq!(get("").await.len(), 4);
    assert_eq!(get("?kind=all&limit=10").await.len(), 4);
    let reply = app
        .client(CENTER)
        .get(&format!("{DISCLOSURES}?kind=seen"), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json().unwrap()["errors"][0]["pointer"], "?kind");
}
