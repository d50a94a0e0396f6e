//! `/metrics` on its own plain-HTTP listener: counters move with traffic, and nothing in a
//! scrape comes from a case. The registry is per process and the tests of this binary run in
//! parallel, so counts are compared as "moved by at least".

use std::collections::BTreeMap;
use std::net::SocketAddr;

use hyper::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{full_case, listed, spawn_app_with};

/// A plain HTTP/1.1 GET; the status line and the body.
async fn get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    (status, head.to_owned(), body.to_owned())
}

/// Every sample of a scrape, by its name and labels as written; checks the text format.
fn samples(body: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in body.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && name.starts_with("cgc_gateway_"),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "bad labels in {line:?}");
        }
        assert!(out.insert(series.to_owned(), value).is_none(), "{series} twice");
    }
    out
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_disclosures_and_refusals_without_case_data() {
    let app = spawn_app_with(|config, _| config.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let metrics = app.app.metrics_addr().unwrap();
    assert!(metrics.ip().is_loopback());
    let (status, head, body) = get(metrics, "/metrics").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    let before = samples(&body);

    // Traffic with case data that must not reach a scrape: a name, an address, case ids.
    let mut case = full_case("yokohama-central", "METRICS-CANARY-1", "141046");
    case["child"]["name"] = json!("鈴木　メトリクス");
    app.push(&case).await;
    let list = app.list("terminal-kagacho-1").await;
    assert!(listed(&list).contains("yokohama-central:METRICS-CANARY-1"));
    let detail = app
        .detail("terminal-kagacho-1", "yokohama-central:METRICS-CANARY-1")
        .await;
    assert_eq!(detail.status, 200);
    // A refusal: no token.
    let refused = app
        .client("terminal-kagacho-1")
        .get("/v1/terminal/cases/yokohama-central:METRICS-CANARY-1", None)
        .await
        .unwrap();
    assert_eq!(refused.status, 401);
    // A path no route matches, with case-looking text in it.
    let unmatched = app
        .client("terminal-kagacho-1")
        .send(Method::GET, "/v1/METRICS-CANARY-2/鈴木", None, None)
        .await
        .unwrap();
    assert_eq!(unmatched.status, 404);

    let (_, _, body) = get(metrics, "/metrics").await;
    let after = samples(&body);
    let moved = |series: &str| value(&after, series) - value(&before, series);
    let list_ok = "cgc_gateway_http_requests_total{route=\"/v1/terminal/cases\",method=\"GET\",status=\"2xx\"}";
    assert!(moved(list_ok) >= 1.0, "{body}");
    let detail_route = "route=\"/v1/terminal/cases/{case_ref}\",method=\"GET\"";
    assert!(
        moved(&format!(
            "cgc_gateway_http_requests_total{{{detail_route},status=\"2xx\"}}"
        )) >= 1.0,
        "{body}"
    );
    assert!(
        moved(&format!(
            "cgc_gateway_http_requests_total{{{detail_route},status=\"4xx\"}}"
        )) >= 1.0,
        "{body}"
    );
    assert!(
        moved(&format!(
            "cgc_gateway_http_request_duration_seconds_count{{{detail_route}}}"
        )) >= 2.0,
        "{body}"
    );
    assert!(
        moved(&format!(
            "cgc_gateway_http_request_duration_seconds_bucket{{{detail_route},le=\"+Inf\"}}"
        )) >= 2.0,
        "{body}"
    );
    let push = "cgc_gateway_http_requests_total{route=\"/v1/cases/{case_id}\",method=\"PUT\",status=\"2xx\"}";
    assert!(moved(push) >= 1.0, "{body}");
    assert!(
        moved("cgc_gateway_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"4xx\"}") >= 1.0,
        "{body}"
    );
    assert!(
        moved("cgc_gateway_http_refusals_total{status=\"401\"}") >= 1.0,
        "{body}"
    );
    assert!(
        moved("cgc_gateway_http_refusals_total{status=\"404\"}") >= 1.0,
        "{body}"
    );
    assert!(
        moved("cgc_gateway_disclosures_total{channel=\"list\"}") >= 1.0,
        "{body}"
    );
    assert!(
        moved("cgc_gateway_disclosures_total{channel=\"detail\"}") >= 1.0,
        "{body}"
    );
    assert!(
        moved("cgc_gateway_disclosure_record_duration_seconds_count") >= 2.0,
        "{body}"
    );
    // Two disclosures at least, each a durable entry, in one batch or more.
    assert!(moved("cgc_gateway_audit_appends_total") >= 2.0, "{body}");
    assert!(moved("cgc_gateway_audit_batch_entries_count") >= 1.0, "{body}");
    // This application's own gauges.
    assert_eq!(value(&after, "cgc_gateway_cases"), 1.0, "{body}");
    assert!(value(&after, "cgc_gateway_audit_tree_size") >= 2.0, "{body}");
    assert!(after.contains_key("cgc_gateway_audit_checkpoint_size"), "{body}");
    assert!(after.contains_key("cgc_gateway_streams_open"), "{body}");

    for canary in [
        "METRICS-CANARY",
        "鈴木",
        "メトリクス",
        "ADDRCANARY",
        "HOUSEHOLDCANARY",
        "yokohama-central:",
        "K-1234",
        "officer-1",
    ] {
        assert!(!body.contains(canary), "`{canary}` in the scrape");
    }

    // Only /metrics, and never on the mTLS API.
    let (status, _, _) = get(metrics, "/v1/terminal/cases").await;
    assert!(status.contains(" 404 "), "{status}");
    let token = app.token("terminal-kagacho-1", "officer-1");
    let api = app
        .client("terminal-kagacho-1")
        .get("/metrics", Some(&token))
        .await
        .unwrap();
    assert_eq!(api.status, 404);
}

#[tokio::test]
async fn no_metrics_listener_unless_configured() {
    let app = spawn_app_with(|_, _| {}).await;
    assert_eq!(app.app.metrics_addr(), None);
}
