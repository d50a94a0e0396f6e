//! `GET /v1/openapi.json`: the OpenAPI 3.1 document of the whole API, for any authenticated
//! principal.
//!
//! The document is built here from one table, `operations()`: one entry per method and route,
//! with its audience (which sets the security requirement, the tag and the refusals common to
//! its kind), query parameters, request body, answers and the problems peculiar to it. Path
//! parameters are read from the route template and described by `path_parameter`. The case
//! record's schema is built from the validator's own field lists and enumerations
//! (`cases::validate`) and its limits.
//!
//! `tests/api/openapi.rs` compares the table with the routes the router really serves, both
//! ways: a route added to some `routes()` without an entry here, or an entry left behind by a
//! removed route, fails it by name. Adding a route is adding one `op(…)` here.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::context::Ctx;
use super::extract::AnyCaller;
use crate::cases::validate as rules;

pub const OPENAPI_PATH: &str = "/v1/openapi.json";

pub fn routes() -> Router<Ctx> {
    Router::new().route(OPENAPI_PATH, get(serve))
}

async fn serve(State(ctx): State<Ctx>, _caller: AnyCaller) -> Json<Value> {
    Json(document(ctx.dev_token_issuer.is_some()))
}

/// Who an operation is for: its security requirement, its tag and the refusals of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// A CGC case system's certificate.
    Center,
    /// A police terminal's certificate and its officer's bearer token.
    Terminal,
    /// An administrator's certificate and bearer token.
    Admin,
    /// An auditor's certificate.
    Auditor,
    /// An auditor's or a CGC case system's certificate.
    AuditReader,
    /// Any certificate; a terminal's with its officer's token.
    Anyone,
    /// Any certificate, nothing else (the web terminal's files).
    Browser,
    /// A terminal's or an administrator's certificate, no token yet (the demo's token endpoint).
    TerminalCertificate,
}

impl Audience {
    fn tag(self) -> &'static str {
        match self {
            Self::Center => "centers",
            Self::Terminal => "terminals",
            Self::Admin => "administrators",
            Self::Auditor | Self::AuditReader => "audit",
            Self::Anyone => "document",
            Self::Browser => "web",
            Self::TerminalCertificate => "development",
        }
    }

    fn bearer(self) -> bool {
        matches!(self, Self::Terminal | Self::Admin)
    }

    /// The refusals of the caller's identity: 401 where a token (or, for terminals, a
    /// certificate's revocation) can be refused, 403 for a certificate of the wrong kind.
    fn refusals(self) -> &'static [u16] {
        match self {
            Self::Terminal | Self::Admin | Self::Anyone => &[401, 403],
            Self::Center | Self::Auditor | Self::AuditReader | Self::TerminalCertificate => &[403],
            Self::Browser => &[],
        }
    }
}

/// What the router answers for every route before any handler: a request for another host
/// (400, 421), a body announced above the limit (413), one that stops arriving (408), the
/// certificate's rate limit (429), a store that cannot be read (503).
const ROUTER_PROBLEMS: &[u16] = &[400, 408, 413, 421, 429, 503];

/// One query (or header) parameter.
#[derive(Debug, Clone)]
pub struct QueryParam {
    /// `query` or `header`.
    pub location: &'static str,
    pub name: &'static str,
    pub required: bool,
    pub schema: Value,
    pub description: &'static str,
}

/// One success answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub description: &'static str,
    /// Media type and schema; `None` for an answer without a body.
    pub content: Option<(&'static str, Value)>,
    pub headers: Vec<(&'static str, &'static str)>,
}

/// One method on one route.
#[derive(Debug, Clone)]
pub struct Operation {
    pub method: &'static str,
    /// The route as the router has it (`/v1/cases/{case_id}`, `/v1/audit/tile/{*path}`).
    pub route: &'static str,
    pub id: &'static str,
    pub audience: Audience,
    pub summary: &'static str,
    pub query: Vec<QueryParam>,
    /// The request body in each media type it may come in.
    pub body: Vec<(&'static str, Value, Option<Value>)>,
    pub answers: Vec<Answer>,
    /// Problems of this operation beyond the router's and the audience's.
    pub problems: Vec<u16>,
}

fn op(
    method: &'static str,
    route: &'static str,
    id: &'static str,
    audience: Audience,
    summary: &'static str,
) -> Operation {
    Operation {
        method,
        route,
        id,
        audience,
        summary,
        query: Vec::new(),
        body: Vec::new(),
        answers: Vec::new(),
        problems: Vec::new(),
    }
}

impl Operation {
    fn query(mut self, name: &'static str, required: bool, schema: Value, description: &'static str) -> Self {
        self.query.push(QueryParam {
            location: "query",
            name,
            required,
            schema,
            description,
        });
        self
    }

    fn request_header(mut self, name: &'static str, schema: Value, description: &'static str) -> Self {
        self.query.push(QueryParam {
            location: "header",
            name,
            required: false,
            schema,
            description,
        });
        self
    }

    fn body(mut self, media: &'static str, schema: Value) -> Self {
        self.body.push((media, schema, None));
        self
    }

    /// An example of the last body added.
    fn example(mut self, example: Value) -> Self {
        if let Some(last) = self.body.last_mut() {
            last.2 = Some(example);
        }
        self
    }

    fn json(self, status: u16, description: &'static str, schema: Value) -> Self {
        self.answer(status, description, Some(("application/json", schema)))
    }

    fn answer(mut self, status: u16, description: &'static str, content: Option<(&'static str, Value)>) -> Self {
        self.answers.push(Answer {
            status,
            description,
            content,
            headers: Vec::new(),
        });
        self
    }

    /// A header on the last answer added.
    fn header(mut self, name: &'static str, description: &'static str) -> Self {
        if let Some(last) = self.answers.last_mut() {
            last.headers.push((name, description));
        }
        self
    }

    fn problems(mut self, statuses: &[u16]) -> Self {
        self.problems.extend_from_slice(statuses);
        self
    }

    /// Every problem status this operation can answer, in order.
    pub fn problem_statuses(&self) -> Vec<u16> {
        let mut all: Vec<u16> = ROUTER_PROBLEMS
            .iter()
            .chain(self.audience.refusals())
            .chain(&self.problems)
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// The OpenAPI path: `{*path}` is `{path}` there.
    pub fn openapi_path(&self) -> String {
        self.route.replace("{*", "{")
    }

    fn path_parameters(&self) -> Vec<&'static str> {
        self.route
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| name.trim_start_matches('*'))
            .collect()
    }
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn nullable(schema: Value) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }] })
}

fn counter() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

fn text(media: &'static str) -> Option<(&'static str, Value)> {
    Some((media, json!({ "type": "string" })))
}

