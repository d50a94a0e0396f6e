//! `GET /v1/openapi.json`: the document of the whole API, for any authenticated principal, and
//! the same routes as the router serves — both ways, so that a route added without its
//! description (or a description left behind by a removed route) fails here by name.

use std::collections::{BTreeMap, BTreeSet};

use cgc_gateway::http::host::Hosts;
use cgc_gateway::http::openapi::{self, Operation};
use serde_json::Value;

use crate::helpers::{TestApp, pki, spawn_app, spawn_app_with};

/// The routes a router serves, as `METHOD template`, read from its `Debug` text: axum has no API
/// that lists routes, and its `Debug` prints each route's template and the `Allow` value its
/// method router built (`HEAD` comes with every `GET` and is left out).
fn served_routes(router: &axum::Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    // The path router only: the fallback router holds the catch-all.
    let debug = debug.split("fallback_router:").next().unwrap();
    let mut paths: BTreeMap<u64, String> = BTreeMap::new();
    let mut methods: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut rest = debug;
    while let Some(at) = rest.find("RouteId(") {
        rest = &rest[at + "RouteId(".len()..];
        let close = rest.find(')').unwrap();
        let id: u64 = rest[..close].parse().unwrap();
        rest = rest[close + 1..].trim_start_matches(": ");
        if let Some(path) = rest.strip_prefix('"') {
            paths.insert(id, path[..path.find('"').unwrap()].to_owned());
        } else if rest.starts_with("MethodRouter(") {
            let allow = &rest[rest.find("allow_header: ").unwrap() + "allow_header: ".len()..];
            let allow = allow
                .strip_prefix("Bytes(b\"")
                .map_or("", |v| &v[..v.find('"').unwrap()]);
            methods.insert(
                id,
                allow
                    .split(',')
                    .filter(|m| !m.is_empty() && *m != "HEAD")
                    .map(str::to_owned)
                    .collect(),
            );
        }
    }
    assert!(
        paths.len() > 10 && paths.keys().eq(methods.keys()),
        "could not read the router's routes from its Debug text (has axum changed it?):\n{debug}"
    );
    paths
        .iter()
        .flat_map(|(id, path)| methods[id].iter().map(move |m| format!("{m} {path}")))
        .collect()
}

fn documented_routes(operations: &[Operation]) -> BTreeSet<String> {
    operations.iter().map(|o| format!("{} {}", o.method, o.route)).collect()
}

fn assert_same_routes(app: &TestApp, dev_token: bool) {
    let router = cgc_gateway::http::router(app.app.context().clone(), Hosts::new(&[]).unwrap());
    let served = served_routes(&router);
    let documented = documented_routes(&openapi::operations(dev_token));
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but missing from the OpenAPI document: {undocumented:?}; add an op(…) to \
         `operations()` in src/http/openapi.rs"
    );
    assert!(
        unrouted.is_empty(),
        "in the OpenAPI document but not served: {unrouted:?}; remove or fix its op(…) in \
         `operations()` in src/http/openapi.rs"
    );
}

#[tokio::test]
async fn every_route_the_router_serves_is_in_the_document_and_nothing_else() {
    assert_same_routes(&spawn_app().await, false);
}

#[tokio::test]
async fn the_demo_token_route_is_documented_where_the_demo_routes_it() {
    let app = spawn_app_with(|config, _| {
        config.dev_token_issuer_key = Some(pki().join("token-issuer").join("issuer-key.pem"));
    })
    .await;
    assert_same_routes(&app, true);
    let token = app.token("terminal-kagacho-1", "K-1234");
    let reply = app
        .client("terminal-kagacho-1")
        .get(openapi::OPENAPI_PATH, Some(&token))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.json().unwrap()["paths"].get("/v1/dev/token").is_some());
}

async fn fetch(app: &TestApp, client: &str, token: Option<&str>) -> (u16, Value, String) {
    let reply = app.client(client).get(openapi::OPENAPI_PATH, token).await.unwrap();
    let content_type = reply
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (reply.status.as_u16(), reply.json().unwrap(), content_type)
}

#[tokio::test]
async fn any_authenticated_principal_reads_the_document() {
    let app = spawn_app().await;
    let officer = app.token("terminal-kagacho-1", "K-1234");
    for (client, token) in [
        ("terminal-kagacho-1", Some(officer.as_str())),
        ("center-yokosuka", None),
        ("admin-14-pref-admin", None),
        ("auditor-kanagawa-audit", None),
    ] {
        let (status, doc, content_type) = fetch(&app, client, token).await;
        assert_eq!(status, 200, "{client}: {doc}");
        assert_eq!(content_type, "application/json", "{client}");
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc, openapi::document(false), "{client}");
        // The routes of every kind of principal are in it, with their security.
        assert_eq!(
            doc["paths"]["/v1/terminal/cases"]["get"]["security"],
            serde_json::json!([{ "mutualTLS": [], "bearer": [] }])
        );
        assert_eq!(
            doc["paths"]["/v1/cases/{case_id}"]["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/CaseRecord"
        );
        assert!(doc["paths"].get("/v1/dev/token").is_none());
    }
}

