//! Reading a JSON document field by field, so that an error names the field by its path
//! (`errors[3].message`). Two readings share it: telemetry bodies are read strictly (unknown
//! fields refused, `null` never taken for "absent"), GitHub's payloads leniently (a
//! third-party schema that grows: read what we need, ignore the rest, `null` is absent).

use serde_json::{Map, Value};

use crate::error::PayloadError;

/// A place in a document: its path and its value (`None` when absent).
#[derive(Debug, Clone)]
pub(crate) struct At<'a> {
    path: String,
    value: Option<&'a Value>,
}

/// What a value is, for "expected a string, got a number".
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The path of `key` inside `path`.
fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl<'a> At<'a> {
    /// The whole document.
    pub fn root(value: &'a Value) -> Self {
        At {
            path: String::new(),
            value: Some(value),
        }
    }

    /// The field `key` of this object (absent when this is not an object).
    pub fn field(&self, key: &str) -> At<'a> {
        At {
            path: child(&self.path, key),
            value: self.value.and_then(|value| value.get(key)),
        }
    }

    /// Item `index` of `items`, the array at this place.
    pub fn item(&self, items: &'a [Value], index: usize) -> At<'a> {
        At {
            path: format!("{}[{index}]", self.path),
            value: items.get(index),
        }
    }

    pub fn value(&self) -> Option<&'a Value> {
        self.value
    }

    pub fn error(&self, message: impl Into<String>) -> PayloadError {
        let path = if self.path.is_empty() {
            "(body)"
        } else {
            &self.path
        };
        PayloadError::invalid(path, message)
    }

    fn expected(&self, what: &str) -> PayloadError {
        match self.value {
            None => self.error(format!("missing; expected {what}")),
            Some(value) => self.error(format!("expected {what}, got {}", kind(value))),
        }
    }

    /// The value, present and not `null`.
    fn present(&self, what: &str) -> Result<&'a Value, PayloadError> {
        match self.value {
            Some(value) if !value.is_null() => Ok(value),
            _ => Err(self.expected(what)),
        }
    }

    pub fn object(&self) -> Result<&'a Map<String, Value>, PayloadError> {
        self.present("an object")?
            .as_object()
            .ok_or_else(|| self.expected("an object"))
    }

    pub fn array(&self) -> Result<&'a Vec<Value>, PayloadError> {
        self.present("an array")?
            .as_array()
            .ok_or_else(|| self.expected("an array"))
    }

    pub fn str(&self) -> Result<&'a str, PayloadError> {
        self.present("a string")?
            .as_str()
            .ok_or_else(|| self.expected("a string"))
    }

    pub fn u64(&self) -> Result<u64, PayloadError> {
        self.present("a whole number ≥ 0")?
            .as_u64()
            .ok_or_else(|| self.expected("a whole number ≥ 0"))
    }

    /// Lenient: absent or `null` is `None`.
    pub fn str_or_null(&self) -> Result<Option<&'a str>, PayloadError> {
        match self.value {
            None | Some(Value::Null) => Ok(None),
            Some(_) => self.str().map(Some),
        }
    }

    /// Lenient: absent or `null` is `None`.
    pub fn bool_or_null(&self) -> Result<Option<bool>, PayloadError> {
        match self.value {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.expected("a boolean")),
        }
    }

    /// Strict: absent is `None`, `null` is refused.
    pub fn absent_or(&self) -> Result<Option<At<'a>>, PayloadError> {
        match self.value {
            None => Ok(None),
            Some(Value::Null) => {
                Err(self.error("null is not allowed; leave the field out instead"))
            }
            Some(_) => Ok(Some(self.clone())),
        }
    }

    /// Strict: the object here, refusing any key not in `allowed`.
    pub fn object_of(&self, allowed: &[&str]) -> Result<&'a Map<String, Value>, PayloadError> {
        let object = self.object()?;
        match object.keys().find(|key| !allowed.contains(&key.as_str())) {
            None => Ok(object),
            Some(key) => Err(self.field(key).error(format!(
                "unknown field; expected one of {}",
                allowed
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}
