//! GDPR exports as jobs, through the public service API on every backend
//! set: the job's download is exactly what the stream gives, its progress is
//! visible, and its limits and rules hold.

use std::time::Duration;

use caas::Error;
use caas::core::ids::ExportId;
use caas::core::service::{
    EXPORT_KEPT_FOR, ExportDownload, ExportStatus, MAX_KEPT_EXPORTS, MAX_RUNNING_EXPORTS,
};
use caas::core::time::Clock;
use caas::{Caas, Principal};

use crate::sets::{Set, on_every_set};
use crate::world::{World, forbidden, uid};

on_every_set!(
    async an_export_job_downloads_what_the_stream_gives,
    export_jobs_keep_their_limits_and_rules,
);

/// The whole download, read in small chunks to cross their edges.
fn read_all(download: &ExportDownload) -> String {
    let mut out = Vec::new();
    loop {
        let chunk = download.read_at(out.len() as u64, 777).unwrap();
        if chunk.is_empty() {
            break;
        }
        out.extend(chunk);
    }
    assert_eq!(out.len() as u64, download.len());
    String::from_utf8(out).unwrap()
}

/// What the streamed export gives, as the lines a download holds.
async fn streamed(caas: &std::sync::Arc<Caas>, server: &Principal, user: &str) -> String {
    let mut export = caas.export_user(server, &uid(user)).await.unwrap();
    let mut text = String::new();
    while let Some(item) = export.next().await.unwrap() {
        text.push_str(&serde_json::to_string(&item).unwrap());
        text.push('\n');
    }
    text.push_str(&format!(
        "{{\"kind\":\"end\",\"items\":{}}}\n",
        export.items()
    ));
    text
}

async fn an_export_job_downloads_what_the_stream_gives(set: Set) {
    let w = World::new(set, &["alice", "bob"]).await;
    let (one, two) = (
        w.group("alice", &["bob"]).await,
        w.group("bob", &["alice"]).await,
    );
    // More than a page of the export's store reads (200) in one conversation.
    for i in 0..230 {
        // Within the send rate limit.
        w.clock.advance(Duration::from_millis(200));
        w.send("alice", &one, &format!("a{i}"), &format!("note {i}"))
            .await
            .unwrap();
    }
    w.send("alice", &two, "b0", "elsewhere").await.unwrap();
    let server = w.server();

    let (job, run) = w.caas.start_export(&server, &uid("alice")).await.unwrap();
    assert_eq!(job.status, ExportStatus::Running);
    assert_eq!(
        (job.items, job.conversations_done, job.conversations_total),
        (0, 0, 2)
    );
    assert_eq!(job.created_at, w.clock.now());
    let early = w.caas.download_export(&server, &job.export_id).await;
    assert!(matches!(early, Err(Error::Conflict { .. })), "{early:?}");
    run.run().await;

    let done = w.caas.export_job(&server, &job.export_id).await.unwrap();
    assert_eq!(done.status, ExportStatus::Complete, "{done:?}");
    assert_eq!((done.conversations_done, done.conversations_total), (2, 2));
    assert_eq!(done.expires_at, Some(w.clock.now().plus(EXPORT_KEPT_FOR)));
    assert!(done.error.is_none());
    let download = w
        .caas
        .download_export(&server, &job.export_id)
        .await
        .unwrap();
    let text = read_all(&download);
    assert_eq!(text, streamed(&w.caas, &server, "alice").await);
    assert_eq!(done.bytes, text.len() as u64);
    assert_eq!(done.items as usize, text.lines().count() - 1);
    assert_eq!(text.matches("\"kind\":\"message\"").count(), 231);
    // Downloads are audited, and may be repeated while the job is kept.
    assert_eq!(
        read_all(
            &w.caas
                .download_export(&server, &job.export_id)
                .await
                .unwrap()
        ),
        text
    );
    let audit = w.caas.audit_log(&server, 0, 100).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == "compliance.export" && r.detail["op"] == "download"),
        "{audit:?}"
    );

    // An hour later it is gone.
    w.clock.advance(EXPORT_KEPT_FOR + Duration::from_secs(1));
    let gone = w.caas.export_job(&server, &job.export_id).await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
}