/// Every operation of the API; the demo's token endpoint only where `dev_token` (as the router
/// routes it only where the demo configured an issuer).
pub fn operations(dev_token: bool) -> Vec<Operation> {
    use Audience::*;
    let csv = json!({ "type": "string", "description": "One case per row under a header row of column names (docs/batch-import.md)" });
    let mut ops = vec![
        // --- CGC case systems
        op(
            "PUT",
            "/v1/cases/{case_id}",
            "putCase",
            Center,
            "Push a case version; answered once it is durable",
        )
        .body("application/json", schema_ref("CaseRecord"))
        .example(serde_json::from_str(EXAMPLE_CASE).unwrap_or(Value::Null))
        .json(200, "Stored, or an identical re-push", schema_ref("PutCaseResponse"))
        .problems(&[409]),
        op(
            "POST",
            super::batch::BATCH_PATH,
            "importBatch",
            Center,
            "Import a CSV file of cases, row by row",
        )
        .body("text/csv; charset=UTF-8", csv.clone())
        .example(EXAMPLE_BATCH.into())
        .body("text/csv; charset=Shift_JIS", csv)
        .json(200, "A report of every row", schema_ref("BatchReport"))
        .problems(&[415]),
        op(
            "PUT",
            super::batch::BATCH_PATH,
            "putCaseNamedBatch",
            Center,
            "Push the case whose id is `batch` (this static path shadows /v1/cases/{case_id})",
        )
        .body("application/json", schema_ref("CaseRecord"))
        .json(200, "Stored, or an identical re-push", schema_ref("PutCaseResponse"))
        .problems(&[409]),
        op(
            "GET",
            "/v1/centers/{center_id}/cases",
            "listOwnCases",
            Center,
            "The calling center's own stored cases, the most recently stored first (another center's: 403)",
        )
        .query(
            "after",
            false,
            counter(),
            "Continue after this cursor (`next_after` of the previous page)",
        )
        .query(
            "limit",
            false,
            json!({ "type": "integer", "minimum": 1 }),
            "Page size: 50 by default, at most 500",
        )
        .json(200, "One page of the center's cases", schema_ref("OwnCases")),
        op(
            "GET",
            "/v1/center/session",
            "getCenterSession",
            Center,
            "The calling center as the registry names it, and the registry's police stations",
        )
        .json(200, "The center", schema_ref("CenterSession")),
        op(
            "GET",
            "/v1/centers/{center_id}/stream",
            "streamCenter",
            Center,
            "The center's own events, live, as Server-Sent Events: police responses and terminals opening its cases (docs/live.md)",
        )
        .request_header(
            "Last-Event-ID",
            json!({ "type": "string", "pattern": "^[0-9]+$" }),
            "The id of the last event seen: every event stored after it is sent first (without it the stream starts at the newest event)",
        )
        .answer(
            200,
            "`response`, `opened` and `synced` events, each with its `id:`",
            text("text/event-stream"),
        ),
        op(
            "GET",
            "/v1/centers/{center_id}/responses",
            "listResponses",
            Center,
            "The police responses to the center's cases, in the order recorded, 100 per page",
        )
        .query(
            "after",
            false,
            counter(),
            "Continue after this response id (`next_after` of the previous page); 0 by default",
        )
        .json(200, "The responses", schema_ref("ResponsePage")),
        op(
            "POST",
            "/v1/cases/{case_id}/transfer",
            "requestTransfer",
            Center,
            "Ask another center to take over one of this center's cases (転出); recorded in the audit log first",
        )
        .body("application/json", schema_ref("TransferRequest"))
        .example(json!({ "to_center": "kanagawa-central" }))
        .json(201, "Requested: pending until the receiving center decides", schema_ref("Transfer"))
        .problems(&[404, 409]),
        op(
            "GET",
            "/v1/centers/{center_id}/transfers",
            "listTransfers",
            Center,
            "The center's pending transfers, outgoing and incoming",
        )
        .json(200, "The pending transfers", schema_ref("TransferList")),
        op(
            "POST",
            "/v1/transfers/{transfer_id}/accept",
            "acceptTransfer",
            Center,
            "The receiving center takes the case over (転入): it continues under this center from now on",
        )
        .json(200, "Accepted", schema_ref("Transfer"))
        .problems(&[404, 409]),
        op(
            "POST",
            "/v1/transfers/{transfer_id}/decline",
            "declineTransfer",
            Center,
            "The receiving center declines the transfer; the case stays where it is",
        )
        .json(200, "Declined", schema_ref("Transfer"))
        .problems(&[404, 409]),
        // --- police terminals
        op(
            "POST",
            "/v1/terminal/cases/{case_ref}/responses",
            "postResponse",
            Terminal,
            "Record the police's response to a case of the view for its center; signed into the audit log first",
        )
        .body("application/json", schema_ref("NewResponse"))
        .example(json!({ "kind": "safety_confirmed", "at": "2026-12-01T10:30:00+09:00", "note": "児童の安全を確認" }))
        .json(201, "Recorded and stored", schema_ref("ResponseReceipt"))
        .problems(&[404, 409]),
        op(
            "GET",
            "/v1/terminal/cases",
            "listCases",
            Terminal,
            "Every case the terminal's agreements allow it to see now, each as its summary; each disclosure is recorded first",
        )
        .json(200, "The view", schema_ref("CaseList")),
        op(
            "GET",
            "/v1/terminal/cases/{case_ref}",
            "getCase",
            Terminal,
            "One case of the view; a case not in it is 404, like one that does not exist",
        )
        .json(
            200,
            "The case as the view allows it, with its receipt",
            schema_ref("CaseView"),
        )
        .problems(&[404, 409]),
        op(
            "POST",
            "/v1/terminal/cases/{case_ref}/print",
            "printCase",
            Terminal,
            "The opened case for the print layout, recorded as a print of its own before it is answered",
        )
        .json(
            200,
            "The case as the view allows it, with the print's receipt",
            schema_ref("CaseView"),
        )
        .problems(&[404, 409]),
        op(
            "GET",
            "/v1/terminal/search",
            "searchCases",
            Terminal,
            "Cases of the view by partial name (kanji or kana); every hit is a disclosure",
        )
        .query(
            "q",
            true,
            json!({ "type": "string", "minLength": 1, "maxLength": crate::search::MAX_QUERY_CHARS, "pattern": "\\S" }),
            "Part of a name (kanji or kana, full- or half-width): at most 64 characters as typed and once folded, not only whitespace",
        )
        .json(200, "At most 50 hits", schema_ref("SearchResults")),
        op(
            "GET",
            "/v1/terminal/stream",
            "streamCases",
            Terminal,
            "The view, live, as Server-Sent Events (docs/live.md)",
        )
        .request_header(
            "Last-Event-ID",
            json!({ "type": "string" }),
            "The cursor of the last event seen: only what changed since is sent (an unknown cursor starts over with `reset`)",
        )
        .answer(
            200,
            "`reset`, `case`, `withdraw`, `alert`, `synced` and `end` events; `Last-Event-ID` resumes",
            text("text/event-stream"),
        ),
        op(
            "POST",
            "/v1/terminal/session",
            "signIn",
            Terminal,
            "Sign in the web terminal: the officer's token becomes an HttpOnly session cookie",
        )
        .json(200, "Signed in", schema_ref("Session"))
        .header(
            "Set-Cookie",
            "cgc_officer=<token>; Path=/v1/; HttpOnly; Secure; SameSite=Strict",
        ),
        op(
            "GET",
            "/v1/terminal/session",
            "getSession",
            Terminal,
            "The signed-in terminal's station: its Japanese name and area (for a reloaded page)",
        )
        .json(200, "The session", schema_ref("Session")),
        op(
            "GET",
            "/v1/terminal/reference",
            "getReference",
            Terminal,
            "Registry data the terminal shows: center names and numbers, municipality names (no case data)",
        )
        .json(200, "The reference", serde_json::json!({ "type": "object" })),
        op(
            "DELETE",
            "/v1/terminal/session",
            "signOut",
            Browser,
            "Sign out: clears the session cookie",
        )
        .answer(204, "Signed out", None)
        .header("Set-Cookie", "cgc_officer=; Max-Age=0"),
        // --- administrators
        op(
            "GET",
            "/v1/admin/session",
            "getAdminSession",
            Admin,
            "The signed-in administrator: jurisdiction, its name and kind, whether it may revoke",
        )
        .json(200, "The administrator", schema_ref("AdminSession")),
        op(
            "GET",
            "/v1/admin/agreements",
            "listAgreements",
            Admin,
            "Every agreement the administrator may read, each as getAgreement answers it",
        )
        .json(200, "The agreements", schema_ref("AgreementList")),
        op(
            "GET",
            "/v1/admin/revocations",
            "listRevocations",
            Admin,
            "The revoked terminals (of the administrator's police force) and officers, from the store",
        )
        .json(200, "The revocations, oldest first", schema_ref("RevocationList")),
        op(
            "GET",
            "/v1/admin/agreements/{agreement_id}",
            "getAgreement",
            Admin,
            "An agreement: its versions, providers and consent history",
        )
        .json(200, "The agreement", schema_ref("AgreementDocument"))
        .problems(&[404]),
        op(
            "PUT",
            "/v1/admin/agreements/{agreement_id}",
            "putAgreement",
            Admin,
            "Submit a new version of an agreement (TOML, policies/README.md)",
        )
        .body("application/toml", json!({ "type": "string" }))
        .example(EXAMPLE_AGREEMENT.into())
        .json(201, "Recorded and installed", schema_ref("Submitted"))
        .problems(&[409]),
        op(
            "GET",
            "/v1/admin/agreements/{agreement_id}/diff",
            "diffAgreementVersions",
            Admin,
            "Compare two stored versions over every combination of provider, case class, audience and consent state",
        )
        .query("from", true, json!({ "type": "integer", "minimum": 1 }), "The earlier version")
        .query("to", true, json!({ "type": "integer", "minimum": 1 }), "The later version")
        .json(200, "The gains, losses and verdict", schema_ref("AgreementDiff"))
        .problems(&[404]),
        op(
            "POST",
            "/v1/admin/agreements/{agreement_id}/diff",
            "diffAgreementProposal",
            Admin,
            "Compare a proposed version (the TOML a PUT would submit) with the latest stored one; nothing is stored",
        )
        .body("application/toml", json!({ "type": "string" }))
        .example(EXAMPLE_AGREEMENT.into())
        .json(200, "The gains, losses and verdict", schema_ref("AgreementDiff"))
        .problems(&[404]),
        op(
            "POST",
            "/v1/admin/simulate",
            "simulateView",
            Admin,
            "What a terminal would see of a case now (or under a draft version), by field names only",
        )
        .body("application/json", schema_ref("SimulateRequest"))
        .json(200, "Visible or not, with the clause and the field names", schema_ref("Simulated"))
        .problems(&[404]),
        op(
            "POST",
            "/v1/admin/agreements/{agreement_id}/providers/{operator}/{action}",
            "providerAction",
            Admin,
            "A city's consent step, or the prefecture's confirmation",
        )
        .json(200, "The provider's new state", schema_ref("ProviderState"))
        .problems(&[404, 409]),
        op(
            "POST",
            "/v1/admin/terminals/{station_id}/{terminal_no}/revoke",
            "revokeTerminal",
            Admin,
            "Revoke a terminal: its connections are cut at once",
        )
        .json(200, "Revoked (idempotent)", schema_ref("Revoked"))
        .problems(&[404]),
        op(
            "POST",
            "/v1/admin/officers/{officer_id}/revoke",
            "revokeOfficer",
            Admin,
            "Revoke an officer: their streams end and their token is refused everywhere",
        )
        .json(200, "Revoked (idempotent)", schema_ref("Revoked")),
        // --- the audit log (docs/audit-log.md)
        op(
            "GET",
            "/v1/audit/checkpoint",
            "getCheckpoint",
            AuditReader,
            "The latest signed checkpoint (C2SP signed note)",
        )
        .answer(200, "The checkpoint", text("text/plain")),
        op(
            "GET",
            "/v1/audit/entries",
            "getEntries",
            Auditor,
            "Audit entries from `start`, at most 1000 per page",
        )
        .query("start", true, counter(), "The first entry's index")
        .query("end", false, counter(), "One past the last entry wanted")
        .json(200, "The entries", schema_ref("EntriesPage")),
        op(
            "GET",
            "/v1/audit/proof/inclusion",
            "getInclusionProof",
            AuditReader,
            "The inclusion proof of entry `index` in the tree of `size` entries",
        )
        .query("index", true, counter(), "The entry")
        .query("size", true, counter(), "The tree size, above index")
        .json(200, "RFC 9162 inclusion proof", schema_ref("Proof")),
        op(
            "GET",
            "/v1/audit/proof/consistency",
            "getConsistencyProof",
            AuditReader,
            "The consistency proof between two tree sizes",
        )
        .query(
            "old",
            true,
            json!({ "type": "integer", "minimum": 1 }),
            "The older size",
        )
        .query("new", true, counter(), "The newer size, at or above old")
        .json(200, "RFC 9162 consistency proof", schema_ref("Proof")),
        op(
            "GET",
            "/v1/audit/tile/{*path}",
            "getTile",
            AuditReader,
            "A C2SP tlog-tiles hash tile or (auditors only) entry bundle",
        )
        .answer(
            200,
            "The tile, immutable",
            Some((
                "application/octet-stream",
                json!({ "type": "string", "format": "binary" }),
            )),
        )
        .problems(&[404]),
        op(
            "GET",
            "/v1/centers/{center_id}/cases/{case_id}/disclosures",
            "getDisclosures",
            AuditReader,
            "Who saw a case: its center's (or an auditor's) view of its disclosures",
        )
        .query(
            "after",
            false,
            counter(),
            "Continue after this audit index (`next_after` of the previous page)",
        )
        .query(
            "limit",
            false,
            json!({ "type": "integer", "minimum": 1 }),
            "Page size: 100 by default, at most 1000",
        )
        .query(
            "kind",
            false,
            json!({ "enum": ["opened", "listed", "all"] }),
            "`opened` (detail, print), `listed` (list, search, stream) or `all` (the default)",
        )
        .json(200, "The disclosures", schema_ref("Disclosures"))
        .problems(&[404]),
        // --- this document
        op("GET", OPENAPI_PATH, "getOpenApi", Anyone, "This document").json(
            200,
            "OpenAPI 3.1",
            json!({ "type": "object" }),
        ),
        // --- the web terminal
        op("GET", "/", "root", Browser, "Redirects to the web terminal")
            .answer(303, "To /terminal/", None)
            .header("Location", "/terminal/"),
        op(
            "GET",
            "/terminal",
            "terminalNoSlash",
            Browser,
            "Redirects to the web terminal",
        )
        .answer(303, "To /terminal/", None)
        .header("Location", "/terminal/"),
        op("GET", "/terminal/", "terminalPage", Browser, "The web terminal's page").answer(
            200,
            "HTML",
            text("text/html"),
        ),
        op(
            "GET",
            "/terminal/app.js",
            "terminalScript",
            Browser,
            "The web terminal's script",
        )
        .answer(200, "JavaScript", text("text/javascript")),
        op(
            "GET",
            "/terminal/app.css",
            "terminalStyle",
            Browser,
            "The web terminal's style sheet",
        )
        .answer(200, "CSS", text("text/css")),
        op(
            "GET",
            "/terminal/config.json",
            "terminalConfig",
            Browser,
            "What the page needs before sign-in",
        )
        .json(
            200,
            "Whether the demo's sign-in button works",
            schema_ref("TerminalConfig"),
        ),
        // --- the administrator's console and the CGC's page
        op("GET", "/admin", "adminNoSlash", Browser, "Redirects to the administrator's console")
            .answer(303, "To /admin/", None)
            .header("Location", "/admin/"),
        op("GET", "/admin/", "adminPage", Browser, "The administrator's console").answer(
            200,
            "HTML",
            text("text/html"),
        ),
        op("GET", "/admin/app.js", "adminScript", Browser, "The console's script").answer(
            200,
            "JavaScript",
            text("text/javascript"),
        ),
        op("GET", "/center", "centerNoSlash", Browser, "Redirects to the CGC's page")
            .answer(303, "To /center/", None)
            .header("Location", "/center/"),
        op("GET", "/center/", "centerPage", Browser, "The CGC's page: its cases and who saw them").answer(
            200,
            "HTML",
            text("text/html"),
        ),
        op("GET", "/center/app.js", "centerScript", Browser, "The CGC page's script").answer(
            200,
            "JavaScript",
            text("text/javascript"),
        ),
        op(
            "GET",
            "/shared/dom.js",
            "sharedScript",
            Browser,
            "What every screen shares: building nodes with text only",
        )
        .answer(200, "JavaScript", text("text/javascript")),
        op(
            "GET",
            "/console/common.js",
            "consoleScript",
            Browser,
            "What the console and the CGC's page share",
        )
        .answer(200, "JavaScript", text("text/javascript")),
        op(
            "GET",
            "/console/console.css",
            "consoleStyle",
            Browser,
            "The console's and the CGC page's style sheet",
        )
        .answer(200, "CSS", text("text/css")),
    ];
    if dev_token {
        ops.push(
            op(
                "POST",
                "/v1/dev/token",
                "devToken",
                TerminalCertificate,
                "Demo only: a development token bound to the calling certificate (an officer's for a terminal, an administrator's for an administrator)",
            )
            .body("application/json", schema_ref("DevTokenRequest"))
            .json(200, "The token", schema_ref("DevToken"))
            .problems(&[401]),
        );
    }
    ops
}

