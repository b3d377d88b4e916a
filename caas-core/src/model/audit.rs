use serde::{Deserialize, Serialize};

use crate::ids::CorrelationId;
use crate::time::Timestamp;

/// One entry of a tenant's audit log: who did what to what, and why it was allowed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditRecord {
    /// Position in the tenant's log, assigned by the store (0 before appending).
    pub position: u64,
    /// When.
    pub at: Timestamp,
    /// The principal, as `operator`, `tenant` or `user:<id>`.
    pub actor: String,
    /// The action name (as in policies).
    pub action: String,
    /// The target, e.g. `conversation:c_1/member:bob`.
    pub target: String,
    /// The rule that allowed it.
    pub rule: String,
    /// The request.
    pub correlation_id: CorrelationId,
    /// Extra detail.
    pub detail: serde_json::Value,
    /// Hex SHA-256 chaining this record to the one before it in the tenant's
    /// log ([`AuditRecord::chain_hash`]), set by the store as it appends
    /// (empty before). Editing, removing or reordering a stored record breaks
    /// the chain from there on, which [`ChainCheck`] finds.
    #[serde(default)]
    pub hash: String,
}

impl AuditRecord {
    /// This record's hash after the record whose hash is `previous` (empty
    /// for a tenant's first record): SHA-256 over `previous`, a newline, and
    /// the JSON array of every other field, position first.
    pub fn chain_hash(&self, previous: &str) -> String {
        use sha2::{Digest, Sha256};
        let fields = (
            self.position,
            &self.at,
            &self.actor,
            &self.action,
            &self.target,
            &self.rule,
            &self.correlation_id,
            &self.detail,
        );
        let mut h = Sha256::new();
        h.update(previous.as_bytes());
        h.update(b"\n");
        // Serialising plain strings, numbers and a JSON value cannot fail;
        // were it to, the empty body still yields a hash that checks fail on.
        h.update(serde_json::to_vec(&fields).unwrap_or_default());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Gives the record its `position` and its hash after `previous`: what a
    /// store does as it appends, under the tenant's log head.
    pub fn seal(&mut self, position: u64, previous: &str) {
        self.position = position;
        self.hash = self.chain_hash(previous);
    }
}

/// What a walk of a tenant's whole audit chain found
/// (`GET /v1/audit/verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditVerification {
    /// Whether every record follows from the one before it.
    pub ok: bool,
    /// How many records were found sound (after any unchained ones).
    pub checked: u64,
    /// How many records at the start of the log were written before the
    /// chain existed (by an earlier version): nothing vouches for them.
    #[serde(default)]
    pub unchained: u64,
    /// The hash of the last sound record (empty for an empty log): keep it
    /// outside caas, and a log rewritten wholesale shows too.
    pub head_hash: String,
    /// The first record that does not follow from the one before it.
    pub broken_at: Option<u64>,
    /// Why it does not.
    pub reason: Option<String>,
}

/// Walks a tenant's audit log in order and finds the first record that does
/// not follow from the one before it.
#[derive(Debug, Clone, Default)]
pub struct ChainCheck {
    checked: u64,
    unchained: u64,
    previous: String,
}

/// Where and why a tenant's audit chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit record {position}: {reason}")]
pub struct ChainBreak {
    /// The first record that does not follow (for a missing record, the
    /// position found where it was expected).
    pub position: u64,
    /// What is wrong with it.
    pub reason: String,
}

impl ChainCheck {
    /// A check from the start of a log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks the next record: its position follows the previous one's and
    /// its hash is the chain hash of its content after the previous hash.
    pub fn check(&mut self, record: &AuditRecord) -> Result<(), ChainBreak> {
        let expected = self.checked + self.unchained + 1;
        if record.position != expected {
            return Err(ChainBreak {
                position: record.position,
                reason: format!("expected position {expected}: a record is missing or moved"),
            });
        }
        // Records written before the chain existed have no hash; they can
        // only come first, and the chain starts after them.
        if record.hash.is_empty() && self.checked == 0 {
            self.unchained += 1;
            return Ok(());
        }
        if record.hash != record.chain_hash(&self.previous) {
            return Err(ChainBreak {
                position: record.position,
                reason: "its content does not match its hash: edited after it was written".into(),
            });
        }
        self.checked += 1;
        self.previous.clone_from(&record.hash);
        Ok(())
    }

