//! What the administrator's console (`/admin/`) and the CGC's page (`/center/`) need from the
//! API: the agreements an administrator may read, the revocations as the store holds them, who
//! is signed in, a center's own cases page by page, the demo's administrator tokens, and the
//! pages themselves under a strict Content-Security-Policy.

use cgc_gateway::store::RevocationRow;
use hyper::Method;
use serde_json::Value;

use crate::admin::{AGREEMENT, PREF, YOKOHAMA, admin, problem};
use crate::helpers::{NOW, full_case, pki, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_administrator_lists_each_agreement_as_its_own_route_answers_it() {
    let app = spawn_app().await;
    for who in [PREF, YOKOHAMA] {
        let list = admin(&app, who, Method::GET, "/v1/admin/agreements", None).await;
        assert_eq!(list.status, 200, "{}", list.text());
        let list = list.json().unwrap();
        let agreements = list["agreements"].as_array().unwrap();
        assert_eq!(agreements.len(), 1, "{who}: {list}");
        let one = admin(&app, who, Method::GET, AGREEMENT, None).await.json().unwrap();
        assert_eq!(agreements[0], one, "{who}");
        assert_eq!(one["agreement_id"], "kanagawa-2026");
        assert!(one["versions"][0]["document"].as_str().unwrap().contains("[views]"));
    }
    // Without the administrator's token: refused.
    let bare = app.client(PREF).get("/v1/admin/agreements", None).await.unwrap();
    problem(&bare, 401);
}

#[tokio::test]
async fn the_session_names_the_administrators_jurisdiction_and_whether_it_may_revoke() {
    let app = spawn_app().await;
    let pref = admin(&app, PREF, Method::GET, "/v1/admin/session", None)
        .await
        .json()
        .unwrap();
    assert_eq!(pref["jurisdiction"], "14");
    assert_eq!(pref["kind"], "prefecture");
    assert_eq!(pref["name"], "神奈川県");
    assert_eq!(pref["may_revoke"], true);
    assert_eq!(pref["administrator"], PREF);
    let city = admin(&app, YOKOHAMA, Method::GET, "/v1/admin/session", None)
        .await
        .json()
        .unwrap();
    assert_eq!(city["jurisdiction"], "141003");
    assert_eq!(city["kind"], "designated_city");
    assert_eq!(city["name"], "横浜市");
    assert_eq!(city["may_revoke"], false);
}

#[tokio::test]
async fn revocations_are_listed_from_the_store_to_the_prefecture_only() {
    let app = spawn_app().await;
    let empty = admin(&app, PREF, Method::GET, "/v1/admin/revocations", None).await;
    assert_eq!(empty.json().unwrap()["revocations"], serde_json::json!([]));
    let r = admin(&app, PREF, Method::POST, "/v1/admin/terminals/tsurumi/1/revoke", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin(&app, PREF, Method::POST, "/v1/admin/officers/K-9999/revoke", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // One another instance stored: listed alike, since the list is read from the store. A
    // terminal of a station outside the administrator's police force is not theirs to see.
    for subject in [
        "urn:cgc-gateway:terminal:kagacho:2",
        "urn:cgc-gateway:terminal:no-such-station:1",
    ] {
        app.app
            .context()
            .store
            .add_revocation(&RevocationRow {
                kind: "terminal".into(),
                subject: subject.into(),
                revoked_by: "urn:cgc-gateway:admin:14:other".into(),
                revoked_at: NOW,
            })
            .await
            .unwrap();
    }
    let list = admin(&app, PREF, Method::GET, "/v1/admin/revocations", None).await;
    assert_eq!(list.status, 200, "{}", list.text());
    let list: Value = list.json().unwrap();
    let rows = list["revocations"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{list}");
    assert_eq!(rows[0]["kind"], "terminal");
    assert_eq!(rows[0]["station_id"], "tsurumi");
    assert_eq!(rows[0]["terminal_no"], 1);
    assert_eq!(rows[0]["revoked_by"], "urn:cgc-gateway:admin:14:pref-admin");
    assert!(rows[0].get("officer_id").is_none());
    assert_eq!(rows[1]["kind"], "officer");
    assert_eq!(rows[1]["officer_id"], "K-9999");
    assert_eq!(rows[2]["station_id"], "kagacho");
    assert_eq!(rows[2]["terminal_no"], 2);
    assert!(!list.to_string().contains("no-such-station"), "{list}");
    // A city's administrator revokes nothing, so lists nothing: refused and recorded.
    let city = admin(&app, YOKOHAMA, Method::GET, "/v1/admin/revocations", None).await;
    problem(&city, 403);
    assert!(app.audit_has(&["GET /v1/admin/revocations", "141003"]).await);
}

#[tokio::test]
async fn a_center_lists_its_own_cases_newest_first_page_by_page_and_no_one_elses() {
    let app = spawn_app().await;
    for id in ["OWN-1", "OWN-2", "OWN-3"] {
        app.push(&full_case("yokosuka", id, "142018")).await;
    }
    let mut other = full_case("kanagawa-central", "OTHER-1", "142123");
    other["child"]["name"] = serde_json::json!("他所　太郎");
    app.push(&other).await;
    let center = app.client("center-yokosuka");
    let first = center.get("/v1/centers/yokosuka/cases?limit=2", None).await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    let first: Value = first.json().unwrap();
    let ids = |page: &Value| {
        page["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["case_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ["OWN-3", "OWN-2"]);
    let case = &first["cases"][0];
    assert_eq!(case["version"], 1);
    assert_eq!(case["status"], "investigating");
    assert_eq!(case["child_name"], "山田　花子");
    assert!(case["updated_at"].as_str().unwrap().starts_with("2026-11-"));
    let after = first["next_after"].as_u64().unwrap();
    let rest: Value = center
        .get(&format!("/v1/centers/yokosuka/cases?limit=2&after={after}"), None)
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ids(&rest), ["OWN-1"]);
    assert!(rest.get("next_after").is_none(), "{rest}");
    // Another center's list: refused and recorded, and nothing of it in the answer.
    let theirs = center.get("/v1/centers/kanagawa-central/cases", None).await.unwrap();
    problem(&theirs, 403);
    assert!(!theirs.text().contains("OTHER-1") && !theirs.text().contains("他所"));
    assert!(
        app.audit_has(&["GET /v1/centers/{center_id}/cases", "center:yokosuka"])
            .await
    );
    // A bad page size names the parameter.
    let bad = center.get("/v1/centers/yokosuka/cases?limit=0", None).await.unwrap();
    assert_eq!(problem(&bad, 400)["errors"][0]["pointer"], "?limit");
    // Centers only.
    let token = app.token("terminal-kagacho-1", "K-1234");
    let terminal = app.client("terminal-kagacho-1");
    problem(
        &terminal.get("/v1/centers/yokosuka/cases", Some(&token)).await.unwrap(),
        403,
    );
}

#[tokio::test]
async fn the_center_session_names_the_center_and_the_police_stations() {
    let app = spawn_app().await;
    let reply = app
        .client("center-kanagawa-central")
        .get("/v1/center/session", None)
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body: Value = reply.json().unwrap();
    assert_eq!(body["center_id"], "kanagawa-central");
    assert_eq!(body["name"], "神奈川県中央児童相談所");
    assert_eq!(body["stations"]["kagacho"], "加賀町警察署");
}

#[tokio::test]
async fn the_demo_issues_administrator_tokens_bound_to_the_certificate() {
    let app = spawn_app_with(|c, _| {
        c.dev_token_issuer_key = Some(pki().join("token-issuer/issuer-key.pem"));
    })
    .await;
    let body = serde_json::to_vec(&serde_json::json!({ "subject": "console" })).unwrap();
    let reply = app
        .client(PREF)
        .send(Method::POST, "/v1/dev/token", None, Some(body.clone()))
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let token = reply.json().unwrap()["token"].as_str().unwrap().to_owned();
    let session = app.client(PREF).get("/v1/admin/session", Some(&token)).await.unwrap();
    assert_eq!(session.status, 200, "{}", session.text());
    assert_eq!(session.json().unwrap()["administrator"], "console");
    // An administrator's token is no officer's, and is bound to the certificate that asked.
    let terminal = app.client("terminal-kagacho-1");
    assert_eq!(
        terminal.get("/v1/terminal/cases", Some(&token)).await.unwrap().status,
        401
    );
    assert_eq!(
        app.client(YOKOHAMA)
            .get("/v1/admin/session", Some(&token))
            .await
            .unwrap()
            .status,
        401
    );
    // Auditors get none.
    let auditor = app.client("auditor-kanagawa-audit");
    problem(
        &auditor
            .send(Method::POST, "/v1/dev/token", None, Some(body))
            .await
            .unwrap(),
        403,
    );
}

#[tokio::test]
async fn the_console_and_the_center_page_are_served_with_a_strict_content_security_policy() {
    let app = spawn_app().await;
    for (client, page, script) in [
        (PREF, "/admin/", "/admin/app.js"),
        ("center-yokosuka", "/center/", "/center/app.js"),
    ] {
        let client = app.client(client);
        let reply = client.get(page, None).await.unwrap();
        assert_eq!(reply.status, 200);
        assert!(reply.text().contains("lang=\"ja\"") && reply.text().contains(script));
        let csp = reply.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
        for (asset, kind) in [
            (script, "text/javascript"),
            ("/shared/dom.js", "text/javascript"),
            ("/console/common.js", "text/javascript"),
            ("/console/console.css", "text/css"),
        ] {
            let reply = client.get(asset, None).await.unwrap();
            assert_eq!(reply.status, 200, "{asset}");
            assert!(
                reply.headers["content-type"].to_str().unwrap().starts_with(kind),
                "{asset}"
            );
        }
        // Case data is only ever inserted as text.
        for asset in [script, "/shared/dom.js", "/console/common.js"] {
            let text = client.get(asset, None).await.unwrap().text();
            assert!(
                !text.contains("innerHTML") && !text.contains("insertAdjacentHTML"),
                "{asset}"
            );
        }
    }
}