#[tokio::test]
async fn a_terminal_without_its_officers_token_is_refused_the_document() {
    let app = spawn_app().await;
    let (status, problem, content_type) = fetch(&app, "terminal-kagacho-1", None).await;
    assert_eq!(status, 401);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(problem["type"], "urn:cgc-gateway:problem:unauthorized");
    // A token bound to another terminal's certificate is no better.
    let other = app.token("terminal-tsurumi-1", "K-1234");
    let (status, _, _) = fetch(&app, "terminal-kagacho-1", Some(&other)).await;
    assert_eq!(status, 401);
}

/// The request bodies the document describes, in each media type it names, are what the gateway
/// takes: schemathesis found `POST /v1/cases/batch` documented as plain `text/csv`, which the
/// gateway refuses (415) without a charset, and could not send the agreement's TOML at all.
#[tokio::test]
async fn the_documents_examples_are_accepted_in_every_media_type_it_names() {
    let app = spawn_app().await;
    let doc = openapi::document(false);
    let media = |path: &str, method: &str| -> Vec<String> {
        doc["paths"][path][method]["requestBody"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let example = |path: &str, method: &str, media: &str| -> Value {
        doc["paths"][path][method]["requestBody"]["content"][media]["example"].clone()
    };

    let center = app.client("center-yokosuka");
    let case = example("/v1/cases/{case_id}", "put", "application/json");
    let case_id = doc["paths"]["/v1/cases/{case_id}"]["put"]["parameters"][0]["example"]
        .as_str()
        .unwrap();
    let reply = center.put_json(&format!("/v1/cases/{case_id}"), &case).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());

    let batch = media("/v1/cases/batch", "post");
    assert_eq!(batch, ["text/csv; charset=Shift_JIS", "text/csv; charset=UTF-8"]);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    for content_type in &batch {
        // The UTF-8 file is the document's example; the Shift_JIS one is its sibling.
        let file = if content_type.ends_with("UTF-8") {
            let text = example("/v1/cases/batch", "post", content_type);
            assert_eq!(
                text.as_str().unwrap(),
                std::fs::read_to_string(root.join("batch-utf8.csv")).unwrap()
            );
            root.join("batch-utf8.csv")
        } else {
            root.join("batch-sjis.csv")
        };
        let body = bytes::Bytes::from(std::fs::read(file).unwrap());
        let reply = center
            .send_stream(
                hyper::Method::POST,
                "/v1/cases/batch",
                content_type,
                Some(body.len() as u64),
                futures_util::stream::iter([Ok(body)]),
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{content_type}: {}", reply.text());
        let report = reply.json().unwrap();
        assert_eq!(report["invalid"], 0, "{content_type}: {report}");
        assert_eq!(
            report["rows"],
            report["stored"].as_u64().unwrap() + report["unchanged"].as_u64().unwrap()
        );
    }

    assert_eq!(
        media("/v1/admin/agreements/{agreement_id}", "put"),
        ["application/toml"]
    );
    let agreement = example("/v1/admin/agreements/{agreement_id}", "put", "application/toml");
    let id = doc["paths"]["/v1/admin/agreements/{agreement_id}"]["put"]["parameters"][0]["example"]
        .as_str()
        .unwrap();
    let token = app.token("admin-14-pref-admin", "pref-admin-1");
    let reply = app
        .client("admin-14-pref-admin")
        .send(
            hyper::Method::PUT,
            &format!("/v1/admin/agreements/{id}"),
            Some(&token),
            Some(agreement.as_str().unwrap().as_bytes().to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 201, "{}", reply.text());
}

/// Found by schemathesis: the document says `q` is at most 64 characters, and the gateway
/// answered 200 to a longer query whose whitespace folding removed.
#[tokio::test]
async fn a_search_longer_than_documented_is_refused_even_when_folding_shortens_it() {
    let app = spawn_app().await;
    let doc = openapi::document(false);
    let limit = doc["paths"]["/v1/terminal/search"]["get"]["parameters"][0]["schema"]["maxLength"]
        .as_u64()
        .unwrap() as usize;
    let token = app.token("terminal-kagacho-1", "K-1234");
    let search = |q: String| {
        let encoded: String = q.bytes().map(|b| format!("%{b:02X}")).collect();
        let client = app.client("terminal-kagacho-1");
        let token = token.clone();
        async move {
            client
                .get(&format!("/v1/terminal/search?q={encoded}"), Some(&token))
                .await
                .unwrap()
        }
    };
    let over = format!("{}{}", " ".repeat(10), "や".repeat(limit - 9));
    let reply = search(over).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["errors"][0]["pointer"], "/q");
    let at = format!("{}{}", " ".repeat(9), "や".repeat(limit - 9));
    assert_eq!(search(at).await.status, 200);
}
