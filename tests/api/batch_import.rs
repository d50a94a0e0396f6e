//! Batch import (`POST /v1/cases/batch`, `cgc-gateway import`): CSV files in Shift_JIS and
//! UTF-8, row by row through the same ingest as a `PUT`.

use std::path::PathBuf;

use bytes::Bytes;
use cgc_gateway::client::Reply;
use cgc_gateway::ingest::batch::BatchImport;
use cgc_gateway::ingest::batch::decode::Charset;
use encoding_rs::SHIFT_JIS;
use hyper::Method;
use serde_json::Value;

use crate::helpers::{TestApp, full_case, pki, spawn_app, spawn_app_with};

const UTF8: &str = "text/csv; charset=UTF-8";
const SJIS: &str = "text/csv; charset=Shift_JIS";
const CENTER: &str = "center-yokosuka";

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("docs/examples")
            .join(name),
    )
    .unwrap()
}

/// Uploads `body` in pieces of `piece` bytes, announced (`Content-Length`) or chunked.
async fn upload_with(app: &TestApp, client: &str, content_type: &str, body: Vec<u8>, announce: bool) -> Reply {
    let length = announce.then_some(body.len() as u64);
    let pieces: Vec<Result<Bytes, std::io::Error>> =
        body.chunks(7_919).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    app.client(client)
        .send_stream(
            Method::POST,
            "/v1/cases/batch",
            content_type,
            length,
            futures_util::stream::iter(pieces),
        )
        .await
        .unwrap()
}

async fn upload(app: &TestApp, content_type: &str, body: Vec<u8>) -> Value {
    let reply = upload_with(app, CENTER, content_type, body, false).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json().unwrap()
}

fn counts(report: &Value) -> [u64; 5] {
    ["stored", "unchanged", "conflict", "invalid", "forbidden"].map(|k| report[k].as_u64().unwrap())
}

const HEADER: &str = "case_id,center_id,version,updated_at,child.name,child.name_kana,child.sex,child.birth_date,\
child.address.municipality_code,guardians.1.name,guardians.1.relationship,guardians.2.name,guardians.2.relationship,\
household,abuse.types,abuse.injury,status,intake_at,flags.dv,flags.missing";

/// A valid row of `HEADER` for Yokosuka's center; `household` as given (quoted).
fn row(case_id: &str, household: &str) -> String {
    format!(
        "{case_id},yokosuka,1,2026-11-20T09:00:00+09:00,山田　花子,ヤマダ　ハナコ,female,2019-05-04,142018,\
山田　太郎,father,,,\"{}\",physical;neglect,true,investigating,2026-11-19T08:00:00+09:00,false,false\r\n",
        household.replace('"', "\"\"")
    )
}

fn file(rows: &[String]) -> Vec<u8> {
    let mut text = format!("{HEADER}\r\n");
    for r in rows {
        text.push_str(r);
    }
    text.into_bytes()
}

