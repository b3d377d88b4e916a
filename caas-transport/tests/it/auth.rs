//! Password auth: register, login, refresh rotation with reuse detection, logout,
//! TOTP, brute-force throttling.

use caas_core::time::Clock;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{Server, problem};

async fn password_tenant(s: &Server) -> (String, String) {
    let (tenant, secret) = s.tenant(&[]).await;
    let r = s
        .call(
            Method::PATCH,
            &format!("/v1/tenants/{tenant}"),
            Some(&s.operator),
            Some(json!({"settings": {"password_auth": true}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    (tenant, secret)
}

async fn login(
    s: &Server,
    tenant: &str,
    user: &str,
    password: &str,
    code: Option<String>,
) -> crate::server::Reply {
    let mut body = json!({"tenant_id": tenant, "user_id": user, "password": password});
    if let Some(c) = code {
        body["totp_code"] = Value::String(c);
    }
    s.call(Method::POST, "/v1/auth/login", None, Some(body))
        .await
}

#[tokio::test]
async fn register_login_and_use_the_access_token() {
    let s = Server::start().await;
    let (plain, _) = s.tenant(&[]).await;
    let off = s
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"tenant_id": plain, "user_id": "alice", "password": "correct horse"})),
        )
        .await;
    problem(&off, StatusCode::FORBIDDEN, "forbidden");
    assert!(
        off.body["detail"]
            .as_str()
            .unwrap()
            .contains("password-auth-disabled")
    );

    let (tenant, _) = password_tenant(&s).await;
    let weak = s
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"tenant_id": tenant, "user_id": "alice", "password": "short"})),
        )
        .await;
    problem(&weak, StatusCode::BAD_REQUEST, "invalid_argument");
    let r = s.call(Method::POST, "/v1/auth/register", None, Some(json!({"tenant_id": tenant, "user_id": "alice", "password": "correct horse", "name": "Alice"}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let again = s
        .call(
            Method::POST,
            "/v1/auth/register",
            None,
            Some(json!({"tenant_id": tenant, "user_id": "alice", "password": "another one"})),
        )
        .await;
    problem(&again, StatusCode::CONFLICT, "conflict");

    let wrong = login(&s, &tenant, "alice", "wrong horse", None).await;
    problem(&wrong, StatusCode::UNAUTHORIZED, "unauthenticated");
    let nobody = login(&s, &tenant, "mallory", "wrong horse", None).await;
    problem(&nobody, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(
        wrong.body["detail"], nobody.body["detail"],
        "an unknown user looks like a wrong password"
    );

    let ok = login(&s, &tenant, "alice", "correct horse", None).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let token = ok.body["access_token"].as_str().unwrap();
    assert!(
        ok.body["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("rt_")
    );
    let me = s
        .call(Method::GET, "/v1/conversations", Some(token), None)
        .await;
    assert_eq!(me.status, StatusCode::OK);
}

#[tokio::test]
async fn a_reused_refresh_token_revokes_its_whole_family() {
    let s = Server::start().await;
    let (tenant, _) = password_tenant(&s).await;
    s.call(
        Method::POST,
        "/v1/auth/register",
        None,
        Some(json!({"tenant_id": tenant, "user_id": "alice", "password": "correct horse"})),
    )
    .await;
    let first = login(&s, &tenant, "alice", "correct horse", None).await;
    let r0 = first.body["refresh_token"].as_str().unwrap().to_owned();
    let a0 = first.body["access_token"].as_str().unwrap().to_owned();
    let list = async |t: &str| {
        s.call(Method::GET, "/v1/conversations", Some(t), None)
            .await
    };
    assert_eq!(list(&a0).await.status, StatusCode::OK);
    let refresh = |t: &str| {
        s.call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(json!({"tenant_id": tenant, "refresh_token": t})),
        )
    };
    let second = refresh(&r0).await;
    assert_eq!(second.status, StatusCode::OK, "{:?}", second.body);
    let r1 = second.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r0, r1);
    // The spent token comes back (stolen copy): refused, and the family dies.
    problem(
        &refresh(&r0).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    problem(
        &refresh(&r1).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    // The access tokens of the family die with it, before they expire.
    problem(
        &list(&a0).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let a1 = second.body["access_token"].as_str().unwrap().to_owned();
    problem(
        &list(&a1).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    // A separate login is another family and still works; logout ends it.
    let other = login(&s, &tenant, "alice", "correct horse", None).await;
    let o0 = other.body["refresh_token"].as_str().unwrap().to_owned();
    let oa = other.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(list(&oa).await.status, StatusCode::OK);
    let out = s
        .call(
            Method::POST,
            "/v1/auth/logout",
            None,
            Some(json!({"tenant_id": tenant, "refresh_token": o0})),
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    // Logged out: the session's access token is refused at once.
    problem(
        &list(&oa).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    problem(
        &refresh(&o0).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    problem(
        &refresh("rt_garbage").await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

#[tokio::test]
async fn totp_is_required_once_confirmed_and_codes_are_single_use() {
    let s = Server::start().await;
    let (tenant, _) = password_tenant(&s).await;
    s.call(
        Method::POST,
        "/v1/auth/register",
        None,
        Some(json!({"tenant_id": tenant, "user_id": "alice", "password": "correct horse"})),
    )
    .await;
    let token = login(&s, &tenant, "alice", "correct horse", None)
        .await
        .body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A token alone does not enrol a factor: the password is asked again.
    problem(
        &s.call(
            Method::POST,
            "/v1/auth/totp",
            Some(&token),
            Some(json!({"password": "wrong horse"})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let enrol = s
        .call(
            Method::POST,
            "/v1/auth/totp",
            Some(&token),
            Some(json!({"password": "correct horse"})),
        )
        .await;
    assert_eq!(enrol.status, StatusCode::OK, "{:?}", enrol.body);
    assert!(
        enrol.body["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let totp = caas_crypto::totp::Totp::from_base32(
        enrol.body["secret"].as_str().unwrap(),
        caas_crypto::totp::TotpAlgorithm::Sha1,
    )
    .unwrap();
    let now = || i64::try_from(s.clock.now().as_secs()).unwrap();
    problem(
        &s.call(
            Method::POST,
            "/v1/auth/totp/confirm",
            Some(&token),
            Some(json!({"code": "000000"})),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let ok = s
        .call(
            Method::POST,
            "/v1/auth/totp/confirm",
            Some(&token),
            Some(json!({"code": totp.code_at(now())})),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{:?}", ok.body);
    // From now on the password alone is not enough.
    let r = login(&s, &tenant, "alice", "correct horse", None).await;
    problem(&r, StatusCode::UNAUTHORIZED, "unauthenticated");
    s.advance(std::time::Duration::from_secs(30));
    let code = totp.code_at(now());
    assert_eq!(
        login(&s, &tenant, "alice", "correct horse", Some(code.clone()))
            .await
            .status,
        StatusCode::OK
    );
    problem(
        &login(&s, &tenant, "alice", "correct horse", Some(code)).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

#[tokio::test]
async fn login_attempts_are_throttled_per_user() {
    let s = Server::start().await;
    let (tenant, _) = password_tenant(&s).await;
    s.call(
        Method::POST,
        "/v1/auth/register",
        None,
        Some(json!({"tenant_id": tenant, "user_id": "alice", "password": "correct horse"})),
    )
    .await;
    for _ in 0..10 {
        assert_eq!(
            login(&s, &tenant, "alice", "guess guess", None)
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = login(&s, &tenant, "alice", "correct horse", None).await;
    problem(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(r.headers.get("retry-after").is_some());
}