/// The shipped examples (docs/examples/): a case of the demo's Yokosuka center, a batch file of
/// the same center and version 2 of the demo agreement. Examples in the document are what a
/// reader copies and what schemathesis sends first, so they are real, valid requests.
const EXAMPLE_CASE: &str = include_str!("../../docs/examples/case.json");
const EXAMPLE_BATCH: &str = include_str!("../../docs/examples/batch-utf8.csv");
const EXAMPLE_AGREEMENT: &str = include_str!("../../docs/examples/kanagawa-2026-v2.toml");

/// An example of a path parameter that names what the examples above create.
fn path_example(name: &str) -> Option<Value> {
    let example = match name {
        "case_id" => json!("YKS-2026-0001"),
        "center_id" => json!("yokosuka"),
        "case_ref" => json!("yokosuka:YKS-2026-0001"),
        "agreement_id" => json!("kanagawa-2026"),
        "transfer_id" => json!(1),
        "operator" => json!("141003"),
        "action" => json!("consent"),
        _ => return None,
    };
    Some(example)
}

/// A path parameter, by its name in the route template.
fn path_parameter(name: &str) -> (Value, &'static str) {
    match name {
        "case_id" => (
            schema_ref("Identifier"),
            "The case's id at its center (the body's `case_id`)",
        ),
        "center_id" => (schema_ref("Identifier"), "The center"),
        "agreement_id" => (schema_ref("Identifier"), "The agreement"),
        "station_id" => (schema_ref("Identifier"), "The police station"),
        "transfer_id" => (
            json!({ "type": "integer", "minimum": 1 }),
            "The transfer, as its request answered it",
        ),
        "case_ref" => (
            json!({ "type": "string", "minLength": 1 }),
            "`<center_id>:<case_id>`, or a bare case id when it names one case of the view",
        ),
        "operator" => (
            json!({ "type": "string", "minLength": 1 }),
            "The provider: a municipality code (a city) or a prefecture code",
        ),
        "action" => (
            json!({ "type": "string", "enum": ["consent", "decline", "withdraw", "confirm"] }),
            "`consent`, `decline`, `withdraw` (the city's) or `confirm` (the prefecture's); any other is 404",
        ),
        "terminal_no" => (
            json!({ "type": "integer", "minimum": 1, "maximum": u32::MAX }),
            "The terminal's number at its station",
        ),
        "officer_id" => (
            json!({
                "type": "string", "minLength": 1, "maxLength": crate::text::MAX_SUBJECT_BYTES,
                "pattern": visible_line(&format!("{NOT_IN_NAMES}\\u200c\\u200d\\ufe00-\\ufe0f")),
            }),
            "The officer as their tokens name them (`sub`): at most 128 bytes of UTF-8, something visible, no controls, bidirectional or invisible formatting",
        ),
        "path" => (
            json!({ "type": "string", "minLength": 1 }),
            "`<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`, as C2SP tlog-tiles spells them",
        ),
        _ => (json!({ "type": "string" }), ""),
    }
}

