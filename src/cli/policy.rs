//! `cgc-gateway policy check|simulate|apply` (SPEC §6): what an administrator runs before and
//! while activating an agreement. Each command is a function returning its output, so tests run
//! them without a process; `main` only prints and sets the exit code.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use hyper::Method;
use serde_json::Value;
use time::OffsetDateTime;

use crate::cases::validate::parse_recorded_case_bytes;
use crate::client::GatewayClient;
use crate::policy::{Agreement, ConsentBook, PolicyError, PolicyWorld, explain, find_overlap, project};
use crate::registry::Registry;

/// Checks a policy folder (registry, every agreement, consents, and the agreements together)
/// or one file. Returns a summary, or every problem found as `file:line: message`.
pub fn check(path: &Path) -> Result<String, Vec<PolicyError>> {
    if path.is_dir() {
        check_dir(path)
    } else {
        check_file(path)
    }
}

fn check_dir(dir: &Path) -> Result<String, Vec<PolicyError>> {
    let registry = Registry::load(&dir.join("registry.toml")).map_err(|e| vec![e])?;
    let files = agreement_files(dir).map_err(|e| vec![e])?;
    let mut errors = Vec::new();
    let mut agreements: Vec<Agreement> = Vec::new();
    let mut paths: Vec<&PathBuf> = Vec::new();
    for path in &files {
        match Agreement::load(path, &registry) {
            Ok(a) => {
                if let Some(other) = agreements
                    .iter()
                    .position(|b| b.id() == a.id() && b.version() == a.version())
                {
                    let first = paths.get(other).map_or_else(String::new, |p| p.display().to_string());
                    errors.push(PolicyError::new(
                        &path.display().to_string(),
                        None,
                        format!(
                            "agreement `{}` version {} is also defined by {first}",
                            a.id(),
                            a.version()
                        ),
                    ));
                    continue;
                }
                agreements.push(a);
                paths.push(path);
            }
            Err(e) => errors.push(e),
        }
    }
    if let Some(o) = find_overlap(&agreements) {
        let path = paths
            .get(o.second)
            .map_or_else(String::new, |p| p.display().to_string());
        let line = line_containing(Path::new(&path), &format!("\"{}\"", o.operator));
        errors.push(PolicyError::new(&path, line, o.message(&agreements)));
    }
    let consents = dir.join("consents.toml");
    // With an agreement unreadable, every consent naming it would be reported too: noise.
    if consents.exists()
        && agreements.len() == files.len()
        && let Err(e) = ConsentBook::load(&consents, &registry, &agreements)
    {
        errors.push(e);
    }
    if errors.is_empty() {
        Ok(format!(
            "{}: registry, {} agreement version(s){} OK",
            dir.display(),
            agreements.len(),
            if consents.exists() { " and consents" } else { "" }
        ))
    } else {
        Err(errors)
    }
}

fn check_file(path: &Path) -> Result<String, Vec<PolicyError>> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name == "registry.toml" {
        Registry::load(path).map_err(|e| vec![e])?;
        return Ok(format!("{}: registry OK", path.display()));
    }
    let registry_path = registry_near(path);
    let registry = Registry::load(&registry_path).map_err(|e| vec![e])?;
    if name == "consents.toml" {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut agreements = Vec::new();
        for f in agreement_files(dir).map_err(|e| vec![e])? {
            agreements.push(Agreement::load(&f, &registry).map_err(|e| vec![e])?);
        }
        ConsentBook::load(path, &registry, &agreements).map_err(|e| vec![e])?;
        return Ok(format!("{}: consents OK", path.display()));
    }
    let a = Agreement::load(path, &registry).map_err(|e| vec![e])?;
    Ok(format!(
        "{}: agreement `{}` version {} OK (checked against {})",
        path.display(),
        a.id(),
        a.version(),
        registry_path.display()
    ))
}

/// `policy diff`: the readable diff of two agreement files (each checked against the registry
/// next to it) and whether the new one gives any new access.
pub fn diff(old: &Path, new: &Path) -> Result<(String, bool), String> {
    let load = |path: &Path| {
        let registry = Registry::load(&registry_near(path)).map_err(|e| e.to_string())?;
        let a = Agreement::load(path, &registry).map_err(|e| e.to_string())?;
        Ok::<_, String>((a, registry))
    };
    let (old, _) = load(old)?;
    let (new, registry) = load(new)?;
    let d = crate::policy::diff(&old, &new, &registry);
    Ok((crate::policy::diff::render(&old, &new, &d), d.new_access()))
}

/// The registry an agreement file is checked against: `registry.toml` next to it or one folder
/// up (the `policies/agreements/` layout), else `policies/registry.toml`.
fn registry_near(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new("."));
    [Some(parent), parent.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join("registry.toml"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("policies/registry.toml"))
}

fn agreement_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyError> {
    let agreements_dir = dir.join("agreements");
    let entries = std::fs::read_dir(&agreements_dir).map_err(|e| PolicyError::io(&agreements_dir, &e))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn line_containing(path: &Path, needle: &str) -> Option<usize> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
}

