//! Live terminal views: the fan-out hub behind `GET /v1/terminal/stream`.
//!
//! Changes (a stored case version, a new policy world, time passing) enter the hub through
//! [`Hub::apply`], directly from the ingest path or from any [`ChangeSource`] (a PostgreSQL
//! LISTEN/NOTIFY listener feeding updates stored by other gateway instances). The hub evaluates
//! each change once per audience class — a police unit: HQ or a station, since the policy
//! decision depends on the unit and not on the terminal — projects the case once for that
//! unit, and broadcasts one shared event on the unit's bounded ring. Streams hold only a
//! receiver on that ring: an idle stream costs a receiver and a timer, a slow one is cut when
//! it falls a full ring behind, and no stream can delay the hub or another stream. Each stream
//! then writes its own audit entry (per officer, per terminal) before it sends a case.

pub mod cursor;
pub mod hub;

pub use cursor::Cursor;
pub use hub::{Change, ChangeSource, Hub, HubSettings, Stamped, Start, Subscription, UnitCase, UnitEvent};