#[tokio::test]
async fn a_shift_jis_file_round_trips_into_the_same_records_as_its_utf8_twin() {
    let utf8 = sample("batch-utf8.csv");
    let sjis = sample("batch-sjis.csv");
    let text = String::from_utf8(utf8.clone()).unwrap();
    // The twin is the UTF-8 file in Windows-31J (as Windows and Python's cp932 write it), with
    // half-width kana and characters that only code page 932 has: NEC row 13 (①, ㈱, №, …,
    // 0x87xx) and the NEC-selected IBM extensions (髙, 﨑: 0xED/0xEE).
    let (decoded, malformed) = SHIFT_JIS.decode_without_bom_handling(&sjis);
    assert!(!malformed);
    assert_eq!(decoded, text, "docs/examples/batch-sjis.csv is out of date");
    for c in ['ｿ', 'ﾖ', '①', '②', '㈱', '№', '≒', 'Ⅲ', '㍻', '髙', '﨑'] {
        assert!(text.contains(c), "the sample lacks {c}");
    }
    assert!(sjis.windows(2).any(|w| w == [0x87, 0x8A]), "㈱ is NEC row 13, 0x878A");
    assert!(sjis.windows(2).any(|w| w == [0xEE, 0xE0]), "髙 is 0xEEE0");

    let app = spawn_app().await;
    let first = upload(&app, SJIS, sjis.clone()).await;
    assert_eq!(counts(&first), [3, 0, 0, 0, 0], "{first}");
    let stored: Vec<String> = app
        .app
        .context()
        .store
        .current_cases()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.body)
        .collect();
    // The UTF-8 twin finds byte-identical records: nothing to store.
    let twin = upload(&app, UTF8, utf8).await;
    assert_eq!(counts(&twin), [0, 3, 0, 0, 0], "{twin}");
    let after: Vec<String> = app
        .app
        .context()
        .store
        .current_cases()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.body)
        .collect();
    assert_eq!(stored, after);

    let case = app.app.context().live.case("yokosuka", "YKS-2026-0101").unwrap();
    let r = &case.record;
    assert_eq!(
        r.household.as_deref(),
        Some("父母と本児の3人世帯。祖母(ｿﾎﾞ)が近所に住む")
    );
    assert_eq!(r.guardians.as_ref().unwrap()[0].employer.as_deref(), Some("㈱ﾖｺｽｶ商事"));
    let a = r.assessment.as_ref().unwrap();
    assert_eq!(a.findings.as_deref(), Some("左腕にあざ②か所、体重≒12kg"));
    // A quoted cell keeps its line break and its doubled quotes.
    assert_eq!(a.progress.as_deref(), Some("11月19日 家庭訪問。\n\"本児は元気\"と母。"));
    assert_eq!(r.child.name, "髙橋　陽菜");
    // An empty cell is an absent field.
    let minimal = app.app.context().live.case("yokosuka", "YKS-2026-0102").unwrap();
    assert!(minimal.record.guardians.is_none() && minimal.record.assessment.is_none());
    assert!(minimal.record.child.address.text.is_none());
}

#[tokio::test]
async fn a_re_upload_is_idempotent_and_a_changed_row_at_the_same_version_conflicts() {
    let app = spawn_app().await;
    let rows: Vec<String> = (0..5).map(|i| row(&format!("IDEM-{i}"), "母と本児")).collect();
    assert_eq!(counts(&upload(&app, UTF8, file(&rows)).await), [5, 0, 0, 0, 0]);
    assert_eq!(counts(&upload(&app, UTF8, file(&rows)).await), [0, 5, 0, 0, 0]);
    let mut changed = rows.clone();
    changed[2] = row("IDEM-2", "祖母と本児");
    let report = upload(&app, UTF8, file(&changed)).await;
    assert_eq!(counts(&report), [0, 4, 1, 0, 0]);
    let conflict = &report["results"][2];
    assert_eq!(conflict["row"], 4);
    assert_eq!(conflict["outcome"], "conflict");
    assert_eq!(conflict["case_id"], "IDEM-2");
    assert_eq!(conflict["stored_version"], 1);
    assert_eq!(
        app.app
            .context()
            .live
            .case("yokosuka", "IDEM-2")
            .unwrap()
            .record
            .household
            .as_deref(),
        Some("母と本児")
    );
}

