//! Case transfers between centers (転出・転入): requested by the owning center, accepted or
//! declined by the receiving one; on acceptance the case continues under the new center, its
//! old reference still resolves, terminals follow under the receiving operator's consent state,
//! and every step is an audit entry and an event on both centers' streams.

use cgc_gateway::client::Reply;
use hyper::Method;
use serde_json::{Value, json};

use crate::admin::{PREF, step};
use crate::center_stream::center_events;
use crate::helpers::{TestApp, full_case, listed, spawn_app};
use crate::live::open;

async fn post(app: &TestApp, client: &str, path: &str, body: Option<Value>) -> Reply {
    app.client(client)
        .send(Method::POST, path, None, body.map(|b| serde_json::to_vec(&b).unwrap()))
        .await
        .unwrap()
}

async fn request(app: &TestApp, center: &str, case_id: &str, to: &str) -> Reply {
    post(
        app,
        &format!("center-{center}"),
        &format!("/v1/cases/{case_id}/transfer"),
        Some(json!({ "to_center": to })),
    )
    .await
}

/// Requests a transfer that the gateway takes: its id.
async fn requested(app: &TestApp, center: &str, case_id: &str, to: &str) -> i64 {
    let reply = request(app, center, case_id, to).await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json().unwrap()["id"].as_i64().unwrap()
}

async fn pending(app: &TestApp, center: &str) -> Value {
    let reply = app
        .client(&format!("center-{center}"))
        .get(&format!("/v1/centers/{center}/transfers"), None)
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json().unwrap()["transfers"].clone()
}

