//! Missing-child alerts on `/v1/terminal/stream`: raised when a case's `flags.missing` becomes
//! true, to every terminal that may see the case and its flag, with that audience's fields
//! only, recorded in the audit log before it leaves; ended when the flag clears.

use serde_json::json;

use crate::helpers::{TestApp, full_case, spawn_app};
use crate::live::{Sse, Stream, open};

async fn synced(app: &TestApp, terminal: &str) -> (Stream, Vec<Sse>) {
    let (status, mut s) = open(app, terminal, None).await;
    assert_eq!(status, 200);
    let first = s.until_synced().await;
    (s, first)
}

fn missing(center: &str, id: &str, municipality: &str, version: u64, flag: bool) -> serde_json::Value {
    let mut c = full_case(center, id, municipality);
    c["version"] = json!(version);
    c["flags"]["missing"] = json!(flag);
    c
}

#[tokio::test]
async fn a_missing_child_alert_reaches_only_the_terminals_allowed_to_see_it() {
    let app = spawn_app().await;
    app.push(&missing("kanagawa-central", "MIS-1", "142123", 1, false))
        .await;
    let (mut atsugi, _) = synced(&app, "terminal-atsugi-1").await;
    let (mut kagacho, _) = synced(&app, "terminal-kagacho-1").await;
    let (mut hq, _) = synced(&app, "terminal-hq-1").await;

    // Kawasaki has not opted in: its missing child is shown to no terminal, so no alert either.
    // The next thing every stream gets is the visible case's change and its alert.
    app.push(&missing("kawasaki-central", "MIS-HIDDEN", "141313", 1, true))
        .await;
    app.push(&missing("kanagawa-central", "MIS-1", "142123", 2, true)).await;
    for (stream, address) in [(&mut atsugi, true), (&mut kagacho, false), (&mut hq, true)] {
        let case = stream.next().await.unwrap();
        assert_eq!(
            (case.event.as_str(), case.data["ref"].as_str()),
            ("case", Some("kanagawa-central:MIS-1"))
        );
        let alert = stream.next().await.unwrap();
        assert_eq!(alert.event, "alert");
        assert!(alert.id.is_some());
        assert_eq!(alert.data["kind"], "missing");
        assert_eq!(alert.data["state"], "raised");
        assert_eq!(alert.data["ref"], "kanagawa-central:MIS-1");
        assert_eq!(alert.data["summary"]["flags"]["missing"], true);
        assert_eq!(alert.data["summary"]["child"]["name"], "山田　花子");
        // Only the audience's summary: the covering station and HQ see the municipality (never
        // the street, which only an opened case shows), other stations not even that; nobody
        // sees the assessment.
        assert_eq!(alert.data["summary"]["child"].get("address").is_some(), address);
        assert_eq!(alert.data["allowed"], case.data["allowed"]);
        assert!(alert.data["summary"].get("assessment").is_none());
        assert!(!serde_json::to_string(&alert.data).unwrap().contains("ADDRCANARY"));
        assert!(alert.data["receipt"]["audit_index"].is_u64());
    }
    assert!(
        !app.audit_lines()
            .await
            .iter()
            .any(|l| l.contains("MIS-HIDDEN") && l.contains("\"channel\":\"alert\""))
    );
    for station in ["atsugi", "kagacho", "hq"] {
        assert!(
            app.audit_has(&["\"channel\":\"alert\"", "MIS-1", &format!("\"station\":\"{station}\"")])
                .await,
            "{station}"
        );
    }

    // A terminal that connects while the alert is raised gets it with the view, before synced.
    let (_, first) = synced(&app, "terminal-tsurumi-1").await;
    let alerts: Vec<&Sse> = first.iter().filter(|e| e.event == "alert").collect();
    assert_eq!(alerts.len(), 1, "{first:?}");
    assert_eq!(alerts[0].data["ref"], "kanagawa-central:MIS-1");

    // Found: the flag clears, the alert ends.
    app.push(&missing("kanagawa-central", "MIS-1", "142123", 3, false))
        .await;
    for stream in [&mut atsugi, &mut kagacho, &mut hq] {
        assert_eq!(stream.next().await.unwrap().event, "case");
        let end = stream.next().await.unwrap();
        assert_eq!(end.event, "alert");
        assert_eq!(
            end.data,
            json!({ "kind": "missing", "state": "ended", "ref": "kanagawa-central:MIS-1" })
        );
    }
    // A version that changes something else raises nothing.
    let mut other = missing("kanagawa-central", "MIS-1", "142123", 4, false);
    other["risk_level"] = json!("low");
    app.push(&other).await;
    assert_eq!(atsugi.next().await.unwrap().event, "case");
    app.push(&missing("kanagawa-central", "MIS-2", "142123", 1, false))
        .await;
    let next = atsugi.next().await.unwrap();
    assert_eq!(
        (next.event.as_str(), next.data["ref"].as_str()),
        ("case", Some("kanagawa-central:MIS-2"))
    );
}

#[tokio::test]
async fn an_alert_is_not_sent_when_the_log_cannot_record_it() {
    let app = spawn_app().await;
    app.push(&missing("kanagawa-central", "MIS-LOG", "142123", 1, false))
        .await;
    let (mut s, _) = synced(&app, "terminal-atsugi-1").await;
    let broken = app.break_audit_log().await;
    app.push(&missing("kanagawa-central", "MIS-LOG", "142123", 2, true))
        .await;
    // The case event itself cannot be recorded: the stream closes, and no alert left.
    assert!(s.next().await.is_none());
    broken.repair().await;
    let (_, first) = synced(&app, "terminal-atsugi-1").await;
    assert!(
        first
            .iter()
            .any(|e| e.event == "alert" && e.data["ref"] == "kanagawa-central:MIS-LOG")
    );
}
