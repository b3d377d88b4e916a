//! A tenant's policy document: parsing (JSON and TOML) never panics, and a
//! parsed set decides any request without panicking.
#![no_main]

use std::sync::Arc;

use caas_core::policy::{Action, Attrs, PolicySet, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for set in [PolicySet::from_json(text), PolicySet::from_toml(text)]
        .into_iter()
        .flatten()
    {
        for (i, action) in Action::ALL.iter().enumerate() {
            let req = Request {
                action: *action,
                subject: Attrs::default()
                    .with("kind", "user")
                    .with("id", Arc::<str>::from("alice"))
                    .with("is_member", i % 2 == 0)
                    .with("member_role", "member")
                    .with("member_rank", i as i64),
                resource: Attrs::default()
                    .with("kind", "conversation")
                    .with("conversation_kind", "group")
                    .with("owner", Arc::<str>::from("alice")),
                environment: Attrs::default()
                    .with("now", 1_800_000_000i64)
                    .with("hour", 10i64),
            };
            let _ = set.decide(&req);
        }
    }
});
