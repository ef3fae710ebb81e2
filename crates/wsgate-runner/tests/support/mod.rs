//! The rehearsal rig, shared by the rehearsal and by the mock's check against the real API
//! server. A rehearsal of `cargo xtask e2e` with no cluster: the real plan and the real executor, with
//! `kind`, `kubectl`, `docker` and `cargo` as stubs that record their arguments, the Kubernetes
//! API as a mock that records its calls and keeps the objects it was given (so that one run can
//! follow another on the same "cluster"), nextest steps listed instead of run, and an echo
//! server (plain, and behind a TLS terminator serving the generated certificates) standing in
//! for the ingress once the cluster exists. The recorded sequence must be the plan; a failure
//! injected at any step must fail the run naming that step, write the report, and delete the
//! cluster.

// Each test binary includes this module and uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use sha2::Digest;
use tokio::net::TcpListener;
use wsgate_contract::Phase;
use wsgate_runner::action::{Action, ApiBody, ApiVerb, NextestMode};
use wsgate_runner::exec::{Options, run};
use wsgate_runner::exit::RunError;
use wsgate_runner::options::E2eArgs;
use wsgate_runner::pins::{self, Pinned};
use wsgate_runner::plan::{Deadlines, EchoBuild, Inputs, Plan};

/// `cargo xtask`'s command line, as far as `e2e` goes.
#[derive(Parser)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    E2e(Box<E2eArgs>),
}

pub const IMAGE: &str = "wsgate-echo:0.1.0-rehearsal";

/// Where a fault is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// A stub fails when its command line contains this.
    Command(&'static str),
    /// A stub fails when its command line contains any of these.
    Commands(&'static [&'static str]),
    /// The API answers 422 to a PATCH whose path contains this.
    Api(&'static str),
    /// The admission Jobs never complete.
    JobsNeverComplete,
    /// The admission Jobs fail (and are gone), leaving no webhook Secret.
    JobsFail,
    /// Nothing answers on the ingress's http (ws) or https (wss) port.
    NoRoute(Phase),
    /// Something already answers on the host port the kind node is to take.
    PortTaken,
    /// `kind get clusters` already lists the cluster.
    ClusterExists,
    /// An object whose path contains this is already on the cluster: someone else's, or
    /// (`by_wsgate`) left by an earlier run.
    Exists {
        path: &'static str,
        by_wsgate: bool,
    },
    /// An object whose path contains this is being deleted: seen twice, then gone.
    Terminating(&'static str),
}

/// GETs of the terminating object so far (each test runs in its own process under nextest).
pub static TERMINATING_SEEN: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// The mock API server's state: what was applied (by path, merged as the API server merges a
/// patch into what other managers own), the fault of the current run, the log of calls.
pub struct MockApi {
    pub objects: Mutex<BTreeMap<String, serde_json::Value>>,
    pub fault: Mutex<Fault>,
    pub log: PathBuf,
    /// Every request the mock answered and how (for checking it against the real API server).
    pub answered: Mutex<Vec<Answered>>,
}

/// One request and the mock's answer: status and the `Status` reason, if it refused.
#[derive(Debug, Clone)]
pub struct Answered {
    pub method: http::Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: Vec<u8>,
    pub status: u16,
    pub reason: String,
}

impl MockApi {
    pub fn fault(&self) -> Fault {
        *self.fault.lock().unwrap()
    }

    pub fn object(&self, path: &str) -> Option<serde_json::Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }

    pub fn record(&self, line: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&self.log)
            .unwrap();
        writeln!(f, "{line}").unwrap();
    }
}