#[tokio::test]
async fn an_accepted_transfer_moves_the_case_to_its_new_center_and_terminals_follow() {
    let app = spawn_app().await;
    app.push(&full_case("kanagawa-central", "TR-1", "142123")).await;
    let (_, mut atsugi) = open(&app, "terminal-atsugi-1", None).await;
    atsugi.until_synced().await;

    let reply = request(&app, "kanagawa-central", "TR-1", "yokosuka").await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let requested = reply.json().unwrap();
    assert_eq!(requested["state"], "pending");
    assert_eq!(requested["ref"], "kanagawa-central:TR-1");
    let id = requested["id"].as_i64().unwrap();
    // One pending transfer per case.
    assert_eq!(
        request(&app, "kanagawa-central", "TR-1", "sagamihara").await.status,
        409
    );
    // Both centers see it, each from its side.
    assert_eq!(pending(&app, "yokosuka").await[0]["direction"], "incoming");
    assert_eq!(pending(&app, "kanagawa-central").await[0]["direction"], "outgoing");
    assert_eq!(pending(&app, "sagamihara").await, json!([]));

    // Only the receiving center decides: the sender is refused (and recorded), a third center
    // cannot tell the transfer exists.
    let accept = format!("/v1/transfers/{id}/accept");
    assert_eq!(post(&app, "center-kanagawa-central", &accept, None).await.status, 403);
    assert!(
        app.audit_has(&["\"kind\":\"refusal\"", "/v1/transfers/{transfer_id}/accept"])
            .await
    );
    assert_eq!(post(&app, "center-sagamihara", &accept, None).await.status, 404);
    assert_eq!(
        post(&app, "center-yokosuka", "/v1/transfers/999/accept", None)
            .await
            .status,
        404
    );

    let reply = post(&app, "center-yokosuka", &accept, None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["state"], "accepted");
    assert_eq!(post(&app, "center-yokosuka", &accept, None).await.status, 409);

    // The terminal: the old reference withdrawn, the case under its new center.
    let gone = atsugi.next().await.unwrap();
    assert_eq!(
        (gone.event.as_str(), gone.data["ref"].as_str()),
        ("withdraw", Some("kanagawa-central:TR-1"))
    );
    let moved = atsugi.next().await.unwrap();
    assert_eq!(moved.event, "case");
    assert_eq!(moved.data["ref"], "yokosuka:TR-1");
    assert_eq!(moved.data["center_id"], "yokosuka");
    assert_eq!(moved.data["transferred_from"], "kanagawa-central:TR-1");
    assert_eq!(moved.data["version"], 1);
    // Yokosuka shares under its own provider clause.
    assert!(
        moved.data["receipt"]["clause"]
            .as_str()
            .unwrap()
            .contains("/providers/142018/")
    );
    assert_eq!(
        listed(&app.list("terminal-atsugi-1").await),
        ["yokosuka:TR-1".to_owned()].into()
    );
    // The old reference still resolves, to the case as it is now.
    let detail = app.detail("terminal-atsugi-1", "kanagawa-central:TR-1").await;
    assert_eq!(detail.status, 200, "{}", detail.text());
    assert_eq!(detail.json().unwrap()["ref"], "yokosuka:TR-1");

    // Its future versions are the new center's: the old one can no longer push it.
    let mut old = full_case("kanagawa-central", "TR-1", "142123");
    old["version"] = json!(2);
    let refused = app
        .client("center-kanagawa-central")
        .put_json("/v1/cases/TR-1", &old)
        .await
        .unwrap();
    assert_eq!(refused.status, 409, "{}", refused.text());
    let mut next = full_case("yokosuka", "TR-1", "142123");
    next["version"] = json!(2);
    next["risk_level"] = json!("low");
    app.push(&next).await;
    let updated = atsugi.next().await.unwrap();
    assert_eq!(
        (updated.data["ref"].as_str(), updated.data["version"].as_u64()),
        (Some("yokosuka:TR-1"), Some(2))
    );
    assert_eq!(updated.data["transferred_from"], "kanagawa-central:TR-1");

    // Every step in the audit log, and on both centers' streams.
    let lines = app.audit_lines().await;
    for step in ["requested", "accepted"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains("\"kind\":\"transfer\"") && l.contains(&format!("\"step\":\"{step}\""))),
            "{step}"
        );
    }
    for center in ["kanagawa-central", "yokosuka"] {
        let states: Vec<String> = center_events(&app, center, "0")
            .await
            .iter()
            .filter(|e| e.event == "transfer")
            .map(|e| e.data["state"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(states, ["pending", "accepted"], "{center}");
    }
    assert_eq!(pending(&app, "yokosuka").await, json!([]));
}

#[tokio::test]
async fn a_transfer_to_a_center_whose_operator_has_not_opted_in_discloses_nothing_until_it_does() {
    let app = spawn_app().await;
    app.push(&full_case("kanagawa-central", "TR-2", "142123")).await;
    assert_eq!(
        listed(&app.list("terminal-atsugi-1").await),
        ["kanagawa-central:TR-2".to_owned()].into()
    );
    let id = requested(&app, "kanagawa-central", "TR-2", "kawasaki-central").await;
    let reply = post(
        &app,
        "center-kawasaki-central",
        &format!("/v1/transfers/{id}/accept"),
        None,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Kawasaki has only been asked: from now on its state governs, and it shares nothing.
    for terminal in ["terminal-atsugi-1", "terminal-hq-1", "terminal-kawasaki-1"] {
        assert!(listed(&app.list(terminal).await).is_empty(), "{terminal}");
    }
    assert_eq!(
        app.detail("terminal-atsugi-1", "kanagawa-central:TR-2").await.status,
        404
    );
    // Kawasaki consents and the prefecture confirms: the case appears under its new center.
    assert_eq!(
        step(&app, "admin-141305-city-admin", "141305", "consent").await.status,
        200
    );
    assert_eq!(step(&app, PREF, "141305", "confirm").await.status, 200);
    assert_eq!(
        listed(&app.list("terminal-atsugi-1").await),
        ["kawasaki-central:TR-2".to_owned()].into()
    );
}

/// The audit lines of kind `transfer`, parsed, in log order.
async fn transfer_entries(app: &TestApp) -> Vec<Value> {
    app.audit_lines()
        .await
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["kind"] == "transfer")
        .collect()
}

#[tokio::test]
async fn an_acceptance_that_loses_a_race_is_recorded_as_refused_and_takes_no_effect() {
    let app = spawn_app().await;
    app.push(&full_case("kanagawa-central", "TR-R", "142123")).await;
    let id = requested(&app, "kanagawa-central", "TR-R", "yokosuka").await;
    // Meanwhile the receiving center stores a case of its own under the same id: the store
    // refuses the acceptance after its entry was written.
    app.push(&full_case("yokosuka", "TR-R", "142018")).await;
    let reply = post(&app, "center-yokosuka", &format!("/v1/transfers/{id}/accept"), None).await;
    assert_eq!(reply.status, 409, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["current_state"], "pending");

    // The log says so: the acceptance's entry is followed by a refusal naming it.
    let entries = transfer_entries(&app).await;
    let steps: Vec<&str> = entries.iter().map(|e| e["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["requested", "accepted", "refused"]);
    let (accepted, refused) = (&entries[1], &entries[2]);
    assert_eq!(refused["refused_entry"], accepted["index"]);
    assert_eq!(refused["reason"], "id_taken");
    assert_eq!(refused["transfer_id"], id);
    assert_eq!(refused["case"], accepted["case"]);
    assert_eq!(refused["to_center"], "yokosuka");
    assert!(accepted.get("refused_entry").is_none() && accepted.get("reason").is_none());
    // Nothing moved: the transfer is still pending and each center keeps its own case.
    assert_eq!(pending(&app, "yokosuka").await[0]["state"], "pending");
    let live = &app.app.context().live;
    assert!(live.case("kanagawa-central", "TR-R").is_some() && live.case("yokosuka", "TR-R").is_some());

    // A step that takes effect has no refusal after it.
    let reply = post(&app, "center-yokosuka", &format!("/v1/transfers/{id}/decline"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let steps: Vec<String> = transfer_entries(&app)
        .await
        .iter()
        .map(|e| e["step"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(steps, ["requested", "accepted", "refused", "declined"]);
}

#[tokio::test]
async fn a_declined_transfer_leaves_the_case_where_it_is_and_bad_requests_are_named() {
    let app = spawn_app().await;
    app.push(&full_case("kanagawa-central", "TR-3", "142123")).await;
    let p = request(&app, "kanagawa-central", "TR-3", "no-such-center").await;
    assert_eq!(p.status, 400);
    assert_eq!(p.json().unwrap()["errors"][0]["pointer"], "/to_center");
    let p = request(&app, "kanagawa-central", "TR-3", "kanagawa-central").await;
    assert_eq!(p.json().unwrap()["errors"][0]["pointer"], "/to_center");
    let p = post(
        &app,
        "center-kanagawa-central",
        "/v1/cases/TR-3/transfer",
        Some(json!({})),
    )
    .await;
    assert_eq!(p.json().unwrap()["errors"][0]["pointer"], "/to_center");
    // Only the owning center: another center's case (or none) is 404.
    assert_eq!(request(&app, "yokosuka", "TR-3", "sagamihara").await.status, 404);

    let id = requested(&app, "kanagawa-central", "TR-3", "yokosuka").await;
    let reply = post(&app, "center-yokosuka", &format!("/v1/transfers/{id}/decline"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["state"], "declined");
    assert!(app.audit_has(&["\"kind\":\"transfer\"", "\"step\":\"declined\""]).await);
    assert_eq!(
        listed(&app.list("terminal-atsugi-1").await),
        ["kanagawa-central:TR-3".to_owned()].into()
    );
    let mut next = full_case("kanagawa-central", "TR-3", "142123");
    next["version"] = json!(2);
    app.push(&next).await;
    // Declined, it may be requested again.
    assert_eq!(
        request(&app, "kanagawa-central", "TR-3", "sagamihara").await.status,
        201
    );
}

#[tokio::test]
async fn on_postgresql_a_transfer_accepted_on_one_instance_moves_the_case_on_the_other() {
    let Some((a, b, url)) = crate::instances::two_on().await else {
        return;
    };
    a.push(&full_case("kanagawa-central", "TR-PG", "142123")).await;
    let (_, mut atsugi) = open(&b, "terminal-atsugi-1", None).await;
    atsugi.until_synced().await;
    let (status, mut center) =
        crate::center_stream::open_center(&b, "center-kanagawa-central", "kanagawa-central", None).await;
    assert_eq!(status, 200);
    center.until_synced().await;

    let id = requested(&a, "kanagawa-central", "TR-PG", "yokosuka").await;
    // Each instance's center streams see the other's events.
    let e = center.next().await.unwrap();
    assert_eq!(
        (e.event.as_str(), e.data["state"].as_str()),
        ("transfer", Some("pending"))
    );
    // Accepted on A: B's hub learns the new owner from the change log.
    let reply = post(&a, "center-yokosuka", &format!("/v1/transfers/{id}/accept"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let gone = atsugi.next().await.unwrap();
    assert_eq!(
        (gone.event.as_str(), gone.data["ref"].as_str()),
        ("withdraw", Some("kanagawa-central:TR-PG"))
    );
    let moved = atsugi.next().await.unwrap();
    assert_eq!(moved.data["ref"], "yokosuka:TR-PG");
    assert_eq!(moved.data["transferred_from"], "kanagawa-central:TR-PG");
    let e = center.next().await.unwrap();
    assert_eq!(
        (e.event.as_str(), e.data["state"].as_str()),
        ("transfer", Some("accepted"))
    );
    let detail = b.detail("terminal-atsugi-1", "kanagawa-central:TR-PG").await;
    assert_eq!(detail.json().unwrap()["ref"], "yokosuka:TR-PG");
    // Neither instance takes the old center's push any more.
    let mut old = full_case("kanagawa-central", "TR-PG", "142123");
    old["version"] = json!(2);
    for app in [&a, &b] {
        let reply = app
            .client("center-kanagawa-central")
            .put_json("/v1/cases/TR-PG", &old)
            .await
            .unwrap();
        assert_eq!(reply.status, 409);
    }
    // An instance started later still resolves the old reference and shows the origin.
    let c = crate::helpers::spawn_app_with(|c, _| c.database_url = url).await;
    let detail = c.detail("terminal-atsugi-1", "kanagawa-central:TR-PG").await;
    assert_eq!(detail.status, 200, "{}", detail.text());
    assert_eq!(detail.json().unwrap()["transferred_from"], "kanagawa-central:TR-PG");
}
