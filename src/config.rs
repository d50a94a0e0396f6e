//! One TOML file (`serve --config`), unknown keys refused, each value overridable by a
//! `CGC_GATEWAY_*` environment variable. Relative paths are relative to the file's folder.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::cases::validate::JsonLimits;
use crate::identity::PrincipalKind;
use crate::limits::RequestLimits;
use crate::logging::LogFormat;
use crate::tls::TlsFiles;
use crate::tls::serve::ConnectionLimits;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    /// The host names clients reach the gateway by (as in its server certificate); requests
    /// for any other host are refused with 421. Empty: any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// `sqlite://<path>` or `postgres://user@host:port/db`; may hold credentials, so never
    /// printed.
    pub database_url: String,
    /// On PostgreSQL: whether each change and center event also sends a NOTIFY wake-up to the
    /// other instances (default on). Off, they find them by polling (`change_poll_ms`) and
    /// changes also by the check before each request; PostgreSQL then takes no notification
    /// lock at commit.
    #[serde(default = "default_true")]
    pub notify_changes: bool,
    /// On PostgreSQL: how long, in milliseconds, an instance waits for a wake-up before it
    /// looks for the other instances' changes and center events anyway (default 500); a
    /// center stream also looks by itself at twice this interval.
    #[serde(default = "default_change_poll_ms")]
    pub change_poll_ms: u64,
    /// Development only, set by `demo` and never read from a file: the token issuer's private
    /// key, which routes `POST /v1/dev/token` (the demo's sign-in button). `serve` never has it.
    #[serde(skip)]
    pub dev_token_issuer_key: Option<PathBuf>,
    /// The folder with `registry.toml`, `agreements/` and `consents.toml`.
    pub policies: PathBuf,
    pub tls: TlsConfig,
    pub tokens: TokensConfig,
    pub audit: AuditConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub connections: ConnectionsConfig,
    /// The web terminal's behaviour on a shared police terminal.
    #[serde(default)]
    pub terminal: TerminalConfig,
    /// `text` (coloured only on a terminal) or `json` (one object per line, for log shippers).
    #[serde(default)]
    pub log_format: LogFormat,
    /// Where `/metrics` is served, over plain HTTP: loopback by default, `"off"` for nowhere.
    #[serde(default = "default_metrics_listen", deserialize_with = "metrics_listen")]
    pub metrics_listen: Option<SocketAddr>,
}

/// Prometheus's default port range for exporters; loopback, as the scrape carries no
/// authentication.
pub const DEFAULT_METRICS_LISTEN: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 9464));

fn default_metrics_listen() -> Option<SocketAddr> {
    Some(DEFAULT_METRICS_LISTEN)
}

fn parse_metrics_listen(v: &str) -> Result<Option<SocketAddr>, String> {
    if v == "off" {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| format!("`{v}`: expected an address such as 127.0.0.1:9464, or \"off\""))
}

fn metrics_listen<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    let v = String::deserialize(d)?;
    parse_metrics_listen(&v).map_err(serde::de::Error::custom)
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("hosts", &self.hosts)
            .field("database_url", &"<redacted>")
            .field("policies", &self.policies)
            .field("tls", &self.tls)
            .field("tokens", &self.tokens)
            .field("audit", &self.audit)
            .field("limits", &self.limits)
            .field("connections", &self.connections)
            .field("terminal", &self.terminal)
            .field("log_format", &self.log_format)
            .field("metrics_listen", &self.metrics_listen)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub center_ca: PathBuf,
    pub terminal_ca: PathBuf,
    pub admin_ca: PathBuf,
    pub auditor_ca: PathBuf,
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    #[serde(default)]
    pub allow_tls12: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensConfig {
    pub issuer: String,
    /// The identity provider's Ed25519 public key (SPKI PEM).
    pub public_key: PathBuf,
    pub officer_audience: String,
    pub admin_audience: String,
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

fn default_leeway() -> u64 {
    30
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The log's origin line, also the name of its signing key.
    pub origin: String,
    /// Ed25519 PKCS#8 PEM.
    pub signing_key: PathBuf,
    /// Independent witnesses (C2SP tlog-witness) asked to cosign every checkpoint.
    #[serde(default)]
    pub witnesses: Vec<WitnessConfig>,
}

/// One witness: `[[audit.witnesses]]` with its `url` (`http://host:port`, the witness's
/// `add-checkpoint` endpoint's base) and its C2SP verifier key text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    pub url: String,
    pub verifier_key: String,
}