#[tokio::test]
async fn a_row_of_a_case_transferred_away_names_the_center_it_went_to() {
    let app = spawn_app().await;
    let rows = vec![row("MOVED-1", "母と本児"), row("STAYS-1", "母と本児")];
    assert_eq!(counts(&upload(&app, UTF8, file(&rows)).await), [2, 0, 0, 0, 0]);
    let center = |client: &str| app.client(client);
    let requested = center(CENTER)
        .send(
            Method::POST,
            "/v1/cases/MOVED-1/transfer",
            None,
            Some(br#"{"to_center":"sagamihara"}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(requested.status, 201, "{}", requested.text());
    let id = requested.json().unwrap()["id"].as_i64().unwrap();
    let accepted = center("center-sagamihara")
        .send(Method::POST, &format!("/v1/transfers/{id}/accept"), None, None)
        .await
        .unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.text());

    // The same file again: the transferred case is neither a conflict nor stored.
    let report = upload(&app, UTF8, file(&rows)).await;
    assert_eq!(counts(&report), [0, 1, 0, 0, 0]);
    assert_eq!(report["transferred"], 1);
    assert_eq!(report["rows"], 2);
    let moved = &report["results"][0];
    assert_eq!(moved["outcome"], "transferred");
    assert_eq!(moved["case_id"], "MOVED-1");
    assert_eq!(moved["to_center"], "sagamihara");
    assert!(moved.get("stored_version").is_none(), "{moved}");
    assert!(report["results"][1].get("to_center").is_none());
}

#[tokio::test]
async fn invalid_rows_are_named_by_row_and_column_and_never_echoed() {
    let app = spawn_app().await;
    let ok = row("OK-1", "一行目\n二行目");
    let rows = vec![
        ok.clone(),
        row("OK-1", "x").replace("2019-05-04", "CANARY-05-04"),
        row("BAD-2", "x")
            .replace("physical;neglect", "physical;CANARYtype")
            .replace(",father,,,", ",father,山田　良子,CANARYrel,"),
        row("BAD-3", "x")
            .replace(",true,investigating", ",CANARYbool,investigating")
            .replacen(",1,", ",CANARYv,", 1),
        row("CANARY id!", "x"),
        // Blank lines and rows of empty cells are skipped, but still counted as rows.
        "\r\n,,,,\r\n".to_owned(),
        row("MORE-1", "x").replace("\r\n", ",extra\r\n"),
        row("OK-3", "x"),
    ];
    let body = file(&rows);
    let reply = upload_with(&app, CENTER, UTF8, body, true).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(!reply.text().contains("CANARY"), "{}", reply.text());
    let report = reply.json().unwrap();
    assert_eq!(counts(&report), [2, 0, 0, 5, 0], "{report}");
    let results = report["results"].as_array().unwrap();
    let outcome = |row: u64| results.iter().find(|r| r["row"] == row).unwrap().clone();
    let columns = |row: u64| -> Vec<String> {
        outcome(row)["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["column"].as_str().unwrap_or("(row)").to_owned())
            .collect()
    };
    // Row 2 spans two lines; the header is row 1, as a spreadsheet shows it.
    assert_eq!(outcome(2)["outcome"], "stored");
    assert_eq!(columns(3), ["child.birth_date"]);
    assert_eq!(outcome(3)["case_id"], "OK-1");
    assert_eq!(columns(4), ["guardians.2.relationship", "abuse.types"]);
    assert_eq!(columns(5), ["version", "abuse.injury"]);
    assert_eq!(columns(6), ["case_id"]);
    assert!(outcome(6).get("case_id").is_none(), "an invalid case id is not echoed");
    assert!(results.iter().all(|r| r["row"] != 7 && r["row"] != 8));
    assert_eq!(columns(9), ["(row)"]);
    assert_eq!(outcome(10)["outcome"], "stored");
    assert_eq!(report["rows"], 7);
    assert_eq!(
        app.app
            .context()
            .live
            .case("yokosuka", "OK-1")
            .unwrap()
            .record
            .household
            .as_deref(),
        Some("一行目\n二行目")
    );
}

#[tokio::test]
async fn a_file_with_unknown_or_missing_columns_is_refused_before_any_row() {
    let app = spawn_app().await;
    let header = HEADER
        .replace("case_id,", "")
        .replace("child.birth_date", "child.birthdate");
    let text = format!("{header},山田　花子\r\n{}", row("X-1", "x"));
    let reply = upload_with(&app, CENTER, UTF8, text.into_bytes(), false).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.headers["content-type"], "application/problem+json");
    assert!(!reply.text().contains("山田"));
    let problem = reply.json().unwrap();
    let named: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["column"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["child.birthdate", "column 20", "case_id", "child.birth_date"]);
    assert_eq!(app.app.context().live.case_count(), 0);

    let reply = upload_with(&app, CENTER, UTF8, Vec::new(), false).await;
    assert_eq!(reply.status, 400);
}

#[tokio::test]
async fn undecodable_bytes_spoil_only_their_row_and_an_undecodable_header_is_a_400() {
    let app = spawn_app().await;
    let mut body = SHIFT_JIS
        .encode(&format!("{HEADER}\r\n{}", row("ENC-1", "ｱｲｳ①")))
        .0
        .into_owned();
    // A lead byte with an impossible trail byte, in the child's name.
    let bad = SHIFT_JIS.encode(&row("ENC-2", "x")).0.into_owned();
    let name = SHIFT_JIS.encode("山田").0.into_owned();
    let at = bad.windows(name.len()).position(|w| w == name.as_slice()).unwrap();
    let mut bad = bad;
    bad.splice(at..at, [0x82, 0xFF]);
    body.extend_from_slice(&bad);
    body.extend_from_slice(&SHIFT_JIS.encode(&row("ENC-3", "x")).0);
    let report = upload(&app, SJIS, body).await;
    assert_eq!(counts(&report), [2, 0, 0, 1, 0], "{report}");
    let refused = &report["results"][1];
    assert_eq!(
        (refused["row"].as_u64(), refused["case_id"].as_str()),
        (Some(3), Some("ENC-2"))
    );
    assert_eq!(refused["errors"][0]["column"], "child.name");
    assert_eq!(
        refused["errors"][0]["detail"],
        "contains bytes that are not valid Shift_JIS"
    );

    // Shift_JIS sent as UTF-8: the header is ASCII and readable, the Japanese rows are not.
    let reply = upload_with(
        &app,
        CENTER,
        UTF8,
        SHIFT_JIS
            .encode(&format!("{HEADER}\r\n{}", row("ENC-4", "x")))
            .0
            .into_owned(),
        false,
    )
    .await;
    assert_eq!(counts(&reply.json().unwrap()), [0, 0, 0, 1, 0]);

    let mut header = b"case_id\xFF,".to_vec();
    header.extend_from_slice(&file(&[row("ENC-5", "x")]));
    let reply = upload_with(&app, CENTER, UTF8, header, false).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json().unwrap()["detail"], "the header row is not valid UTF-8");
}

