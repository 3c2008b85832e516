//! The one error type every method returns, and its mapping to both wire protocols.
//!
//! Variants mirror the Python exception classes TrueNAS raises, because the wire shape depends
//! on the class: `ValidationErrors` → JSON-RPC -32602 / legacy errno 11, a single
//! `ValidationError` (e.g. `InstanceNotFound`) → -32602 / its own errno, `CallError` → -32001.

use serde_json::{Value, json};

use crate::errno::{self, errname};

/// One `[attribute, message, errno]` triple of a validation failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    /// Dotted attribute path (`api_key_create.name`); `None` is rendered as JSON null.
    pub attribute: Option<String>,
    pub message: String,
    pub errno: i32,
}

impl ValidationError {
    pub fn new(attribute: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            attribute: Some(attribute.into()),
            message: message.into(),
            errno: errno::EINVAL,
        }
    }

    fn attr_str(&self) -> &str {
        self.attribute.as_deref().unwrap_or("None")
    }

    fn triple(&self) -> Value {
        json!([self.attribute, self.message, self.errno])
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// `ValidationErrors`: one or more attribute errors.
    #[error("{}", validation_reason(.0))]
    Validation(Vec<ValidationError>),
    /// `InstanceNotFound`: a single ValidationError with attribute None and errno ENOENT.
    #[error("[ENOENT] None: {0}")]
    InstanceNotFound(String),
    /// `CallError(errmsg, errno, extra)`.
    #[error("[{}] {message}", errname(*.errno))]
    Call {
        errno: i32,
        message: String,
        extra: Option<Value>,
    },
    /// `MatchNotFound` from `query(..., {"get": true})` with no match.
    #[error("MatchNotFound()")]
    MatchNotFound,
    /// Any other exception: EINVAL, reason is the plain text.
    #[error("{0}")]
    Other(String),
    /// Unknown method (JSON-RPC -32601 / legacy ENOMETHOD).
    #[error("Method does not exist")]
    MethodNotFound(String),
}

fn validation_reason(errors: &[ValidationError]) -> String {
    errors
        .iter()
        .map(|e| format!("[{}] {}: {}\n", errname(e.errno), e.attr_str(), e.message))
        .collect()
}