/// Request rates per client certificate and per officer, the bulk-viewing watch, and the
/// coalescing of repeated refusals.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests at once, per client certificate (every kind, checked before anything else)
    /// and per officer.
    pub burst: u32,
    pub per_minute: u32,
    /// The same for a CGC case system's certificate, which pushes cases in bursts (a day's
    /// updates, a back-fill) rather than at a person's pace.
    pub center_burst: u32,
    pub center_per_minute: u32,
    /// Case disclosures to one officer (every channel: list items, detail views, search hits,
    /// stream events) within `bulk_window_minutes` above which a security entry is written to
    /// the audit log.
    pub bulk_views: u64,
    pub bulk_window_minutes: i64,
    /// Repeats of a refusal (same certificate, officer, route and status) within this window
    /// are recorded as one entry with a count when the window closes.
    pub refusal_window_seconds: i64,
    /// Refusals of one certificate within one refusal window above which a security entry is
    /// written to the audit log.
    pub flood_refusals: u64,
    /// The largest body of a batch import (`POST /v1/cases/batch`), which is read as a stream
    /// and never held whole; every other request keeps `body_bytes`.
    pub batch_body_bytes: u64,
    /// The largest body of any other request (a case, an agreement): 413 above it, before the
    /// body is read when its length is announced.
    pub body_bytes: usize,
    /// The deepest nesting of arrays and objects in a pushed case (at most 128).
    pub json_depth: usize,
    /// The longest string (or object key) in a pushed case, in bytes of JSON text.
    pub json_string_bytes: usize,
    /// Header fields of one request (HTTP/1.1 and HTTP/2 alike): 431 above it.
    pub header_count: usize,
    /// The size of one request's header fields, names and values together: 431 above it.
    pub header_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            burst: 120,
            per_minute: 600,
            center_burst: 1200,
            center_per_minute: 6000,
            bulk_views: 1000,
            bulk_window_minutes: 60,
            refusal_window_seconds: 60,
            flood_refusals: 100,
            // 100,000 rows of a few hundred bytes each, with room to spare.
            batch_body_bytes: 256 << 20,
            // A case record is a few kilobytes.
            body_bytes: 1 << 20,
            json_depth: JsonLimits::default().depth,
            json_string_bytes: JsonLimits::default().string_bytes,
            // A browser sends about 20 fields and a few kilobytes (the officer's cookie holds a
            // token of about 700 bytes).
            header_count: 64,
            header_bytes: 16 * 1024,
        }
    }
}

impl LimitsConfig {
    pub fn json(&self) -> JsonLimits {
        JsonLimits {
            depth: self.json_depth,
            string_bytes: self.json_string_bytes,
        }
    }

    pub fn requests(&self) -> RequestLimits {
        RequestLimits {
            body_bytes: self.body_bytes,
            header_count: self.header_count,
            header_bytes: self.header_bytes,
        }
    }
}

/// How long a connection may keep the gateway waiting, and how many one principal may hold open:
/// a connection that sends nothing, or half a request, must not hold a descriptor for ever.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsConfig {
    /// From the accepted TCP connection to the end of the TLS handshake. Covers a client that
    /// connects and sends nothing, or a ClientHello (or its certificate) that never ends; such a
    /// connection has no identity yet, so only this bounds how long it holds a descriptor.
    pub tls_handshake_timeout_ms: u64,
    /// From the end of the TLS handshake to the first request's head (for HTTP/2: the preface
    /// and the first request). Covers a connection that never sends a byte.
    pub first_request_timeout_ms: u64,
    /// How long a connection may sit with no request in flight (keep-alive, or half a request
    /// head) before it is closed.
    pub idle_timeout_ms: u64,
    /// The longest pause within a request body; then 408 and the connection is closed.
    pub body_read_timeout_ms: u64,
    /// Connections one principal may hold open at once; more are closed after the handshake.
    pub per_principal: usize,
    /// HTTP/2 streams one connection may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 streams a client may reset before the gateway has taken them up; past it the
    /// connection is closed with `GOAWAY` (`ENHANCE_YOUR_CALM`): the "rapid reset" attack.
    pub http2_max_pending_resets: usize,
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        Self {
            // A TLS 1.3 handshake with a client certificate takes two round trips: far less
            // than a second on a station's network, a few seconds on a poor mobile link.
            tls_handshake_timeout_ms: 10_000,
            first_request_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            body_read_timeout_ms: 10_000,
            // A browser opens 6 per host and a few tabs may share a certificate; a case system
            // pushes with a pool. Far above honest use, far below a descriptor limit.
            per_principal: 64,
            // A terminal's page holds a stream and a few requests; a case system pushes with a pool.
            http2_max_concurrent_streams: 100,
            // h2's own default.
            http2_max_pending_resets: 20,
        }
    }
}