#[tokio::test]
async fn a_byte_order_mark_and_crlf_are_read() {
    let app = spawn_app().await;
    let mut body = "\u{FEFF}".as_bytes().to_vec();
    body.extend_from_slice(&sample("batch-utf8.csv"));
    assert_eq!(counts(&upload(&app, UTF8, body.clone()).await), [3, 0, 0, 0, 0]);
    // The mark tells the encoding even under a Shift_JIS label.
    assert_eq!(counts(&upload(&app, SJIS, body).await), [0, 3, 0, 0, 0]);
}

#[tokio::test]
async fn only_csv_in_utf8_or_shift_jis_is_taken() {
    let app = spawn_app().await;
    for content_type in [
        "text/csv; charset=EUC-JP",
        "text/csv; charset=bogus",
        "text/csv",
        "application/json",
        "text/plain; charset=UTF-8",
    ] {
        let reply = upload_with(&app, CENTER, content_type, sample("batch-utf8.csv"), false).await;
        assert_eq!(reply.status, 415, "{content_type}");
        assert_eq!(reply.headers["content-type"], "application/problem+json");
    }
    assert_eq!(app.app.context().live.case_count(), 0);
    // Only centers import.
    let reply = upload_with(&app, "terminal-kagacho-1", UTF8, sample("batch-utf8.csv"), false).await;
    assert_eq!(reply.status, 403);
}

#[tokio::test]
async fn rows_for_another_center_are_forbidden_and_recorded_as_refusals() {
    let app = spawn_app().await;
    let reply = upload_with(&app, "center-kawasaki-central", UTF8, sample("batch-utf8.csv"), false).await;
    let report = reply.json().unwrap();
    assert_eq!(counts(&report), [0, 0, 0, 0, 3], "{report}");
    assert_eq!(report["results"][0]["outcome"], "forbidden");
    assert_eq!(app.app.context().live.case_count(), 0);
    assert!(
        app.audit_has(&[
            "\"kind\":\"refusal\"",
            "center:kawasaki-central",
            "POST /v1/cases/batch"
        ])
        .await
    );
}

#[tokio::test]
async fn two_thousand_rows_above_the_single_request_limit_import_in_one_request() {
    let app = spawn_app().await;
    let long = "経過".repeat(150);
    let rows: Vec<String> = (0..2_000).map(|i| row(&format!("GEN-{i:05}"), &long)).collect();
    let body = file(&rows);
    assert!(body.len() > 2 * (1 << 20), "{} bytes", body.len());
    // Announced: the router-wide 413 for bodies above 1 MiB does not apply here.
    let reply = upload_with(&app, CENTER, UTF8, body, true).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let report = reply.json().unwrap();
    assert_eq!(counts(&report), [2_000, 0, 0, 0, 0]);
    assert_eq!(report["results"][1999]["row"], 2001);
    assert_eq!(app.app.context().live.case_count(), 2_000);
}

