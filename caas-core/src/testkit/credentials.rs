//! Contract of [`CredentialStore`](crate::ports::CredentialStore).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::ids::TenantId;
use crate::ports::Backends;
use crate::ports::{PasswordLogin, RefreshSession, SessionStatus};
use crate::testkit::{t, tenant, user};

fn login(tn: &TenantId, u: &str) -> PasswordLogin {
    PasswordLogin {
        tenant: tn.clone(),
        user: user(u),
        phc: "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA".into(),
        totp: None,
        updated_at: t(0),
    }
}

fn session(tn: &TenantId, hash: &str, family: &str, generation: u32) -> RefreshSession {
    RefreshSession {
        tenant: tn.clone(),
        hash: hash.into(),
        family: family.into(),
        generation,
        user: user("alice"),
        device: None,
        issued_at: t(0),
        expires_at: t(3600),
        status: SessionStatus::Active,
    }
}

/// Logins are created once, updated in place, and invisible to other tenants.
pub async fn logins(b: Backends) {
    let s = b.credentials;
    let tn = tenant();
    let l = login(&tn, "alice");
    s.create_login(&l).await.unwrap();
    assert!(matches!(
        s.create_login(&l).await,
        Err(crate::Error::Conflict { .. })
    ));
    let mut changed = l.clone();
    changed.phc = "new".into();
    s.update_login(&changed).await.unwrap();
    assert_eq!(s.login(&tn, &user("alice")).await.unwrap(), Some(changed));
    assert_eq!(s.login(&tenant(), &user("alice")).await.unwrap(), None);
    assert!(matches!(
        s.update_login(&login(&tn, "bob")).await,
        Err(crate::Error::NotFound { .. })
    ));
}

/// Rotation is compare-and-set: a rotated token cannot rotate again.
pub async fn sessions_rotate_once(b: Backends) {
    let s = b.credentials;
    let tn = tenant();
    s.insert_session(&session(&tn, "h0", "f1", 0))
        .await
        .unwrap();
    assert!(
        s.rotate_session(&tn, "h0", &session(&tn, "h1", "f1", 1))
            .await
            .unwrap()
    );
    assert_eq!(
        s.session(&tn, "h0").await.unwrap().map(|x| x.status),
        Some(SessionStatus::Rotated)
    );
    assert_eq!(
        s.session(&tn, "h1").await.unwrap().map(|x| x.status),
        Some(SessionStatus::Active)
    );
    assert!(
        !s.rotate_session(&tn, "h0", &session(&tn, "h2", "f1", 1))
            .await
            .unwrap()
    );
    assert_eq!(
        s.session(&tn, "h2").await.unwrap(),
        None,
        "a failed rotation stores nothing"
    );
    assert!(
        !s.rotate_session(&tn, "missing", &session(&tn, "h3", "f1", 1))
            .await
            .unwrap()
    );
    assert_eq!(s.session(&tenant(), "h1").await.unwrap(), None);
}

/// Of concurrent rotations of one token, exactly one wins.
pub async fn concurrent_rotations_have_one_winner(b: Backends) {
    let s = b.credentials;
    let tn = tenant();
    s.insert_session(&session(&tn, "h0", "f", 0)).await.unwrap();
    let wins = Arc::new(AtomicU32::new(0));
    let mut hs = Vec::new();
    for i in 0..16 {
        let (s, tn, wins) = (s.clone(), tn.clone(), wins.clone());
        hs.push(tokio::spawn(async move {
            if s.rotate_session(&tn, "h0", &session(&tn, &format!("n{i}"), "f", 1))
                .await
                .unwrap()
            {
                wins.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    assert_eq!(wins.load(Ordering::SeqCst), 1);
}

/// Revoking a family revokes every generation of it and nothing else.
pub async fn revoke_family(b: Backends) {
    let s = b.credentials;
    let tn = tenant();
    s.insert_session(&session(&tn, "a0", "fa", 0))
        .await
        .unwrap();
    s.rotate_session(&tn, "a0", &session(&tn, "a1", "fa", 1))
        .await
        .unwrap();
    s.insert_session(&session(&tn, "b0", "fb", 0))
        .await
        .unwrap();
    assert_eq!(s.revoke_family(&tn, "fa").await.unwrap(), 2);
    assert_eq!(s.revoke_family(&tn, "fa").await.unwrap(), 0);
    for h in ["a0", "a1"] {
        assert_eq!(
            s.session(&tn, h).await.unwrap().map(|x| x.status),
            Some(SessionStatus::Revoked)
        );
    }
    assert_eq!(
        s.session(&tn, "b0").await.unwrap().map(|x| x.status),
        Some(SessionStatus::Active)
    );
    assert!(
        !s.rotate_session(&tn, "a1", &session(&tn, "a2", "fa", 2))
            .await
            .unwrap()
    );
}