impl Config {
    /// The accept loop's limits: `[connections]`, and the protocol-level bounds on header fields
    /// that lie beyond `[limits]` (which the HTTP layer answers with a problem).
    pub fn connection_limits(&self) -> ConnectionLimits {
        let mut limits = self.connections.limits();
        limits.max_header_fields = self.limits.header_count.saturating_mul(2).max(16);
        limits.max_header_bytes = self.limits.header_bytes.saturating_mul(2).max(MIN_HEAD_BUFFER);
        limits
    }
}

/// The least room hyper is given for a request head (its own floor is 8 KiB), so that a long
/// target below `header_bytes` is still answered with a problem rather than cut.
const MIN_HEAD_BUFFER: usize = 64 * 1024;

impl ConnectionsConfig {
    pub fn limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            tls_handshake: Duration::from_millis(self.tls_handshake_timeout_ms),
            first_request: Duration::from_millis(self.first_request_timeout_ms),
            idle: Duration::from_millis(self.idle_timeout_ms),
            body_read: Duration::from_millis(self.body_read_timeout_ms),
            per_principal: self.per_principal,
            http2_max_concurrent_streams: self.http2_max_concurrent_streams,
            http2_max_pending_resets: self.http2_max_pending_resets,
            max_header_fields: 2 * LimitsConfig::default().header_count,
            max_header_bytes: MIN_HEAD_BUFFER,
        }
    }
}

/// The web terminal (`/terminal/`): police terminals are shared by a station's officers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TerminalConfig {
    /// Minutes without a key press, click or touch after which the page locks itself: it
    /// signs out and clears everything it showed. 0 turns the lock off.
    pub idle_lock_minutes: u32,
}