/// A JSON merge patch (RFC 7386): what both a merge patch and, for fields of other managers,
/// a server-side apply leave of the old object.
pub fn merge(into: &mut serde_json::Value, patch: &serde_json::Value) {
    match (into.as_object_mut(), patch.as_object()) {
        (Some(obj), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    obj.remove(k);
                } else {
                    merge(obj.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        _ => *into = patch.clone(),
    }
}

/// One "machine" for rehearsals: stubs, a mock cluster that outlives a single run, a folder
/// that stands for the repository.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
    pub rt: tokio::runtime::Runtime,
    pub api: SocketAddr,
    pub mock: Arc<MockApi>,
    pub echo: SocketAddr,
}

impl Rig {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("recorded.log");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let mock = Arc::new(MockApi {
            objects: Mutex::default(),
            fault: Mutex::new(Fault::None),
            log: log.clone(),
            answered: Mutex::default(),
        });
        let (api, echo) = rt.block_on(async {
            let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let api_addr = api.local_addr().unwrap();
            tokio::spawn(api_server(api, Arc::clone(&mock)));
            let echo =
                wsgate_echo::EchoServer::bind("127.0.0.1:0".parse().unwrap(), Default::default())
                    .await
                    .unwrap();
            let echo_addr = echo.local_addr();
            tokio::spawn(echo.serve());
            (api_addr, echo_addr)
        });
        let rig = Self {
            dir,
            log,
            rt,
            api,
            mock,
            echo,
        };
        rig.set_image_id("sha256:1111");
        rig.set_docker_platform("linux/amd64");
        rig
    }
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    pub fn work(&self) -> PathBuf {
        self.root().join("target/wsgate/kind")
    }
    pub fn recorded(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
    /// Forgets what was recorded (before a second run on the same rig).
    pub fn clear_log(&self) {
        let _ = std::fs::remove_file(&self.log);
    }
    /// What `docker image inspect --format {{.Id}}` prints for the echo image.
    pub fn set_image_id(&self, id: &str) {
        std::fs::write(self.dir.path().join("image-id"), id).unwrap();
    }
    /// What `docker version --format {{.Server.Os}}/{{.Server.Arch}}` prints.
    pub fn set_docker_platform(&self, p: &str) {
        std::fs::write(self.dir.path().join("docker-platform"), p).unwrap();
    }
    pub fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }
}

pub fn write_exe(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A stub that records `name args...`, fails when its line contains the fault, and answers
/// the few questions the plan asks (versions, `get clusters`, `create cluster`, `nextest list`,
/// the image ID). Questions asked while the plan is made are not recorded.
pub fn stub(rig: &Rig, name: &str, fail: &[&str], existing: &str) {
    let dir = rig.dir.path();
    let fail: String = fail.iter().map(|f| format!(" '{f}'")).collect();
    let script = format!(
        r#"#!/bin/sh
line="{name} $*"
case "$line" in
  "kind version"|"kubectl version --client -o json"|"docker version --format {{{{.Server.Os}}}}/{{{{.Server.Arch}}}}") ;;
  *) printf '%s\n' "$line" >> '{log}' ;;
esac
for pattern in{fail}; do
  case "$line" in *"$pattern"*) echo "injected failure: $line" >&2; exit 1 ;; esac
done
case "$line" in
  "kind version") echo "kind {kind_version} go1.24 linux/amd64" ;;
  "kubectl version --client -o json") echo '{{"clientVersion": {{"gitVersion": "{kubectl_version}"}}}}' ;;
  "kind get clusters") echo "some-other-cluster"; echo '{existing}' ;;
  "kind create cluster"*|"kind export kubeconfig"*)
    case "$line" in "kind create cluster"*) touch '{dir}/kind-created' ;; esac
    while [ "$#" -gt 0 ]; do
      if [ "$1" = "--kubeconfig" ]; then kc="$2"; fi
      shift
    done
    mkdir -p "$(dirname "$kc")"
    printf '%s\n' "apiVersion: v1" "kind: Config" "clusters:" "- name: rehearsal" "  cluster:" \
      "    server: http://{api}" "contexts:" "- name: rehearsal" "  context:" "    cluster: rehearsal" \
      "    user: rehearsal" "current-context: rehearsal" "users:" "- name: rehearsal" "  user:" \
      "    token: rehearsal" > "$kc"
    ;;
  "docker version --format {{{{.Server.Os}}}}/{{{{.Server.Arch}}}}") cat '{dir}/docker-platform' ;;
  "docker version"*) echo "29.0.0" ;;
  "docker image inspect"*) cat '{dir}/image-id'; echo ;;
  "docker save"*)
    while [ "$#" -gt 0 ]; do
      if [ "$1" = "--output" ]; then touch "$2"; fi
      shift
    done
    ;;
  "cargo nextest --version") echo "cargo-nextest 0.9.151 (rehearsal)" ;;
  "cargo nextest list"*) cat '{listing}' ;;
