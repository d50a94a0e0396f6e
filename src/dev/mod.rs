//! Development only, together: the development PKI (`pki`, `cgc-gateway dev-certs`), the demo
//! world with its simulated CGC feed (`demo`) and the synthetic cases it pushes (`synth`). None
//! of it is used by `serve`; the development token endpoint (`POST /v1/dev/token`) is routed only
//! when the demo hands the gateway a token issuer key (`Config::dev_token_issuer_key`); `token`
//! issues what it answers.

pub mod demo;
pub mod pki;
pub mod synth;
pub mod token;
