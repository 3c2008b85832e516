//! Shared test helpers: the fixture tree and a mock middleware.
#![allow(
    dead_code,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::type_complexity
)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use gatehouse_cli::{Caller, Ctx, Tree};
use gatehouse_client::{ClientError, RpcError};
use serde_json::{Value, json};

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn auth_tree() -> Tree {
    Tree::build(&fixture("get_methods.json"), &fixture("get_services.json"))
}

pub type Calls = Rc<RefCell<Vec<(String, Vec<Value>)>>>;

#[derive(Default)]
pub struct Mock {
    pub calls: Calls,
    pub answers: HashMap<String, Result<Value, RpcError>>,
}

impl Caller for Mock {
    fn call(&mut self, method: &str, params: Vec<Value>) -> Result<Value, ClientError> {
        self.calls.borrow_mut().push((method.to_string(), params));
        match self.answers.get(method) {
            Some(Ok(v)) => Ok(v.clone()),
            Some(Err(e)) => Err(ClientError::Server(e.clone())),
            None => Ok(Value::Null),
        }
    }
}

/// A shell on the fixture tree; `answers` maps method names to results.
pub fn shell(answers: Vec<(&str, Result<Value, RpcError>)>) -> (Ctx, Calls) {
    let mock = Mock {
        calls: Calls::default(),
        answers: answers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    };
    let calls = mock.calls.clone();
    (
        Ctx::new(auth_tree(), "truenas.local".into(), Box::new(mock)),
        calls,
    )
}

/// A JSON-RPC ValidationErrors error with `[attr, msg, errno]` triples.
pub fn validation(triples: Value) -> RpcError {
    RpcError {
        code: -32602,
        message: "Invalid params".into(),
        data: Some(
            json!({"error": 22, "errname": "EINVAL", "reason": "...", "trace": {"class": "ValidationErrors", "formatted": "Traceback...", "repr": "ValidationErrors()"}, "extra": triples}),
        ),
    }
}

/// A JSON-RPC CallError.
pub fn call_error(errno: i64, errname: &str, msg: &str) -> RpcError {
    RpcError {
        code: -32001,
        message: "Method call error".into(),
        data: Some(
            json!({"error": errno, "errname": errname, "reason": format!("[{errname}] {msg}"), "trace": {"class": "CallError", "formatted": format!("Traceback (most recent call last):\nCallError: [{errname}] {msg}"), "repr": format!("CallError('{msg}')")}, "extra": null}),
        ),
    }
}
