//! Attribute-based access control.
//!
//! A [`Request`] carries subject, resource and environment [`Attrs`] and an
//! [`Action`]; a [`PolicySet`] decides it: a matching `deny` rule wins over any
//! `allow` (deny overrides), and when no rule matches the answer is deny by the rule
//! named [`DEFAULT_DENY`]. Every [`Decision`] names the rule that decided, so a
//! refusal can always be explained.
//!
//! Policies are documents (JSON or TOML) compiled once at load, where every mistake
//! is reported with its line or field; see [`PolicySet::from_json`]. The platform's
//! rules are [`default_set`]; a tenant document may `"extends": "default"` to add
//! rules (a deny added this way still overrides the defaults' allows).
//!
//! ```
//! use caas_core::policy::{Action, Attrs, PolicySet, Request};
//!
//! let set = PolicySet::from_json(r#"{
//!   "version": 1, "extends": "default",
//!   "rules": [{ "id": "no-links-for-guests", "effect": "deny", "actions": ["message.send"],
//!               "when": { "attr": "subject.attr.guest", "eq": true } }]
//! }"#).unwrap();
//! let req = Request {
//!     action: Action::MessageSend,
//!     subject: Attrs::default().with("kind", "user").with("is_member", true).with("attr.guest", true),
//!     resource: Attrs::default().with("conversation_kind", "group"),
//!     environment: Attrs::default(),
//! };
//! let d = set.decide(&req);
//! assert!(!d.is_allowed());
//! assert_eq!(&*d.rule, "no-links-for-guests");
//! ```

mod action;
mod document;
mod engine;
mod value;

use std::sync::{Arc, OnceLock};

pub use action::Action;
pub use engine::{Decision, Effect, PolicySet, Request, Rule};
pub use value::{Attrs, Value};

/// The id named by a decision when no rule matched.
pub const DEFAULT_DENY: &str = "default-deny";

/// The platform's default policy document (JSON), as shipped.
pub const DEFAULT_POLICY_JSON: &str = include_str!("default_policy.json");

/// The platform's default rules: upload by any member, download by owner or
/// participant, delete media by owner, search only over the caller's own data,
/// send only by non-muted members (moderators and above in channels), edit by the
/// sender, moderation by moderators and admins, tenants managed by the operator.
/// See `default_policy.json` for the full text.
pub fn default_set() -> Arc<PolicySet> {
    static SET: OnceLock<Arc<PolicySet>> = OnceLock::new();
    SET.get_or_init(|| match document::compile_default() {
        Ok(set) => Arc::new(set),
        // The shipped document is checked by a unit test; an empty set denies
        // everything, which is the safe failure.
        Err(_) => Arc::new(PolicySet::new(Vec::new())),
    })
    .clone()
}

#[cfg(test)]
mod tests;
