//! cgc-gateway: the gateway through which child guidance centers share child-abuse cases with
//! the police, live, under signed sharing agreements, with every disclosure signed into an
//! audit log that anyone holding the public key can verify.
//!
//! The layout follows the architecture: `tls` and `identity` are the network edge, `auth` the
//! officers' tokens, `cases` the records centers push, `policy` the pure agreement evaluator,
//! `audit` the signed Merkle log, `witness` the cosigning of its checkpoints by independent
//! witnesses, `store` persistence, `http` the API, `cli` the commands.

pub mod access;
pub mod agreements;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cases;
pub mod centers;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod dev;
pub mod follow;
pub mod http;
pub mod identity;
pub mod ingest;
pub mod limits;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod policy;
pub mod registry;
pub mod revocations;
pub mod search;
pub mod store;
pub mod text;
pub mod tls;
pub mod views;
pub mod witness;