/// The OpenAPI 3.1 document.
pub fn document(dev_token: bool) -> Value {
    let mut paths = Map::new();
    for operation in operations(dev_token) {
        let item = paths
            .entry(operation.openapi_path())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(operation.method.to_ascii_lowercase(), operation_object(&operation));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "cgc-gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The gateway through which child guidance centers share cases with police terminals under signed sharing agreements, every disclosure recorded in a verifiable audit log. Every connection is mutual TLS with a certificate of one of the gateway's CAs; terminals and administrators add a bearer token bound to that certificate (RFC 8705). Errors are RFC 9457 problem+json. docs/api.md describes the API.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" }
        },
        "tags": [
            { "name": "centers", "description": "CGC case systems (center certificate)" },
            { "name": "terminals", "description": "Police terminals (terminal certificate and officer token)" },
            { "name": "administrators", "description": "Prefectural and city administrators (administrator certificate and token)" },
            { "name": "audit", "description": "The audit log (auditor or center certificate)" },
            { "name": "document", "description": "This document (any principal)" },
            { "name": "web", "description": "The web terminal's files" },
            { "name": "development", "description": "The demo's development endpoints" }
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "mutualTLS": {
                    "type": "mutualTLS",
                    "description": "A client certificate of the CA of the caller's kind (center, terminal, admin, auditor); the handshake refuses any other."
                },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An EdDSA JWT with cnf.x5t#S256 naming the connection's certificate (RFC 8705); officers' tokens for terminals, administrators' for administrators."
                }
            },
            "schemas": schemas(),
            "responses": problem_responses(),
        }
    })
}

