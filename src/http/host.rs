//! Which requests are meant for this gateway. A request names its host twice over: in its
//! target (HTTP/1.1 absolute-form `GET https://host/path`, HTTP/2 `:authority`) and in its `Host`
//! header. The two must agree, and if `hosts` is configured the host must be one of them;
//! otherwise the request is refused before any route sees it, rather than served as though it
//! had been sent here. Ports are not compared: behind a load balancer the gateway cannot know
//! the port its clients dial.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The host names this gateway answers to; empty: any (the two names of a request must still
/// agree).
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    names: Arc<[String]>,
}

impl Hosts {
    /// `names` as configured: DNS names or IP addresses (IPv6 in brackets), without ports.
    pub fn new(names: &[String]) -> Result<Self, String> {
        let names = names
            .iter()
            .map(|n| {
                let without_port = n.parse::<Authority>().is_ok_and(|a| a.port().is_none());
                parse_host(n)
                    .filter(|_| without_port)
                    .ok_or_else(|| format!("hosts: `{n}` is not a host name (give names without scheme or port)"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { names: names.into() })
    }

    /// Refuses a request whose target and `Host` header disagree (400), that names no host
    /// (400), that is not for `https` or whose host is not one of ours (421 Misdirected Request).
    pub fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
        if uri.scheme().is_some_and(|s| s.as_str() != "https") {
            return Err(ApiError::Misdirected("this gateway serves https only".into()));
        }
        let mut host_headers = headers.get_all(header::HOST).iter();
        let host_header = match (host_headers.next(), host_headers.next()) {
            (None, _) => None,
            (Some(v), None) => Some(
                v.to_str()
                    .ok()
                    .and_then(parse_host)
                    .ok_or_else(|| bad_request("the Host header is not a host name"))?,
            ),
            (Some(_), Some(_)) => return Err(bad_request("the request has more than one Host header")),
        };
        let target = uri.authority().map(authority_host).transpose()?;
        let host = match (target, host_header) {
            (Some(t), Some(h)) if t != h => {
                return Err(bad_request(
                    "the request target and the Host header name different hosts",
                ));
            }
            (Some(h), _) | (None, Some(h)) => h,
            (None, None) => return Err(bad_request("the request names no host")),
        };
        if self.names.is_empty() || self.names.contains(&host) {
            Ok(())
        } else {
            Err(ApiError::Misdirected("this gateway does not serve that host".into()))
        }
    }
}

fn bad_request(detail: &str) -> ApiError {
    ApiError::Invalid {
        detail: detail.into(),
        errors: Vec::new(),
    }
}

fn authority_host(a: &Authority) -> Result<String, ApiError> {
    parse_host(a.as_str()).ok_or_else(|| bad_request("the request target is not a host name"))
}

/// The host of `host[:port]`, lower-cased and without a trailing dot; `None` if it is not one
/// (empty, with user information, or not an authority at all).
fn parse_host(s: &str) -> Option<String> {
    if s.contains('@') {
        return None;
    }
    let authority: Authority = s.parse().ok()?;
    let host = authority.host();
    let host = host.strip_suffix('.').unwrap_or(host);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The middleware: refuses what `Hosts::check` refuses, before routing.
pub async fn only_our_hosts(State(hosts): State<Hosts>, request: Request, next: Next) -> Response {
    match hosts.check(request.uri(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn hosts(names: &[&str]) -> Hosts {
        Hosts::new(&names.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap()
    }

    fn check(h: &Hosts, uri: &str, host: &[&str]) -> Result<(), u16> {
        let mut headers = HeaderMap::new();
        for v in host {
            headers.append(header::HOST, HeaderValue::from_str(v).unwrap());
        }
        h.check(&uri.parse().unwrap(), &headers)
            .map_err(|e| e.status().as_u16())
    }

    #[test]
    fn configured_hosts_are_served_whatever_the_case_port_or_trailing_dot() {
        let h = hosts(&["gateway.pref.kanagawa.example", "10.0.0.5", "[::1]"]);
        for host in [
            "gateway.pref.kanagawa.example",
            "Gateway.Pref.Kanagawa.Example:8443",
            "gateway.pref.kanagawa.example.",
            "10.0.0.5:443",
            "[::1]:8443",
        ] {
            assert_eq!(check(&h, "/v1/terminal/cases", &[host]), Ok(()), "{host}");
        }
        assert_eq!(
            check(&h, "https://gateway.pref.kanagawa.example:8443/v1/terminal/cases", &[]),
            Ok(())
        );
    }

    #[test]
    fn a_foreign_host_is_misdirected() {
        let h = hosts(&["localhost"]);
        assert_eq!(check(&h, "/v1/terminal/cases", &["evil.example"]), Err(421));
        assert_eq!(
            check(&h, "https://evil.example/v1/terminal/cases", &["evil.example"]),
            Err(421)
        );
        assert_eq!(check(&h, "https://evil.example/v1/terminal/cases", &[]), Err(421));
        assert_eq!(
            check(&h, "http://localhost/v1/terminal/cases", &["localhost"]),
            Err(421)
        );
    }

    #[test]
    fn a_target_and_host_header_that_disagree_are_refused_even_when_any_host_is_served() {
        for h in [Hosts::default(), hosts(&["localhost", "evil.example"])] {
            assert_eq!(
                check(&h, "https://evil.example/v1/terminal/cases", &["localhost"]),
                Err(400)
            );
            assert_eq!(
                check(&h, "https://localhost:8443/v1/terminal/cases", &["localhost"]),
                Ok(())
            );
        }
    }

    #[test]
    fn requests_naming_no_host_or_several_are_refused() {
        let any = Hosts::default();
        assert_eq!(check(&any, "/v1/terminal/cases", &[]), Err(400));
        assert_eq!(check(&any, "/v1/terminal/cases", &["a.example", "b.example"]), Err(400));
        assert_eq!(check(&any, "/v1/terminal/cases", &["user@localhost"]), Err(400));
        assert_eq!(check(&any, "/v1/terminal/cases", &[""]), Err(400));
        assert_eq!(check(&any, "/v1/terminal/cases", &["anything.example"]), Ok(()));
    }

    #[test]
    fn configured_names_must_be_bare_hosts() {
        for bad in [
            "https://gateway.example",
            "gateway.example:8443",
            "",
            "user@gateway.example",
        ] {
            assert!(Hosts::new(&[bad.to_owned()]).is_err(), "{bad}");
        }
    }
}
