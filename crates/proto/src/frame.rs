//! JSON-RPC 2.0 and legacy `/websocket` frames: request validation with TrueNAS' exact texts,
//! and response builders.

use serde_json::{Map, Value, json};

/// A validated JSON-RPC call.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// `None` for a notification (no `id` key): executed, never answered.
    pub id: Option<Value>,
    pub method: String,
    pub params: Vec<Value>,
}

/// Why a frame could not become a [`Request`], and the reply to send, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The complete response frame, or `None` when TrueNAS sends nothing (notifications).
    pub reply: Option<String>,
}

fn error_frame(id: &Value, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": id}).to_string()
}

/// Parses and validates one text frame of the JSON-RPC endpoint (§1.5 of the reference).
pub fn parse_request(text: &str) -> Result<Request, Rejected> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Err(Rejected {
                reply: Some(error_frame(&Value::Null, -32700, &e.to_string())),
            });
        }
    };
    let mut obj = match value {
        Value::Object(o) => o,
        Value::Array(_) => {
            let msg = "Batch messages are not supported at this time";
            return Err(Rejected {
                reply: Some(error_frame(&Value::Null, -32600, msg)),
            });
        }
        _ => {
            let msg = "Invalid request: message must be a JSON object";
            return Err(Rejected {
                reply: Some(error_frame(&Value::Null, -32600, msg)),
            });
        }
    };
    let id = obj.remove("id");
    let invalid = |id: &Option<Value>, msg: &str| Rejected {
        reply: id.as_ref().map(|id| {
            // An id of the wrong type is echoed as null: it cannot be trusted as an id.
            let echo = if valid_id(id) {
                id.clone()
            } else {
                Value::Null
            };
            error_frame(&echo, -32600, msg)
        }),
    };
    match obj.get("jsonrpc") {
        None => return Err(invalid(&id, "Missing 'jsonrpc' member")),
        Some(Value::String(s)) if s == "2.0" => {}
        Some(_) => {
            return Err(invalid(
                &id,
                "'jsonrpc' member must be of type string and must be exactly '2.0'",
            ));
        }
    }
    if let Some(i) = &id
        && !valid_id(i)
    {
        return Err(invalid(
            &id,
            "'id' member must be of type null, string or number",
        ));
    }
    let method = match obj.remove("method") {
        None => return Err(invalid(&id, "Missing 'method' member")),
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(_) => return Err(invalid(&id, "'method' member must be of type string")),
    };
    let params = match obj.remove("params") {
        None => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(invalid(&id, "'params' member must be of type array")),
    };
    Ok(Request { id, method, params })
}

fn valid_id(id: &Value) -> bool {
    matches!(id, Value::Null | Value::Number(_) | Value::String(_))
}

/// `{"jsonrpc":"2.0","result":…,"id":…}`.
pub fn result_frame(id: &Value, result: &Value) -> String {
    // Built by hand to avoid cloning a possibly large result into a new Value tree, and
    // serialized straight into the frame (`Display` goes through `fmt` and an extra copy).
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"result\":");
    // Writing a `Value` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut out, result);
    out.extend_from_slice(b",\"id\":");
    let _ = serde_json::to_writer(&mut out, id);
    out.push(b'}');
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// [`result_frame`] for a result that is already JSON text (compact, as `serde_json` writes
/// it): the same bytes as `result_frame` of the parsed value. The frame is built around the
/// text in its own buffer (a multi-megabyte `auth.sessions` reply is not copied again when
/// it was allocated with room to spare).
pub fn result_frame_json(id: &Value, result: String) -> String {
    let mut out = result;
    out.insert_str(0, "{\"jsonrpc\":\"2.0\",\"result\":");
    out.push_str(",\"id\":");
    out.push_str(&id.to_string());
    out.push('}');
    out
}

/// `{"jsonrpc":"2.0","error":…,"id":…}` with an error member from `ApiError::to_jsonrpc`.
pub fn error_response(id: &Value, error: Value) -> String {
    json!({"jsonrpc": "2.0", "error": error, "id": id}).to_string()
}

/// A server→client notification (`collection_update`, `notify_unsubscribed`).
pub fn notification(method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string()
}

/// One message of the legacy `/websocket` protocol (§1.6).
#[derive(Debug, Clone, PartialEq)]
pub enum Legacy {
    Connect {
        version: Value,
        features: Vec<String>,
    },
    Method {
        id: Option<Value>,
        method: Option<Value>,
        params: Option<Value>,
    },
    Ping {
        id: Option<Value>,
    },
    Sub {
        id: Value,
        name: Value,
    },
    Unsub {
        id: Value,
    },
    /// Anything else with a `msg` key: ignored, like TrueNAS does.
    Other,
}

/// Parses a legacy frame; `Err` means the connection must be closed with 1007 (bad JSON).
pub fn parse_legacy(text: &str) -> Result<Legacy, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Value::Object(mut obj) = value else {
        return Ok(Legacy::Other);
    };
    let msg = obj
        .get("msg")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok(match msg.as_str() {
        "connect" => Legacy::Connect {
            version: obj.remove("version").unwrap_or(Value::Null),
            features: obj
                .get("features")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        },
        "method" => Legacy::Method {
            id: obj.remove("id"),
            method: obj.remove("method"),
            params: obj.remove("params"),
        },
        "ping" => Legacy::Ping {
            id: obj.remove("id"),
        },
        "sub" => Legacy::Sub {
            id: obj.remove("id").unwrap_or(Value::Null),
            name: obj.remove("name").unwrap_or(Value::Null),
        },
        "unsub" => Legacy::Unsub {
            id: obj.remove("id").unwrap_or(Value::Null),
        },
        _ => Legacy::Other,
    })
}

