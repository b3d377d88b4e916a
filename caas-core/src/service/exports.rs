//! GDPR exports as jobs: the export runs in the background into a spool file
//! the caller can follow (items, bytes, conversations done of total) and
//! download once complete, for exports too large to stream in one request.
//!
//! A job lives on the node that runs it: its spool is an unlinked temporary
//! file, so nothing of it is left on disk once the job is dropped, the process
//! exits, or it crashes. A restart forgets every job; start the export again.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::{Caas, ExportItem, UserExport, audit_record};
use crate::error::{EntityKind, Error, Result};
use crate::ids::{ExportId, TenantId, UserId};
use crate::policy::{Action, Attrs};
use crate::principal::Principal;
use crate::time::Timestamp;

/// Exports of one tenant running at once.
pub const MAX_RUNNING_EXPORTS: usize = 2;

/// Jobs of one tenant kept at once, running or finished; a new one pushes out
/// the oldest finished.
pub const MAX_KEPT_EXPORTS: usize = 10;

/// How long a finished export stays downloadable.
pub const EXPORT_KEPT_FOR: Duration = Duration::from_secs(3600);

/// Where an export job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ExportStatus {
    /// Reading the stores into the spool.
    Running,
    /// Everything is in the spool: download it.
    Complete,
    /// A store failed part-way (see `error`); nothing is kept.
    Failed,
}

/// Why an export failed: an `api.md` error code and its detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportFailure {
    /// The error code.
    pub code: String,
    /// What went wrong.
    pub detail: String,
}

/// An export job as its caller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportJob {
    /// The job.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub export_id: ExportId,
    /// Whose data.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user_id: UserId,
    /// Where it is.
    pub status: ExportStatus,
    /// Items written so far (the lines of the download, without the last).
    pub items: u64,
    /// Bytes written so far.
    pub bytes: u64,
    /// Conversations whose messages are read.
    pub conversations_done: u64,
    /// Conversations to read, as the job started.
    pub conversations_total: u64,
    /// When it started.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created_at: Timestamp,
    /// When it finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub finished_at: Option<Timestamp>,
    /// Until when a complete export can be downloaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub expires_at: Option<Timestamp>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ExportFailure>,
}

#[derive(Debug)]
struct Job {
    tenant: TenantId,
    state: Mutex<ExportJob>,
    /// The spool, once complete.
    spool: Mutex<Option<Arc<File>>>,
    /// Set when the job is deleted: a running one stops at its next item.
    cancelled: AtomicBool,
}

impl Job {
    fn view(&self) -> Result<ExportJob> {
        self.state.lock().map(|s| s.clone()).map_err(|_| poisoned())
    }

    fn update(&self, change: impl FnOnce(&mut ExportJob)) -> Result<()> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        change(&mut state);
        Ok(())
    }

    /// Marks it failed; kept (with why) as long as a complete one would be.
    fn fail(&self, why: ExportFailure, now: Timestamp) -> Result<()> {
        self.update(|state| {
            state.status = ExportStatus::Failed;
            state.finished_at = Some(now);
            state.expires_at = Some(now.plus(EXPORT_KEPT_FOR));
            state.error = Some(why);
        })
    }
}

impl ExportFailure {
    /// What a caller may see of `e`: as the REST front door words it, so
    /// causes that name tables, files or hosts stay in the log.
    fn of(e: &Error) -> Self {
        let detail = match e {
            Error::Internal { .. } => "internal error; see the server log".to_owned(),
            Error::Unavailable { backend, .. } => format!("{backend} is unavailable"),
            other => other.to_string(),
        };
        ExportFailure {
            code: e.code().to_owned(),
            detail,
        }
    }
}

fn poisoned() -> Error {
    Error::internal("export jobs: a lock was poisoned by an earlier panic")
}