#[tokio::test]
async fn what_an_import_holds_does_not_grow_with_the_file() {
    // The service itself, fed as the network would: what it buffers between pieces stays at
    // about one row, whether the file has 200 rows or 2,000.
    let app = spawn_app().await;
    let ctx = app.app.context();
    let policy = ctx.policy();
    let mut high_water = Vec::new();
    for n in [200, 2_000] {
        let rows: Vec<String> = (0..n).map(|i| row(&format!("MEM{n}-{i:05}"), "母と本児")).collect();
        let body = file(&rows);
        let mut batch = BatchImport::new(&ctx.ingest, &policy.registry, "yokosuka", Charset::Utf8);
        for piece in body.chunks(16 * 1024) {
            batch.push(piece).await.unwrap();
        }
        high_water.push(batch.buffered_high_water());
        assert_eq!(batch.finish().await.unwrap().stored, n);
    }
    // A 16 KiB piece decodes to at most 48 KiB of text and its rows; never the file.
    assert!(high_water.iter().all(|h| *h < 200 * 1024), "{high_water:?}");
    assert!(high_water[1] < high_water[0] * 2, "{high_water:?}");
}

#[tokio::test]
async fn a_batch_over_its_own_limit_is_413() {
    let app = spawn_app_with(|c, _| c.limits.batch_body_bytes = 4_000).await;
    let rows: Vec<String> = (0..40).map(|i| row(&format!("BIG-{i}"), "x")).collect();
    for announce in [true, false] {
        let reply = upload_with(&app, CENTER, UTF8, file(&rows), announce).await;
        assert_eq!(reply.status, 413, "announced: {announce}");
    }
    // Nothing of an announced body is read; a chunked one is imported up to the limit.
    assert!(app.app.context().live.case_count() < 40);
}

#[tokio::test]
async fn a_case_named_batch_is_still_pushed_with_put() {
    let app = spawn_app().await;
    let reply = app.push(&full_case("yokosuka", "batch", "142018")).await;
    assert_eq!(reply.json().unwrap()["outcome"], "stored");
    let reply = app.client(CENTER).get("/v1/cases/batch", None).await.unwrap();
    assert_eq!(reply.status, 405);
    assert_eq!(reply.headers["content-type"], "application/problem+json");
}

#[tokio::test]
async fn the_import_command_sends_a_file_and_reports_every_row() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cases.csv");
    std::fs::write(&path, sample("batch-sjis.csv")).unwrap();
    let charset = cgc_gateway::cli::import::detect_charset(&path).await.unwrap();
    assert_eq!(charset, Charset::ShiftJis);
    let gateway = format!("https://{}", app.app.addr());
    let report = cgc_gateway::cli::import::import(&path, &gateway, pki(), CENTER, charset, false)
        .await
        .unwrap();
    assert_eq!(counts(&report), [3, 0, 0, 0, 0]);

    std::fs::write(&path, file(&[row("CLI-1", "x").replace("2019-05-04", "2019-02-30")])).unwrap();
    assert_eq!(
        cgc_gateway::cli::import::detect_charset(&path).await.unwrap(),
        Charset::Utf8
    );
    let report = cgc_gateway::cli::import::import(&path, &gateway, pki(), CENTER, Charset::Utf8, false)
        .await
        .unwrap();
    let summary = cgc_gateway::cli::import::summary(&report);
    assert_eq!(
        summary,
        "rows 1: stored 0, unchanged 0, conflict 0, transferred 0, invalid 1, forbidden 0\n\
         row 2 (CLI-1): invalid\n  child.birth_date: not a valid calendar date\n"
    );
}

#[tokio::test]
async fn the_import_binary_shows_progress_and_fails_when_a_row_is_refused() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = format!("https://{}", app.app.addr());
    let run = |file: PathBuf| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_cgc-gateway"))
            .arg("import")
            .arg(file)
            .args(["--gateway", &gateway, "--client", CENTER, "--certs"])
            .arg(pki())
            .output()
    };
    let good = dir.path().join("good.csv");
    std::fs::write(&good, sample("batch-sjis.csv")).unwrap();
    let out = run(good).await.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "rows 3: stored 3, unchanged 0, conflict 0, transferred 0, invalid 0, forbidden 0\n"
    );
    assert!(stderr.contains("sending [####################] 100%"), "{stderr}");

    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        file(&[row("BIN-1", "x"), row("BIN-2", "x").replace("142018", "142019")]),
    )
    .unwrap();
    let out = run(bad).await.unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success());
    assert!(
        stdout.contains("row 3 (BIN-2): invalid\n  child.address.municipality_code: "),
        "{stdout}"
    );
    assert!(stderr.contains("error: 1 row(s) were not imported"), "{stderr}");
}