impl ApiError {
    pub fn call(errno: i32, message: impl Into<String>) -> Self {
        Self::Call {
            errno,
            message: message.into(),
            extra: None,
        }
    }
    pub fn not_authenticated() -> Self {
        Self::call(errno::ENOTAUTHENTICATED, "Not authenticated")
    }
    pub fn not_authorized() -> Self {
        Self::call(errno::EACCES, "Not authorized")
    }
    pub fn validation(attribute: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![ValidationError::new(attribute, message)])
    }
    /// `InstanceNotFound("<Name> <id> does not exist")`.
    pub fn not_found(verbose_name: &str, id: impl std::fmt::Display) -> Self {
        Self::InstanceNotFound(format!("{verbose_name} {id} does not exist"))
    }

    fn class(&self) -> &'static str {
        match self {
            Self::Validation(_) => "ValidationErrors",
            Self::InstanceNotFound(_) => "InstanceNotFound",
            Self::Call { .. } | Self::MethodNotFound(_) => "CallError",
            Self::MatchNotFound => "MatchNotFound",
            Self::Other(_) => "Exception",
        }
    }

    /// The errno of the exception itself (what the legacy protocol reports).
    fn own_errno(&self) -> i32 {
        match self {
            Self::Validation(_) => errno::EAGAIN,
            Self::InstanceNotFound(_) => errno::ENOENT,
            Self::Call { errno, .. } => *errno,
            Self::MethodNotFound(_) => errno::ENOMETHOD,
            Self::MatchNotFound | Self::Other(_) => errno::EINVAL,
        }
    }

    fn extra(&self) -> Value {
        match self {
            Self::Validation(errors) => Value::Array(errors.iter().map(|e| e.triple()).collect()),
            Self::InstanceNotFound(msg) => json!([[null, msg, errno::ENOENT]]),
            Self::Call { extra, .. } => extra.clone().unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    fn reason(&self) -> String {
        match self {
            Self::MethodNotFound(name) => {
                let (svc, m) = name.rsplit_once('.').unwrap_or(("", name));
                format!("[ENOMETHOD] Method '{m}' not found in '{svc}'")
            }
            other => other.to_string(),
        }
    }

    /// A stand-in for the Python traceback object TrueNAS sends: same keys, no frames.
    fn trace(&self) -> Value {
        let reason = self.reason();
        json!({
            "class": self.class(),
            "frames": [],
            "formatted": format!("{}: {}", self.class(), reason),
            "repr": format!("{}({:?})", self.class(), reason),
        })
    }

    /// The JSON-RPC `error` member: `{code, message, data}` (§1.5 of the reference).
    pub fn to_jsonrpc(&self) -> Value {
        let (code, message, error) = match self {
            Self::Validation(_) | Self::InstanceNotFound(_) => {
                (-32602, "Invalid params", errno::EINVAL)
            }
            Self::MethodNotFound(_) => {
                return json!({"code": -32601, "message": "Method does not exist"});
            }
            Self::Call { errno, .. } => (-32001, "Method call error", *errno),
            Self::MatchNotFound | Self::Other(_) => (-32001, "Method call error", errno::EINVAL),
        };
        json!({
            "code": code,
            "message": message,
            "data": {
                "error": error,
                "errname": errname(error),
                "reason": self.reason(),
                "trace": self.trace(),
                "extra": self.extra(),
            }
        })
    }

    /// The legacy `/websocket` error object (§1.6): carries `type`, and errno 11 for
    /// ValidationErrors.
    pub fn to_legacy(&self) -> Value {
        let errno = self.own_errno();
        let ty = match self {
            Self::Validation(_) | Self::InstanceNotFound(_) => json!("VALIDATION"),
            _ => Value::Null,
        };
        json!({
            "error": errno,
            "errname": errname(errno),
            "type": ty,
            "reason": self.reason(),
            "trace": self.trace(),
            "extra": self.extra(),
        })
    }
}

/// Builds ValidationErrors one at a time, like TrueNAS' `verrors.add(...); verrors.check()`.
#[derive(Debug, Default)]
pub struct Verrors(pub Vec<ValidationError>);

impl Verrors {
    pub fn new() -> Self {
        Self(Vec::new())
    }
    pub fn add(&mut self, attribute: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError::new(attribute, message));
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn check(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_not_found_matches_reference_example() {
        let e = ApiError::not_found("ApiKey", 99);
        let v = e.to_jsonrpc();
        assert_eq!(v["code"], -32602);
        assert_eq!(v["message"], "Invalid params");
        assert_eq!(v["data"]["error"], 22);
        assert_eq!(v["data"]["errname"], "EINVAL");
        assert_eq!(
            v["data"]["reason"],
            "[ENOENT] None: ApiKey 99 does not exist"
        );
        assert_eq!(v["data"]["trace"]["class"], "InstanceNotFound");
        assert_eq!(
            v["data"]["extra"],
            json!([[null, "ApiKey 99 does not exist", 2]])
        );
        let l = e.to_legacy();
        assert_eq!(l["error"], 2);
        assert_eq!(l["type"], "VALIDATION");
    }

    #[test]
    fn validation_errors_reason_and_codes() {
        let e = ApiError::validation("api_key_create", "name must be unique");
        let v = e.to_jsonrpc();
        assert_eq!(
            v["data"]["reason"],
            "[EINVAL] api_key_create: name must be unique\n"
        );
        assert_eq!(
            v["data"]["extra"],
            json!([["api_key_create", "name must be unique", 22]])
        );
        assert_eq!(e.to_legacy()["error"], 11);
        assert_eq!(e.to_legacy()["errname"], "EAGAIN");
    }

    #[test]
    fn call_errors() {
        let table = [
            (
                ApiError::not_authenticated(),
                -32001,
                207,
                "[ENOTAUTHENTICATED] Not authenticated",
            ),
            (
                ApiError::not_authorized(),
                -32001,
                13,
                "[EACCES] Not authorized",
            ),
            (ApiError::MatchNotFound, -32001, 22, "MatchNotFound()"),
        ];
        for (err, code, errno, reason) in table {
            let v = err.to_jsonrpc();
            assert_eq!(v["code"], code, "{err:?}");
            assert_eq!(v["data"]["error"], errno, "{err:?}");
            assert_eq!(v["data"]["reason"], reason, "{err:?}");
            assert_eq!(v["data"]["extra"], Value::Null);
            assert!(
                v["data"].get("type").is_none(),
                "JSON-RPC data has no type key"
            );
        }
    }

    #[test]
    fn method_not_found_has_no_data() {
        let v = ApiError::MethodNotFound("foo.bar".into()).to_jsonrpc();
        assert_eq!(
            v,
            json!({"code": -32601, "message": "Method does not exist"})
        );
        let l = ApiError::MethodNotFound("foo.bar".into()).to_legacy();
        assert_eq!(l["error"], 201);
        assert_eq!(l["reason"], "[ENOMETHOD] Method 'bar' not found in 'foo'");
    }
}