/// Every export job of this node.
#[derive(Debug, Default)]
pub(super) struct ExportJobs {
    jobs: Mutex<HashMap<ExportId, Arc<Job>>>,
}

impl ExportJobs {
    /// Drops jobs whose download window closed (their spool closes with them).
    fn sweep(jobs: &mut HashMap<ExportId, Arc<Job>>, now: Timestamp) {
        jobs.retain(|_, job| {
            job.view()
                .map(|s| s.expires_at.is_none_or(|e| e > now))
                .unwrap_or(false)
        });
    }

    /// Registers a new job of `tenant`, within the limits.
    fn admit(&self, tenant: &TenantId, job: ExportJob, now: Timestamp) -> Result<Arc<Job>> {
        let mut jobs = self.jobs.lock().map_err(|_| poisoned())?;
        Self::sweep(&mut jobs, now);
        let mut mine: Vec<(ExportId, ExportJob)> = jobs
            .iter()
            .filter(|(_, j)| j.tenant == *tenant)
            .filter_map(|(id, j)| j.view().ok().map(|v| (id.clone(), v)))
            .collect();
        let running = mine
            .iter()
            .filter(|(_, v)| v.status == ExportStatus::Running)
            .count();
        if running >= MAX_RUNNING_EXPORTS {
            return Err(Error::conflict(format!(
                "{running} exports of this tenant are running, the most at once; \
                 wait for one to finish or delete one"
            )));
        }
        if mine.len() >= MAX_KEPT_EXPORTS {
            mine.retain(|(_, v)| v.status != ExportStatus::Running);
            mine.sort_by_key(|(_, v)| v.created_at);
            if let Some((oldest, _)) = mine.first() {
                jobs.remove(oldest);
            }
        }
        let id = job.export_id.clone();
        let job = Arc::new(Job {
            tenant: tenant.clone(),
            state: Mutex::new(job),
            spool: Mutex::new(None),
            cancelled: AtomicBool::new(false),
        });
        jobs.insert(id, job.clone());
        Ok(job)
    }

    fn get(&self, tenant: &TenantId, id: &ExportId, now: Timestamp) -> Result<Arc<Job>> {
        let mut jobs = self.jobs.lock().map_err(|_| poisoned())?;
        Self::sweep(&mut jobs, now);
        jobs.get(id)
            .filter(|j| j.tenant == *tenant)
            .cloned()
            .ok_or_else(|| Error::not_found(EntityKind::Export, id))
    }

    fn remove(&self, id: &ExportId) -> Result<()> {
        self.jobs.lock().map_err(|_| poisoned())?.remove(id);
        Ok(())
    }

    /// Stops and drops every job exporting `user` of `tenant`; returns how many.
    pub(super) fn forget_user(&self, tenant: &TenantId, user: &UserId) -> Result<u64> {
        let mut jobs = self.jobs.lock().map_err(|_| poisoned())?;
        let mut forgotten = 0;
        jobs.retain(|_, job| {
            let theirs = job.tenant == *tenant && job.view().is_ok_and(|s| s.user_id == *user);
            if theirs {
                job.cancelled.store(true, Ordering::Relaxed);
                forgotten += 1;
            }
            !theirs
        });
        Ok(forgotten)
    }
}

/// An export job's work: spawn [`ExportRun::run`] on the runtime (the REST
/// front door does) and follow it with [`Caas::export_job`].
#[derive(Debug)]
pub struct ExportRun {
    caas: Arc<Caas>,
    job: Arc<Job>,
    export: UserExport,
    spool: File,
}

