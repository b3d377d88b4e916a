//! Policy documents as written (JSON or TOML) and their compilation into a
//! [`PolicySet`]. Every mistake is caught here, at load, with the line (syntax and
//! type errors) or the field path (meaning errors, e.g. `rules[2].when.attr`) at
//! fault; a compiled set cannot fail at decision time.

use std::sync::Arc;

use serde::Deserialize;

use super::engine::{AttrRef, Cmp, Cond, Effect, PolicySet, Rule, Scope};
use super::{Action, Value};
use crate::error::Error;

/// A policy document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    /// Format version; only 1 exists.
    version: u32,
    /// `"default"` to append these rules to the platform's default set.
    #[serde(default)]
    extends: Option<String>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    #[serde(default)]
    description: Option<String>,
    effect: String,
    actions: Vec<String>,
    #[serde(default)]
    when: Option<RawCond>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCond {
    all: Option<Vec<RawCond>>,
    any: Option<Vec<RawCond>>,
    not: Option<Box<RawCond>>,
    attr: Option<String>,
    eq: Option<serde_json::Value>,
    ne: Option<serde_json::Value>,
    #[serde(rename = "in")]
    in_: Option<Vec<serde_json::Value>>,
    not_in: Option<Vec<serde_json::Value>>,
    contains: Option<serde_json::Value>,
    gt: Option<i64>,
    gte: Option<i64>,
    lt: Option<i64>,
    lte: Option<i64>,
    exists: Option<bool>,
    eq_attr: Option<String>,
    ne_attr: Option<String>,
    gt_attr: Option<String>,
    gte_attr: Option<String>,
}

/// The field of a load error for syntax errors: the document itself, with a line.
const DOC: &str = "policy";

impl PolicySet {
    /// Compiles a JSON policy document.
    pub fn from_json(text: &str) -> Result<PolicySet, Error> {
        let raw: RawDocument = serde_json::from_str(text).map_err(|e| {
            Error::invalid(DOC, format!("line {} column {}: {e}", e.line(), e.column()))
        })?;
        compile(raw)
    }

    /// Compiles a TOML policy document.
    pub fn from_toml(text: &str) -> Result<PolicySet, Error> {
        let raw: RawDocument = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: ")
                })
                .unwrap_or_default();
            Error::invalid(DOC, format!("{at}{}", e.message()))
        })?;
        compile(raw)
    }

    /// Compiles a tenant's stored policy source.
    pub fn from_source(source: &crate::model::PolicySource) -> Result<PolicySet, Error> {
        match source {
            crate::model::PolicySource::Json(t) => Self::from_json(t),
            crate::model::PolicySource::Toml(t) => Self::from_toml(t),
        }
    }
}

fn compile(raw: RawDocument) -> Result<PolicySet, Error> {
    if raw.version != 1 {
        return Err(Error::invalid("version", "only version 1 exists"));
    }
    let mut rules = match raw.extends.as_deref() {
        None => Vec::new(),
        Some("default") => super::default_set().rules().to_vec(),
        Some(other) => {
            return Err(Error::invalid(
                "extends",
                format!("`{other}` is unknown; only `default` can be extended"),
            ));
        }
    };
    for (i, r) in raw.rules.into_iter().enumerate() {
        let path = format!("rules[{i}]");
        if r.id.is_empty() || r.id == super::DEFAULT_DENY {
            return Err(Error::invalid(
                format!("{path}.id"),
                "must be non-empty and not `default-deny`",
            ));
        }
        if rules.iter().any(|x: &Rule| *x.id == *r.id) {
            return Err(Error::invalid(
                format!("{path}.id"),
                format!("duplicate rule id `{}`", r.id),
            ));
        }
        let effect = match r.effect.as_str() {
            "allow" => Effect::Allow,
            "deny" => Effect::Deny,
            _ => {
                return Err(Error::invalid(
                    format!("{path}.effect"),
                    "must be `allow` or `deny`",
                ));
            }
        };
        if r.actions.is_empty() {
            return Err(Error::invalid(
                format!("{path}.actions"),
                "must name at least one action",
            ));
        }
        let mut actions = Vec::new();
        for (j, name) in r.actions.iter().enumerate() {
            if name == "*" {
                actions.extend_from_slice(Action::ALL);
            } else {
                actions.push(Action::from_name(name).ok_or_else(|| {
                    Error::invalid(
                        format!("{path}.actions[{j}]"),
                        format!("unknown action `{name}`"),
                    )
                })?);
            }
        }
        let cond = match &r.when {
            None => Cond::True,
            Some(c) => compile_cond(c, &format!("{path}.when"))?,
        };
        rules.push(Rule {
            id: Arc::from(r.id.as_str()),
            description: r.description.map(Arc::from),
            effect,
            actions,
            cond,
        });
    }
    Ok(PolicySet::new(rules))
}

