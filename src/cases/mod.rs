//! Case records: what centers push (`record`), how a push is validated (`validate`), the
//! current version of every case held in memory for evaluation (`CaseIndex`), and the
//! synthetic cases of the demo feed (`synth`).

pub mod record;
pub mod synth;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use record::CaseRecord;

/// The current version of one case.
#[derive(Debug, Clone)]
pub struct CurrentCase {
    pub record: CaseRecord,
    /// The store's sequence number of this version: orders every accepted update.
    pub seq: i64,
}

/// Every case's current version, keyed by (center, case id).
#[derive(Debug, Default)]
pub struct CaseIndex {
    cases: RwLock<BTreeMap<(String, String), Arc<CurrentCase>>>,
}

impl CaseIndex {
    /// Installs `case` unless a later version is already there (concurrent pushes may finish
    /// out of order).
    pub fn upsert(&self, case: CurrentCase) -> Arc<CurrentCase> {
        let key = (
            case.record.center_id.as_str().to_owned(),
            case.record.case_id.as_str().to_owned(),
        );
        let case = Arc::new(case);
        let mut map = match self.cases.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match map.get(&key) {
            Some(existing) if existing.seq >= case.seq => existing.clone(),
            _ => {
                map.insert(key, case.clone());
                case
            }
        }
    }

    pub fn get(&self, center_id: &str, case_id: &str) -> Option<Arc<CurrentCase>> {
        self.read().get(&(center_id.to_owned(), case_id.to_owned())).cloned()
    }

    /// A snapshot of every case, in (center, case id) order.
    pub fn snapshot(&self) -> Vec<Arc<CurrentCase>> {
        self.read().values().cloned().collect()
    }

    /// Every case with this case id, whatever its center.
    pub fn by_case_id(&self, case_id: &str) -> Vec<Arc<CurrentCase>> {
        self.read()
            .values()
            .filter(|c| c.record.case_id.as_str() == case_id)
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<(String, String), Arc<CurrentCase>>> {
        match self.cases.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
