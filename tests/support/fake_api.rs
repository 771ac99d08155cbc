//! A small Kubernetes API server on loopback, enough for the controller's whole loop:
//! list and watch (with resourceVersions, label selectors and replay), get, create,
//! replace with optimistic concurrency, delete, and apply patches on objects and their
//! status. Every request is recorded with the instant it arrived, so tests assert the
//! exact requests and benches measure reaction times.
//!
//! With `auto_kubelet`, a Deployment whose spec changed is rolled out at once (its status
//! says every replica is updated and available), as a kubelet and Deployment controller
//! would do.
//!
//! Apply patches are merged, not fully server-side-applied: lists of objects merge by
//! `name`, and a status apply replaces the status (Greenlight always applies its whole
//! status).

#![allow(dead_code)]

use std::{
    collections::{BTreeMap, HashMap},
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::{body::Frame, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::broadcast};

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// When it arrived.
    pub at: Instant,
    /// Method.
    pub method: Method,
    /// Path.
    pub path: String,
    /// Query string.
    pub query: String,
    /// Content-Type header.
    pub content_type: String,
    /// Body as JSON (Null if empty).
    pub body: Value,
}

/// Where a collection lives: `apis/apps/v1` + `deployments`.
type Collection = (String, String);

#[derive(Default)]
struct State {
    version: u64,
    objects: HashMap<Collection, BTreeMap<(String, String), Value>>,
    /// Each stored object's JSON, encoded once when written, as a real API server's watch
    /// cache keeps it: list pages are these bytes joined.
    encoded: HashMap<Collection, BTreeMap<(String, String), Bytes>>,
    /// Every change of each collection, in resourceVersion order: (version, namespace,
    /// event JSON). Watches find their place by binary search.
    log: HashMap<Collection, Vec<(u64, String, Value)>>,
    requests: Vec<Recorded>,
    auto_kubelet: bool,
    /// Injected failures: (method, path, HTTP code, how many more times).
    faults: Vec<(Method, String, u16, usize)>,
    /// The user SelfSubjectReviews report; when set, Approvals are admitted only as the
    /// chart's admission policy would (see [`FakeApi::set_identity`]).
    identity: Option<(String, Vec<String>)>,
    /// Injected refusals: (method, path, code, reason, message, how many more times).
    refusals: Vec<(Method, String, u16, String, String, usize)>,
    /// The whole server answers 503 and ends its watches (see [`FakeApi::set_down`]).
    down: bool,
    /// API group versions beyond the built-in kinds that discovery lists, with their
    /// (plural, kind) resources (see [`FakeApi::serve`]).
    served: BTreeMap<String, Vec<(String, String)>>,
}

/// The server.
#[derive(Clone)]
pub struct FakeApi {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
    changes: broadcast::Sender<()>,
}

/// The collection of a `kind` (the kinds Greenlight reads and writes).
pub fn collection_of(api_version: &str, kind: &str) -> Collection {
    let prefix = if api_version == "v1" {
        "api/v1".to_owned()
    } else {
        format!("apis/{api_version}")
    };
    let plural = match kind {
        "Pipeline" => "pipelines",
        "Release" => "releases",
        "Approval" => "approvals",
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "DaemonSet" => "daemonsets",
        "CronJob" => "cronjobs",
        "Job" => "jobs",
        "Lease" => "leases",
        "Event" => "events",
        "Pod" => "pods",
        "Secret" => "secrets",
        "HTTPRoute" => "httproutes",
        "Application" => "applications",
        "Kustomization" => "kustomizations",
        other => panic!("the fake API server does not know {other}"),
    };
    (prefix, plural.to_owned())
}

fn kind_of(resource: &str) -> &'static str {
    match resource {
        "pipelines" => "Pipeline",
        "releases" => "Release",
        "approvals" => "Approval",
        "deployments" => "Deployment",
        "statefulsets" => "StatefulSet",
        "daemonsets" => "DaemonSet",
        "cronjobs" => "CronJob",
        "jobs" => "Job",
        "leases" => "Lease",
        "events" => "Event",
        "secrets" => "Secret",
        "httproutes" => "HTTPRoute",
        "applications" => "Application",
        "kustomizations" => "Kustomization",
        _ => "Unknown",
    }
}