fn operation_object(operation: &Operation) -> Value {
    let mut parameters: Vec<Value> = operation
        .path_parameters()
        .into_iter()
        .map(|name| {
            let (schema, description) = path_parameter(name);
            let mut parameter =
                json!({ "name": name, "in": "path", "required": true, "schema": schema, "description": description });
            if let (Some(example), Value::Object(p)) = (path_example(name), &mut parameter) {
                p.insert("example".into(), example);
            }
            parameter
        })
        .collect();
    parameters.extend(operation.query.iter().map(|q| {
        json!({ "name": q.name, "in": q.location, "required": q.required, "schema": q.schema, "description": q.description })
    }));
    let mut responses = Map::new();
    for answer in &operation.answers {
        let mut response = Map::new();
        response.insert("description".into(), answer.description.into());
        if let Some((media, schema)) = &answer.content {
            response.insert("content".into(), json!({ *media: { "schema": schema } }));
        }
        if !answer.headers.is_empty() {
            let headers: Map<String, Value> = answer
                .headers
                .iter()
                .map(|(name, description)| {
                    (
                        (*name).to_owned(),
                        json!({ "description": description, "schema": { "type": "string" } }),
                    )
                })
                .collect();
            response.insert("headers".into(), Value::Object(headers));
        }
        responses.insert(answer.status.to_string(), Value::Object(response));
    }
    for status in operation.problem_statuses() {
        responses.insert(
            status.to_string(),
            json!({ "$ref": format!("#/components/responses/{}", problem_name(status)) }),
        );
    }
    let security = if operation.audience.bearer() {
        json!([{ "mutualTLS": [], "bearer": [] }])
    } else {
        json!([{ "mutualTLS": [] }])
    };
    let mut object = json!({
        "operationId": operation.id,
        "summary": operation.summary,
        "tags": [operation.audience.tag()],
        "security": security,
        "responses": responses,
    });
    if let Value::Object(o) = &mut object {
        if !parameters.is_empty() {
            o.insert("parameters".into(), Value::Array(parameters));
        }
        if !operation.body.is_empty() {
            let content: Map<String, Value> = operation
                .body
                .iter()
                .map(|(media, schema, example)| {
                    let mut object = json!({ "schema": schema });
                    if let (Some(example), Value::Object(o)) = (example, &mut object) {
                        o.insert("example".into(), example.clone());
                    }
                    ((*media).to_owned(), object)
                })
                .collect();
            o.insert("requestBody".into(), json!({ "required": true, "content": content }));
        }
    }
    object
}

/// The problem+json answers, one per status, with the headers that go with them.
const PROBLEMS: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "The request is invalid; `errors` names each offending field by JSON pointer",
    ),
    (
        401,
        "Unauthorized",
        "No valid bearer token for this certificate (or the officer is revoked)",
    ),
    (403, "Forbidden", "Not for this principal; recorded in the audit log"),
    (
        404,
        "NotFound",
        "No such resource, or one this principal may not know of",
    ),
    (408, "RequestTimeout", "The request body stopped arriving"),
    (
        409,
        "Conflict",
        "Conflicts with what is stored (`stored_version`, `current_state`, `candidates`)",
    ),
    (413, "TooLarge", "The body is above the limit"),
    (
        415,
        "UnsupportedMediaType",
        "The body's media type or charset is not accepted",
    ),
    (
        421,
        "Misdirected",
        "The request names a host this gateway does not serve",
    ),
    (
        429,
        "RateLimited",
        "The certificate's or officer's rate limit; retry after `Retry-After` seconds",
    ),
    (
        503,
        "Unavailable",
        "The audit log or the store cannot write; nothing was accepted or disclosed",
    ),
];

fn problem_name(status: u16) -> &'static str {
    PROBLEMS
        .iter()
        .find(|(s, _, _)| *s == status)
        .map_or("Problem", |(_, name, _)| *name)
}

fn problem_responses() -> Value {
    let mut out = Map::new();
    for (status, name, description) in PROBLEMS {
        let mut response = json!({
            "description": description,
            "content": { "application/problem+json": { "schema": schema_ref("Problem") } }
        });
        let header = match status {
            401 => Some(("WWW-Authenticate", "Bearer error=\"invalid_token\"")),
            429 | 503 => Some(("Retry-After", "Seconds to wait")),
            _ => None,
        };
        if let (Some((name, description)), Value::Object(r)) = (header, &mut response) {
            r.insert(
                "headers".into(),
                json!({ name: { "description": description, "required": true, "schema": { "type": "string" } } }),
            );
        }
        out.insert((*name).to_owned(), response);
    }
    Value::Object(out)
}

/// An object with exactly these properties; `required` are the ones that must be there.
fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "additionalProperties": false, "properties": properties, "required": required })
}

fn words<T>(table: &[(&str, T)]) -> Value {
    Value::Array(table.iter().map(|(w, _)| Value::from(*w)).collect())
}

/// What `text::check_name` refuses, as a regular-expression class body: controls, line breaks,
/// bidirectional formatting and the invisible characters of the Basic Multilingual Plane (the
/// few above it are left to the description), but not the zero-width joiners and variation
/// selectors a name may need.
const NOT_IN_NAMES: &str = "\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u034f\\u061c\\u115f\\u1160\\u17b4\\u17b5\\u180b-\\u180f\\u200b\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2060-\\u206f\\u3164\\ufeff\\uffa0\\ufff0-\\ufffb";
/// What shows nothing although a name may hold it: white space, joiners, variation selectors and
/// the Braille blank.
const INVISIBLE: &str = "\\s\\u200c\\u200d\\ufe00-\\ufe0f\\u2800";

/// A line of text made of `allowed`-class characters with at least one visible one.
fn visible_line(not_allowed: &str) -> String {
    format!("^[^{not_allowed}]*[^{not_allowed}{INVISIBLE}][^{not_allowed}]*$")
}

