//! A fake Kubernetes API server with a fake kubelet, for the cluster
//! provider's tests.
//!
//! # Why a fake
//!
//! No real API server can run on this machine or in CI: Debian's
//! `kubernetes` source package builds only `kubectl` (1.20), there is no
//! `kube-apiserver` (nor k3s, kind, kwok or envtest binaries) in Debian,
//! PyPI, npm or crates.io, and everything that ships one (envtest's
//! bucket, container images for kind/k3d) comes from hosts this machine
//! cannot reach. So the provider is tested against this server, which
//! speaks just the part of the API the provider uses, shaped like the real
//! one: namespaced pods (create, get, list by label selector, delete,
//! watch), secrets and networkpolicies (create, get, list, merge-patch,
//! delete), `Status` objects for errors (404 `NotFound`, 409
//! `AlreadyExists`), a global `resourceVersion`, owner-reference garbage
//! collection, and a watch that streams `ADDED`/`MODIFIED`/`DELETED`
//! events as JSON lines from a resource version on.
//!
//! # The kubelet
//!
//! A created pod is "scheduled" after [`Behavior::schedule_delay`] (or
//! reported `Unschedulable`, or left in `ImagePullBackOff`), then
//! "started": its volumes become directories under a temp dir (the secret
//! volume's keys written as files), and the container's command and args
//! run with the REAL runnerd binary in place of the image's, with paths
//! of the pod's mounts rebased into that directory and `0.0.0.0` replaced
//! by a loopback address of its own (127.0.0.2, 127.0.0.3, ...: all of
//! 127/8 routes to `lo` on Linux), reported as `status.podIP`. When that
//! runnerd exits (or is killed with [`FakeKube::kill_runnerd`]) the pod
//! turns `Failed`, as with `restartPolicy: Never`.
//!
//! # What is not like a real cluster
//!
//! No admission, no validation of the pod spec beyond what the kubelet
//! needs, no field selectors, no pagination (`limit` and `continue` are
//! ignored), no bookmarks, and deleting a pod removes it at once (no
//! graceful `deletionTimestamp` phase); runnerd gets SIGTERM then.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State as AxumState};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the fake kubelet does with the next pods.
#[derive(Debug, Clone)]
pub struct Behavior {
    /// How long a pod stays unscheduled.
    pub schedule_delay: Duration,
    /// How long after the container "runs" runnerd is started (a slow
    /// entrypoint): the pod is `Running` but nothing listens yet.
    pub start_delay: Duration,
    pub outcome: Outcome,
}