/// A parsed path: collection, namespace, name, subresource.
struct Target {
    collection: Collection,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match *parts.first()? {
        "api" => (parts[..2].join("/"), &parts[2..]),
        "apis" => (parts.get(..3)?.join("/"), &parts[3..]),
        _ => return None,
    };
    let (namespace, rest) = if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
        (Some(rest[1].to_owned()), &rest[2..])
    } else {
        (None, rest)
    };
    Some(Target {
        collection: (prefix, rest.first()?.to_string()),
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
    })
}

fn query_param(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn matches_selector(object: &Value, selector: Option<&str>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    selector.split(',').all(|term| {
        let (key, value) = term.split_once('=').unwrap_or((term, ""));
        object["metadata"]["labels"][key].as_str() == Some(value)
    })
}

/// Applies a JSON patch (RFC 6902: `test`, `add`, `replace`, `remove`) to `object`.
fn json_patch(object: &mut Value, ops: &Value) -> Result<(), String> {
    for op in ops
        .as_array()
        .ok_or("a JSON patch is a list of operations")?
    {
        let path = op["path"].as_str().ok_or("an operation without a path")?;
        let (parent, last) = path.rsplit_once('/').ok_or("a path starts with /")?;
        match op["op"].as_str() {
            Some("test") => {
                if object.pointer(path) != Some(&op["value"]) {
                    return Err(format!("the test operation failed at {path}"));
                }
            }
            Some("add" | "replace") => {
                let parent = object
                    .pointer_mut(parent)
                    .ok_or(format!("{parent} does not exist"))?;
                match parent {
                    Value::Object(map) => {
                        map.insert(last.to_owned(), op["value"].clone());
                    }
                    Value::Array(items) => {
                        let at: usize = last.parse().map_err(|_| format!("{path} is no index"))?;
                        if op["op"] == "add" {
                            items.insert(at, op["value"].clone());
                        } else {
                            items[at] = op["value"].clone();
                        }
                    }
                    _ => return Err(format!("{parent} is not a container")),
                }
            }
            Some("remove") => {
                let parent = object
                    .pointer_mut(parent)
                    .ok_or(format!("{parent} does not exist"))?;
                if let Value::Object(map) = parent {
                    map.remove(last);
                }
            }
            other => return Err(format!("unsupported operation {other:?}")),
        }
    }
    Ok(())
}

/// Deep merge: objects key by key, lists of named objects by name, the rest replaced.
fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(into), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    into.remove(key);
                } else {
                    merge(into.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (Value::Array(into), Value::Array(patch))
            if patch.iter().all(|v| v["name"].is_string()) && !patch.is_empty() =>
        {
            for item in patch {
                match into.iter_mut().find(|i| i["name"] == item["name"]) {
                    Some(existing) => merge(existing, item),
                    None => into.push(item.clone()),
                }
            }
        }
        (into, patch) => *into = patch.clone(),
    }
}

