//! Who is calling: the bearer credential of a request, checked by the core
//! ([`caas_core::Caas::authenticate`]) into a verified [`Principal`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use caas_core::Principal;
use caas_core::ids::CorrelationId;

use crate::gateway::AppState;
use crate::problem::ApiError;

/// The request's correlation id, set by the correlation middleware.
#[derive(Debug, Clone)]
pub struct Correlation(pub CorrelationId);

impl Correlation {
    /// The request's id, or a fresh one outside the middleware.
    pub(crate) fn of(parts: &Parts, state: &AppState) -> CorrelationId {
        parts
            .extensions
            .get::<Correlation>()
            .map(|c| c.0.clone())
            .unwrap_or_else(|| CorrelationId::generate(state.caas.now()))
    }
}

/// Extracts the verified principal of a request (401 without a valid credential).
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let correlation = Correlation::of(parts, state);
        let bearer = bearer_of(&parts.headers).ok_or_else(|| {
            ApiError::unauthenticated("missing `Authorization: Bearer` credential")
        })?;
        let who = state.caas.authenticate(bearer, correlation).await?;
        Ok(Auth(who.principal))
    }
}

/// The token of an `Authorization: Bearer` header, if there is one.
pub(crate) fn bearer_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
