//! The compiled policy set and its decision procedure.

use std::sync::Arc;

use super::{Action, Attrs, Value};

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The operation may proceed.
    Allow,
    /// The operation is refused.
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Subject,
    Resource,
    Environment,
}

#[derive(Debug, Clone)]
pub(crate) struct AttrRef {
    pub(crate) scope: Scope,
    pub(crate) key: Box<str>,
}

#[derive(Debug, Clone)]
pub(crate) enum Cmp {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Contains(Value),
    Gt(i64),
    Gte(i64),
    Lt(i64),
    Lte(i64),
    Exists(bool),
    EqAttr(AttrRef),
    NeAttr(AttrRef),
    GtAttr(AttrRef),
    GteAttr(AttrRef),
}

#[derive(Debug, Clone)]
pub(crate) enum Cond {
    True,
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Cmp { attr: AttrRef, op: Cmp },
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) id: Arc<str>,
    pub(crate) description: Option<Arc<str>>,
    pub(crate) effect: Effect,
    pub(crate) actions: Vec<Action>,
    pub(crate) cond: Cond,
}

impl Rule {
    /// The rule's id, as named in decisions and errors.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What the rule is for.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Allow or deny.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// The actions it applies to.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }
}

/// What a decision is about.
#[derive(Debug, Clone)]
pub struct Request {
    /// The action tried.
    pub action: Action,
    /// Who tries it: `kind`, `id`, `roles`, membership (`is_member`, `member_role`,
    /// `member_rank`, `muted`, `banned`) and `attr.*`.
    pub subject: Attrs,
    /// What it is tried on: `kind`, `owner`, `conversation_kind`, `public`,
    /// `target_user`, `target_rank`, `new_rank`, `attr.*`.
    pub resource: Attrs,
    /// Circumstances: `now` (Unix seconds), `hour` (UTC).
    pub environment: Attrs,
}

/// The outcome of [`PolicySet::decide`]: the effect and the rule that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allow or deny.
    pub effect: Effect,
    /// The deciding rule's id; `default-deny` when no rule matched.
    pub rule: Arc<str>,
}

impl Decision {
    /// Whether the action is allowed.
    pub fn is_allowed(&self) -> bool {
        self.effect == Effect::Allow
    }
}

/// A compiled, validated set of rules, indexed by action.
#[derive(Debug, Clone)]
pub struct PolicySet {
    rules: Vec<Rule>,
    by_action: Vec<Vec<u32>>,
    default_deny: Arc<str>,
}

impl PolicySet {
    pub(crate) fn new(rules: Vec<Rule>) -> Self {
        let mut by_action = vec![Vec::new(); Action::COUNT];
        for (i, rule) in rules.iter().enumerate() {
            for a in &rule.actions {
                let list: &mut Vec<u32> = &mut by_action[a.index()];
                // `*` plus an explicit name must not evaluate a rule twice.
                if list.last() != Some(&(i as u32)) {
                    list.push(i as u32);
                }
            }
        }
        Self {
            rules,
            by_action,
            default_deny: Arc::from(super::DEFAULT_DENY),
        }
    }

    /// The rules, in document order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with this id.
    pub fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| &*r.id == id)
    }

    /// Decides `req`: a matching deny rule wins over any allow (deny overrides); with
    /// no matching rule the answer is deny by `default-deny`. Among several matching
    /// rules of the winning effect, the first in document order is named.
    pub fn decide(&self, req: &Request) -> Decision {
        let mut allow: Option<&Rule> = None;
        for &i in &self.by_action[req.action.index()] {
            let rule = &self.rules[i as usize];
            if rule.effect == Effect::Allow && allow.is_some() {
                continue;
            }
            if eval(&rule.cond, req) {
                match rule.effect {
                    Effect::Deny => {
                        return Decision {
                            effect: Effect::Deny,
                            rule: rule.id.clone(),
                        };
                    }
                    Effect::Allow => allow = Some(rule),
                }
            }
        }
        match allow {
            Some(rule) => Decision {
                effect: Effect::Allow,
                rule: rule.id.clone(),
            },
            None => Decision {
                effect: Effect::Deny,
                rule: self.default_deny.clone(),
            },
        }
    }

    /// A sentence explaining `decision`, for logs and audit.
    pub fn explain(&self, req: &Request, decision: &Decision) -> String {
        let verb = match decision.effect {
            Effect::Allow => "allowed",
            Effect::Deny => "denied",
        };
        match self.rule(&decision.rule).and_then(|r| r.description()) {
            Some(d) => format!("{} {verb} by rule `{}`: {d}", req.action, decision.rule),
            None if &*decision.rule == super::DEFAULT_DENY => {
                format!("{} {verb}: no rule allows it (default deny)", req.action)
            }
            None => format!("{} {verb} by rule `{}`", req.action, decision.rule),
        }
    }
}

fn lookup<'a>(req: &'a Request, a: &AttrRef) -> Option<&'a Value> {
    match a.scope {
        Scope::Subject => req.subject.get(&a.key),
        Scope::Resource => req.resource.get(&a.key),
        Scope::Environment => req.environment.get(&a.key),
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    }
}

/// Conditions on a missing attribute are false, except `exists: false`; so a rule
/// never matches by accident because the service did not supply an attribute.
fn eval(c: &Cond, req: &Request) -> bool {
    match c {
        Cond::True => true,
        Cond::All(cs) => cs.iter().all(|c| eval(c, req)),
        Cond::Any(cs) => cs.iter().any(|c| eval(c, req)),
        Cond::Not(c) => !eval(c, req),
        Cond::Cmp { attr, op } => {
            let v = lookup(req, attr);
            match op {
                Cmp::Exists(want) => v.is_some() == *want,
                Cmp::Eq(x) => v.is_some_and(|v| v == x),
                Cmp::Ne(x) => v.is_some_and(|v| v != x),
                Cmp::In(xs) => v.is_some_and(|v| xs.contains(v)),
                Cmp::NotIn(xs) => v.is_some_and(|v| !xs.contains(v)),
                Cmp::Contains(x) => matches!(v, Some(Value::List(items)) if items.contains(x)),
                Cmp::Gt(x) => int(v).is_some_and(|v| v > *x),
                Cmp::Gte(x) => int(v).is_some_and(|v| v >= *x),
                Cmp::Lt(x) => int(v).is_some_and(|v| v < *x),
                Cmp::Lte(x) => int(v).is_some_and(|v| v <= *x),
                Cmp::EqAttr(o) => match (v, lookup(req, o)) {
                    (Some(a), Some(b)) => a == b,
                    _ => false,
                },
                Cmp::NeAttr(o) => match (v, lookup(req, o)) {
                    (Some(a), Some(b)) => a != b,
                    _ => false,
                },
                Cmp::GtAttr(o) => match (int(v), int(lookup(req, o))) {
                    (Some(a), Some(b)) => a > b,
                    _ => false,
                },
                Cmp::GteAttr(o) => match (int(v), int(lookup(req, o))) {
                    (Some(a), Some(b)) => a >= b,
                    _ => false,
                },
            }
        }
    }
}
