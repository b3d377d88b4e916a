use std::sync::Arc;

/// An attribute value as policies see it.
#[derive(Debug, Clone)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string known at compile time (no allocation).
    Static(&'static str),
    /// A shared string (ids, user attributes).
    Str(Arc<str>),
    /// A list.
    List(Arc<[Value]>),
}

impl Value {
    /// The string, for either string form.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Static(s) => Some(s),
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// From JSON: strings, integers, booleans and lists of them; `None` for anything
    /// else (floats, objects, null), which policies cannot address.
    pub fn from_json(v: &serde_json::Value) -> Option<Value> {
        match v {
            serde_json::Value::Bool(b) => Some(Value::Bool(*b)),
            serde_json::Value::Number(n) => n.as_i64().map(Value::Int),
            serde_json::Value::String(s) => Some(Value::Str(Arc::from(s.as_str()))),
            serde_json::Value::Array(items) => items
                .iter()
                .map(Value::from_json)
                .collect::<Option<Vec<_>>>()
                .map(|v| Value::List(Arc::from(v))),
            _ => None,
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (a, b) => match (a.as_str(), b.as_str()) {
                (Some(x), Some(y)) => x == y,
                _ => false,
            },
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<&'static str> for Value {
    fn from(s: &'static str) -> Self {
        Value::Static(s)
    }
}

impl From<Arc<str>> for Value {
    fn from(s: Arc<str>) -> Self {
        Value::Str(s)
    }
}

/// A small attribute map. Requests carry a handful of attributes, so a vector with a
/// linear scan beats hashing.
#[derive(Debug, Clone, Default)]
pub struct Attrs {
    items: Vec<(std::borrow::Cow<'static, str>, Value)>,
}

impl Attrs {
    /// An empty map with room for `n` attributes.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            items: Vec::with_capacity(n),
        }
    }

    /// Sets `key` (replacing an earlier value).
    pub fn set(
        &mut self,
        key: impl Into<std::borrow::Cow<'static, str>>,
        value: impl Into<Value>,
    ) -> &mut Self {
        let key = key.into();
        let value = value.into();
        match self.items.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.items.push((key, value)),
        }
        self
    }

    /// Builder form of [`Attrs::set`].
    pub fn with(
        mut self,
        key: impl Into<std::borrow::Cow<'static, str>>,
        value: impl Into<Value>,
    ) -> Self {
        self.set(key, value);
        self
    }

    /// Adds free-form attributes under `attr.<name>`, skipping values policies cannot
    /// address.
    pub fn extend_json(&mut self, attrs: &crate::model::Attributes) {
        for (k, v) in attrs {
            if let Some(v) = Value::from_json(v) {
                self.set(format!("attr.{k}"), v);
            }
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.items.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}
