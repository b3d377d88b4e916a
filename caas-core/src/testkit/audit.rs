//! Contract of [`AuditStore`](crate::ports::AuditStore).

use crate::ids::CorrelationId;
use crate::model::AuditRecord;
use crate::ports::Backends;
use crate::testkit::{t, tenant};

fn record(n: u64) -> AuditRecord {
    AuditRecord {
        position: 0,
        at: t(n),
        actor: "operator".into(),
        action: "tenant.update".into(),
        target: format!("thing:{n}"),
        rule: "r".into(),
        correlation_id: CorrelationId::parse("r_fixed").unwrap(),
        detail: serde_json::json!({"n": n}),
        hash: String::new(),
    }
}

/// Positions are 1, 2, 3… per tenant; records read back in order, unchanged.
pub async fn append_and_list(b: Backends) {
    let s = b.audit;
    let (t1, t2) = (tenant(), tenant());
    for n in 1..=3 {
        assert_eq!(s.append(&t1, record(n)).await.unwrap(), n);
    }
    assert_eq!(s.append(&t2, record(9)).await.unwrap(), 1);
    let got = s.list(&t1, 0, 10).await.unwrap();
    assert_eq!(
        got.iter().map(|r| r.position).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let mut want = record(2);
    want.seal(2, &got[0].hash);
    assert_eq!(got[1], want);
    assert_eq!(s.list(&t1, 2, 10).await.unwrap().len(), 1);
    assert_eq!(s.list(&t2, 0, 10).await.unwrap().len(), 1);
}

/// Each record is sealed into its tenant's hash chain as it is appended, the
/// chain of one tenant independent of another's, and concurrent appends still
/// make one unbroken chain.
pub async fn records_form_a_hash_chain(b: Backends) {
    use crate::model::ChainCheck;
    let s = b.audit;
    let (t1, t2) = (tenant(), tenant());
    let mut tasks = Vec::new();
    for n in 1..=12 {
        let (s, t1) = (s.clone(), t1.clone());
        tasks.push(tokio::spawn(async move {
            s.append(&t1, record(n)).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // A float that an inexact parser reads back one unit off.
    let mut float = record(13);
    float.detail = serde_json::json!({"x": 935.9340909264734_f64, "y": 0.1});
    s.append(&t1, float).await.unwrap();
    s.append(&t2, record(1)).await.unwrap();
    let log = s.list(&t1, 0, 100).await.unwrap();
    assert_eq!(log.len(), 13);
    let mut check = ChainCheck::new();
    for r in &log {
        assert_eq!(r.hash.len(), 64, "{r:?}");
        check.check(r).unwrap();
    }
    assert_eq!(check.checked(), 13);
    let other = s.list(&t2, 0, 10).await.unwrap();
    let mut check = ChainCheck::new();
    check.check(&other[0]).unwrap();
}
