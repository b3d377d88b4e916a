//! The OpenAPI 3.1 document, generated from the handlers' annotations, and an
//! offline `/docs` page that renders it (no CDN, no bundled framework).

use axum::http::header;
use axum::response::{Html, IntoResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "the operator key, a tenant secret (`sk_…`) or a user's access token (JWT)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "caas", description = "Chat as a service: the public REST API (v1). Errors are `application/problem+json` with the codes unauthenticated, forbidden, not_found, invalid_argument, conflict, payload_too_large, rate_limited, quota_exceeded, unavailable, internal; every response carries `x-correlation-id`."),
    paths(
        crate::routes::health::health, crate::routes::health::live, crate::routes::health::ready,
        crate::routes::auth::register, crate::routes::auth::login, crate::routes::auth::refresh_tokens,
        crate::routes::auth::logout, crate::routes::auth::totp_enroll, crate::routes::auth::totp_confirm,
        crate::routes::tenants::create, crate::routes::tenants::get, crate::routes::tenants::patch,
        crate::routes::tenants::suspend, crate::routes::tenants::rotate_secret,
        crate::routes::users::upsert, crate::routes::users::get, crate::routes::users::mint_token, crate::routes::users::jwks,
        crate::routes::conversations::create, crate::routes::conversations::list, crate::routes::conversations::get,
        crate::routes::conversations::update, crate::routes::conversations::add_member,
        crate::routes::conversations::remove_member, crate::routes::conversations::update_member,
        crate::routes::messages::send, crate::routes::messages::history, crate::routes::messages::edit,
        crate::routes::messages::delete, crate::routes::messages::forward, crate::routes::messages::react,
        crate::routes::messages::unreact, crate::routes::messages::pin,
        crate::routes::messages::unpin, crate::routes::messages::pins,
        crate::routes::receipts::read, crate::routes::receipts::list,
        crate::routes::presence::lookup,
        crate::routes::keys::publish, crate::routes::keys::claim, crate::routes::audit::list, crate::routes::audit::verify, crate::routes::compliance::export, crate::routes::compliance::erase,
        crate::routes::compliance::start_export, crate::routes::compliance::export_job,
        crate::routes::compliance::download_export, crate::routes::compliance::delete_export,
        crate::routes::media::upload, crate::routes::media::complete, crate::routes::media::url,
        crate::routes::media::delete, crate::routes::media::put_bytes, crate::routes::media::get_bytes,
        crate::routes::moderation::flag, crate::routes::moderation::list,
        crate::routes::moderation::resolve, crate::routes::moderation::edits,
        crate::routes::usage::usage, crate::routes::billing::invoice, crate::routes::billing::stripe,
        crate::routes::webhooks::create, crate::routes::webhooks::list, crate::routes::webhooks::get,
        crate::routes::webhooks::update, crate::routes::webhooks::delete, crate::routes::webhooks::rotate,
        crate::routes::webhooks::dead_letters, crate::routes::webhooks::replay,
        crate::routes::sync::sync, crate::routes::search::messages,
        crate::routes::search::conversations, crate::routes::search::users,
    ),
    components(schemas(crate::problem::Problem, caas_core::events::Event, caas_core::events::LoggedEvent,
        caas_core::ids::ExportId, caas_core::ids::WebhookId, caas_core::ids::ConversationId,
        caas_core::ids::MessageId, caas_core::ids::UserId, caas_core::ids::BlobId,
        caas_core::ids::DeviceId, caas_core::ids::TenantId)),
    modifiers(&BearerAuth),
)]
#[derive(Debug)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub(crate) async fn json() -> impl IntoResponse {
    match ApiDoc::openapi().to_json() {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize the OpenAPI document");
            crate::problem::ApiError::internal().into_response()
        }
    }
}

/// `GET /docs`: a page that lists every operation of `/openapi.json`.
pub(crate) async fn docs() -> Html<&'static str> {
    Html(DOCS_PAGE)
}

const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>caas API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:960px;padding:1rem 2rem;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;margin-top:2rem;text-transform:capitalize}
.op{border:1px solid #e3e3e3;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}
.m{display:inline-block;min-width:4.2rem;font-weight:700;font-family:monospace;text-transform:uppercase}
.get{color:#0a6}.post{color:#06c}.put{color:#a60}.patch{color:#a0a}.delete{color:#c22}
code,pre{font-family:ui-monospace,monospace;font-size:13px} pre{background:#f6f6f6;padding:.5rem;overflow:auto}
details summary{cursor:pointer;color:#555} .muted{color:#777}
</style></head><body>
<h1>caas API</h1><p class="muted">Rendered from <a href="/openapi.json">/openapi.json</a>. Works offline.</p>
<div id="doc">Loading…</div>
<script>
const esc = s => String(s ?? "").replace(/[&<>"]/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c]));
const ref = s => s && s.$ref ? s.$ref.split("/").pop() : (s && s.type) || "";
fetch("/openapi.json").then(r => r.json()).then(api => {
  const byTag = {};
  for (const [path, ops] of Object.entries(api.paths)) for (const [method, op] of Object.entries(ops)) {
    (byTag[(op.tags || ["other"])[0]] ||= []).push({path, method, op});
  }
  let html = `<p>${esc(api.info.description)}</p>`;
  for (const [tag, ops] of Object.entries(byTag)) {
    html += `<h2>${esc(tag)}</h2>`;
    for (const {path, method, op} of ops) {
      const params = (op.parameters || []).map(p => `<code>${esc(p.name)}</code> (${esc(p.in)})`).join(", ");
      const body = op.requestBody ? ref(Object.values(op.requestBody.content)[0].schema) : "";
      const responses = Object.entries(op.responses).map(([s, r]) => `<li><b>${s}</b> ${esc(r.description)}</li>`).join("");
      html += `<div class="op"><span class="m ${method}">${method}</span> <code>${esc(path)}</code>
        <div>${esc(op.description || op.summary || "")}</div>
        ${params ? `<div class="muted">parameters: ${params}</div>` : ""}
        ${body ? `<div class="muted">body: <code>${esc(body)}</code></div>` : ""}
        <details><summary>responses</summary><ul>${responses}</ul></details></div>`;
    }
  }
  html += `<h2>schemas</h2>` + Object.entries(api.components.schemas).map(([n, s]) =>
    `<details><summary><code>${esc(n)}</code></summary><pre>${esc(JSON.stringify(s, null, 2))}</pre></details>`).join("");
  document.getElementById("doc").innerHTML = html;
}).catch(e => { document.getElementById("doc").textContent = "Cannot load /openapi.json: " + e; });
</script></body></html>"#;