esac
"#,
        log = rig.log.display(),
        dir = dir.display(),
        api = rig.api,
        listing = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/nextest-list.json"),
        kind_version = pins::KIND_VERSION,
        kubectl_version = pins::KUBECTL_VERSION,
    );
    write_exe(&rig.bin().join(name), &script);
}

/// The recorded line an action's command leaves: `name args...`.
pub fn line(cmd: &wsgate_runner::action::Cmd) -> String {
    std::iter::once(cmd.name())
        .chain(cmd.args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the stubs and the mock API record for the plan's actions, in order.
pub fn expected(actions: &[&Action]) -> Vec<String> {
    actions
        .iter()
        .flat_map(|a| match a {
            Action::Run(cmd) | Action::Expect { cmd, .. } | Action::RequireVersion { cmd, .. } => {
                vec![line(cmd)]
            }
            Action::LoadImage(l) => vec![line(&l.direct)],
            Action::Nextest(n) => vec![line(&n.cmd(NextestMode::List))],
            Action::Api(call) if call.verb == ApiVerb::Delete => {
                vec![format!("DELETE {}", call.target.path())]
            }
            Action::Api(call) => {
                let mut v = Vec::new();
                if let ApiBody::WithImageId { inspect, .. } = &call.body {
                    v.push(line(inspect));
                }
                v.push(format!("PATCH {}", call.target.path()));
                v
            }
            _ => vec![],
        })
        .collect()
}

pub fn json_response(status: u16, v: serde_json::Value) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&v).unwrap())))
        .unwrap()
}

pub fn list(kind: &str, items: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

pub fn status(code: u16, reason: &str) -> hyper::Response<Full<Bytes>> {
    json_response(
        code,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": "rehearsal"}),
    )
}

/// The mock API server's answer to one request, kept in [`MockApi::answered`]; mutating calls
/// are recorded in the log.
pub async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    mock: &MockApi,
) -> hyper::Response<Full<Bytes>> {
    let (method, path, query) = (
        req.method().clone(),
        req.uri().path().to_owned(),
        req.uri().query().unwrap_or_default().to_owned(),
    );
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let reply = answer_to(&method, &path, &query, &content_type, &body, mock).await;
    let status = reply.status().as_u16();
    let (parts, full) = reply.into_parts();
    let bytes = full.collect().await.unwrap().to_bytes();
    let reason = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .filter(|v| v["kind"] == "Status")
        .and_then(|v| v["reason"].as_str().map(str::to_owned))
        .unwrap_or_default();
    mock.answered.lock().unwrap().push(Answered {
        method,
        path,
        query,
        content_type,
        body: body.to_vec(),
        status,
        reason,
    });
    hyper::Response::from_parts(parts, Full::new(bytes))
}

