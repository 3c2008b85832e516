//! Errors returned by [`crate::Client`].

use serde_json::Value;

/// How a WebSocket connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code sent by the peer, `None` when the connection dropped without a close frame.
    pub code: Option<u16>,
    /// The close reason (empty when none was given).
    pub reason: String,
}

impl std::fmt::Display for CloseInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.code {
            Some(code) => write!(
                f,
                "WebSocket connection closed with code={code}, reason={}",
                self.reason
            ),
            None => write!(
                f,
                "WebSocket connection closed with code=None, reason={}",
                self.reason
            ),
        }
    }
}

/// The JSON-RPC `error` member of a response.
///
/// On the legacy `/websocket` protocol the error object has no `code`/`message`; it is stored
/// whole in `data` and `code` is synthesised: -32602 for `type == "VALIDATION"`, else -32001.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    /// `{error, errname, reason, trace, extra}` (absent for protocol-level errors).
    pub data: Option<Value>,
}

impl RpcError {
    /// Builds from a JSON-RPC `error` object.
    pub fn from_jsonrpc(error: &Value) -> Self {
        Self {
            code: error.get("code").and_then(Value::as_i64).unwrap_or(-32603),
            message: error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            data: error.get("data").filter(|d| !d.is_null()).cloned(),
        }
    }

    /// Builds from a legacy `/websocket` `error` object.
    pub fn from_legacy(error: &Value) -> Self {
        let validation = error.get("type").and_then(Value::as_str) == Some("VALIDATION");
        let (code, message) = if validation {
            (-32602, "Invalid params")
        } else {
            (-32001, "Method call error")
        };
        Self {
            code,
            message: message.to_string(),
            data: Some(error.clone()),
        }
    }

    fn data_field(&self, key: &str) -> Option<&Value> {
        self.data.as_ref()?.get(key).filter(|v| !v.is_null())
    }

    /// `data.error`: the errno.
    pub fn errno(&self) -> Option<i64> {
        self.data_field("error")?.as_i64()
    }
    /// `data.errname`, e.g. `EINVAL`.
    pub fn errname(&self) -> Option<&str> {
        self.data_field("errname")?.as_str()
    }
    /// `data.reason`, e.g. `[EINVAL] api_key_create.name: Field required\n`.
    pub fn reason(&self) -> Option<&str> {
        self.data_field("reason")?.as_str()
    }
    /// `data.extra` (validation triples for ValidationErrors).
    pub fn extra(&self) -> Option<&Value> {
        self.data_field("extra")
    }
    /// `data.trace` (`{class, formatted, repr, ...}`).
    pub fn trace(&self) -> Option<&Value> {
        self.data_field("trace")
    }
    /// `data.trace.class`, e.g. `CallError`.
    pub fn trace_class(&self) -> Option<&str> {
        self.trace()?.get("class")?.as_str()
    }
    /// `data.trace.formatted`: the server traceback.
    pub fn trace_formatted(&self) -> Option<&str> {
        self.trace()?.get("formatted")?.as_str()
    }
    /// `data.trace.repr`.
    pub fn trace_repr(&self) -> Option<&str> {
        self.trace()?.get("repr")?.as_str()
    }
    /// True for `ValidationError(s)`: JSON-RPC -32602, or legacy `type: "VALIDATION"`.
    pub fn is_validation(&self) -> bool {
        self.code == -32602 || self.data_field("type").and_then(Value::as_str) == Some("VALIDATION")
    }
    /// `(attribute, message, errno)` triples from `data.extra` (validation errors only).
    pub fn validation_errors(&self) -> Vec<(Option<String>, String, i64)> {
        let Some(Value::Array(items)) = self.extra() else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|t| {
                let t = t.as_array()?;
                let attr = t.first().and_then(Value::as_str).map(str::to_string);
                let msg = t
                    .get(1)
                    .map(|m| m.as_str().map_or_else(|| m.to_string(), str::to_string))?;
                let errno = t.get(2).and_then(Value::as_i64).unwrap_or(22);
                Some((attr, msg, errno))
            })
            .collect()
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason() {
            Some(reason) => f.write_str(reason.trim_end()),
            None => write!(f, "{} ({})", self.message, self.code),
        }
    }
}

/// Everything a call or a connection attempt can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens there: socket file missing (ENOENT) or connection refused.
    #[error("middleware is not running ({target}: {source})")]
    NotRunning {
        target: String,
        #[source]
        source: std::io::Error,
    },
    /// Connecting took longer than the connect timeout.
    #[error("middleware is not responding ({0})")]
    ConnectTimeout(String),
    /// The WebSocket (or legacy `connect`) handshake failed.
    #[error("Failed connection handshake: {0}")]
    Handshake(String),
    /// Any other connection failure (bad URL, I/O error, ...).
    #[error("connection failed: {0}")]
    Connect(String),
    /// The call did not get an answer in time.
    #[error("Call timeout")]
    Timeout { method: String },
    /// The connection is closed (before or during the call).
    #[error("{0}")]
    Closed(CloseInfo),
    /// The server answered with an error object.
    #[error("{0}")]
    Server(RpcError),
    /// The server sent something that is not valid for the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The server error, if this is one.
    pub fn as_server(&self) -> Option<&RpcError> {
        match self {
            Self::Server(e) => Some(e),
            _ => None,
        }
    }
    /// True for connection-establishment failures (not running, timeout, handshake, other).
    pub fn is_connect(&self) -> bool {
        matches!(
            self,
            Self::NotRunning { .. }
                | Self::ConnectTimeout(_)
                | Self::Handshake(_)
                | Self::Connect(_)
        )
    }
}