fn schemas() -> Value {
    let name = json!({
        "type": "string", "minLength": 1, "maxLength": rules::MAX_NAME_CHARS,
        "pattern": visible_line(NOT_IN_NAMES),
        "description": "One line: no control characters or line breaks, no bidirectional or invisible formatting (zero-width joiners and variation selectors allowed), at least one visible character"
    });
    let kana = json!({
        "type": "string", "minLength": 1, "maxLength": rules::MAX_NAME_CHARS,
        "pattern": "^[\u{30A0}-\u{30FF} \u{3000}]*[\u{30A0}-\u{30FF}][\u{30A0}-\u{30FF} \u{3000}]*$",
        "description": "Full-width katakana and the spaces between names"
    });
    let free_text = json!({
        "type": "string", "maxLength": rules::MAX_TEXT_CHARS,
        "pattern": "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069]*$",
        "description": "Free text: no controls other than tab, CR and LF, no bidirectional formatting"
    });
    let time = json!({
        "type": "string", "format": "date-time",
        "description": "RFC 3339 with an offset; not before 1900-01-01, at most a day ahead of the gateway's clock"
    });
    let optional = nullable;
    let mut all = json!({
        "Identifier": {
            "type": "string", "minLength": 1, "maxLength": 64,
            "pattern": "^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*$",
            "description": "[A-Za-z0-9._-]{1,64}, not dots only"
        },
        "CaseRecord": object(json!({
            "case_id": schema_ref("Identifier"),
            "center_id": schema_ref("Identifier"),
            "version": { "type": "integer", "minimum": 1, "maximum": rules::MAX_VERSION, "description": "Higher for every change" },
            "updated_at": time,
            "child": object(json!({
                "name": name,
                "name_kana": optional(kana.clone()),
                "sex": { "type": "string", "enum": words(rules::SEXES) },
                "birth_date": { "type": "string", "format": "date", "description": "YYYY-MM-DD; not before 1900-01-01, not after the date of updated_at" },
                "address": object(json!({
                    "municipality_code": { "type": "string", "pattern": "^[0-9]{6}$", "description": "JIS X 0402 code with its check digit" },
                    "text": optional(free_text.clone()),
                }), &["municipality_code"]),
            }), &["name", "sex", "birth_date", "address"]),
            "guardians": optional(json!({
                "type": "array", "maxItems": rules::MAX_GUARDIANS,
                "items": object(json!({
                    "name": name,
                    "name_kana": optional(kana),
                    "relationship": { "type": "string", "enum": words(rules::RELATIONSHIPS) },
                    "employer": optional(name.clone()),
                }), &["name", "relationship"]),
            })),
            "household": optional(free_text.clone()),
            "care_setting": optional(free_text.clone()),
            "upbringing": optional(free_text.clone()),
            "welfare_services": optional(free_text.clone()),
            "abuse": object(json!({
                "types": { "type": "array", "minItems": 1, "uniqueItems": true, "items": { "type": "string", "enum": words(rules::ABUSE_TYPES) } },
                "injury": { "type": "boolean" },
            }), &["types", "injury"]),
            "risk_level": optional(json!({ "type": "string", "enum": words(rules::RISK_LEVELS) })),
            "status": { "type": "string", "enum": words(rules::STATUSES) },
            "intake_at": time,
            "safety_confirmed_at": optional(time.clone()),
            "flags": object(json!({ "dv": { "type": "boolean" }, "missing": { "type": "boolean" } }), &["dv", "missing"]),
            "assessment": optional(object(json!({
                "findings": optional(free_text.clone()),
                "plan": optional(free_text.clone()),
                "progress": optional(free_text),
            }), &[])),
            "center_contact": optional(object(json!({
                "name": name,
                "phone": { "type": "string", "maxLength": rules::MAX_PHONE_CHARS, "pattern": "^[0-9+() -]*[0-9][0-9+() -]*$" },
            }), &["name", "phone"])),
        }), &["case_id", "center_id", "version", "updated_at", "child", "abuse", "status", "intake_at", "flags"]),
        "PutCaseResponse": object(json!({
            "center_id": { "type": "string" },
            "case_id": { "type": "string" },
            "version": { "type": "integer" },
            "outcome": { "type": "string", "enum": ["stored", "unchanged"] },
        }), &["center_id", "case_id", "version", "outcome"]),
        "BatchReport": object(json!({
            "rows": counter(), "stored": counter(), "unchanged": counter(), "conflict": counter(),
            "transferred": counter(), "invalid": counter(), "forbidden": counter(),
            "results": { "type": "array", "items": object(json!({
                "row": counter(),
                "case_id": { "type": "string" },
                "outcome": { "type": "string", "enum": ["stored", "unchanged", "conflict", "transferred", "invalid", "forbidden"] },
                "errors": { "type": "array", "items": object(json!({ "column": { "type": "string" }, "detail": { "type": "string" } }), &["detail"]) },
                "version": counter(),
                "stored_version": counter(),
                "to_center": { "type": "string" },
            }), &["row", "outcome"]) },
        }), &["rows", "stored", "unchanged", "conflict", "transferred", "invalid", "forbidden", "results"]),
        "Receipt": object(json!({
            "audit_index": counter(),
            "clause": { "type": "string", "description": "The agreement clause that allowed the disclosure" },
            "entry": { "type": "string", "description": "The audit entry's line" },
            "checkpoint": { "type": "string", "description": "The signed checkpoint that covers it" },
            "inclusion_proof": { "type": "array", "items": { "type": "string", "contentEncoding": "base64" } },
        }), &["audit_index", "clause", "entry", "checkpoint", "inclusion_proof"]),
        "CaseView": object(json!({
            "ref": { "type": "string", "description": "<center_id>:<case_id>" },
            "center_id": { "type": "string" },
            "case_id": { "type": "string" },
            "version": { "type": "integer" },
            "updated_at": { "type": "string", "format": "date-time" },
            "case": { "type": "object", "description": "The fields of the case record the view allows, nothing else" },
            "allowed": { "type": "array", "items": { "type": "string" }, "description": "The field paths the view allows (so that 'not shared' differs from 'not set')" },
            "receipt": schema_ref("Receipt"),
        }), &["ref", "center_id", "case_id", "version", "updated_at", "case", "receipt"]),
        "CaseList": object(json!({
            "as_of": { "type": "string", "format": "date-time" },
            "cases": { "type": "array", "items": schema_ref("CaseItem") },
        }), &["as_of", "cases"]),
        "SearchResults": object(json!({
            "truncated": { "type": "boolean" },
            "cases": { "type": "array", "items": schema_ref("CaseItem") },
        }), &["truncated", "cases"]),
        "Session": object(json!({
            "officer": { "type": "string" },
            "station": { "type": "string" },
            "station_name": { "type": ["string", "null"], "description": "The station's Japanese name" },
            "area": { "type": ["array", "null"], "items": { "type": "string" }, "description": "Municipality codes of the station's own area" },
            "expires_at": { "type": "integer", "description": "Unix time" },
        }), &["officer", "station", "expires_at"]),
        "ProviderState": object(json!({
            "agreement_id": { "type": "string" },
            "operator": { "type": "string" },
            "name": { "type": "string" },
            "kind": { "type": "string" },
            "state": { "type": "string", "enum": ["not_asked", "asked", "consented", "active", "declined", "withdrawn"] },
            "sharing": { "type": "boolean" },
            "consented_version": { "type": ["integer", "null"] },
            "confirmed_version": { "type": ["integer", "null"] },
        }), &["agreement_id", "operator", "name", "kind", "state", "sharing", "consented_version", "confirmed_version"]),
        "AgreementDocument": object(json!({
            "agreement_id": { "type": "string" },
            "prefecture": { "type": "string" },
            "as_of": { "type": "string", "format": "date-time" },
            "current_version": { "type": ["integer", "null"] },
            "latest_version": { "type": "integer" },
            "providers": { "type": "array", "items": schema_ref("ProviderState") },
            "versions": { "type": "array", "items": object(json!({
                "version": { "type": "integer" },
                "title": { "type": "string" },
                "sha256": { "type": "string" },
                "effective_from": { "type": "string" },
                "effective_until": { "type": ["string", "null"] },
                "in_force": { "type": "boolean" },
                "submitted_by": { "type": "string" },
                "submitted_at": { "type": "string" },
                "document": { "type": "string" },
            }), &["version", "title", "sha256", "effective_from", "effective_until", "in_force", "submitted_by", "submitted_at", "document"]) },
            "consent_history": { "type": "array", "items": object(json!({
                "seq": { "type": "integer" },
                "operator": { "type": "string" },
                "action": { "type": "string" },
                "from": { "type": "string" },
                "to": { "type": "string" },
                "actor": { "type": "string" },
                "at": { "type": "string" },
            }), &["seq", "operator", "action", "from", "to", "actor", "at"]) },
        }), &["agreement_id", "prefecture", "as_of", "current_version", "latest_version", "providers", "versions", "consent_history"]),
        "Submitted": object(json!({
            "agreement_id": { "type": "string" },
            "version": { "type": "integer" },
            "sha256": { "type": "string" },
            "effective_from": { "type": "string" },
            "in_force": { "type": "boolean" },
            "audit_index": counter(),
            "reasked": { "type": "array", "items": object(json!({
                "operator": { "type": "string" },
                "widened": { "type": "array", "items": { "type": "string" } },
            }), &["operator", "widened"]) },
        }), &["agreement_id", "version", "sha256", "effective_from", "in_force", "audit_index", "reasked"]),
        "TransferRequest": object(json!({
            "to_center": { "type": "string", "description": "The receiving center's id (registry)" },
        }), &["to_center"]),
        "Transfer": object(json!({
            "id": counter(),
            "ref": { "type": "string", "description": "The case's reference under the center it leaves" },
            "case_id": { "type": "string" },
            "from_center": { "type": "string" },
            "to_center": { "type": "string" },
            "state": { "type": "string", "enum": ["pending", "accepted", "declined"] },
            "direction": { "type": "string", "enum": ["outgoing", "incoming"] },
            "requested_at": { "type": "string" },
            "decided_at": { "type": "string" },
            "audit_index": counter(),
        }), &["id", "ref", "case_id", "from_center", "to_center", "state", "requested_at"]),
        "TransferList": object(json!({
            "transfers": { "type": "array", "items": schema_ref("Transfer") },
        }), &["transfers"]),
        "NewResponse": object(json!({
            "kind": { "type": "string", "enum": ["visited", "safety_confirmed", "protected", "found", "other"] },
            "at": { "type": "string", "format": "date-time", "description": "When the police acted (RFC 3339), not in the future" },
            "note": { "type": "string", "maxLength": crate::centers::MAX_NOTE_CHARS, "description": "Free text: tabs and line breaks, no other controls or bidirectional formatting" },
        }), &["kind", "at"]),
        "ResponseReceipt": object(json!({
            "id": counter(),
            "receipt": object(json!({
                "audit_index": counter(),
                "entry": { "type": "string" },
                "checkpoint": { "type": "string" },
                "inclusion_proof": { "type": "array", "items": { "type": "string" } },
            }), &["audit_index", "entry", "checkpoint", "inclusion_proof"]),
        }), &["id", "receipt"]),
        "ResponsePage": object(json!({
            "responses": { "type": "array", "items": object(json!({
                "id": counter(),
                "audit_index": counter(),
                "recorded_at": { "type": "string" },
                "response": object(json!({
                    "ref": { "type": "string" }, "case_id": { "type": "string" }, "case_version": counter(),
                    "kind": { "type": "string" }, "at": { "type": "string" }, "note": { "type": "string" },
                    "station_id": { "type": "string" }, "terminal_no": {}, "officer": {},
                }), &["ref", "case_id", "case_version", "kind", "at", "note", "station_id"]),
            }), &["id", "audit_index", "recorded_at", "response"]) },
            "next_after": counter(),
        }), &["responses", "next_after"]),
        "Revoked": object(json!({
            "kind": { "type": "string" },
            "target": { "type": "string" },
            "newly_revoked": { "type": "boolean" },
            "connections_cut": counter(),
            "audit_index": { "type": ["integer", "null"] },
        }), &["kind", "target", "newly_revoked", "connections_cut", "audit_index"]),
        "EntriesPage": object(json!({
            "start": counter(),
            "entries": { "type": "array", "items": { "type": "string" } },
            "tree_size": counter(),
        }), &["start", "entries", "tree_size"]),
        "Proof": object(json!({
            "proof": { "type": "array", "items": { "type": "string", "contentEncoding": "base64" } },
        }), &["proof"]),
        "Disclosures": object(json!({
            "center_id": { "type": "string" },
            "case_id": { "type": "string" },
            "disclosures": { "type": "array", "items": schema_ref("Disclosure") },
            "next_after": counter(),
        }), &["center_id", "case_id", "disclosures"]),
        "TerminalConfig": object(json!({
            "dev_sign_in": { "type": "boolean" },
            "heartbeat_seconds": { "type": "integer", "description": "The stream's heartbeat interval" },
            "idle_lock_seconds": { "type": "integer", "description": "Idle time before the terminal locks" },
        }), &["dev_sign_in"]),
        "DevTokenRequest": object(json!({
            "subject": { "type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9._-]+$" },
        }), &["subject"]),
        "DevToken": object(json!({
            "token": { "type": "string" },
            "expires_at": { "type": "integer" },
        }), &["token", "expires_at"]),
        "Problem": object(json!({
            "type": { "type": "string", "pattern": "^urn:cgc-gateway:problem:[a-z-]+$" },
            "title": { "type": "string" },
            "status": { "type": "integer", "minimum": 400, "maximum": 599 },
            "detail": { "type": "string" },
            "errors": { "type": "array", "items": object(json!({
                "pointer": { "type": "string", "description": "RFC 6901 JSON pointer; `?name` for a query parameter" },
                "column": { "type": "string", "description": "A batch file's column" },
                "detail": { "type": "string" },
            }), &["detail"]) },
            "stored_version": counter(),
            "candidates": { "type": "array", "items": { "type": "string" } },
            "line": counter(),
            "current_state": { "type": "string" },
            "latest_version": counter(),
        }), &["type", "title", "status"]),
    });
    // Further tables: one `json!` of every schema would pass the macro's recursion limit.
    for more in [more_schemas(), console_schemas()] {
        if let (Value::Object(all), Value::Object(more)) = (&mut all, more) {
            all.extend(more);
        }
    }
    all
}