async fn answer_to(
    method: &http::Method,
    path: &str,
    query: &str,
    content_type: &str,
    body: &[u8],
    mock: &MockApi,
) -> hyper::Response<Full<Bytes>> {
    let fault = mock.fault();
    let (method, path, query) = (method.clone(), path.to_owned(), query.to_owned());
    if method == http::Method::PATCH {
        mock.record(&format!("PATCH {path}"));
        if let Fault::Api(p) = fault
            && path.contains(p)
        {
            return status(422, "Invalid");
        }
        let patch: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let mut objects = mock.objects.lock().unwrap();
        // As the API server answers: a server-side apply creates (201) or updates (200); a
        // merge patch of an object that is not there is 404.
        let created = !objects.contains_key(&path);
        if created && !content_type.starts_with("application/apply-patch") {
            return status(404, "NotFound");
        }
        let stored = objects.entry(path.clone()).or_insert_with(|| {
            let name = path.rsplit('/').next().unwrap_or_default();
            serde_json::json!({"apiVersion": "v1", "kind": "Object", "metadata": {"name": name}})
        });
        merge(stored, &patch);
        return json_response(if created { 201 } else { 200 }, stored.clone());
    }
    if method == http::Method::DELETE {
        mock.record(&format!("DELETE {path}"));
        return match mock.objects.lock().unwrap().remove(&path) {
            Some(_) => json_response(
                200,
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ),
            None => status(404, "NotFound"),
        };
    }
    if query.contains("watch=") {
        // A watch that never reports: the waits are met (or not) by the list, each within
        // its own named deadline, which also ends this.
        std::future::pending::<()>().await;
    }
    let segments: Vec<&str> = path.split('/').collect();
    let single = segments.len() >= 2
        && [
            "namespaces",
            "services",
            "deployments",
            "ingresses",
            "secrets",
            "configmaps",
        ]
        .contains(&segments[segments.len() - 2]);
    if single {
        // One object: what was applied, or what the fault puts there.
        return match fault {
            Fault::Exists { path: p, by_wsgate } if path.ends_with(p) => json_response(
                200,
                serde_json::json!({"apiVersion": "v1", "kind": "Object", "metadata": {
                    "name": segments[segments.len() - 1],
                    "managedFields": [{"manager": if by_wsgate { "wsgate" } else { "helm" }, "operation": "Apply"}]}}),
            ),
            Fault::Terminating(p)
                if path.contains(p)
                    && TERMINATING_SEEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 =>
            {
                json_response(
                    200,
                    serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {
                        "name": segments[segments.len() - 1],
                        "deletionTimestamp": "2026-11-25T00:00:00Z",
                        "managedFields": [{"manager": "wsgate", "operation": "Apply"}]}}),
                )
            }
            // The admission Jobs write their Secret, unless they fail.
            _ if path.ends_with("/namespaces/ingress-nginx/secrets/ingress-nginx-admission") => {
                if fault == Fault::JobsFail {
                    status(404, "NotFound")
                } else {
                    json_response(
                        200,
                        serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "ingress-nginx-admission"}}),
                    )
                }
            }
            _ => match mock.object(&path) {
                Some(v) => json_response(200, v),
                None => status(404, "NotFound"),
            },
        };
    }
    if path.ends_with("/log") {
        return hyper::Response::new(Full::new(Bytes::from_static(b"controller log\n")));
    }
    let reply = if path.contains("/jobs") {
        let name = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("fieldSelector=metadata.name%3D"))
            .unwrap_or("job");
        if fault == Fault::JobsFail {
            // Removed by its ttlSecondsAfterFinished: 0 right after it failed.
            return json_response(200, list("JobList", serde_json::json!([])));
        }
        let status = if fault == Fault::JobsNeverComplete {
            serde_json::json!({"active": 1})
        } else {
            serde_json::json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})
        };
        list(
            "JobList",
            serde_json::json!([{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "ingress-nginx", "resourceVersion": "1"}, "status": status}]),
        )
    } else if path.contains("/deployments") {
        let name = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("fieldSelector=metadata.name%3D"))
            .unwrap_or("app");
        list(
            "DeploymentList",
            serde_json::json!([{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default", "resourceVersion": "1", "generation": 1},
                "spec": {"replicas": 1, "selector": {}, "template": {}},
                "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1,
                           "conditions": [{"type": "Available", "status": "True"}]}}]),
        )
    } else if path.contains("/nodes") {
        list(
            "NodeList",
            serde_json::json!([{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "wsgate-control-plane"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}]),
        )
    } else if path.contains("/pods") {
        list(
            "PodList",
            serde_json::json!([{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ingress-nginx-controller-0", "namespace": "ingress-nginx"}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}]),
        )
    } else {
        list("List", serde_json::json!([]))
    };
    json_response(200, reply)
}

pub async fn api_server(listener: TcpListener, mock: Arc<MockApi>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let mock = Arc::clone(&mock);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let mock = Arc::clone(&mock);
                async move { Ok::<_, std::convert::Infallible>(answer(req, &mock).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Terminates TLS with the certificate the plan generated for the client's SNI (read when the
/// connection arrives: the TLS step writes it mid-run), and relays to the echo server.
pub async fn tls_terminator(listener: TcpListener, tls_dirs: [PathBuf; 2], echo: SocketAddr) {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        // kind and existing-cluster runs keep their certificates in different work folders.
        let dir = tls_dirs
            .iter()
            .find(|d| d.is_dir())
            .cloned()
            .unwrap_or_default();
        tokio::spawn(async move {
            let acceptor =
                tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
            let Ok(start) = acceptor.await else { return };
            let stem = match start.client_hello().server_name() {
                Some("test.example.com") => "test.example.com",
                _ => "variants",
            };
            let (Ok(cert), Ok(key)) = (
                CertificateDer::from_pem_file(dir.join(format!("{stem}.crt"))),
                PrivateKeyDer::from_pem_file(dir.join(format!("{stem}.key"))),
            ) else {
                return;
            };
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
            let Ok(mut tls) = start.into_stream(Arc::new(config)).await else {
                return;
            };
            let Ok(mut backend) = tokio::net::TcpStream::connect(echo).await else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut tls, &mut backend).await;
        });
    }
}

pub fn fake_image(
    _: &Path,
    _: &wsgate_image::BinaryBuild,
) -> Result<wsgate_image::Image, wsgate_image::ImageError> {
    let (repository, tag) = IMAGE.split_once(':').unwrap();
    Ok(wsgate_image::Image {
        repository: repository.into(),
        tag: tag.into(),
        size: 3_400_000,
        built: false,
        builder: wsgate_image::Builder::Legacy,
    })
}

/// The plain ingress port: each connection relayed to the echo server.
pub async fn forward(listener: TcpListener, to: SocketAddr) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            if let Ok(mut backend) = tokio::net::TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
            }
        });
    }
}

