//! Ingest: a CGC's case version validated, stored durably under the version rule, and only
//! then handed to the live hub. A service: it owns its errors and knows nothing of HTTP; the
//! single `PUT` and the batch import both go through `Ingest::push`.

pub mod batch;

use std::sync::Arc;

use crate::cases::CurrentCase;
use crate::cases::record::{CaseId, CaseRecord};
use crate::cases::validate::{FieldError, JsonLimits, parse_case_bytes_within};
use crate::clock::SharedClock;
use crate::live::{Change, Hub};
use crate::registry::Registry;
use crate::store::{NewCase, PutOutcome, SharedStore, StoreError};

/// Why a case version was not accepted. Nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The case is invalid: every offending field, by JSON pointer, never with its value.
    #[error("{detail}")]
    Invalid { detail: String, errors: Vec<FieldError> },
    /// The case belongs to another center: a center writes only its own cases.
    #[error("a center may write only its own cases")]
    OtherCenter,
    /// A different body at this or a higher version is stored.
    #[error("version {stored_version} is stored")]
    Conflict { stored_version: u64 },
    /// The case was transferred to `to_center`, which pushes it now.
    #[error("the case was transferred to another center")]
    Transferred { to_center: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    fn one(pointer: &str, detail: &str, message: String) -> Self {
        IngestError::Invalid {
            detail: detail.to_owned(),
            errors: vec![FieldError {
                pointer: pointer.to_owned(),
                message,
            }],
        }
    }
}

/// What happened to an accepted version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Durable now; terminals may see it.
    Stored,
    /// The identical version was already stored.
    Unchanged,
}

impl Ingested {
    pub fn as_str(self) -> &'static str {
        match self {
            Ingested::Stored => "stored",
            Ingested::Unchanged => "unchanged",
        }
    }
}

pub struct Ingest {
    store: SharedStore,
    hub: Arc<Hub>,
    clock: SharedClock,
    json: JsonLimits,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").finish_non_exhaustive()
    }
}

impl Ingest {
    /// `json` bounds the shape of every pushed body before it is parsed.
    pub fn new(store: SharedStore, hub: Arc<Hub>, clock: SharedClock, json: JsonLimits) -> Self {
        Self {
            store,
            hub,
            clock,
            json,
        }
    }

    /// Validates `body` as the case `case_id` pushed by `center_id`, stores it under the version
    /// rule and answers once the outcome is durable. A stored version goes to the live hub.
    pub async fn push(
        &self,
        registry: &Registry,
        center_id: &str,
        case_id: &str,
        body: &[u8],
    ) -> Result<(CaseRecord, Ingested), IngestError> {
        let case_id = CaseId::parse(case_id).map_err(|m| {
            IngestError::one(
                "/case_id",
                "the case id in the URL is invalid",
                format!("URL case id {m}"),
            )
        })?;
        let now = self.clock.now();
        let (_, record) = parse_case_bytes_within(body, now, self.json).map_err(|errors| IngestError::Invalid {
            detail: format!("the case has {} invalid field(s)", errors.len()),
            errors,
        })?;
        if record.center_id.as_str() != center_id {
            return Err(IngestError::OtherCenter);
        }
        if record.case_id != case_id {
            return Err(IngestError::one(
                "/case_id",
                "the request has an invalid field",
                "does not match the case id in the URL".into(),
            ));
        }
        if registry.center(record.center_id.as_str()).is_none() {
            return Err(IngestError::one(
                "/center_id",
                "the request has an invalid field",
                "is not a center of the registry".into(),
            ));
        }
        // The record serialises from typed fields only; this cannot fail, but if it did the
        // version would be refused rather than stored half-formed.
        let canonical = serde_json::to_string(&record)
            .map_err(|_| IngestError::one("", "the case cannot be stored", "could not be serialised".into()))?;
        let outcome = self
            .store
            .put_case(NewCase {
                center_id: record.center_id.as_str(),
                case_id: record.case_id.as_str(),
                version: record.version,
                body: &canonical,
                received_at: now,
            })
            .await?;
        match outcome {
            PutOutcome::Stored { seq, change } => {
                // Acknowledged and durable: terminals may now see it.
                let current = Arc::new(CurrentCase {
                    record: record.clone(),
                    seq,
                    change,
                });
                self.hub.apply(Change::Case(current));
                Ok((record, Ingested::Stored))
            }
            PutOutcome::Identical => Ok((record, Ingested::Unchanged)),
            PutOutcome::Conflict { stored_version } => Err(IngestError::Conflict { stored_version }),
            PutOutcome::Transferred { to_center } => Err(IngestError::Transferred { to_center }),
        }
    }
}