/// The schemas of what the administrator's console and the CGC's page read.
fn console_schemas() -> Value {
    json!({
        "AdminSession": object(json!({
            "administrator": { "type": "string", "description": "The token's subject" },
            "jurisdiction": { "type": "string", "description": "A prefecture code or a city's municipality code" },
            "kind": { "type": "string", "enum": ["prefecture", "designated_city", "cgc_city", "unknown"] },
            "name": { "type": ["string", "null"], "description": "The jurisdiction's Japanese name" },
            "may_revoke": { "type": "boolean" },
        }), &["administrator", "jurisdiction", "kind", "name", "may_revoke"]),
        "AgreementList": object(json!({
            "agreements": { "type": "array", "items": schema_ref("AgreementDocument") },
        }), &["agreements"]),
        "RevocationList": object(json!({
            "revocations": { "type": "array", "items": object(json!({
                "kind": { "type": "string", "enum": ["terminal", "officer"] },
                "station_id": { "type": "string" },
                "terminal_no": { "type": "integer", "minimum": 1 },
                "officer_id": { "type": "string" },
                "revoked_at": { "type": "string", "format": "date-time" },
                "revoked_by": { "type": "string", "description": "The administrator's principal URN" },
            }), &["kind", "revoked_at", "revoked_by"]) },
        }), &["revocations"]),
        "OwnCases": object(json!({
            "center_id": { "type": "string" },
            "cases": { "type": "array", "items": object(json!({
                "case_id": { "type": "string" },
                "version": { "type": "integer" },
                "updated_at": { "type": ["string", "null"], "format": "date-time" },
                "status": { "type": ["string", "null"] },
                "child_name": { "type": ["string", "null"] },
            }), &["case_id", "version", "updated_at", "status", "child_name"]) },
            "next_after": counter(),
        }), &["center_id", "cases"]),
        "CenterSession": object(json!({
            "center_id": { "type": "string" },
            "name": { "type": ["string", "null"], "description": "The center's Japanese name" },
            "stations": { "type": "object", "additionalProperties": { "type": "string" }, "description": "Police station ids and their Japanese names" },
        }), &["center_id", "name", "stations"]),
    })
}