/// A bound socket that does not listen yet: the port is this run's, and refuses connections.
pub fn reserve() -> (tokio::net::TcpSocket, u16) {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// Sets up stubs, the mock API and the stand-in ingress, makes the plan for `flags`, runs it.
pub fn rehearse(flags: &[&str], fault: Fault) -> (Rig, Plan, Result<(), RunError>) {
    let rig = Rig::new();
    let (plan, result) = rig.rehearse(flags, fault);
    (rig, plan, result)
}

impl Rig {
    /// One `cargo xtask e2e FLAGS` on this rig, with `fault` injected.
    pub fn rehearse(&self, flags: &[&str], fault: Fault) -> (Plan, Result<(), RunError>) {
        *self.mock.fault.lock().unwrap() = fault;
        let created = self.dir.path().join("kind-created");
        let _ = std::fs::remove_file(&created);
        // The stand-in ingress's ports are bound at once (so no one else can take them) but
        // listen only once a cluster serves them: after `kind create cluster` (the stub leaves
        // a marker), or at once for a reused or existing cluster. Step 1 must find them free.
        let creates = !flags.iter().any(|f| {
            matches!(
                *f,
                "--reuse" | "--kubeconfig" | "--ingress-address" | "--context"
            )
        });
        let (http, https, _taken) = self.rt.block_on(async {
            let (http_sock, http_port) = reserve();
            let (https_sock, https_port) = reserve();
            let wsgate = self.root().join("target/wsgate");
            let echo = self.echo;
            let (plain_route, tls_route) = (
                fault != Fault::NoRoute(Phase::Plain),
                fault != Fault::NoRoute(Phase::Tls),
            );
            // A port someone else already serves: it listens before the run starts.
            let (taken, http_sock) = if fault == Fault::PortTaken {
                (Some(http_sock.listen(16).unwrap()), None)
            } else {
                (None, Some(http_sock))
            };
            let marker = created.clone();
            tokio::spawn(async move {
                if creates {
                    while !marker.exists() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                if let (true, Some(s)) = (plain_route, http_sock) {
                    tokio::spawn(forward(s.listen(128).unwrap(), echo));
                }
                if tls_route {
                    tokio::spawn(tls_terminator(
                        https_sock.listen(128).unwrap(),
                        [wsgate.join("kind/tls"), wsgate.join("cluster/tls")],
                        echo,
                    ));
                }
                // A taken-away route keeps its socket bound, not listening: connections are
                // refused.
                std::future::pending::<()>().await;
            });
            (http_port, https_port, taken)
        });
        let fail: &[&str] = match &fault {
            Fault::Command(s) => std::slice::from_ref(s),
            Fault::Commands(all) => all,
            _ => &[],
        };
        let existing = if fault == Fault::ClusterExists {
            "wsgate"
        } else {
            ""
        };
        let bin = self.bin();
        std::fs::create_dir_all(&bin).unwrap();
        for name in ["kind", "kubectl", "docker", "cargo"] {
            stub(self, name, fail, existing);
        }
        // Downloads must never reach the network: the rehearsal is offline wherever it runs.
        write_exe(
            &bin.join("curl"),
            "#!/bin/sh\necho 'curl: (6) Could not resolve host (rehearsal)' >&2\nexit 6\n",
        );
        // The controller manifest: a local file, cached under its pinned sha256, so nothing
        // is fetched.
        let manifest_text = "# ingress-nginx kind manifest (rehearsal)\n";
        let sha: String = sha2::Sha256::digest(manifest_text)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let manifest = Pinned {
            sha256: Box::leak(sha.into_boxed_str()),
            ..pins::INGRESS_NGINX_KIND_MANIFEST
        };
        let cache = self.work().join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(
            cache.join(format!("ingress-nginx-kind-{}.yaml", manifest.version)),
            manifest_text,
        )
        .unwrap();

        // An existing cluster's kubeconfig points at the mock API too.
        let kubeconfig = self.dir.path().join("existing-kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{}\n\
                 contexts:\n- name: prod\n  context:\n    cluster: c\n    user: u\ncurrent-context: prod\n\
                 users:\n- name: u\n  user:\n    token: t\n",
                self.api
            ),
        )
        .unwrap();
        let fill = |f: &&str| {
            f.replace("{http}", &http.to_string())
                .replace("{https}", &https.to_string())
                .replace("{kubeconfig}", &kubeconfig.display().to_string())
        };
        let mut argv: Vec<String> = [
            "cargo-xtask".to_owned(),
            "e2e".into(),
            "--http-port".into(),
            http.to_string(),
            "--https-port".into(),
            https.to_string(),
        ]
        .into();
        argv.extend(flags.iter().map(fill));
        let cli = Cli::try_parse_from(argv).unwrap();
        let Command::E2e(args) = cli.command;
        let tools = wsgate_runner::tools::resolve(
            bin.as_os_str(),
            &self.root().join("target/wsgate/tools"),
        );
        let quick = Duration::from_secs(2);
        let echo = EchoBuild::detect(&tools.docker, bin.as_os_str());
        let inputs = Inputs {
            root: self.root(),
            profile: "ci".into(),
            tools,
            deadlines: Deadlines {
                kind_wait: Duration::from_secs(120),
                controller: quick,
                webhook: quick,
                routes: quick,
            },
            manifest,
            image: IMAGE.into(),
            default_kubeconfig: None,
            workload: (!args.workload.paths.is_empty()).then(|| {
                let workload = wsgate_manifests::Workload::load(&args.workload.paths).unwrap();
                wsgate_runner::plan::WorkloadRun::new(args.workload.clone(), workload).unwrap()
            }),
            echo: EchoBuild {
                // The machine's Rust has its own target installed; the rehearsal needs no rustup.
                installed: true,
                ..echo
            },
            nextest_version: Some("0.9.151".into()),
        };
        let plan = Plan::new(&args.cluster, &inputs).unwrap();
        let opts = Options {
            nextest: NextestMode::List,
            build_image: fake_image,
            root: self.root(),
        };
        let result = run(&plan, &opts);
        (plan, result)
    }
}