fn compile_cond(c: &RawCond, path: &str) -> Result<Cond, Error> {
    let forms = [
        c.all.is_some(),
        c.any.is_some(),
        c.not.is_some(),
        c.attr.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if forms != 1 {
        return Err(Error::invalid(
            path,
            "a condition is exactly one of `all`, `any`, `not` or `attr` with one operator",
        ));
    }
    if let Some(list) = &c.all {
        return list
            .iter()
            .enumerate()
            .map(|(i, c)| compile_cond(c, &format!("{path}.all[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Cond::All);
    }
    if let Some(list) = &c.any {
        return list
            .iter()
            .enumerate()
            .map(|(i, c)| compile_cond(c, &format!("{path}.any[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map(Cond::Any);
    }
    if let Some(inner) = &c.not {
        return Ok(Cond::Not(Box::new(compile_cond(
            inner,
            &format!("{path}.not"),
        )?)));
    }
    let attr_name = c.attr.as_deref().unwrap_or_default();
    let attr = attr_ref(attr_name, &format!("{path}.attr"))?;
    let value = |v: &serde_json::Value, field: &str| {
        Value::from_json(v).ok_or_else(|| {
            Error::invalid(
                format!("{path}.{field}"),
                "must be a string, an integer, a boolean or a list of them",
            )
        })
    };
    let list = |vs: &Vec<serde_json::Value>, field: &str| {
        vs.iter()
            .map(|v| value(v, field))
            .collect::<Result<Vec<_>, _>>()
    };
    let other = |name: &str, field: &str| attr_ref(name, &format!("{path}.{field}"));
    let mut ops: Vec<Cmp> = Vec::new();
    if let Some(v) = &c.eq {
        ops.push(Cmp::Eq(value(v, "eq")?));
    }
    if let Some(v) = &c.ne {
        ops.push(Cmp::Ne(value(v, "ne")?));
    }
    if let Some(v) = &c.in_ {
        ops.push(Cmp::In(list(v, "in")?));
    }
    if let Some(v) = &c.not_in {
        ops.push(Cmp::NotIn(list(v, "not_in")?));
    }
    if let Some(v) = &c.contains {
        ops.push(Cmp::Contains(value(v, "contains")?));
    }
    if let Some(v) = c.gt {
        ops.push(Cmp::Gt(v));
    }
    if let Some(v) = c.gte {
        ops.push(Cmp::Gte(v));
    }
    if let Some(v) = c.lt {
        ops.push(Cmp::Lt(v));
    }
    if let Some(v) = c.lte {
        ops.push(Cmp::Lte(v));
    }
    if let Some(v) = c.exists {
        ops.push(Cmp::Exists(v));
    }
    if let Some(v) = &c.eq_attr {
        ops.push(Cmp::EqAttr(other(v, "eq_attr")?));
    }
    if let Some(v) = &c.ne_attr {
        ops.push(Cmp::NeAttr(other(v, "ne_attr")?));
    }
    if let Some(v) = &c.gt_attr {
        ops.push(Cmp::GtAttr(other(v, "gt_attr")?));
    }
    if let Some(v) = &c.gte_attr {
        ops.push(Cmp::GteAttr(other(v, "gte_attr")?));
    }
    match ops.len() {
        1 => Ok(Cond::Cmp {
            attr,
            op: ops.remove(0),
        }),
        0 => Err(Error::invalid(
            path,
            "`attr` needs one operator: eq, ne, in, not_in, contains, gt, gte, lt, lte, exists, eq_attr, ne_attr, gt_attr, gte_attr",
        )),
        _ => Err(Error::invalid(
            path,
            "only one operator per condition; use `all` to combine",
        )),
    }
}

fn attr_ref(name: &str, path: &str) -> Result<AttrRef, Error> {
    let (scope, key) = name.split_once('.').ok_or_else(|| {
        Error::invalid(
            path,
            format!("`{name}` must be `subject.…`, `resource.…` or `environment.…`"),
        )
    })?;
    let scope = match scope {
        "subject" => Scope::Subject,
        "resource" => Scope::Resource,
        "environment" => Scope::Environment,
        _ => {
            return Err(Error::invalid(
                path,
                format!("unknown scope `{scope}`: use subject, resource or environment"),
            ));
        }
    };
    if key.is_empty() {
        return Err(Error::invalid(path, "the attribute name is empty"));
    }
    Ok(AttrRef {
        scope,
        key: Box::from(key),
    })
}

/// Compiles the shipped default document (which cannot extend itself).
pub(super) fn compile_default() -> Result<PolicySet, Error> {
    let raw: RawDocument = serde_json::from_str(super::DEFAULT_POLICY_JSON)
        .map_err(|e| Error::internal(format!("default policy: {e}")))?;
    if raw.extends.is_some() {
        return Err(Error::internal("the default policy cannot extend"));
    }
    compile(raw)
}
