//! The audit log's read API. Nothing here alters the log: there is no write route.
//!
//! `/v1/audit/` is also a C2SP tlog-tiles prefix: `checkpoint`, `tile/<L>/<N>[.p/<W>]` and
//! `tile/entries/<N>[.p/<W>]`, so any tlog-tiles client can mirror and verify the log.
//!
//! Access: entries and entry bundles (which name every center's cases and every officer) are
//! for auditors only. Checkpoints, proofs and hash tiles carry only sizes and hashes, so
//! auditors and CGC case systems may read them (a center verifies its disclosures' receipts
//! with them). "Who saw my case" is for the
//! owning center and auditors; to any other center a case is unknown (404), as it would be if
//! it did not exist. Every refusal is recorded in the log.

use axum::Json;
use axum::Router;
use axum::extract::{MatchedPath, RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;

use super::context::Ctx;
use super::error::ApiError;
use super::extract::{AuditReader, AuditorCaller, UrlParams, refuse};
use crate::audit::tiles::{TILE_WIDTH, TilePath, entry_bundle};

/// The most entries one `GET /v1/audit/entries` answers with; clients page with `start`.
pub const MAX_ENTRIES_PAGE: u64 = 1000;
/// The default and the largest page of `GET …/disclosures`.
pub const DEFAULT_DISCLOSURES_PAGE: u32 = 100;
pub const MAX_DISCLOSURES_PAGE: u32 = 1000;

pub fn routes() -> Router<Ctx> {
    Router::new()
        .route("/v1/audit/checkpoint", get(checkpoint))
        .route("/v1/audit/entries", get(entries))
        .route("/v1/audit/proof/inclusion", get(inclusion))
        .route("/v1/audit/proof/consistency", get(consistency))
        .route("/v1/audit/tile/{*path}", get(tile))
        .route("/v1/centers/{center_id}/cases/{case_id}/disclosures", get(disclosures))
}

/// Parses the query string into the named non-negative integers; anything else is a 400 that
/// names the parameter.
pub(super) fn params<const N: usize>(query: Option<&str>, names: [&str; N]) -> Result<[Option<u64>; N], ApiError> {
    let mut out = [None; N];
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(slot) = names.iter().position(|n| *n == name).and_then(|i| out.get_mut(i)) else {
            let known = names.join(", ");
            return Err(ApiError::invalid(
                &format!("?{name}"),
                &format!("unknown query parameter; expected {known}"),
            ));
        };
        if slot.is_some() {
            return Err(ApiError::invalid(&format!("?{name}"), "given more than once"));
        }
        let canonical = value == "0" || (!value.starts_with('0') && !value.is_empty());
        let parsed = value
            .parse::<u64>()
            .ok()
            .filter(|_| canonical && value.bytes().all(|b| b.is_ascii_digit()));
        *slot = Some(parsed.ok_or_else(|| {
            ApiError::invalid(&format!("?{name}"), &format!("{name} must be a non-negative integer"))
        })?);
    }
    Ok(out)
}

fn required(value: Option<u64>, name: &str) -> Result<u64, ApiError> {
    value.ok_or_else(|| ApiError::invalid(&format!("?{name}"), &format!("{name} is required")))
}