/// Legacy `{"msg":"result","id":…,"result":…}`.
pub fn legacy_result(id: &Value, result: &Value) -> String {
    json!({"msg": "result", "id": id, "result": result}).to_string()
}

/// [`legacy_result`] for a result that is already JSON text.
pub fn legacy_result_json(id: &Value, result: String) -> String {
    let mut out = result;
    out.insert_str(0, &format!("{{\"msg\":\"result\",\"id\":{id},\"result\":"));
    out.push('}');
    out
}

/// Legacy `{"msg":"result","id":…,"error":…}` with an error from `ApiError::to_legacy`.
pub fn legacy_error(id: &Value, error: Value) -> String {
    json!({"msg": "result", "id": id, "error": error}).to_string()
}

/// Legacy collection event (`added`/`changed`/`removed`).
pub fn legacy_event(msg: &str, params: &Map<String, Value>) -> String {
    let mut out = params.clone();
    out.remove("msg");
    out.insert("msg".into(), json!(msg));
    Value::Object(out).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> Option<Value> {
        match parse_request(text) {
            Ok(r) => panic!("expected rejection, got {r:?}"),
            Err(Rejected { reply }) => reply.map(|r| serde_json::from_str(&r).unwrap()),
        }
    }

    #[test]
    fn request_validation_table() {
        type Expected<'a> = Option<(i64, &'a str, Value)>;
        let table: Vec<(&str, Expected)> = vec![
            (
                r#"{"id":1,"method":"a.b"}"#,
                Some((-32600, "Missing 'jsonrpc' member", json!(1))),
            ),
            (
                r#"{"jsonrpc":"1.0","id":"x","method":"a.b"}"#,
                Some((
                    -32600,
                    "'jsonrpc' member must be of type string and must be exactly '2.0'",
                    json!("x"),
                )),
            ),
            (
                r#"{"jsonrpc":"2.0","id":[1],"method":"a.b"}"#,
                Some((
                    -32600,
                    "'id' member must be of type null, string or number",
                    Value::Null,
                )),
            ),
            (
                r#"{"jsonrpc":"2.0","id":null}"#,
                Some((-32600, "Missing 'method' member", Value::Null)),
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":""}"#,
                Some((-32600, "'method' member must be of type string", json!(2))),
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"a.b","params":{"x":1}}"#,
                Some((-32600, "'params' member must be of type array", json!(3))),
            ),
            (
                r#"[{"jsonrpc":"2.0"}]"#,
                Some((
                    -32600,
                    "Batch messages are not supported at this time",
                    Value::Null,
                )),
            ),
            // Notifications get nothing back, not even errors.
            (r#"{"jsonrpc":"2.0","method":"a.b","params":{"x":1}}"#, None),
            (r#"{"method":"a.b"}"#, None),
        ];
        for (text, expected) in table {
            let got = reply(text);
            match expected {
                None => assert_eq!(got, None, "{text}"),
                Some((code, msg, id)) => {
                    let got = got.unwrap_or_else(|| panic!("no reply for {text}"));
                    assert_eq!(got["error"]["code"], code, "{text}");
                    assert_eq!(got["error"]["message"], msg, "{text}");
                    assert_eq!(got["id"], id, "{text}");
                    assert!(got["error"].get("data").is_none());
                }
            }
        }
    }

    #[test]
    fn parse_error_is_answered_with_null_id() {
        let got = reply("{not json").unwrap();
        assert_eq!(got["error"]["code"], -32700);
        assert_eq!(got["id"], Value::Null);
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let text = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"a.b","params":{deep}}}"#);
        assert_eq!(reply(&text).unwrap()["error"]["code"], -32700);
    }

    #[test]
    fn ids_keep_their_json_type() {
        for id in [json!(7), json!("seven"), json!(null), json!(1.5)] {
            let text = json!({"jsonrpc": "2.0", "id": id, "method": "core.ping"}).to_string();
            let req = parse_request(&text).unwrap();
            assert_eq!(req.id.as_ref(), Some(&id));
            let frame: Value = serde_json::from_str(&result_frame(&id, &json!("pong"))).unwrap();
            assert_eq!(frame, json!({"jsonrpc": "2.0", "result": "pong", "id": id}));
        }
    }

    #[test]
    fn json_text_results_frame_like_values() {
        let result = json!({"a": [1, "x\"y", {"$set": ["R"]}], "b": null, "c": 1.5});
        let text = result.to_string();
        for id in [json!(7), json!("seven"), json!(null)] {
            assert_eq!(
                result_frame_json(&id, text.clone()),
                result_frame(&id, &result)
            );
            assert_eq!(
                legacy_result_json(&id, text.clone()),
                legacy_result(&id, &result)
            );
        }
    }

    #[test]
    fn legacy_messages() {
        assert_eq!(
            parse_legacy(r#"{"msg":"connect","version":"1","support":["1"]}"#).unwrap(),
            Legacy::Connect {
                version: json!("1"),
                features: vec![]
            }
        );
        assert!(matches!(
            parse_legacy(r#"{"msg":"method","id":"a","method":"core.ping"}"#).unwrap(),
            Legacy::Method { params: None, .. }
        ));
        assert!(parse_legacy("nope").is_err());
        assert_eq!(parse_legacy("[1]").unwrap(), Legacy::Other);
    }
}