impl ExportRun {
    /// Reads everything into the spool, keeping the job's progress current,
    /// until done, failed or deleted.
    pub async fn run(mut self) {
        let outcome = self.fill().await;
        let now = self.caas.b.clock.now();
        let recorded = match outcome {
            Ok(true) => self.complete(now),
            // Deleted: the job is no longer listed; the spool goes with `self`.
            Ok(false) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "an export job failed");
                self.job.fail(ExportFailure::of(&e), now)
            }
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, "an export job's outcome could not be recorded");
        }
    }

    fn complete(&self, now: Timestamp) -> Result<()> {
        let spool = self
            .spool
            .try_clone()
            .map_err(|e| Error::unavailable("fs", "keep an export's spool", true, e))?;
        *self.job.spool.lock().map_err(|_| poisoned())? = Some(Arc::new(spool));
        self.job.update(|state| {
            state.finished_at = Some(now);
            state.expires_at = Some(now.plus(EXPORT_KEPT_FOR));
            state.status = ExportStatus::Complete;
        })
    }

    /// Writes every item, then the end line; `Ok(false)` when deleted first.
    async fn fill(&mut self) -> Result<bool> {
        let spool = self
            .spool
            .try_clone()
            .map_err(|e| Error::unavailable("fs", "write an export's spool", true, e))?;
        let mut out = BufWriter::new(spool);
        let write_failed =
            |e: std::io::Error| Error::unavailable("fs", "write an export's spool", true, e);
        while let Some(item) = self.export.next().await? {
            if self.job.cancelled.load(Ordering::Relaxed) {
                return Ok(false);
            }
            let line = item.to_line()?;
            out.write_all(&line).map_err(write_failed)?;
            let (done, total) = self.export.conversations();
            self.job.update(|state| {
                state.items += 1;
                state.bytes += line.len() as u64;
                state.conversations_done = done;
                state.conversations_total = total;
            })?;
        }
        let end = ExportItem::end_line(self.export.items());
        out.write_all(&end).map_err(write_failed)?;
        out.flush().map_err(write_failed)?;
        let (done, total) = self.export.conversations();
        self.job.update(|state| {
            state.bytes += end.len() as u64;
            state.conversations_done = done;
            state.conversations_total = total;
        })?;
        Ok(!self.job.cancelled.load(Ordering::Relaxed))
    }
}

impl Drop for ExportRun {
    /// A run dropped unfinished (never spawned, its task aborted or the
    /// runtime shut down) fails its job, so the job leaves its slot.
    fn drop(&mut self) {
        let running = self
            .job
            .view()
            .is_ok_and(|s| s.status == ExportStatus::Running);
        if running {
            let why = ExportFailure {
                code: "unavailable".to_owned(),
                detail: "the export stopped before it finished; start a new one".to_owned(),
            };
            let _ = self.job.fail(why, self.caas.b.clock.now());
        }
    }
}

/// A complete export's spool, read by position (several downloads may read
/// it at once).
#[derive(Debug, Clone)]
pub struct ExportDownload {
    spool: Arc<File>,
    len: u64,
}