fn status_response(code: u16, reason: &str, message: String) -> (StatusCode, Value) {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

impl State {
    fn bump(&mut self) -> u64 {
        self.version += 1;
        self.version
    }

    /// Stores `object` and logs the event; returns the stored object.
    fn store(&mut self, collection: &Collection, mut object: Value, kind: &str) -> Value {
        let version = self.bump();
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = object["metadata"]["name"].as_str().unwrap_or("").to_owned();
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let encoded = Bytes::from(serde_json::to_vec(&object).expect("JSON encodes"));
        self.encoded
            .entry(collection.clone())
            .or_default()
            .insert((namespace.clone(), name.clone()), encoded);
        self.objects
            .entry(collection.clone())
            .or_default()
            .insert((namespace.clone(), name), object.clone());
        self.log.entry(collection.clone()).or_default().push((
            version,
            namespace,
            json!({"type": kind, "object": object}),
        ));
        object
    }

    fn get(&self, collection: &Collection, namespace: &str, name: &str) -> Option<Value> {
        self.objects
            .get(collection)?
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    fn create(&mut self, collection: &Collection, mut object: Value) -> Value {
        let version = self.version + 1;
        let meta = &mut object["metadata"];
        meta["uid"] = json!(format!("uid-{version}"));
        meta["generation"] = json!(1);
        if meta["creationTimestamp"].is_null() {
            meta["creationTimestamp"] = json!(
                jiff::Timestamp::now()
                    .round(jiff::Unit::Second)
                    .unwrap()
                    .to_string()
            );
        }
        let object = self.store(collection, object, "ADDED");
        self.kubelet(collection, &object);
        object
    }

    fn update(&mut self, collection: &Collection, old: &Value, mut object: Value) -> Value {
        let spec_changed = old["spec"] != object["spec"];
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        object["metadata"]["generation"] = json!(if spec_changed {
            generation + 1
        } else {
            generation
        });
        for key in ["uid", "creationTimestamp"] {
            object["metadata"][key] = old["metadata"][key].clone();
        }
        let object = self.store(collection, object, "MODIFIED");
        if spec_changed {
            self.kubelet(collection, &object);
        }
        object
    }

    /// The authentication API and the chart's Approval admission policy: `Some` answers
    /// the request here, `None` lets it through.
    fn authenticate(
        &self,
        method: &Method,
        target: &Target,
        body: &Value,
    ) -> Option<(StatusCode, Value)> {
        if method != Method::POST {
            return None;
        }
        let (user, groups) = self.identity.clone().unwrap_or_else(|| {
            (
                "kubernetes-admin".to_owned(),
                vec![
                    "kubeadm:cluster-admins".to_owned(),
                    "system:authenticated".to_owned(),
                ],
            )
        });
        match target.collection.1.as_str() {
            "selfsubjectreviews" if target.collection.0 == "apis/authentication.k8s.io/v1" => {
                let mut review = body.clone();
                review["status"] = json!({"userInfo": {"username": user, "groups": groups}});
                Some((StatusCode::CREATED, review))
            }
            "approvals" if self.identity.is_some() => {
                // The messages of charts/greenlight/files/approval-policy.yaml, wrapped the
                // way the API server reports a ValidatingAdmissionPolicy denial.
                let name = body["metadata"]["name"].as_str().unwrap_or("");
                let approver = body["spec"]["approver"].as_str().unwrap_or("");
                let missing: Vec<&str> = body["spec"]["groups"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|g| !groups.iter().any(|m| m == g))
                    .collect();
                let denied = if approver != user {
                    Some(format!(
                        "spec.approver is \"{approver}\" but the request was made by \"{user}\": \
                         an Approval must be created by its approver"
                    ))
                } else {
                    missing.first().map(|group| {
                        format!(
                            "spec.groups names \"{group}\" but the request was made by \"{user}\", \
                             who is not a member: name only groups the approver belongs to"
                        )
                    })
                };
                denied.map(|why| {
                    status_response(
                        403,
                        "Forbidden",
                        format!(
                            "approvals.greenlight.dev \"{name}\" is forbidden: \
                             ValidatingAdmissionPolicy 'greenlight-identity' with binding \
                             'greenlight-identity' denied request: {why}"
                        ),
                    )
                })
            }
            _ => None,
        }
    }

    /// The kubelet and the workload controllers, instantly: a changed Deployment,
    /// StatefulSet or DaemonSet reports its new generation rolled out on every replica (a
    /// CronJob has no pods of its own).
    fn kubelet(&mut self, collection: &Collection, object: &Value) {
        if !self.auto_kubelet {
            return;
        }
        let mut rolled = object.clone();
        let generation = rolled["metadata"]["generation"].clone();
        let replicas = rolled["spec"]["replicas"].as_i64().unwrap_or(1);
        rolled["status"] = match collection.1.as_str() {
            "deployments" => json!({
                "observedGeneration": generation,
                "replicas": replicas, "updatedReplicas": replicas,
                "readyReplicas": replicas, "availableReplicas": replicas,
            }),
            "statefulsets" => {
                let revision = format!(
                    "{}-{generation}",
                    rolled["metadata"]["name"].as_str().unwrap_or_default()
                );
                json!({
                    "observedGeneration": generation,
                    "replicas": replicas, "updatedReplicas": replicas, "currentReplicas": replicas,
                    "readyReplicas": replicas, "availableReplicas": replicas,
                    "currentRevision": revision, "updateRevision": revision,
                })
            }
            "daemonsets" => json!({
                "observedGeneration": generation,
                "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                "updatedNumberScheduled": 2, "numberAvailable": 2, "numberReady": 2,
            }),
            _ => return,
        };
        self.store(collection, rolled, "MODIFIED");
    }
}

impl FakeApi {
    /// Starts a server on a free loopback port.
    pub async fn start(auto_kubelet: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (changes, _) = broadcast::channel(1024);
        let api = Self {
            url: format!("http://{addr}"),
            state: Arc::new(Mutex::new(State {
                auto_kubelet,
                ..State::default()
            })),
            changes,
        };
        let server = api.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let server = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.handle(request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        api
    }

    /// Lists `plural` (`kind`) in discovery under `group_version`, as an API server with
    /// that CRD installed does; objects of any kind are stored and watched either way.
    pub fn serve(&self, group_version: &str, plural: &str, kind: &str) {
        self.state()
            .served
            .entry(group_version.to_owned())
            .or_default()
            .push((plural.to_owned(), kind.to_owned()));
    }

    /// Turns the instant kubelet and Deployment controller on or off. Off, a changed
    /// Deployment keeps its old status (`observedGeneration` behind `generation`), as
    /// behind a control plane that lags; [`FakeApi::catch_up`] then rolls it out.
    pub fn set_auto_kubelet(&self, on: bool) {
        self.state().auto_kubelet = on;
    }

    /// The lagging Deployment controller catches up with Deployment `namespace/name`.
    pub fn catch_up(&self, namespace: &str, name: &str) {
        let collection = collection_of("apps/v1", "Deployment");
        let mut state = self.state();
        let object = state
            .get(&collection, namespace, name)
            .expect("the Deployment exists");
        let auto = std::mem::replace(&mut state.auto_kubelet, true);
        state.kubelet(&collection, &object);
        state.auto_kubelet = auto;
        drop(state);
        let _ = self.changes.send(());
    }

    /// A Secret `namespace/name` holding, under `value`, a kubeconfig whose current
    /// context is this server: how a Pipeline in another cluster reaches it.
    pub fn kubeconfig_secret(&self, namespace: &str, name: &str) -> Value {
        let kubeconfig = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters: [{{name: remote, cluster: {{server: \"{}\"}}}}]\n\
             users: [{{name: greenlight, user: {{token: not-checked-here}}}}]\n\
             contexts: [{{name: remote, context: {{cluster: remote, user: greenlight}}}}]\n\
             current-context: remote\n",
            self.url
        );
        let secret = k8s_openapi::api::core::v1::Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            data: Some(
                [(
                    "value".to_owned(),
                    k8s_openapi::ByteString(kubeconfig.into_bytes()),
                )]
                .into(),
            ),
            ..Default::default()
        };
        let mut value = serde_json::to_value(secret).expect("a Secret serializes");
        value["apiVersion"] = json!("v1");
        value["kind"] = json!("Secret");
        value
    }

    /// A client of this server, with `default` as its namespace.
    pub fn client(&self) -> kube::Client {
        let config = kube::Config::new(self.url.parse().expect("a valid URL"));
        kube::Client::try_from(config).expect("a client for the fake API server")
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates or replaces an object as another client would (CI, a person, the kubelet).
    pub fn put(&self, object: Value) -> Value {
        let collection = collection_of(
            object["apiVersion"].as_str().expect("apiVersion"),
            object["kind"].as_str().expect("kind"),
        );
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_owned();
        let stored = {
            let mut state = self.state();
            match state.get(&collection, &namespace, &name) {
                Some(old) => state.update(&collection, &old, object),
                None => state.create(&collection, object),
            }
        };
        let _ = self.changes.send(());
        stored
    }

    /// The stored object, if any.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        self.state()
            .get(&collection_of(api_version, kind), namespace, name)
    }

    /// Every stored object of a kind.
    pub fn list(&self, api_version: &str, kind: &str) -> Vec<Value> {
        self.state()
            .objects
            .get(&collection_of(api_version, kind))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// Answers the next `times` requests of `method` on `path` with `code` (an outage).
    pub fn fail(&self, method: Method, path: &str, code: u16, times: usize) {
        self.state()
            .faults
            .push((method, path.to_owned(), code, times));
    }

    /// Takes the whole server down (every request answers 503, open watches end) or
    /// brings it back, as a cluster that goes away and returns.
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
        let _ = self.changes.send(());
    }

    /// Authenticates every client as `user` in `groups`: `POST selfsubjectreviews` answers
    /// with them, and an Approval is created only if its `approver` is `user` and its
    /// `groups` are among `groups`, as the chart's ValidatingAdmissionPolicy requires
    /// (otherwise 403 with the policy's message). Unset, reviews answer `kubernetes-admin`
    /// and Approvals are not checked.
    pub fn set_identity(&self, user: &str, groups: &[&str]) {
        self.state().identity = Some((
            user.to_owned(),
            groups.iter().map(|g| (*g).to_owned()).collect(),
        ));
    }

    /// Answers the next `times` requests of `method` on `path` with `code`, `reason` and
    /// `message`, as RBAC or an admission policy refuses a request.
    pub fn refuse(
        &self,
        method: Method,
        path: &str,
        code: u16,
        reason: &str,
        message: &str,
        times: usize,
    ) {
        self.state().refusals.push((
            method,
            path.to_owned(),
            code,
            reason.to_owned(),
            message.to_owned(),
            times,
        ));
    }

    /// How many requests arrived so far.
    pub fn request_count(&self) -> usize {
        self.state().requests.len()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Waits for a request matching `matches` (one already received counts).
    pub async fn wait_for_request(
        &self,
        timeout: Duration,
        matches: impl Fn(&Recorded) -> bool,
    ) -> Option<Recorded> {
        self.wait_for(timeout, || self.requests().into_iter().find(|r| matches(r)))
            .await
    }

    /// Polls `found` after every change until it returns something or time runs out.
    pub async fn wait_for<T>(&self, timeout: Duration, found: impl Fn() -> Option<T>) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.changes.subscribe();
        loop {
            if let Some(found) = found() {
                return Some(found);
            }
            let wait = tokio::time::timeout_at(deadline, changes.recv()).await;
            if wait.is_err() {
                return found();
            }
        }
    }

    async fn handle(
        &self,
        request: Request<hyper::body::Incoming>,
    ) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
        let at = Instant::now();
        let (parts, body) = request.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .or_else(|_| serde_yaml::from_slice(&bytes))
                .unwrap_or(Value::Null)
        };
        let query = parts.uri.query().unwrap_or("").to_owned();
        let recorded = Recorded {
            at,
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            query: query.clone(),
            content_type: parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            body: body.clone(),
        };
        let watching = matches!(query_param(&query, "watch").as_deref(), Some("true" | "1"));
        if let Some(resources) = self.discovery(&parts.method, parts.uri.path()) {
            self.state().requests.push(recorded);
            return full((StatusCode::OK, resources));
        }
        let Some(target) = parse_path(parts.uri.path()) else {
            return full(status_response(
                404,
                "NotFound",
                format!("no route {}", parts.uri.path()),
            ));
        };
        if self.state().down {
            return full(status_response(
                503,
                "ServiceUnavailable",
                "the API server is down".into(),
            ));
        }
        if watching {
            return self.watch(target, &query);
        }
        let fault = {
            let mut state = self.state();
            let fault = state
                .faults
                .iter_mut()
                .find(|(m, p, _, left)| *m == parts.method && p == parts.uri.path() && *left > 0);
            fault.map(|(_, _, code, left)| {
                *left -= 1;
                *code
            })
        };
        let refusal = {
            let mut state = self.state();
            let refusal = state.refusals.iter_mut().find(|(m, p, _, _, _, left)| {
                *m == parts.method && p == parts.uri.path() && *left > 0
            });
            refusal.map(|(_, _, code, reason, message, left)| {
                *left -= 1;
                (*code, reason.clone(), message.clone())
            })
        };
        let answer = match (fault, refusal) {
            (Some(code), _) => {
                status_response(code, "ServiceUnavailable", "injected failure".into())
            }
            (None, Some((code, reason, message))) => status_response(code, &reason, message),
            (None, None) if parts.method == Method::GET && target.name.is_none() => {
                let page = self.list_page(&target, &query);
                self.state().requests.push(recorded);
                let _ = self.changes.send(());
                return page;
            }
            (None, None) => {
                let content_type = recorded.content_type.clone();
                self.answer(&parts.method, &target, body, &content_type)
            }
        };
        // Recorded once answered: whoever sees the request also sees its effect.
        self.state().requests.push(recorded);
        let _ = self.changes.send(());
        full(answer)
    }

    /// One page of a list, as a real API server serves it (`limit`, `continue`): the token
    /// carries the list's resourceVersion and the offset of the next item. The items are
    /// the objects' bytes encoded when they were written, joined under the store's lock: a
    /// page of 500 Releases is megabytes, and the bench that measures the controller's
    /// start shares the cores with this server.
    fn list_page(
        &self,
        target: &Target,
        query: &str,
    ) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
        let state = self.state();
        let selector = query_param(query, "labelSelector");
        let limit = query_param(query, "limit").and_then(|l| l.parse::<usize>().ok());
        let (version, offset) = query_param(query, "continue")
            .and_then(|token| {
                let (version, offset) = token.split_once('-')?;
                Some((version.to_owned(), offset.parse::<usize>().ok()?))
            })
            .unwrap_or_else(|| (state.version.to_string(), 0));
        let encoded = state.encoded.get(&target.collection);
        let mut items: Vec<&Bytes> = state
            .objects
            .get(&target.collection)
            .map(|m| {
                m.iter()
                    .filter(|((ns, _), _)| target.namespace.as_ref().is_none_or(|t| t == ns))
                    .filter(|(_, o)| matches_selector(o, selector.as_deref()))
                    .skip(offset)
                    .take(limit.map_or(usize::MAX, |l| l + 1))
                    .filter_map(|(key, _)| encoded?.get(key))
                    .collect()
            })
            .unwrap_or_default();
        let mut metadata = json!({"resourceVersion": version});
        if let Some(limit) = limit.filter(|l| items.len() > *l) {
            items.truncate(limit);
            metadata["continue"] = json!(format!("{version}-{}", offset + limit));
        }
        let head = json!({
            "kind": format!("{}List", kind_of(&target.collection.1)),
            "apiVersion": "v1",
            "metadata": metadata,
        })
        .to_string();
        let mut body =
            Vec::with_capacity(head.len() + 16 + items.iter().map(|b| b.len() + 1).sum::<usize>());
        // `{"apiVersion":…,"kind":…,"metadata":…` then `,"items":[…]}`.
        body.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        body.extend_from_slice(b",\"items\":[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(item);
        }
        body.extend_from_slice(b"]}");
        drop(state);
        let mut response = Response::new(UnsyncBoxBody::new(Full::new(Bytes::from(body))));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    }

    /// Everything but lists (those are [`Self::list_page`]).
    /// The APIResourceList of a served group version (`GET /apis/{group}/{version}`).
    fn discovery(&self, method: &Method, path: &str) -> Option<Value> {
        let group_version = path.strip_prefix("/apis/")?;
        if method != Method::GET || group_version.matches('/').count() != 1 {
            return None;
        }
        let state = self.state();
        let resources = state.served.get(group_version)?;
        let resources: Vec<Value> = resources
            .iter()
            .map(|(plural, kind)| {
                json!({"name": plural, "singularName": "", "namespaced": true, "kind": kind,
                       "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]})
            })
            .collect();
        Some(json!({"kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": group_version, "resources": resources}))
    }

    fn answer(
        &self,
        method: &Method,
        target: &Target,
        body: Value,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let mut state = self.state();
        let namespace = target.namespace.clone().unwrap_or_default();
        let kind = kind_of(&target.collection.1);
        if let Some(answer) = state.authenticate(method, target, &body) {
            return answer;
        }
        match (method, &target.name) {
            (&Method::GET, Some(name)) => match state.get(&target.collection, &namespace, name) {
                Some(object) => (StatusCode::OK, object),
                None => status_response(
                    404,
                    "NotFound",
                    format!("{kind} {namespace}/{name} not found"),
                ),
            },
            (&Method::POST, None) => {
                let name = body["metadata"]["name"].as_str().unwrap_or("").to_owned();
                if state.get(&target.collection, &namespace, &name).is_some() {
                    return status_response(
                        409,
                        "AlreadyExists",
                        format!("{kind} {namespace}/{name} already exists"),
                    );
                }
                let mut object = body;
                object["metadata"]["namespace"] = json!(namespace);
                (
                    StatusCode::CREATED,
                    state.create(&target.collection, object),
                )
            }
            (&Method::PUT, Some(name)) => {
                let Some(old) = state.get(&target.collection, &namespace, name) else {
                    return status_response(
                        404,
                        "NotFound",
                        format!("{kind} {namespace}/{name} not found"),
                    );
                };
                if body["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"] {
                    return status_response(409, "Conflict", "the object has been modified".into());
                }
                (StatusCode::OK, state.update(&target.collection, &old, body))
            }
            (&Method::PATCH, Some(name)) => {
                let apply = content_type == "application/apply-patch+yaml";
                let Some(old) = state.get(&target.collection, &namespace, name) else {
                    if apply && target.subresource.is_none() {
                        // Server-side apply creates what does not exist.
                        let mut object = body;
                        object["metadata"]["namespace"] = json!(namespace);
                        return (
                            StatusCode::CREATED,
                            state.create(&target.collection, object),
                        );
                    }
                    return status_response(
                        404,
                        "NotFound",
                        format!("{kind} {namespace}/{name} not found"),
                    );
                };
                let mut object = old.clone();
                if content_type == "application/json-patch+json" {
                    if let Err(why) = json_patch(&mut object, &body) {
                        return status_response(422, "Invalid", why);
                    }
                } else if target.subresource.as_deref() == Some("status") {
                    object["status"] = body["status"].clone();
                } else {
                    let mut patch = body;
                    if let Some(map) = patch.as_object_mut() {
                        map.remove("status");
                        map.remove("apiVersion");
                        map.remove("kind");
                    }
                    merge(&mut object, &patch);
                }
                (
                    StatusCode::OK,
                    state.update(&target.collection, &old, object),
                )
            }
            (&Method::DELETE, Some(name)) => {
                let key = (namespace.clone(), name.clone());
                if let Some(encoded) = state.encoded.get_mut(&target.collection) {
                    encoded.remove(&key);
                }
                let removed = state
                    .objects
                    .get_mut(&target.collection)
                    .and_then(|m| m.remove(&key));
                match removed {
                    Some(object) => {
                        let version = state.bump();
                        state
                            .log
                            .entry(target.collection.clone())
                            .or_default()
                            .push((
                                version,
                                namespace,
                                json!({"type": "DELETED", "object": object}),
                            ));
                        (StatusCode::OK, object)
                    }
                    None => status_response(
                        404,
                        "NotFound",
                        format!("{kind} {namespace}/{name} not found"),
                    ),
                }
            }
            _ => status_response(
                405,
                "MethodNotAllowed",
                format!("{method} is not supported here"),
            ),
        }
    }

    /// Streams the events after the requested resourceVersion, then every new one.
    fn watch(&self, target: Target, query: &str) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
        let from: u64 = query_param(query, "resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let selector = query_param(query, "labelSelector");
        let state = self.state.clone();
        let changes = self.changes.subscribe();
        let stream = futures::stream::unfold(
            (from, changes, state),
            move |(mut seen, mut changes, state)| {
                let (target_collection, target_ns, selector) = (
                    target.collection.clone(),
                    target.namespace.clone(),
                    selector.clone(),
                );
                async move {
                    loop {
                        let next: Vec<Value> = {
                            let state = state
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            if state.down {
                                return None;
                            }
                            let log = state
                                .log
                                .get(&target_collection)
                                .map(Vec::as_slice)
                                .unwrap_or(&[]);
                            let start = log.partition_point(|(v, _, _)| *v <= seen);
                            seen = state.version.max(seen);
                            log[start..]
                                .iter()
                                .filter(|(_, ns, e)| {
                                    target_ns.as_ref().is_none_or(|t| t == ns)
                                        && matches_selector(&e["object"], selector.as_deref())
                                })
                                .map(|(_, _, e)| e.clone())
                                .collect()
                        };
                        if !next.is_empty() {
                            let mut chunk = Vec::new();
                            for event in next {
                                chunk.extend(serde_json::to_vec(&event).unwrap());
                                chunk.push(b'\n');
                            }
                            return Some((
                                Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))),
                                (seen, changes, state),
                            ));
                        }
                        if let Err(broadcast::error::RecvError::Closed) = changes.recv().await {
                            return None;
                        }
                    }
                }
            },
        );
        let mut response = Response::new(UnsyncBoxBody::new(StreamBody::new(stream.boxed())));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        response
    }
}

fn full((status, body): (StatusCode, Value)) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
    let mut response = Response::new(UnsyncBoxBody::new(Full::new(Bytes::from(body.to_string()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