/// The schemas of list items and summaries, the centers' disclosures, and the policy review.
fn more_schemas() -> Value {
    json!({
        "AgreementDiff": object(json!({
            "agreement_id": { "type": "string" },
            "from": { "type": "integer", "minimum": 1 },
            "to": { "type": ["integer", "null"], "minimum": 1, "description": "null for a proposal" },
            "verdict": { "enum": ["no_new_access", "new_access"] },
            "gains": { "type": "array", "items": schema_ref("PolicyChange") },
            "losses": { "type": "array", "items": schema_ref("PolicyChange") },
        }), &["agreement_id", "from", "to", "verdict", "gains", "losses"]),
        "PolicyChange": object(json!({
            "provider": { "type": "string", "description": "The provider's operator id" },
            "provider_name": { "type": "string" },
            "criterion": { "enum": ["all", "injury_neglect_sexual", "safety_unconfirmed_48h", "return_home", "missing"] },
            "audience": { "enum": ["covering_station", "prefecture_stations", "hq"] },
            "dv": { "type": "boolean" },
            "consent": { "type": "string", "description": "`active` for a city provider, `not_required` for the prefecture's own cases" },
            "fields": { "type": "array", "items": { "type": "string" } },
            "clause": { "type": "string", "description": "The clause responsible, e.g. views.hq" },
        }), &["provider", "provider_name", "criterion", "audience", "dv", "consent", "fields", "clause"]),
        "SimulateRequest": object(json!({
            "station_id": schema_ref("Identifier"),
            "terminal_no": { "type": "integer", "minimum": 1 },
            "center_id": schema_ref("Identifier"),
            "case_id": schema_ref("Identifier"),
            "document": { "type": ["string", "null"], "description": "A draft version (TOML) to simulate as in force" },
        }), &["station_id", "terminal_no", "center_id", "case_id"]),
        "Simulated": object(json!({
            "visible": { "type": "boolean" },
            "clause": { "type": ["string", "null"] },
            "fields": { "type": "array", "items": { "type": "string" } },
            "summary_fields": { "type": "array", "items": { "type": "string" } },
        }), &["visible", "clause", "fields", "summary_fields"]),
        "AuditReceipt": object(json!({
            "index": counter(),
            "entry": { "type": "string", "description": "The audit entry's line" },
            "checkpoint": { "type": "string", "description": "The signed checkpoint that covers it" },
            "inclusion_proof": { "type": "array", "items": { "type": "string", "contentEncoding": "base64" } },
        }), &["index", "entry", "checkpoint", "inclusion_proof"]),
        "CaseItem": object(json!({
            "ref": { "type": "string", "description": "<center_id>:<case_id>" },
            "center_id": { "type": "string" },
            "case_id": { "type": "string" },
            "version": { "type": "integer" },
            "updated_at": { "type": "string", "format": "date-time" },
            "summary": { "type": "object", "description": "The fields of the case record the agreement's summary for this audience allows, nothing else" },
            "allowed": { "type": "array", "items": { "type": "string" }, "description": "The field paths the summary allows (so that 'not shared' differs from 'not set')" },
            "receipt": schema_ref("Receipt"),
        }), &["ref", "center_id", "case_id", "version", "updated_at", "summary", "allowed", "receipt"]),
        "Disclosure": object(json!({
            "audit_index": counter(),
            "time": {}, "terminal": {}, "station": {}, "officer": {}, "case_version": {},
            "fields": {}, "channel": {}, "agreement": {}, "set": {}, "clause": {},
            "kind": { "enum": ["opened", "listed"] },
            "line": { "type": "string", "description": "The signed entry itself" },
            "receipt": { "anyOf": [schema_ref("AuditReceipt"), { "type": "null" }] },
        }), &["audit_index", "time", "terminal", "station", "officer", "case_version", "fields", "channel", "kind", "set", "clause", "agreement", "line", "receipt"]),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn keys(v: &Value) -> BTreeSet<String> {
        v["properties"].as_object().unwrap().keys().cloned().collect()
    }

    fn strip_null(v: &Value) -> &Value {
        v.get("anyOf").map_or(v, |a| &a[0])
    }

    fn set(words: &[&str]) -> BTreeSet<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn the_case_schema_names_exactly_the_fields_the_validator_takes() {
        let doc = document(false);
        let case = &doc["components"]["schemas"]["CaseRecord"];
        assert_eq!(keys(case), set(rules::CASE_FIELDS));
        let p = &case["properties"];
        let child = &p["child"];
        assert_eq!(keys(child), set(rules::CHILD_FIELDS));
        assert_eq!(keys(&child["properties"]["address"]), set(rules::ADDRESS_FIELDS));
        assert_eq!(keys(&strip_null(&p["guardians"])["items"]), set(rules::GUARDIAN_FIELDS));
        assert_eq!(keys(&p["abuse"]), set(rules::ABUSE_FIELDS));
        assert_eq!(keys(&p["flags"]), set(rules::FLAGS_FIELDS));
        assert_eq!(keys(strip_null(&p["assessment"])), set(rules::ASSESSMENT_FIELDS));
        assert_eq!(keys(strip_null(&p["center_contact"])), set(rules::CONTACT_FIELDS));
        // Every object refuses unknown fields, as the validator does.
        for object in [case, child, &p["abuse"], &p["flags"], strip_null(&p["assessment"])] {
            assert_eq!(object["additionalProperties"], false);
        }
    }

    #[test]
    fn the_case_schema_requires_what_the_validator_requires_and_allows_null_elsewhere() {
        let doc = document(false);
        let case = &doc["components"]["schemas"]["CaseRecord"];
        let required: BTreeSet<String> = case["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        for field in rules::CASE_FIELDS {
            let schema = &case["properties"][*field];
            let nullable = schema.get("anyOf").is_some();
            // A required field may not be null; an optional one may be absent or null.
            assert_ne!(required.contains(*field), nullable, "{field}");
        }
        assert_eq!(
            case["properties"]["status"]["enum"],
            words(rules::STATUSES),
            "the enumerations come from the validator's tables"
        );
    }

    #[test]
    fn every_reference_in_the_document_resolves() {
        fn walk(v: &Value, doc: &Value, seen: &mut usize) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        let pointer = r.strip_prefix('#').unwrap();
                        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
                        *seen += 1;
                    }
                    map.values().for_each(|v| walk(v, doc, seen));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(v, doc, seen)),
                _ => {}
            }
        }
        let doc = document(true);
        let mut seen = 0;
        walk(&doc, &doc, &mut seen);
        assert!(seen > 50, "only {seen} references");
    }

    #[test]
    fn every_path_parameter_is_described_and_every_operation_id_is_unique() {
        let mut ids = BTreeSet::new();
        for operation in operations(true) {
            assert!(ids.insert(operation.id), "operationId {} twice", operation.id);
            for name in operation.path_parameters() {
                assert!(
                    !path_parameter(name).1.is_empty(),
                    "{} {}: describe the path parameter `{name}` in openapi::path_parameter",
                    operation.method,
                    operation.route
                );
            }
            assert!(
                !operation.answers.is_empty(),
                "{} {} has no answer",
                operation.method,
                operation.route
            );
        }
    }

    #[test]
    fn the_dev_token_route_is_documented_only_where_it_is_routed() {
        let with = document(true);
        let without = document(false);
        assert!(with["paths"].get("/v1/dev/token").is_some());
        assert!(without["paths"].get("/v1/dev/token").is_none());
    }

    #[test]
    fn the_examples_are_valid_requests_that_name_each_other() {
        let (_, case) = rules::parse_recorded_case_bytes(EXAMPLE_CASE.as_bytes()).unwrap();
        assert_eq!(Some(json!(case.case_id.as_str())), path_example("case_id"));
        assert_eq!(Some(json!(case.center_id.as_str())), path_example("center_id"));
        assert_eq!(Some(json!(case.reference())), path_example("case_ref"));
        let doc = document(false);
        let put = &doc["paths"]["/v1/cases/{case_id}"]["put"];
        assert_eq!(
            put["requestBody"]["content"]["application/json"]["example"]["case_id"],
            "YKS-2026-0001"
        );
        assert_eq!(put["parameters"][0]["example"], "YKS-2026-0001");
        let agreement: toml::Table = toml::from_str(EXAMPLE_AGREEMENT).unwrap();
        assert_eq!(
            Some(json!(agreement["id"].as_str().unwrap())),
            path_example("agreement_id")
        );
    }

    #[test]
    fn wildcard_routes_become_plain_openapi_parameters() {
        let doc = document(false);
        let tile = &doc["paths"]["/v1/audit/tile/{path}"]["get"];
        assert_eq!(tile["parameters"][0]["name"], "path");
        assert_eq!(tile["parameters"][0]["in"], "path");
    }
}
