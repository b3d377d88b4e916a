//! Migrations at connect, and the refusal of a newer schema.

use caas_adapters::postgres::{PostgresConfig, PostgresStore};
use caas_core::ports::TenantStore;

use super::support;

fn in_schema(url: &str, schema: &str) -> PostgresConfig {
    PostgresConfig {
        schema: Some(schema.to_owned()),
        pool_size: 2,
        ..PostgresConfig::new(url)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_schema_is_migrated_once_and_a_newer_one_refused() {
    let Some(url) = support::url() else { return };
    let schema = support::fresh_schema("migr");
    // Nodes starting together migrate once.
    let (a, b) = tokio::join!(
        PostgresStore::connect(in_schema(&url, &schema)),
        PostgresStore::connect(in_schema(&url, &schema))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.list(None, 10).await.unwrap(), vec![]);
    drop((a, b));
    let (client, conn) = support::tokio_postgres_connect(&url).await;
    let task = tokio::spawn(conn);
    let v: i32 = client
        .query_one(&format!("SELECT version FROM {schema}.caas_schema"), &[])
        .await
        .unwrap()
        .get(0);
    assert!(v >= 1);
    // Connecting again changes nothing.
    PostgresStore::connect(in_schema(&url, &schema))
        .await
        .unwrap();
    // A newer caas was here: refused, with a one-line reason.
    client
        .batch_execute(&format!(
            "UPDATE {schema}.caas_schema SET version = version + 1"
        ))
        .await
        .unwrap();
    let err = PostgresStore::connect(in_schema(&url, &schema))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            caas_core::Error::Unavailable {
                temporary: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.contains("newer"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    drop(client);
    let _ = task.await;
    support::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_of_another_application_is_refused() {
    let Some(url) = support::url() else { return };
    let schema = support::fresh_schema("foreign");
    let (client, conn) = support::tokio_postgres_connect(&url).await;
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.theirs (a int);"
        ))
        .await
        .unwrap();
    let err = PostgresStore::connect(in_schema(&url, &schema))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("another application"), "{err}");
    drop(client);
    let _ = task.await;
    support::drop_schema(&url, &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_core_kinds() {
    let Some(url) = support::url() else { return };
    let app = format!("caas-errors-{}", fastrand::u32(..));
    let store = PostgresStore::connect(PostgresConfig {
        application_name: app.clone(),
        ..support::config(&url)
    })
    .await
    .unwrap();
    // A unique violation is a conflict.
    let tenant = caas_core::model::Tenant {
        id: caas_core::testkit::tenant(),
        name: "x".into(),
        status: caas_core::model::TenantStatus::Active,
        settings: Default::default(),
        credentials: vec![],
        created_at: caas_core::testkit::t(0),
        updated_at: caas_core::testkit::t(0),
    };
    store.create(&tenant).await.unwrap();
    assert!(matches!(
        store.create(&tenant).await,
        Err(caas_core::Error::Conflict { .. })
    ));
    // A statement past its timeout is unavailable, temporarily.
    let slow = PostgresStore::connect(PostgresConfig {
        statement_timeout: std::time::Duration::from_millis(200),
        ..support::config(&url)
    })
    .await
    .unwrap();
    let (client, conn) = support::tokio_postgres_connect(&url).await;
    let task = tokio::spawn(conn);
    // Hold the tenant's row so the update waits past the timeout.
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute(
            "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE",
            &[&tenant.id.as_str()],
        )
        .await
        .unwrap();
    let err = slow.update(&tenant).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    client.batch_execute("ROLLBACK").await.unwrap();
    // A lost connection is unavailable, temporarily; the next call reconnects.
    let killed = client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1 AND pid <> pg_backend_pid()",
            &[&app],
        )
        .await
        .unwrap();
    assert!(killed > 0);
    let mut recovered = false;
    for _ in 0..20 {
        match store.get(&tenant.id).await {
            Ok(Some(_)) => {
                recovered = true;
                break;
            }
            Ok(None) => panic!("the tenant vanished"),
            Err(e) => assert!(e.is_retryable(), "{e:?}"),
        }
    }
    assert!(recovered);
    drop(client);
    let _ = task.await;
}