impl ExportDownload {
    /// Its length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it is empty (never: the end line is always there).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Up to `max` bytes from `offset`; empty at the end. Blocking file I/O:
    /// call it off the async threads.
    pub fn read_at(&self, offset: u64, max: usize) -> Result<Vec<u8>> {
        let want = usize::try_from(self.len.saturating_sub(offset))
            .unwrap_or(usize::MAX)
            .min(max);
        let mut buf = vec![0; want];
        let mut filled = 0;
        while filled < want {
            let n = read_at(&self.spool, &mut buf[filled..], offset + filled as u64)
                .map_err(|e| Error::unavailable("fs", "read an export's spool", true, e))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        Ok(buf)
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// A new spool: created private, then unlinked where the platform allows it,
/// so that only this process's handle reaches it and it vanishes with it.
fn spool() -> Result<File> {
    let fail = |e| Error::unavailable("fs", "create an export's spool", true, e);
    let path = std::env::temp_dir().join(format!("caas-export-{:032x}", fastrand::u128(..)));
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&path).map_err(fail)?;
    #[cfg(unix)]
    std::fs::remove_file(&path).map_err(fail)?;
    Ok(file)
}

impl Caas {
    /// Starts an export of everything the caller's tenant holds about `user`
    /// (what [`Caas::export_user`] streams, authorized and audited the same
    /// way) as a job: returns it, running, and the work, for the caller to
    /// spawn. At most [`MAX_RUNNING_EXPORTS`] run per tenant (`conflict`
    /// beyond); a complete one is downloadable for [`EXPORT_KEPT_FOR`].
    pub async fn start_export(
        self: &Arc<Self>,
        p: &Principal,
        user: &UserId,
    ) -> Result<(ExportJob, ExportRun)> {
        let export = self.export_user(p, user).await?;
        let tenant = p
            .tenant
            .as_ref()
            .ok_or_else(|| Error::internal("an export was authorized without a tenant"))?
            .clone();
        let now = self.b.clock.now();
        let (_, total) = export.conversations();
        let view = ExportJob {
            export_id: ExportId::generate(now),
            user_id: user.clone(),
            status: ExportStatus::Running,
            items: 0,
            bytes: 0,
            conversations_done: 0,
            conversations_total: total,
            created_at: now,
            finished_at: None,
            expires_at: None,
            error: None,
        };
        let spool = spool()?;
        let job = self.exports.admit(&tenant, view.clone(), now)?;
        Ok((
            view,
            ExportRun {
                caas: self.clone(),
                job,
                export,
                spool,
            },
        ))
    }

    /// The caller's tenant's job `id`, authorized as its export was, and the
    /// rule that allowed it.
    async fn export_of(
        &self,
        p: &Principal,
        id: &ExportId,
    ) -> Result<(Arc<Job>, ExportJob, Arc<str>)> {
        let ctx = self.ctx(p).await?;
        let job = self.exports.get(&ctx.tenant, id, ctx.now)?;
        let view = job.view()?;
        let rule = Self::authorize(
            &ctx,
            Action::ComplianceExport,
            Self::subject(&ctx, None),
            Attrs::default()
                .with("kind", "user")
                .with("owner", view.user_id.shared()),
        )?;
        Ok((job, view, rule))
    }

    /// Where an export job is.
    pub async fn export_job(&self, p: &Principal, id: &ExportId) -> Result<ExportJob> {
        Ok(self.export_of(p, id).await?.1)
    }

    /// A complete export's JSON lines (the same as [`Caas::export_user`]
    /// streams, ending with `{"kind":"end","items":N}`); `conflict` while it
    /// runs or when it failed. Each download is audited.
    pub async fn download_export(&self, p: &Principal, id: &ExportId) -> Result<ExportDownload> {
        let (job, view, rule) = self.export_of(p, id).await?;
        match view.status {
            ExportStatus::Complete => {}
            ExportStatus::Running => {
                return Err(Error::conflict(format!(
                    "export `{id}` is still running ({} items so far)",
                    view.items
                )));
            }
            ExportStatus::Failed => {
                return Err(Error::conflict(format!(
                    "export `{id}` failed; start a new one"
                )));
            }
        }
        let spool = job
            .spool
            .lock()
            .map_err(|_| poisoned())?
            .clone()
            .ok_or_else(|| Error::internal("a complete export has no spool"))?;
        let ctx = self.ctx(p).await?;
        self.audit(
            &ctx.tenant,
            audit_record(
                p,
                Action::ComplianceExport,
                format!("user:{}", view.user_id),
                &rule,
                serde_json::json!({"op": "download", "export_id": id}),
                ctx.now,
            ),
        )
        .await?;
        Ok(ExportDownload {
            spool,
            len: view.bytes,
        })
    }

    /// Deletes an export job: a running one stops, a complete one's spool is
    /// dropped.
    pub async fn delete_export(&self, p: &Principal, id: &ExportId) -> Result<()> {
        let (job, ..) = self.export_of(p, id).await?;
        job.cancelled.store(true, Ordering::Relaxed);
        self.exports.remove(id)
    }
}