impl Default for TerminalConfig {
    fn default() -> Self {
        Self { idle_lock_minutes: 10 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.apply_env(|name| std::env::var(name).ok())?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Applies `CGC_GATEWAY_LISTEN`, `CGC_GATEWAY_HOSTS` (comma-separated),
    /// `CGC_GATEWAY_DATABASE_URL`, `CGC_GATEWAY_POLICIES`, `CGC_GATEWAY_LIMITS_<KEY>` for each
    /// key of `[limits]` (`…_LIMITS_BURST`, `…_LIMITS_PER_MINUTE`, `…_LIMITS_BULK_VIEWS`,
    /// `…_LIMITS_BULK_WINDOW_MINUTES`, `…_LIMITS_REFUSAL_WINDOW_SECONDS`,
    /// `…_LIMITS_FLOOD_REFUSALS`, `…_LIMITS_BATCH_BODY_BYTES`, `…_LIMITS_BODY_BYTES`,
    /// `…_LIMITS_JSON_DEPTH`, `…_LIMITS_JSON_STRING_BYTES`, `…_LIMITS_HEADER_COUNT`,
    /// `…_LIMITS_HEADER_BYTES`) and `CGC_GATEWAY_CONNECTIONS_<KEY>`
    /// for each key of `[connections]`, `CGC_GATEWAY_TERMINAL_IDLE_LOCK_MINUTES`,
    /// `CGC_GATEWAY_LOG_FORMAT` and `CGC_GATEWAY_METRICS_LISTEN`.
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = var("CGC_GATEWAY_LISTEN") {
            self.listen = v.parse().map_err(|_| ConfigError::Env {
                name: "CGC_GATEWAY_LISTEN".into(),
                message: "expected an address such as 0.0.0.0:8443".into(),
            })?;
        }
        if let Some(v) = var("CGC_GATEWAY_HOSTS") {
            self.hosts = v
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = var("CGC_GATEWAY_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = var("CGC_GATEWAY_POLICIES") {
            self.policies = v.into();
        }
        fn number<T: std::str::FromStr>(
            var: &impl Fn(&str) -> Option<String>,
            name: &str,
            into: &mut T,
        ) -> Result<(), ConfigError> {
            if let Some(v) = var(name) {
                *into = v.parse().map_err(|_| ConfigError::Env {
                    name: name.into(),
                    message: "expected a whole number".into(),
                })?;
            }
            Ok(())
        }
        let limits = &mut self.limits;
        number(&var, "CGC_GATEWAY_LIMITS_BURST", &mut limits.burst)?;
        number(&var, "CGC_GATEWAY_LIMITS_PER_MINUTE", &mut limits.per_minute)?;
        number(&var, "CGC_GATEWAY_LIMITS_CENTER_BURST", &mut limits.center_burst)?;
        number(
            &var,
            "CGC_GATEWAY_LIMITS_CENTER_PER_MINUTE",
            &mut limits.center_per_minute,
        )?;
        number(&var, "CGC_GATEWAY_LIMITS_BULK_VIEWS", &mut limits.bulk_views)?;
        number(
            &var,
            "CGC_GATEWAY_LIMITS_BULK_WINDOW_MINUTES",
            &mut limits.bulk_window_minutes,
        )?;
        number(
            &var,
            "CGC_GATEWAY_LIMITS_REFUSAL_WINDOW_SECONDS",
            &mut limits.refusal_window_seconds,
        )?;
        number(&var, "CGC_GATEWAY_LIMITS_FLOOD_REFUSALS", &mut limits.flood_refusals)?;
        number(
            &var,
            "CGC_GATEWAY_LIMITS_BATCH_BODY_BYTES",
            &mut limits.batch_body_bytes,
        )?;
        number(&var, "CGC_GATEWAY_LIMITS_BODY_BYTES", &mut limits.body_bytes)?;
        number(&var, "CGC_GATEWAY_LIMITS_JSON_DEPTH", &mut limits.json_depth)?;
        number(
            &var,
            "CGC_GATEWAY_LIMITS_JSON_STRING_BYTES",
            &mut limits.json_string_bytes,
        )?;
        number(&var, "CGC_GATEWAY_LIMITS_HEADER_COUNT", &mut limits.header_count)?;
        number(&var, "CGC_GATEWAY_LIMITS_HEADER_BYTES", &mut limits.header_bytes)?;
        let c = &mut self.connections;
        number(
            &var,
            "CGC_GATEWAY_CONNECTIONS_TLS_HANDSHAKE_TIMEOUT_MS",
            &mut c.tls_handshake_timeout_ms,
        )?;
        number(
            &var,
            "CGC_GATEWAY_CONNECTIONS_FIRST_REQUEST_TIMEOUT_MS",
            &mut c.first_request_timeout_ms,
        )?;
        number(&var, "CGC_GATEWAY_CONNECTIONS_IDLE_TIMEOUT_MS", &mut c.idle_timeout_ms)?;
        number(
            &var,
            "CGC_GATEWAY_CONNECTIONS_BODY_READ_TIMEOUT_MS",
            &mut c.body_read_timeout_ms,
        )?;
        number(&var, "CGC_GATEWAY_CONNECTIONS_PER_PRINCIPAL", &mut c.per_principal)?;
        number(
            &var,
            "CGC_GATEWAY_CONNECTIONS_HTTP2_MAX_CONCURRENT_STREAMS",
            &mut c.http2_max_concurrent_streams,
        )?;
        number(
            &var,
            "CGC_GATEWAY_CONNECTIONS_HTTP2_MAX_PENDING_RESETS",
            &mut c.http2_max_pending_resets,
        )?;
        number(
            &var,
            "CGC_GATEWAY_TERMINAL_IDLE_LOCK_MINUTES",
            &mut self.terminal.idle_lock_minutes,
        )?;
        if let Some(v) = var("CGC_GATEWAY_LOG_FORMAT") {
            self.log_format = v.parse().map_err(|message| ConfigError::Env {
                name: "CGC_GATEWAY_LOG_FORMAT".into(),
                message,
            })?;
        }
        if let Some(v) = var("CGC_GATEWAY_METRICS_LISTEN") {
            self.metrics_listen = parse_metrics_listen(&v).map_err(|message| ConfigError::Env {
                name: "CGC_GATEWAY_METRICS_LISTEN".into(),
                message,
            })?;
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.policies);
        for p in [
            &mut self.tls.server_cert,
            &mut self.tls.server_key,
            &mut self.tls.center_ca,
            &mut self.tls.terminal_ca,
            &mut self.tls.admin_ca,
            &mut self.tls.auditor_ca,
            &mut self.tokens.public_key,
            &mut self.audit.signing_key,
        ] {
            fix(p);
        }
        self.tls.crls.iter_mut().for_each(fix);
    }

    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles {
            server_cert: self.tls.server_cert.clone(),
            server_key: self.tls.server_key.clone(),
            client_cas: vec![
                (PrincipalKind::Center, self.tls.center_ca.clone()),
                (PrincipalKind::Terminal, self.tls.terminal_ca.clone()),
                (PrincipalKind::Admin, self.tls.admin_ca.clone()),
                (PrincipalKind::Auditor, self.tls.auditor_ca.clone()),
            ],
            crls: self.tls.crls.clone(),
            allow_tls12: self.tls.allow_tls12,
        }
    }

    /// The configuration of a development gateway over a `dev-certs` folder.
    pub fn development(certs: &Path, data: &Path, policies: &Path, listen: SocketAddr) -> Self {
        let ca = |kind: &str| certs.join("ca").join(format!("{kind}-ca.pem"));
        Config {
            listen,
            // The development server certificate names only localhost.
            hosts: vec!["localhost".into()],
            database_url: format!("sqlite://{}", data.join("gateway.db").display()),
            notify_changes: true,
            change_poll_ms: default_change_poll_ms(),
            dev_token_issuer_key: None,
            policies: policies.to_owned(),
            tls: TlsConfig {
                server_cert: certs.join("server.pem"),
                server_key: certs.join("server-key.pem"),
                center_ca: ca("center"),
                terminal_ca: ca("terminal"),
                admin_ca: ca("admin"),
                auditor_ca: ca("auditor"),
                crls: Vec::new(),
                allow_tls12: false,
            },
            tokens: TokensConfig {
                issuer: DEV_TOKEN_ISSUER.into(),
                public_key: certs.join("token-issuer").join("issuer-pub.pem"),
                officer_audience: OFFICER_AUDIENCE.into(),
                admin_audience: ADMIN_AUDIENCE.into(),
                leeway_seconds: default_leeway(),
            },
            audit: AuditConfig {
                origin: DEV_AUDIT_ORIGIN.into(),
                signing_key: certs.join("audit").join("log-key.pem"),
                witnesses: Vec::new(),
            },
            limits: LimitsConfig::default(),
            connections: ConnectionsConfig::default(),
            terminal: TerminalConfig::default(),
            log_format: LogFormat::default(),
            // Development gateways (demo, tests) run side by side: no fixed port unless asked.
            metrics_listen: None,
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_change_poll_ms() -> u64 {
    500
}

pub const DEV_TOKEN_ISSUER: &str = "https://idp.dev.cgc-gateway.invalid";
pub const OFFICER_AUDIENCE: &str = "cgc-gateway:terminal";
pub const ADMIN_AUDIENCE: &str = "cgc-gateway:admin";
pub const DEV_AUDIT_ORIGIN: &str = "dev.cgc-gateway.invalid/audit/kanagawa";

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn every_limit_can_be_overridden_from_the_environment() {
        let dir = Path::new("/nonexistent");
        let mut config = Config::development(dir, dir, dir, "127.0.0.1:0".parse().unwrap());
        config
            .apply_env(|name| {
                let value = match name {
                    "CGC_GATEWAY_LIMITS_BURST" => "7",
                    "CGC_GATEWAY_LIMITS_PER_MINUTE" => "8",
                    "CGC_GATEWAY_LIMITS_BULK_VIEWS" => "9",
                    "CGC_GATEWAY_LIMITS_BULK_WINDOW_MINUTES" => "10",
                    "CGC_GATEWAY_LIMITS_REFUSAL_WINDOW_SECONDS" => "11",
                    "CGC_GATEWAY_LIMITS_FLOOD_REFUSALS" => "12",
                    "CGC_GATEWAY_LIMITS_BATCH_BODY_BYTES" => "13",
                    "CGC_GATEWAY_LIMITS_BODY_BYTES" => "14",
                    "CGC_GATEWAY_LIMITS_JSON_DEPTH" => "15",
                    "CGC_GATEWAY_LIMITS_JSON_STRING_BYTES" => "16",
                    "CGC_GATEWAY_LIMITS_HEADER_COUNT" => "17",
                    "CGC_GATEWAY_LIMITS_HEADER_BYTES" => "18",
                    "CGC_GATEWAY_CONNECTIONS_HTTP2_MAX_CONCURRENT_STREAMS" => "19",
                    "CGC_GATEWAY_CONNECTIONS_HTTP2_MAX_PENDING_RESETS" => "20",
                    "CGC_GATEWAY_CONNECTIONS_TLS_HANDSHAKE_TIMEOUT_MS" => "21",
                    "CGC_GATEWAY_CONNECTIONS_FIRST_REQUEST_TIMEOUT_MS" => "22",
                    "CGC_GATEWAY_CONNECTIONS_IDLE_TIMEOUT_MS" => "23",
                    "CGC_GATEWAY_CONNECTIONS_BODY_READ_TIMEOUT_MS" => "24",
                    "CGC_GATEWAY_CONNECTIONS_PER_PRINCIPAL" => "25",
                    _ => return None,
                };
                Some(value.to_owned())
            })
            .unwrap();
        let l = &config.limits;
        assert_eq!(
            (l.burst, l.per_minute, l.bulk_views, l.bulk_window_minutes),
            (7, 8, 9, 10)
        );
        assert_eq!(
            (l.refusal_window_seconds, l.flood_refusals, l.batch_body_bytes),
            (11, 12, 13)
        );
        assert_eq!(
            (
                l.body_bytes,
                l.json_depth,
                l.json_string_bytes,
                l.header_count,
                l.header_bytes
            ),
            (14, 15, 16, 17, 18)
        );
        let c = &config.connections;
        assert_eq!((c.http2_max_concurrent_streams, c.http2_max_pending_resets), (19, 20));
        assert_eq!(
            (
                c.tls_handshake_timeout_ms,
                c.first_request_timeout_ms,
                c.idle_timeout_ms,
                c.body_read_timeout_ms,
                c.per_principal
            ),
            (21, 22, 23, 24, 25)
        );
        assert_eq!(config.connection_limits().tls_handshake, Duration::from_millis(21));
        let err = config
            .apply_env(|name| (name == "CGC_GATEWAY_LIMITS_FLOOD_REFUSALS").then(|| "many".to_owned()))
            .unwrap_err();
        assert!(err.to_string().contains("CGC_GATEWAY_LIMITS_FLOOD_REFUSALS"));
    }

    #[test]
    fn metrics_listen_is_loopback_by_default_and_can_be_off() {
        let dir = Path::new("dev");
        let mut config = Config::development(dir, dir, dir, "127.0.0.1:0".parse().unwrap());
        let text = |extra: &str| {
            format!(
                "listen = \"0.0.0.0:8443\"\ndatabase_url = \"sqlite://x\"\npolicies = \"p\"\n{extra}\n\
                 [tls]\nserver_cert = \"a\"\nserver_key = \"a\"\ncenter_ca = \"a\"\nterminal_ca = \"a\"\n\
                 admin_ca = \"a\"\nauditor_ca = \"a\"\n[tokens]\nissuer = \"i\"\npublic_key = \"k\"\n\
                 officer_audience = \"o\"\nadmin_audience = \"a\"\n[audit]\norigin = \"o\"\nsigning_key = \"k\"\n"
            )
        };
        let parsed: Config = toml::from_str(&text("")).unwrap();
        assert_eq!(parsed.metrics_listen, Some(DEFAULT_METRICS_LISTEN));
        assert!(DEFAULT_METRICS_LISTEN.ip().is_loopback());
        let parsed: Config = toml::from_str(&text("metrics_listen = \"off\"")).unwrap();
        assert_eq!(parsed.metrics_listen, None);
        let parsed: Config = toml::from_str(&text("metrics_listen = \"127.0.0.1:9000\"")).unwrap();
        assert_eq!(parsed.metrics_listen, Some("127.0.0.1:9000".parse().unwrap()));
        assert!(toml::from_str::<Config>(&text("metrics_listen = \"everywhere\"")).is_err());
        config
            .apply_env(|name| (name == "CGC_GATEWAY_METRICS_LISTEN").then(|| "127.0.0.1:9465".to_owned()))
            .unwrap();
        assert_eq!(config.metrics_listen, Some("127.0.0.1:9465".parse().unwrap()));
    }

    #[test]
    fn hosts_come_from_the_file_or_a_comma_separated_variable() {
        let dir = Path::new("dev");
        let mut config = Config::development(dir, dir, dir, "127.0.0.1:0".parse().unwrap());
        assert_eq!(config.hosts, ["localhost"]);
        config
            .apply_env(|name| (name == "CGC_GATEWAY_HOSTS").then(|| " gw.example , 10.0.0.5,".to_owned()))
            .unwrap();
        assert_eq!(config.hosts, ["gw.example", "10.0.0.5"]);
    }
}
