//! The method registry: every public method's [`MethodSpec`] (validation + metadata) next to its
//! handler, and the service table the TrueNAS CLI builds namespaces from.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use gatehouse_proto::ApiError;
use gatehouse_proto::schema::MethodSpec;
use serde_json::{Value, json};

use crate::app::App;
use crate::conn::Conn;
use crate::directory::Directory;

/// What a handler gets: the server and the calling connection.
#[derive(Clone)]
pub struct Ctx {
    pub app: Arc<App>,
    pub conn: Arc<Conn>,
    /// What the handler adds to the METHOD_CALL audit description (TrueNAS'
    /// `audit_extended` / `audit_callback`), e.g. the name of the key being deleted.
    pub audit_extra: Arc<std::sync::Mutex<Option<String>>>,
}

impl Ctx {
    /// Appends `text` to this call's audit description (`"Create API key" + " backup"`).
    pub fn audit_extend(&self, text: impl Into<String>) {
        *self.audit_extra.lock().unwrap_or_else(|p| p.into_inner()) = Some(text.into());
    }

    /// Names the existing object a call acts on in its audit description, looked up in the
    /// current directory (nothing is added when it does not exist).
    pub fn audit_object(&self, name: impl FnOnce(&Directory) -> Option<String>) {
        if let Some(n) = name(&self.app.dir()) {
            self.audit_extend(n);
        }
    }
}

/// What a handler answers: a `Value`, or the result already serialized to JSON text (hot read
/// paths such as `auth.me` and `auth.sessions`, which skip building a `Value` tree).
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Value(Value),
    /// Compact JSON text, exactly as `serde_json` would serialize the equivalent `Value`.
    Json(String),
}

impl From<Value> for Reply {
    fn from(v: Value) -> Self {
        Self::Value(v)
    }
}

pub type BoxFuture = Pin<Box<dyn Future<Output = Result<Reply, ApiError>> + Send>>;
pub type Handler = Arc<dyn Fn(Ctx, Vec<Value>) -> BoxFuture + Send + Sync>;

/// Secret fields of a method's result, and the role that may see them in clear (§1.9).
#[derive(Debug, Clone, Copy)]
pub struct Redaction {
    pub fields: &'static [&'static str],
    pub write_role: &'static str,
}

pub struct Method {
    pub spec: MethodSpec,
    pub handler: Handler,
    pub redact: Option<Redaction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Crud,
    Config,
    Service,
}

#[derive(Debug, Clone)]
pub struct ServiceSpec {
    pub name: &'static str,
    pub cli_namespace: &'static str,
    pub kind: ServiceKind,
    pub cli_description: Option<&'static str>,
}

#[derive(Default)]
pub struct Registry {
    methods: HashMap<&'static str, Arc<Method>>,
    /// Registration order, which `core.get_methods` preserves (the CLI depends on it).
    order: Vec<&'static str>,
    services: Vec<ServiceSpec>,
}

impl Registry {
    pub fn service(&mut self, spec: ServiceSpec) {
        self.services.push(spec);
    }

    pub fn add<F, Fut>(&mut self, spec: MethodSpec, f: F) -> &mut Self
    where
        F: Fn(Ctx, Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ApiError>> + Send + 'static,
    {
        self.add_redacted(spec, None, f)
    }

    pub fn add_redacted<F, Fut>(
        &mut self,
        spec: MethodSpec,
        redact: Option<Redaction>,
        f: F,
    ) -> &mut Self
    where
        F: Fn(Ctx, Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ApiError>> + Send + 'static,
    {
        let f = Arc::new(f);
        self.add_reply(spec, redact, move |ctx, params| {
            let fut = f(ctx, params);
            async move { fut.await.map(Reply::Value) }
        })
    }

    /// Like [`Registry::add_redacted`] for a handler that may answer with JSON text.
    pub fn add_reply<F, Fut>(
        &mut self,
        spec: MethodSpec,
        redact: Option<Redaction>,
        f: F,
    ) -> &mut Self
    where
        F: Fn(Ctx, Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Reply, ApiError>> + Send + 'static,
    {
        let name = spec.name;
        let handler: Handler = Arc::new(move |ctx, params| Box::pin(f(ctx, params)));
        if self
            .methods
            .insert(
                name,
                Arc::new(Method {
                    spec,
                    handler,
                    redact,
                }),
            )
            .is_none()
        {
            self.order.push(name);
        }
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Method>> {
        self.methods.get(name)
    }

    /// Methods in registration order.
    pub fn methods(&self) -> impl Iterator<Item = &Arc<Method>> {
        self.order.iter().filter_map(|n| self.methods.get(n))
    }

    pub fn services(&self) -> &[ServiceSpec] {
        &self.services
    }

    /// The service a method belongs to: the longest registered service name that prefixes it.
    pub fn service_of(&self, method: &str) -> Option<&ServiceSpec> {
        let (svc, _) = method.rsplit_once('.')?;
        self.services.iter().find(|s| s.name == svc)
    }

    pub fn services_metadata(&self) -> Value {
        let mut out = serde_json::Map::new();
        for s in &self.services {
            out.insert(
                s.name.to_string(),
                json!({
                    "config": {
                        "namespace": s.name,
                        "cli_namespace": s.cli_namespace,
                        "cli_description": s.cli_description,
                        "cli_private": false,
                        "private": false,
                    },
                    "type": match s.kind {
                        ServiceKind::Crud => "crud",
                        ServiceKind::Config => "config",
                        ServiceKind::Service => "service",
                    },
                }),
            );
        }
        Value::Object(out)
    }
}