/// The station of a terminal client name: `terminal-<station>-<n>` → `<station>`.
pub fn station_of(terminal: &str) -> Result<&str, String> {
    terminal
        .strip_prefix("terminal-")
        .and_then(|rest| rest.rsplit_once('-'))
        .filter(|(station, n)| !station.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .map(|(station, _)| station)
        .ok_or_else(|| format!("`{terminal}` is not a terminal client name (terminal-<station>-<n>)"))
}

/// What `terminal` would see of the case in `case_file` at `at`, under the policy folder.
pub fn simulate(policies: &Path, case_file: &Path, terminal: &str, at: OffsetDateTime) -> Result<String, String> {
    let world = PolicyWorld::load(policies).map_err(|e| e.to_string())?;
    let station = station_of(terminal)?;
    let bytes = std::fs::read(case_file).map_err(|e| format!("cannot read {}: {e}", case_file.display()))?;
    let (_, case) = parse_recorded_case_bytes(&bytes).map_err(|errors| {
        let list: Vec<String> = errors
            .iter()
            .map(|e| format!("  {}: {}", e.pointer, e.message))
            .collect();
        format!("{}: not a valid case record:\n{}", case_file.display(), list.join("\n"))
    })?;
    let at_text = at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let reference = format!("{}:{}", case.center_id, case.case_id);
    match explain(&world, &case, station, at) {
        Err(reason) => Ok(format!(
            "{terminal} (station {station}) sees nothing of case {reference} at {at_text}:\n  {reason}\n"
        )),
        Ok(decision) => {
            let (json, disclosed) = project(&case, decision.fields);
            let json = Value::Object(json);
            let mut out = format!(
                "{terminal} (station {station}) sees case {reference} at {at_text}\n  clause: {}\n  audience: {}\n",
                decision.clause, decision.audience
            );
            if case.flags.dv && !decision.fields.contains(crate::policy::FieldPath::ChildAddress) {
                out.push_str("  child.address: withheld (DV case; the agreement names no audience for it)\n");
            }
            if let Some(c) = decision.criterion {
                out.push_str(&format!("  criterion met: {c}\n"));
            }
            let summary: Vec<&str> = decision.summary.iter().map(crate::policy::FieldPath::as_str).collect();
            out.push_str(&format!(
                "  summary (lists, search, stream): {}\n  fields (an officer opening the case):\n",
                summary.join(", ")
            ));
            for field in decision.fields.iter() {
                let value = if disclosed.contains(field) {
                    value_at(&json, field.as_str())
                } else {
                    "(absent from the case)".to_owned()
                };
                out.push_str(&format!("    {field} = {value}\n"));
            }
            Ok(out)
        }
    }
}

/// The projected value of a field path, as compact JSON (guardians' fields as a list).
fn value_at(json: &Value, path: &str) -> String {
    let v = match path.split_once('.') {
        Some(("guardians", field)) => Value::Array(
            json.get("guardians")
                .and_then(Value::as_array)
                .map(|gs| gs.iter().filter_map(|g| g.get(field).cloned()).collect())
                .unwrap_or_default(),
        ),
        Some((outer, inner)) => json
            .get(outer)
            .and_then(|o| o.get(inner))
            .cloned()
            .unwrap_or(Value::Null),
        None => json.get(path).cloned().unwrap_or(Value::Null),
    };
    v.to_string()
}

/// Resolves `https://host:port` to an address.
pub(super) fn gateway_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url}: the gateway URL must start with https://"))?;
    let hostport = rest.trim_end_matches('/');
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:443")
    };
    hostport
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))
}

/// Submits the agreement version in `file` to a running gateway as `client` of the dev PKI at
/// `certs`, with a development token issued at `now`. Returns the gateway's answer.
pub async fn apply(
    file: &Path,
    gateway: &str,
    certs: &Path,
    client: &str,
    now: OffsetDateTime,
) -> Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| format!("{}: {}", file.display(), e.message()))?;
    let id = table
        .get("id")
        .and_then(toml::Value::as_str)
        .ok_or_else(|| format!("{}: the document has no `id`", file.display()))?;
    if !crate::text::is_identifier(id) {
        return Err(format!("{}: `{id}` is not a valid agreement id", file.display()));
    }
    let user = client.rsplit('-').next().unwrap_or(client);
    let token = super::dev_token(certs, client, user, time::Duration::minutes(5), now)?;
    let addr = gateway_addr(gateway)?;
    let http = GatewayClient::from_dev_certs(addr, certs, client).map_err(|e| e.to_string())?;
    let reply = http
        .send(
            Method::PUT,
            &format!("/v1/admin/agreements/{id}"),
            Some(&token),
            Some(text.into_bytes()),
        )
        .await
        .map_err(|e| e.to_string())?;
    let body = reply.text();
    if reply.status.is_success() {
        Ok(body)
    } else {
        let detail = reply
            .json()
            .ok()
            .and_then(|p| p.get("detail").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or(body);
        Err(format!("the gateway refused the version ({}): {detail}", reply.status))
    }
}