async fn checkpoint(State(ctx): State<Ctx>, _reader: AuditReader) -> Result<Response, ApiError> {
    let latest = ctx
        .audit
        .published_checkpoint()
        .await?
        .ok_or_else(|| ApiError::Internal("no checkpoint published".into()))?;
    let mut response = latest.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

#[derive(Debug, Serialize)]
pub struct EntriesPage {
    pub start: u64,
    /// The exact entry lines (the Merkle leaves), in index order from `start`.
    pub entries: Vec<String>,
    /// The log's size when answered; entries up to here may be fetched.
    pub tree_size: u64,
}

async fn entries(
    State(ctx): State<Ctx>,
    _auditor: AuditorCaller,
    RawQuery(query): RawQuery,
) -> Result<Json<EntriesPage>, ApiError> {
    let [start, end] = params(query.as_deref(), ["start", "end"])?;
    let start = required(start, "start")?;
    let size = ctx.audit.size();
    if start > size {
        return Err(ApiError::invalid(
            "?start",
            &format!("start is beyond the log's {size} entries"),
        ));
    }
    let end = end.unwrap_or(size);
    if end < start {
        return Err(ApiError::invalid("?end", "end must not be below start"));
    }
    // Capped, not refused: the client continues from start + entries.len().
    let end = end.min(size).min(start.saturating_add(MAX_ENTRIES_PAGE));
    let rows = ctx.store.audit_entries(start, end).await?;
    Ok(Json(EntriesPage {
        start,
        entries: rows.into_iter().map(|r| r.line).collect(),
        tree_size: size,
    }))
}

#[derive(Debug, Serialize)]
pub struct Proof {
    /// Base64 of each 32-byte hash, in RFC 9162 order.
    pub proof: Vec<String>,
}

fn proof(hashes: Vec<[u8; 32]>) -> Json<Proof> {
    Json(Proof {
        proof: hashes.iter().map(|h| STANDARD.encode(h)).collect(),
    })
}

async fn inclusion(
    State(ctx): State<Ctx>,
    _reader: AuditReader,
    RawQuery(query): RawQuery,
) -> Result<Json<Proof>, ApiError> {
    let [index, size] = params(query.as_deref(), ["index", "size"])?;
    let (index, size) = (required(index, "index")?, required(size, "size")?);
    let len = ctx.audit.size();
    if size > len {
        return Err(ApiError::invalid(
            "?size",
            &format!("size is beyond the log's {len} entries"),
        ));
    }
    if index >= size {
        return Err(ApiError::invalid("?index", "index must be below size"));
    }
    Ok(proof(ctx.audit.inclusion_proof(index, size).await?))
}

async fn consistency(
    State(ctx): State<Ctx>,
    _reader: AuditReader,
    RawQuery(query): RawQuery,
) -> Result<Json<Proof>, ApiError> {
    let [old, new] = params(query.as_deref(), ["old", "new"])?;
    let (old, new) = (required(old, "old")?, required(new, "new")?);
    let len = ctx.audit.size();
    if new > len {
        return Err(ApiError::invalid(
            "?new",
            &format!("new is beyond the log's {len} entries"),
        ));
    }
    if old == 0 {
        return Err(ApiError::invalid(
            "?old",
            "old must be at least 1 (nothing is proved from an empty tree)",
        ));
    }
    if old > new {
        return Err(ApiError::invalid("?old", "old must not be above new"));
    }
    Ok(proof(ctx.audit.consistency_proof(old, new).await?))
}

/// A hash tile or an entry bundle, byte for byte as C2SP tlog-tiles lays them out. A path
/// that is not canonical, or a tile the tree does not have (yet), is a 404; a tile never
/// changes once served, so it may be cached for ever.
async fn tile(
    State(ctx): State<Ctx>,
    reader: AuditReader,
    UrlParams(path): UrlParams<String>,
    route: MatchedPath,
) -> Result<Response, ApiError> {
    let parsed = TilePath::parse_after_tile(&path).ok_or(ApiError::NotFound)?;
    let bytes = match parsed {
        TilePath::Hashes { level, index, .. } => ctx.audit.tile(level, index, parsed.width()).await?,
        TilePath::Entries { index, .. } => {
            if let AuditReader::Center { .. } = &reader {
                return Err(refuse(
                    &ctx,
                    format!("GET {}", route.as_str()),
                    &reader.peer().principal,
                    None,
                    ApiError::Forbidden("entry bundles are for auditors".into()),
                ));
            }
            let start = index.saturating_mul(TILE_WIDTH as u64);
            let end = start.saturating_add(parsed.width() as u64);
            if end > ctx.audit.size() {
                None
            } else {
                let rows = ctx.store.audit_entries(start, end).await?;
                if rows.len() as u64 != end - start {
                    return Err(ApiError::Internal(format!(
                        "audit entries {start}..{end} are incomplete"
                    )));
                }
                let bundle = entry_bundle(rows.iter().map(|r| r.line.as_bytes())).map_err(|len| {
                    ApiError::Internal(format!("an audit entry of {len} bytes exceeds a bundle's limit"))
                })?;
                Some(bundle)
            }
        }
    };
    let mut response = bytes.ok_or(ApiError::NotFound)?.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok(response)
}

/// One disclosure of a case, as its center sees it.
#[derive(Debug, Serialize)]
pub struct DisclosureView {
    pub audit_index: u64,
    pub time: serde_json::Value,
    /// The terminal's principal URN.
    pub terminal: serde_json::Value,
    pub station: serde_json::Value,
    pub officer: serde_json::Value,
    pub case_version: serde_json::Value,
    pub fields: serde_json::Value,
    /// `list`, `search`, `stream` (the case was listed), `detail` or `print` (an officer opened
    /// it).
    pub channel: serde_json::Value,
    /// `listed` or `opened`.
    pub kind: &'static str,
    /// The agreement's set the fields were cut to: `summary` or `view` (`null` in entries
    /// written before summaries existed).
    pub set: serde_json::Value,
    /// The agreement clause that allowed it.
    pub clause: serde_json::Value,
    /// The agreement, version, clause and audience that allowed it.
    pub agreement: serde_json::Value,
    /// The signed entry itself, so that the center can verify it (signature, inclusion).
    pub line: String,
    /// The entry's receipt against the latest checkpoint (`cgc-gateway audit verify-receipt`);
    /// `null` in the instant before a checkpoint covers it.
    pub receipt: Option<crate::audit::Receipt>,
}

#[derive(Debug, Serialize)]
pub struct Disclosures {
    pub center_id: String,
    pub case_id: String,
    pub disclosures: Vec<DisclosureView>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<u64>,
}

async fn disclosures(
    State(ctx): State<Ctx>,
    reader: AuditReader,
    UrlParams((center_id, case_id)): UrlParams<(String, String)>,
    route: MatchedPath,
    RawQuery(query): RawQuery,
) -> Result<Json<Disclosures>, ApiError> {
    let own = match &reader {
        AuditReader::Auditor { .. } => true,
        AuditReader::Center { center_id: caller, .. } => *caller == center_id,
    };
    if !own || ctx.live.case(&center_id, &case_id).is_none() {
        // Another center's case and an unknown case answer alike, so nothing is learnt.
        return Err(refuse(
            &ctx,
            format!("GET {}", route.as_str()),
            &reader.peer().principal,
            None,
            ApiError::NotFound,
        ));
    }
    // `kind` is a word; the other parameters are numbers.
    let mut kind = None;
    let mut rest = Vec::new();
    for pair in query.as_deref().unwrap_or_default().split('&') {
        match pair.split_once('=') {
            Some(("kind", _)) if kind.is_some() => return Err(ApiError::invalid("?kind", "given more than once")),
            Some(("kind", value)) => kind = Some(value),
            _ => rest.push(pair),
        }
    }
    let kind = match kind.unwrap_or("all") {
        "all" => None,
        "opened" => Some("opened"),
        "listed" => Some("listed"),
        _ => return Err(ApiError::invalid("?kind", "expected opened, listed or all")),
    };
    let rest = rest.join("&");
    let [after, limit] = params(Some(&rest), ["after", "limit"])?;
    let limit = match limit {
        None => DEFAULT_DISCLOSURES_PAGE,
        Some(n @ 1..) => u32::try_from(n).unwrap_or(u32::MAX).min(MAX_DISCLOSURES_PAGE),
        Some(0) => return Err(ApiError::invalid("?limit", "limit must be at least 1")),
    };
    let from = after.map_or(0, |a| a.saturating_add(1));
    let rows = ctx
        .store
        .audit_entries_for_case(&center_id, &case_id, from, limit)
        .await?;
    // Pages are of entries read, whatever the filter keeps of them.
    let next_after = rows.last().map(|r| r.index).filter(|_| rows.len() == limit as usize);
    let mut out = Vec::with_capacity(rows.len());
    for row in rows.into_iter().filter(|r| r.kind == "disclosure") {
        let entry: serde_json::Value = serde_json::from_str(&row.line)
            .map_err(|e| ApiError::Internal(format!("audit entry {}: {e}", row.index)))?;
        let get = |path: &[&str]| {
            path.iter()
                .try_fold(&entry, |v, k| v.get(k))
                .cloned()
                .unwrap_or(serde_json::Value::Null)
        };
        let channel = get(&["channel"]);
        let opened = matches!(channel.as_str(), Some("detail" | "print"));
        let entry_kind = if opened { "opened" } else { "listed" };
        if kind.is_some_and(|k| k != entry_kind) {
            continue;
        }
        let receipt = ctx.audit.receipt_of(row.index, row.line.clone()).await?;
        out.push(DisclosureView {
            audit_index: row.index,
            time: get(&["time"]),
            terminal: get(&["actor", "principal"]),
            station: get(&["station"]),
            officer: get(&["actor", "subject"]),
            case_version: get(&["case", "version"]),
            fields: get(&["fields"]),
            channel,
            kind: entry_kind,
            set: get(&["set"]),
            clause: get(&["agreement", "clause"]),
            agreement: get(&["agreement"]),
            line: row.line,
            receipt,
        });
    }
    Ok(Json(Disclosures {
        center_id,
        case_id,
        disclosures: out,
        next_after,
    }))
}