async fn export_jobs_keep_their_limits_and_rules(set: Set) {
    let w = World::new(set, &["alice", "bob"]).await;
    let server = w.server();
    let alice = uid("alice");
    forbidden(
        w.caas.start_export(&w.user("bob"), &alice).await,
        "default-deny",
    );
    let nobody = w.caas.start_export(&server, &uid("nobody")).await;
    assert!(matches!(nobody, Err(Error::NotFound { .. })), "{nobody:?}");

    // Two run at once; a third waits for one to end or go.
    let mut runs = Vec::new();
    for _ in 0..MAX_RUNNING_EXPORTS {
        runs.push(w.caas.start_export(&server, &alice).await.unwrap());
    }
    let third = w.caas.start_export(&server, &alice).await;
    assert!(matches!(third, Err(Error::Conflict { .. })), "{third:?}");
    let (deleted, run) = runs.pop().unwrap();
    w.caas
        .delete_export(&server, &deleted.export_id)
        .await
        .unwrap();
    run.run().await;
    let gone = w.caas.export_job(&server, &deleted.export_id).await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    let (first, run) = runs.pop().unwrap();
    run.run().await;

    // Another tenant sees none of them; a user of the tenant may not follow them.
    let other = Principal::tenant_server(w.add_tenant(&[]).await);
    let hidden = w.caas.export_job(&other, &first.export_id).await;
    assert!(matches!(hidden, Err(Error::NotFound { .. })), "{hidden:?}");
    forbidden(
        w.caas
            .download_export(&w.user("alice"), &first.export_id)
            .await,
        "default-deny",
    );
    let unknown = ExportId::generate(w.clock.now());
    let unknown = w.caas.export_job(&server, &unknown).await;
    assert!(
        matches!(unknown, Err(Error::NotFound { .. })),
        "{unknown:?}"
    );

    // Finished ones are kept up to the cap: the oldest goes first.
    let mut kept = vec![first.export_id.clone()];
    for _ in 1..MAX_KEPT_EXPORTS {
        w.clock.advance(Duration::from_millis(5));
        let (job, run) = w.caas.start_export(&server, &alice).await.unwrap();
        run.run().await;
        kept.push(job.export_id);
    }
    w.clock.advance(Duration::from_millis(5));
    let (newest, run) = w.caas.start_export(&server, &alice).await.unwrap();
    run.run().await;
    let pushed_out = w.caas.export_job(&server, &kept[0]).await;
    assert!(
        matches!(pushed_out, Err(Error::NotFound { .. })),
        "{pushed_out:?}"
    );
    for id in kept[1..].iter().chain([&newest.export_id]) {
        let job = w.caas.export_job(&server, id).await.unwrap();
        assert_eq!(job.status, ExportStatus::Complete);
    }

    // A run that is dropped unfinished fails its job, which frees its slot.
    let (dropped, run) = w.caas.start_export(&server, &uid("bob")).await.unwrap();
    drop(run);
    let failed = w
        .caas
        .export_job(&server, &dropped.export_id)
        .await
        .unwrap();
    assert_eq!(failed.status, ExportStatus::Failed);
    assert_eq!(failed.error.unwrap().code, "unavailable");
    assert_eq!(failed.expires_at, Some(w.clock.now().plus(EXPORT_KEPT_FOR)));
    let refused = w.caas.download_export(&server, &dropped.export_id).await;
    assert!(
        matches!(refused, Err(Error::Conflict { .. })),
        "{refused:?}"
    );

    // Erasing alice takes her exports with her; bob's stays.
    let erased = w.caas.erase_user(&server, &alice).await.unwrap();
    // Bob's job pushed one more of hers out of the tenant's ten.
    assert_eq!(erased.exports, MAX_KEPT_EXPORTS as u64 - 1, "{erased:?}");
    let gone = w.caas.export_job(&server, &newest.export_id).await;
    assert!(matches!(gone, Err(Error::NotFound { .. })), "{gone:?}");
    assert!(w.caas.export_job(&server, &dropped.export_id).await.is_ok());
}
