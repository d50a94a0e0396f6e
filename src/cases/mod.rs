//! Case records: what centers push (`record`), how a push is validated (`validate`). The current version of every case is held by
//! the live hub (`crate::live::Hub`), the one owner of what each unit sees.

pub mod record;
pub mod validate;

use record::CaseRecord;

/// The current version of one case.
#[derive(Debug, Clone)]
pub struct CurrentCase {
    pub record: CaseRecord,
    /// The store's sequence number of this version: orders every accepted update.
    pub seq: i64,
    /// Its row in the store's change log (commit order; see `crate::live::cursor`).
    pub change: i64,
}
