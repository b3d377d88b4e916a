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
    want.position = 2;
    assert_eq!(got[1], want);
    assert_eq!(s.list(&t1, 2, 10).await.unwrap().len(), 1);
    assert_eq!(s.list(&t2, 0, 10).await.unwrap().len(), 1);
}