impl Default for Behavior {
    fn default() -> Self {
        Self {
            schedule_delay: Duration::from_millis(50),
            start_delay: Duration::ZERO,
            outcome: Outcome::Run,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Schedule and run runnerd.
    Run,
    /// Never schedule: `PodScheduled=False`, reason `Unschedulable`.
    Unschedulable,
    /// Schedule, then `ErrImagePull`, then `ImagePullBackOff`.
    ImagePullBackOff,
    /// Schedule and run runnerd with an argument it refuses: it exits at
    /// once and the pod fails.
    Crash,
}

/// The running fake. Dropping it stops the server and kills every runnerd
/// it started.
pub struct FakeKube {
    /// Base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port every pod's runnerd listens on (free on 127.0.0.1 when the
    /// fake started; each pod has an address of its own).
    pub runnerd_port: u16,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.server.abort();
        let pids: Vec<u32> = self.state.pids.lock().unwrap().values().copied().collect();
        for pid in pids {
            // SAFETY: kill(2) on a runnerd this fake spawned.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

/// Every fake of this process hands out distinct pod addresses.
static NEXT_IP: AtomicU32 = AtomicU32::new(2);

struct State {
    store: Mutex<Store>,
    /// The latest resource version; watches wait on it.
    rv: watch::Sender<u64>,
    behavior: Mutex<Behavior>,
    runnerd: PathBuf,
    root: tempfile::TempDir,
    runnerd_port: u16,
    /// runnerd pids by pod name.
    pids: Mutex<HashMap<String, u32>>,
    /// Every request, as `METHOD path?query`, for assertions.
    requests: Mutex<Vec<String>>,
}

#[derive(Default)]
struct Store {
    rv: u64,
    uid: u64,
    /// (resource, namespace, name) → object.
    objects: BTreeMap<(String, String, String), Value>,
    /// Every change to a pod since the last compaction: (resourceVersion,
    /// type, object).
    pod_events: Vec<(u64, &'static str, Value)>,
    /// Watches from before this resource version are answered 410 Gone.
    compacted_rv: u64,
    /// Bumped to end every open watch.
    watch_generation: u64,
}

impl FakeKube {
    /// Starts the fake on 127.0.0.1 with `runnerd` as every pod's binary.
    pub async fn start(runnerd: PathBuf) -> FakeKube {
        let runnerd_port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let state = Arc::new(State {
            store: Mutex::default(),
            rv: watch::channel(0).0,
            behavior: Mutex::default(),
            runnerd,
            root: tempfile::tempdir().unwrap(),
            runnerd_port,
            pids: Mutex::default(),
            requests: Mutex::default(),
        });
        let app = Router::new()
            .route(
                "/api/v1/namespaces/{ns}/{resource}",
                get(collection).post(collection),
            )
            .route(
                "/api/v1/namespaces/{ns}/{resource}/{name}",
                get(item).delete(item).patch(item),
            )
            .route(
                "/apis/networking.k8s.io/v1/namespaces/{ns}/{resource}",
                get(collection).post(collection),
            )
            .route(
                "/apis/networking.k8s.io/v1/namespaces/{ns}/{resource}/{name}",
                get(item).delete(item).patch(item),
            )
            .fallback(|method: Method, uri: axum::http::Uri| async move {
                status_response(
                    404,
                    "NotFound",
                    &format!("the server could not find {method} {uri}"),
                )
            })
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeKube {
            url,
            runnerd_port,
            state,
            server,
        }
    }

    /// What the kubelet does with pods created from now on.
    pub fn set_behavior(&self, behavior: Behavior) {
        *self.state.behavior.lock().unwrap() = behavior;
    }

    /// Object `name` of `resource` (`pods`, `secrets`, `networkpolicies`).
    pub fn object(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        let store = self.state.store.lock().unwrap();
        store
            .objects
            .get(&(resource.to_owned(), ns.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Names of every object of `resource` in `ns`.
    pub fn names(&self, resource: &str, ns: &str) -> Vec<String> {
        let store = self.state.store.lock().unwrap();
        store
            .objects
            .keys()
            .filter(|(r, n, _)| r == resource && n == ns)
            .map(|(_, _, name)| name.clone())
            .collect()
    }

    /// Every request served so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().unwrap().clone()
    }

    /// SIGKILLs the runnerd of pod `name`; the pod then fails.
    pub fn kill_runnerd(&self, name: &str) -> bool {
        let pid = self.state.pids.lock().unwrap().get(name).copied();
        match pid {
            // SAFETY: kill(2) on a runnerd this fake spawned.
            Some(pid) => unsafe { libc::kill(pid as i32, libc::SIGKILL) == 0 },
            None => false,
        }
    }

    /// Whether runnerd of pod `name` is still running.
    pub fn runnerd_alive(&self, name: &str) -> bool {
        self.state.pids.lock().unwrap().contains_key(name)
    }

    /// Deletes a pod as someone else (an operator, an eviction) would.
    pub fn delete_pod(&self, ns: &str, name: &str) {
        delete_object(&self.state, "pods", ns, name);
    }

    /// Deletes a pod where no watch sees it: every open watch ends first,
    /// and the event history is compacted (as etcd does), so a watcher
    /// that resumes from its last resource version gets 410 Gone and
    /// learns of the deletion only by re-listing.
    pub fn delete_pod_unseen(&self, ns: &str, name: &str) {
        let mut store = self.state.store.lock().unwrap();
        store.watch_generation += 1;
        delete_locked(&self.state, &mut store, "pods", ns, name);
        store.pod_events.clear();
        store.compacted_rv = store.rv;
        drop(store);
        self.state.notify();
    }

    /// Stores an object as if created through the API (no kubelet).
    pub fn insert(&self, resource: &str, ns: &str, object: Value) -> Value {
        let mut store = self.state.store.lock().unwrap();
        let created = create_object(&mut store, resource, ns, object).unwrap();
        drop(store);
        self.state.notify();
        created
    }
}

impl State {
    fn notify(&self) {
        let rv = self.store.lock().unwrap().rv;
        self.rv.send_replace(rv);
    }

    fn get(&self, resource: &str, ns: &str, name: &str) -> Option<Value> {
        self.store
            .lock()
            .unwrap()
            .objects
            .get(&(resource.to_owned(), ns.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Changes pod `name` (if it still exists with `uid`) and records a
    /// MODIFIED event.
    fn update_pod(&self, ns: &str, name: &str, uid: &str, change: impl FnOnce(&mut Value)) -> bool {
        let mut store = self.store.lock().unwrap();
        store.rv += 1;
        let rv = store.rv;
        let key = ("pods".to_owned(), ns.to_owned(), name.to_owned());
        let Some(pod) = store.objects.get_mut(&key) else {
            return false;
        };
        if pod["metadata"]["uid"] != uid {
            return false;
        }
        change(pod);
        pod["metadata"]["resourceVersion"] = json!(rv.to_string());
        let snapshot = pod.clone();
        store.pod_events.push((rv, "MODIFIED", snapshot));
        drop(store);
        self.notify();
        true
    }
}

fn kind_of(resource: &str) -> Option<(&'static str, &'static str)> {
    match resource {
        "pods" => Some(("v1", "Pod")),
        "secrets" => Some(("v1", "Secret")),
        "networkpolicies" => Some(("networking.k8s.io/v1", "NetworkPolicy")),
        _ => None,
    }
}

/// A `Status` object, as the API server sends for errors.
fn status_response(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    });
    (
        StatusCode::from_u16(code).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn log(state: &State, method: &Method, path: &str, query: &HashMap<String, String>) {
    let mut query: Vec<_> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    query.sort();
    state
        .requests
        .lock()
        .unwrap()
        .push(format!("{method} {path}?{}", query.join("&")));
}

/// `GET` (list or watch) and `POST` (create) on a collection.
async fn collection(
    AxumState(state): AxumState<Arc<State>>,
    method: Method,
    UrlPath((ns, resource)): UrlPath<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    log(&state, &method, &format!("{ns}/{resource}"), &query);
    let Some((api_version, kind)) = kind_of(&resource) else {
        return status_response(404, "NotFound", &format!("no resource {resource}"));
    };
    let selector = query.get("labelSelector").cloned().unwrap_or_default();
    if method == Method::POST {
        let Ok(object) = serde_json::from_slice::<Value>(&body) else {
            return status_response(400, "BadRequest", "the body is not JSON");
        };
        let created = {
            let mut store = state.store.lock().unwrap();
            create_object(&mut store, &resource, &ns, object)
        };
        return match created {
            Ok(created) => {
                state.notify();
                if resource == "pods" {
                    tokio::spawn(kubelet(Arc::clone(&state), created.clone()));
                }
                json_response(StatusCode::CREATED, &created)
            }
            Err((code, reason, message)) => status_response(code, reason, &message),
        };
    }
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        if resource != "pods" {
            return status_response(405, "MethodNotAllowed", "the fake watches pods only");
        }
        let since = query
            .get("resourceVersion")
            .and_then(|rv| rv.parse::<u64>().ok())
            .unwrap_or(0);
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(300);
        return watch_response(state, ns, selector, since, Duration::from_secs(timeout));
    }
    let store = state.store.lock().unwrap();
    let items: Vec<Value> = store
        .objects
        .iter()
        .filter(|((r, n, _), obj)| *r == resource && *n == ns && matches(&selector, obj))
        .map(|(_, obj)| obj.clone())
        .collect();
    let list = json!({
        "kind": format!("{kind}List"), "apiVersion": api_version,
        "metadata": {"resourceVersion": store.rv.to_string()},
        "items": items,
    });
    json_response(StatusCode::OK, &list)
}

/// `GET`, `DELETE` and `PATCH` (JSON merge patch) on one object.
async fn item(
    AxumState(state): AxumState<Arc<State>>,
    method: Method,
    headers: HeaderMap,
    UrlPath((ns, resource, name)): UrlPath<(String, String, String)>,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    log(&state, &method, &format!("{ns}/{resource}/{name}"), &query);
    if kind_of(&resource).is_none() {
        return status_response(404, "NotFound", &format!("no resource {resource}"));
    }
    let not_found =
        || status_response(404, "NotFound", &format!("{resource} \"{name}\" not found"));
    match method {
        Method::GET => match state.get(&resource, &ns, &name) {
            Some(obj) => json_response(StatusCode::OK, &obj),
            None => not_found(),
        },
        Method::DELETE => match delete_object(&state, &resource, &ns, &name) {
            Some(obj) => json_response(StatusCode::OK, &obj),
            None => not_found(),
        },
        Method::PATCH => {
            let merge = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/merge-patch+json"));
            if !merge {
                return status_response(
                    415,
                    "UnsupportedMediaType",
                    "the fake takes merge patches only",
                );
            }
            let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
                return status_response(400, "BadRequest", "the body is not JSON");
            };
            let mut store = state.store.lock().unwrap();
            store.rv += 1;
            let rv = store.rv;
            let key = (resource.clone(), ns.clone(), name.clone());
            let Some(obj) = store.objects.get_mut(&key) else {
                drop(store);
                return not_found();
            };
            merge_patch(obj, &patch);
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            let patched = obj.clone();
            if resource == "pods" {
                store.pod_events.push((rv, "MODIFIED", patched.clone()));
            }
            drop(store);
            state.notify();
            json_response(StatusCode::OK, &patched)
        }
        _ => status_response(405, "MethodNotAllowed", "not supported by the fake"),
    }
}

/// An API error: code, reason, message (made into a `Status` response).
type ApiError = (u16, &'static str, String);

fn create_object(
    store: &mut Store,
    resource: &str,
    ns: &str,
    mut object: Value,
) -> Result<Value, ApiError> {
    let (api_version, kind) = kind_of(resource).unwrap();
    let Some(name) = object["metadata"]["name"].as_str().map(str::to_owned) else {
        return Err((422, "Invalid", "metadata.name: Required value".to_owned()));
    };
    let key = (resource.to_owned(), ns.to_owned(), name.clone());
    if store.objects.contains_key(&key) {
        return Err((
            409,
            "AlreadyExists",
            format!("{resource} \"{name}\" already exists"),
        ));
    }
    store.rv += 1;
    store.uid += 1;
    let rv = store.rv;
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    let meta = &mut object["metadata"];
    meta["namespace"] = json!(ns);
    meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", store.uid));
    meta["resourceVersion"] = json!(rv.to_string());
    meta["creationTimestamp"] = json!(now_rfc3339());
    if resource == "pods" {
        object["status"] = json!({"phase": "Pending", "qosClass": "Guaranteed"});
        store.pod_events.push((rv, "ADDED", object.clone()));
    }
    if resource == "secrets"
        && let Some(strings) = object
            .get("stringData")
            .cloned()
            .and_then(|v| v.as_object().cloned())
    {
        for (k, v) in strings {
            let encoded = base64_encode(v.as_str().unwrap_or_default().as_bytes());
            object["data"][k] = json!(encoded);
        }
        object.as_object_mut().unwrap().remove("stringData");
    }
    store.objects.insert(key, object.clone());
    Ok(object)
}

/// Removes an object; for a pod also its runnerd and the objects it owns
/// (the garbage collector's job in a real cluster).
fn delete_object(state: &State, resource: &str, ns: &str, name: &str) -> Option<Value> {
    let mut store = state.store.lock().unwrap();
    let removed = delete_locked(state, &mut store, resource, ns, name);
    drop(store);
    state.notify();
    removed
}

fn delete_locked(
    state: &State,
    store: &mut Store,
    resource: &str,
    ns: &str,
    name: &str,
) -> Option<Value> {
    let key = (resource.to_owned(), ns.to_owned(), name.to_owned());
    let removed = store.objects.remove(&key)?;
    store.rv += 1;
    let rv = store.rv;
    if resource == "pods" {
        let mut gone = removed.clone();
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        store.pod_events.push((rv, "DELETED", gone));
        let uid = removed["metadata"]["uid"].clone();
        store.objects.retain(|(_, n, _), obj| {
            !(n == ns
                && obj["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid)))
        });
        if let Some(pid) = state.pids.lock().unwrap().get(name) {
            // SAFETY: kill(2) on a runnerd this fake spawned.
            unsafe { libc::kill(*pid as i32, libc::SIGTERM) };
        }
    }
    Some(removed)
}

/// A watch: every pod event after `since` matching `selector`, as JSON
/// lines, then new ones as they happen, until `timeout`.
fn watch_response(
    state: Arc<State>,
    ns: String,
    selector: String,
    since: u64,
    timeout: Duration,
) -> Response {
    let deadline = tokio::time::Instant::now() + timeout;
    let rx = state.rv.subscribe();
    let (generation, compacted_rv) = {
        let store = state.store.lock().unwrap();
        (store.watch_generation, store.compacted_rv)
    };
    if since < compacted_rv {
        // What etcd compaction makes the API server answer: the watcher
        // must re-list.
        let gone = json!({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("too old resource version: {since} ({compacted_rv})"),
            "reason": "Expired", "code": 410,
        }});
        return json_response(StatusCode::OK, &gone);
    }
    let stream =
        futures_util::stream::unfold((state, rx, since), move |(state, mut rx, mut last)| {
            let (ns, selector) = (ns.clone(), selector.clone());
            async move {
                loop {
                    let next = {
                        let store = state.store.lock().unwrap();
                        if store.watch_generation != generation {
                            return None;
                        }
                        store
                            .pod_events
                            .iter()
                            .find(|(rv, _, obj)| {
                                *rv > last
                                    && obj["metadata"]["namespace"] == ns.as_str()
                                    && matches(&selector, obj)
                            })
                            .cloned()
                            .or_else(|| {
                                // Nothing for this watch: skip to the newest.
                                last = last.max(store.pod_events.last().map_or(0, |e| e.0));
                                None
                            })
                    };
                    if let Some((rv, kind, obj)) = next {
                        last = rv;
                        let line = format!("{}\n", json!({"type": kind, "object": obj}));
                        return Some((
                            Ok::<_, std::io::Error>(Bytes::from(line)),
                            (state, rx, last),
                        ));
                    }
                    match tokio::time::timeout_at(deadline, rx.changed()).await {
                        Ok(Ok(())) => {}
                        _ => return None,
                    }
                }
            }
        });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// Whether `obj`'s labels match a selector of `k=v`, `k==v`, `k!=v`, `k`
/// and `!k` terms.
fn matches(selector: &str, obj: &Value) -> bool {
    let labels = &obj["metadata"]["labels"];
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                labels[k.trim()] != v.trim()
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                labels[k.trim()] == v.trim()
            } else if let Some(k) = term.strip_prefix('!') {
                labels.get(k.trim()).is_none()
            } else {
                labels.get(term).is_some()
            }
        })
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(patch) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let target = target.as_object_mut().unwrap();
    for (k, v) in patch {
        if v.is_null() {
            target.remove(k);
        } else {
            merge_patch(target.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The fake kubelet of one pod.
async fn kubelet(state: Arc<State>, pod: Value) {
    let behavior = state.behavior.lock().unwrap().clone();
    let ns = pod["metadata"]["namespace"].as_str().unwrap().to_owned();
    let name = pod["metadata"]["name"].as_str().unwrap().to_owned();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_owned();
    tokio::time::sleep(behavior.schedule_delay).await;
    if behavior.outcome == Outcome::Unschedulable {
        state.update_pod(&ns, &name, &uid, |pod| {
            pod["status"]["conditions"] = json!([{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
                "lastTransitionTime": now_rfc3339(),
            }]);
        });
        return;
    }
    let scheduled = state.update_pod(&ns, &name, &uid, |pod| {
        pod["spec"]["nodeName"] = json!("fake-node-1");
        pod["status"]["conditions"] = json!([{
            "type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339(),
        }]);
    });
    if !scheduled {
        return;
    }
    let image = pod["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    if behavior.outcome == Outcome::ImagePullBackOff {
        for (reason, delay) in [("ErrImagePull", 20), ("ImagePullBackOff", 100)] {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            state.update_pod(&ns, &name, &uid, |pod| {
                pod["status"]["containerStatuses"] = json!([{
                    "name": "runnerd", "ready": false, "restartCount": 0, "image": image, "imageID": "",
                    "state": {"waiting": {"reason": reason,
                        "message": format!("Back-off pulling image \"{image}\": not found")}},
                }]);
            });
        }
        return;
    }

    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    let ip = Ipv4Addr::from(0x7f00_0000 + 2 + (n % 60_000));
    let rootfs = state.root.path().join(&name);
    let command = match prepare(
        &state,
        &pod,
        &rootfs,
        ip,
        behavior.outcome == Outcome::Crash,
    ) {
        Ok(command) => command,
        Err(message) => {
            state.update_pod(&ns, &name, &uid, |pod| {
                pod["status"]["containerStatuses"] = json!([{
                    "name": "runnerd", "ready": false, "restartCount": 0, "image": image, "imageID": "",
                    "state": {"waiting": {"reason": "CreateContainerConfigError", "message": message}},
                }]);
            });
            return;
        }
    };
    let running = state.update_pod(&ns, &name, &uid, |pod| {
        pod["status"]["phase"] = json!("Running");
        pod["status"]["podIP"] = json!(ip.to_string());
        pod["status"]["podIPs"] = json!([{"ip": ip.to_string()}]);
        pod["status"]["startTime"] = json!(now_rfc3339());
        pod["status"]["containerStatuses"] = json!([{
            "name": "runnerd", "ready": true, "restartCount": 0, "image": image, "imageID": "",
            "started": true, "state": {"running": {"startedAt": now_rfc3339()}},
        }]);
    });
    if !running {
        return;
    }
    tokio::time::sleep(behavior.start_delay).await;
    if state.get("pods", &ns, &name).is_none() {
        return;
    }
    let mut command = command;
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => panic!(
            "the fake kubelet cannot start {}: {err}",
            state.runnerd.display()
        ),
    };
    state.pids.lock().unwrap().insert(name.clone(), child.id());
    // Killed by the fake's drop at the latest, so this wait ends.
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap();
    state.pids.lock().unwrap().remove(&name);
    let code = status.as_ref().ok().and_then(|s| s.code());
    let signal = status
        .as_ref()
        .ok()
        .and_then(std::os::unix::process::ExitStatusExt::signal);
    let exit_code = code.unwrap_or(128 + signal.unwrap_or(0));
    state.update_pod(&ns, &name, &uid, |pod| {
        pod["status"]["phase"] = json!(if exit_code == 0 {
            "Succeeded"
        } else {
            "Failed"
        });
        pod["status"]["containerStatuses"] = json!([{
            "name": "runnerd", "ready": false, "restartCount": 0, "image": image, "imageID": "",
            "state": {"terminated": {"exitCode": exit_code, "signal": signal,
                "reason": if exit_code == 0 { "Completed" } else { "Error" },
                "finishedAt": now_rfc3339()}},
        }]);
    });
}

/// Lays out the pod's volumes under `rootfs` and builds the container's
/// command with the real runnerd, paths rebased into `rootfs`.
fn prepare(
    state: &State,
    pod: &Value,
    rootfs: &Path,
    ip: Ipv4Addr,
    crash: bool,
) -> Result<std::process::Command, String> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let container = &pod["spec"]["containers"][0];
    let volumes = pod["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mounts = container["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut mount_paths = Vec::new();
    for mount in &mounts {
        let path = mount["mountPath"]
            .as_str()
            .ok_or("a mount without a path")?;
        let dir = rootfs.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        mount_paths.push(path.to_owned());
        let volume = volumes
            .iter()
            .find(|v| v["name"] == mount["name"])
            .ok_or_else(|| format!("no volume {}", mount["name"]))?;
        if let Some(secret_name) = volume["secret"]["secretName"].as_str() {
            let secret = state
                .get("secrets", ns, secret_name)
                .ok_or_else(|| format!("secret \"{secret_name}\" not found"))?;
            for (key, value) in secret["data"].as_object().into_iter().flatten() {
                let bytes = base64_decode(value.as_str().unwrap_or_default())
                    .ok_or_else(|| format!("secret key {key} is not base64"))?;
                std::fs::write(dir.join(key), bytes).map_err(|e| e.to_string())?;
            }
        }
    }
    let rebase = |value: &str| -> String {
        if mount_paths
            .iter()
            .any(|m| value == m || value.starts_with(&format!("{m}/")))
        {
            format!("{}{value}", rootfs.display())
        } else {
            value.to_owned()
        }
    };
    let mut command = std::process::Command::new(&state.runnerd);
    for arg in container["args"].as_array().into_iter().flatten() {
        let arg = arg.as_str().unwrap_or_default();
        let arg = match arg.strip_prefix("0.0.0.0:") {
            Some(port) => format!("{ip}:{port}"),
            None => rebase(arg),
        };
        command.arg(arg);
    }
    if crash {
        command.arg("--no-such-flag");
    }
    command.env_clear();
    for env in container["env"].as_array().into_iter().flatten() {
        let name = env["name"].as_str().unwrap_or_default();
        command.env(name, rebase(env["value"].as_str().unwrap_or_default()));
    }
    if let Some(dir) = container["workingDir"].as_str() {
        command.current_dir(rebase(dir));
    }
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    Ok(command)
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = B64.iter().position(|b| *b == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
