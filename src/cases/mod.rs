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

/// One line of a center's list of its own cases: what the CGC's page shows of each (its own
/// data, read back from the store; not a disclosure).
#[derive(Debug, Clone, serde::Serialize)]
pub struct OwnCase {
    pub case_id: String,
    pub version: u64,
    /// As pushed (RFC 3339 with its offset); `null` if the stored body does not say.
    pub updated_at: Option<String>,
    pub status: Option<String>,
    pub child_name: Option<String>,
}

impl OwnCase {
    /// From a stored version's body (a validated case record, so a missing field means an
    /// older record and is answered as `null` rather than refused).
    pub fn from_body(case_id: String, version: u64, body: &str) -> Self {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let text = |pointer: &str| v.pointer(pointer).and_then(|x| x.as_str()).map(str::to_owned);
        Self {
            case_id,
            version,
            updated_at: text("/updated_at"),
            status: text("/status"),
            child_name: text("/child/name"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::OwnCase;

    #[test]
    fn an_own_case_line_reads_what_the_body_says_and_null_for_what_it_lacks() {
        let full = OwnCase::from_body(
            "C-1".into(),
            3,
            r#"{"updated_at":"2026-11-20T09:00:00+09:00","status":"closed","child":{"name":"山田　花子"}}"#,
        );
        assert_eq!(full.updated_at.as_deref(), Some("2026-11-20T09:00:00+09:00"));
        assert_eq!(full.status.as_deref(), Some("closed"));
        assert_eq!(full.child_name.as_deref(), Some("山田　花子"));
        assert_eq!((full.case_id.as_str(), full.version), ("C-1", 3));
        for body in [r#"{"child":{}}"#, "not json", r#"{"status":7}"#] {
            let line = OwnCase::from_body("C-2".into(), 1, body);
            assert_eq!(
                (line.updated_at, line.status, line.child_name),
                (None, None, None),
                "{body}"
            );
        }
    }
}