    /// How many records have been checked.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// What the walk found: sound so far, or broken at `broken`.
    pub fn verification(&self, broken: Option<ChainBreak>) -> AuditVerification {
        AuditVerification {
            ok: broken.is_none(),
            checked: self.checked,
            unchained: self.unchained,
            head_hash: self.previous.clone(),
            broken_at: broken.as_ref().map(|b| b.position),
            reason: broken.map(|b| b.reason),
        }
    }

    /// How many records at the start of the log predate the chain (no
    /// hash): counted, but nothing vouches for them.
    pub fn unchained(&self) -> u64 {
        self.unchained
    }

    /// The hash of the last record checked (empty before the first): a value
    /// to keep elsewhere, so a log rewritten wholesale is found too.
    pub fn head(&self) -> &str {
        &self.previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::CorrelationId;

    fn record(n: u64) -> AuditRecord {
        AuditRecord {
            position: 0,
            at: Timestamp::from_nanos(n * 1_000),
            actor: "tenant".into(),
            action: "member.add".into(),
            target: format!("conversation:c{n}"),
            rule: "default".into(),
            correlation_id: CorrelationId::parse("r_1").unwrap(),
            detail: serde_json::json!({"n": n, "why": "test"}),
            hash: String::new(),
        }
    }

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut previous = String::new();
        (1..=n)
            .map(|i| {
                let mut r = record(i);
                r.seal(i, &previous);
                previous.clone_from(&r.hash);
                r
            })
            .collect()
    }

    fn first_break(records: &[AuditRecord]) -> Option<ChainBreak> {
        let mut check = ChainCheck::new();
        records.iter().find_map(|r| check.check(r).err())
    }

    #[test]
    fn a_sealed_log_checks_and_survives_a_json_round_trip() {
        let log = chain(5);
        assert_eq!(first_break(&log), None);
        let text = serde_json::to_string(&log).unwrap();
        let back: Vec<AuditRecord> = serde_json::from_str(&text).unwrap();
        assert_eq!(first_break(&back), None);
        assert_eq!(log[0].hash.len(), 64);
        assert_ne!(log[0].hash, log[1].hash);
    }

    #[test]
    fn an_edit_a_removal_or_a_swap_is_named() {
        let mut edited = chain(5);
        edited[2].detail = serde_json::json!({"n": 3, "why": "changed"});
        let b = first_break(&edited).unwrap();
        assert_eq!(b.position, 3);
        assert!(b.reason.contains("edited"), "{b}");

        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(first_break(&removed).unwrap().position, 3);

        let mut swapped = chain(5);
        swapped.swap(3, 4);
        assert_eq!(first_break(&swapped).unwrap().position, 5);

        // Records from before the chain come first and are counted apart; an
        // unhashed record after the chain has begun is a break.
        let mut legacy: Vec<AuditRecord> = (1..=2)
            .map(|i| AuditRecord {
                position: i,
                ..record(i)
            })
            .collect();
        let mut next = record(3);
        next.seal(3, "");
        legacy.push(next);
        let mut check = ChainCheck::new();
        for r in &legacy {
            check.check(r).unwrap();
        }
        assert_eq!((check.unchained(), check.checked()), (2, 1));
        let mut late = chain(3);
        late[1].hash.clear();
        assert_eq!(first_break(&late).unwrap().position, 2);

        // Renumbering after a removal does not help: the hashes no longer follow.
        let mut renumbered = chain(5);
        renumbered.remove(1);
        for (i, r) in renumbered.iter_mut().enumerate() {
            r.position = i as u64 + 1;
        }
        assert_eq!(first_break(&renumbered).unwrap().position, 2);
    }
}
