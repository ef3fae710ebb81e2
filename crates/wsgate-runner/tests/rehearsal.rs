//! A rehearsal of `cargo xtask e2e` with no cluster: the real plan and the real executor, with
//! `kind`, `kubectl`, `docker` and `cargo` as stubs that record their arguments, the Kubernetes
//! API as a mock that records its calls and keeps the objects it was given (so that one run can
//! follow another on the same "cluster"), nextest steps listed instead of run, and an echo
//! server (plain, and behind a TLS terminator serving the generated certificates) standing in
//! for the ingress once the cluster exists. The recorded sequence must be the plan; a failure
//! injected at any step must fail the run naming that step, write the report, and delete the
//! cluster.

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
use wsgate_runner::exit::{Exit, RunError};
use wsgate_runner::options::E2eArgs;
use wsgate_runner::pins::{self, Pinned};
use wsgate_runner::plan::{Deadlines, EchoBuild, Inputs, Plan, StepId};

/// `cargo xtask`'s command line, as far as `e2e` goes.
#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    E2e(Box<E2eArgs>),
}

const IMAGE: &str = "wsgate-echo:0.1.0-rehearsal";

/// Where a fault is injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
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
static TERMINATING_SEEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The mock API server's state: what was applied (by path, merged as the API server merges a
/// patch into what other managers own), the fault of the current run, the log of calls.
struct MockApi {
    objects: Mutex<BTreeMap<String, serde_json::Value>>,
    fault: Mutex<Fault>,
    log: PathBuf,
}

impl MockApi {
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap()
    }

    fn object(&self, path: &str) -> Option<serde_json::Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }

    fn record(&self, line: &str) {
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
fn merge(into: &mut serde_json::Value, patch: &serde_json::Value) {
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
struct Rig {
    dir: tempfile::TempDir,
    log: PathBuf,
    rt: tokio::runtime::Runtime,
    api: SocketAddr,
    mock: Arc<MockApi>,
    echo: SocketAddr,
}

impl Rig {
    fn new() -> Self {
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
    fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }
    fn work(&self) -> PathBuf {
        self.root().join("target/wsgate/kind")
    }
    fn recorded(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
    /// Forgets what was recorded (before a second run on the same rig).
    fn clear_log(&self) {
        let _ = std::fs::remove_file(&self.log);
    }
    /// What `docker image inspect --format {{.Id}}` prints for the echo image.
    fn set_image_id(&self, id: &str) {
        std::fs::write(self.dir.path().join("image-id"), id).unwrap();
    }
    /// What `docker version --format {{.Server.Os}}/{{.Server.Arch}}` prints.
    fn set_docker_platform(&self, p: &str) {
        std::fs::write(self.dir.path().join("docker-platform"), p).unwrap();
    }
    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }
}

fn write_exe(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A stub that records `name args...`, fails when its line contains the fault, and answers
/// the few questions the plan asks (versions, `get clusters`, `create cluster`, `nextest list`,
/// the image ID). Questions asked while the plan is made are not recorded.
fn stub(rig: &Rig, name: &str, fail: &[&str], existing: &str) {
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
fn line(cmd: &wsgate_runner::action::Cmd) -> String {
    std::iter::once(cmd.name())
        .chain(cmd.args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the stubs and the mock API record for the plan's actions, in order.
fn expected(actions: &[&Action]) -> Vec<String> {
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

fn json_response(status: u16, v: serde_json::Value) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&v).unwrap())))
        .unwrap()
}

fn list(kind: &str, items: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

fn status(code: u16, reason: &str) -> hyper::Response<Full<Bytes>> {
    json_response(
        code,
        serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": "rehearsal"}),
    )
}

/// The mock API server's answer to one request; mutating calls are recorded.
async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    mock: &MockApi,
) -> hyper::Response<Full<Bytes>> {
    let fault = mock.fault();
    let (method, path, query) = (
        req.method().clone(),
        req.uri().path().to_owned(),
        req.uri().query().unwrap_or_default().to_owned(),
    );
    let body = req.into_body().collect().await.unwrap().to_bytes();
    if method == http::Method::PATCH {
        mock.record(&format!("PATCH {path}"));
        if let Fault::Api(p) = fault
            && path.contains(p)
        {
            return status(422, "Invalid");
        }
        let patch: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let mut objects = mock.objects.lock().unwrap();
        let stored = objects.entry(path.clone()).or_insert_with(|| {
            let name = path.rsplit('/').next().unwrap_or_default();
            serde_json::json!({"apiVersion": "v1", "kind": "Object", "metadata": {"name": name}})
        });
        merge(stored, &patch);
        return json_response(200, stored.clone());
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

async fn api_server(listener: TcpListener, mock: Arc<MockApi>) {
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
async fn tls_terminator(listener: TcpListener, tls_dirs: [PathBuf; 2], echo: SocketAddr) {
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

fn fake_image(
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
async fn forward(listener: TcpListener, to: SocketAddr) {
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
fn reserve() -> (tokio::net::TcpSocket, u16) {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = s.local_addr().unwrap().port();
    (s, port)
}

/// Sets up stubs, the mock API and the stand-in ingress, makes the plan for `flags`, runs it.
fn rehearse(flags: &[&str], fault: Fault) -> (Rig, Plan, Result<(), RunError>) {
    let rig = Rig::new();
    let (plan, result) = rig.rehearse(flags, fault);
    (rig, plan, result)
}

impl Rig {
    /// One `cargo xtask e2e FLAGS` on this rig, with `fault` injected.
    fn rehearse(&self, flags: &[&str], fault: Fault) -> (Plan, Result<(), RunError>) {
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

fn teardown_line(plan: &Plan) -> Option<String> {
    plan.step(StepId::Teardown)?
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Run(cmd) => Some(line(cmd)),
            _ => None,
        })
}

#[test]
fn the_executor_runs_exactly_the_plan() {
    let (rig, plan, result) = rehearse(&[], Fault::None);
    result.unwrap();
    let all: Vec<&Action> = plan.actions().collect();
    let recorded = rig.recorded();
    assert_eq!(recorded, expected(&all));
    // Commands and API calls, from `docker version` to `kind delete cluster`.
    assert_eq!(recorded.len(), 26, "{recorded:#?}");
    assert!(rig.work().join("report.md").is_file());
    // The TLS step's files, as the plan named them, with the key private.
    let key = rig.work().join("tls/test.example.com.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !rig.work().join("diagnostics").exists(),
        "no diagnostics after a passing run"
    );
}

#[test]
fn a_reused_cluster_is_exported_and_kept() {
    let (rig, plan, result) = rehearse(&["--reuse"], Fault::None);
    result.unwrap();
    let recorded = rig.recorded();
    assert_eq!(recorded, expected(&plan.actions().collect::<Vec<_>>()));
    assert!(
        recorded
            .iter()
            .any(|l| l.starts_with("kind export kubeconfig"))
    );
    assert!(
        !recorded
            .iter()
            .any(|l| l.starts_with("kind delete") || l.starts_with("kind create"))
    );
}

/// Injects `fault`, which must fail `step`; checks the exit, the message, the report, the
/// diagnostics and the teardown.
fn fails_at(fault: Fault, step: StepId, flags: &[&str]) -> Rig {
    let (rig, plan, result) = rehearse(flags, fault);
    let failed = result.expect_err("the run must fail");
    // A step that failed before its tests could judge is a set-up failure (exit 3); tests that
    // were listed, not run, never judge a promise in a rehearsal.
    assert_eq!(
        failed.exit,
        Exit::SetupFailed,
        "the exit of a failure at {step:?}: {failed:#}"
    );
    let err = format!("{failed:#}");
    let index = plan.steps.iter().position(|s| s.id == step).unwrap() + 1;
    assert!(
        err.contains(&format!("step {index} `{}`", step.title())),
        "the error must name step {index} `{}`: {err}",
        step.title()
    );
    assert!(
        plan.work.join("report.md").is_file(),
        "no report after a failure at {step:?}"
    );
    let recorded = rig.recorded();
    let cluster_made = plan
        .steps
        .iter()
        .take(index)
        .any(|s| match s.arms_teardown {
            // A failure at the arming step before the armed action leaves nothing to delete.
            Some(at) if s.id == step => !err.contains("already") && at < s.actions.len(),
            Some(_) => true,
            None => false,
        });
    let keeps = flags.contains(&"--keep") || flags.contains(&"--reuse");
    match teardown_line(&plan) {
        Some(teardown) if cluster_made && !keeps => assert_eq!(
            recorded.last(),
            Some(&teardown),
            "teardown must run last after a failure at {step:?}: {recorded:#?}"
        ),
        _ => assert!(
            !recorded.iter().any(|l| l.contains(" delete ")),
            "nothing to delete after a failure at {step:?}: {recorded:#?}"
        ),
    }
    // Diagnostics need a cluster that answers: one whose creating step passed. A failing
    // teardown comes after the diagnostics' turn.
    let cluster_answers = plan
        .steps
        .iter()
        .take(index - 1)
        .any(|s| s.arms_teardown.is_some() || s.reaches_cluster.is_some());
    let diagnosed = plan.work.join("diagnostics/controller.log").is_file();
    assert_eq!(
        diagnosed,
        cluster_answers && step != StepId::Teardown,
        "diagnostics after a failure at {step:?}"
    );
    rig
}

#[test]
fn a_failing_prerequisite_stops_before_any_cluster_exists() {
    let rig = fails_at(Fault::Command("docker version"), StepId::Prerequisites, &[]);
    assert!(!rig.recorded().iter().any(|l| l.starts_with("kind ")));
}

#[test]
fn a_failing_cluster_create_still_deletes_what_it_may_have_made() {
    fails_at(Fault::Command("kind create"), StepId::Cluster, &[]);
}

#[test]
fn a_failing_controller_install_tears_down() {
    fails_at(Fault::Command("apply -f"), StepId::IngressNginx, &[]);
}

#[test]
fn admission_jobs_that_never_complete_time_out_and_tear_down() {
    fails_at(Fault::JobsNeverComplete, StepId::IngressNginx, &[]);
}

#[test]
fn a_failing_image_load_falls_back_to_an_archive_then_tears_down() {
    let rig = fails_at(Fault::Command("kind load"), StepId::EchoImage, &[]);
    assert!(
        rig.recorded()
            .iter()
            .any(|l| l.starts_with("kind load image-archive")),
        "the archive fallback is tried before giving up"
    );
}

#[test]
fn a_refused_apply_tears_down() {
    fails_at(
        Fault::Api("deployments/websocket-server"),
        StepId::Manifests,
        &[],
    );
}

#[test]
fn a_host_that_never_routes_over_ws_tears_down() {
    fails_at(
        Fault::NoRoute(Phase::Plain),
        StepId::WaitRoutes(Phase::Plain),
        &[],
    );
}

#[test]
fn failing_phase_1_tests_still_run_phase_2_and_tear_down() {
    let rig = fails_at(
        Fault::Command("binary(/^(cluster|any)_plain/)"),
        StepId::Tests(Phase::Plain),
        &[],
    );
    assert!(
        rig.recorded()
            .iter()
            .any(|l| l.contains("binary(/^(cluster|any)_tls/)")),
        "phase 2 still runs"
    );
}

#[test]
fn a_refused_tls_secret_tears_down() {
    fails_at(Fault::Api("secrets/nginx-ingress-tls"), StepId::Tls, &[]);
}

#[test]
fn a_host_that_never_serves_its_certificate_tears_down() {
    fails_at(
        Fault::NoRoute(Phase::Tls),
        StepId::WaitRoutes(Phase::Tls),
        &[],
    );
}

#[test]
fn failing_phase_2_tests_tear_down() {
    fails_at(
        Fault::Command("binary(/^(cluster|any)_tls/)"),
        StepId::Tests(Phase::Tls),
        &[],
    );
}

#[test]
fn failing_fault_tests_are_named_as_the_faults_step() {
    fails_at(
        Fault::Command("binary(cluster_faults)"),
        StepId::Faults,
        &[],
    );
}

#[test]
fn a_failing_controller_restart_is_named_as_the_rollout_step() {
    fails_at(
        Fault::Command("binary(cluster_rollout)"),
        StepId::Rollout,
        &[],
    );
}

#[test]
fn a_failing_teardown_fails_the_run() {
    fails_at(Fault::Command("kind delete"), StepId::Teardown, &[]);
}

#[test]
fn keep_leaves_the_cluster_after_a_failure() {
    fails_at(Fault::Api("ingresses/ws"), StepId::Manifests, &["--keep"]);
}

const EXISTING: [&str; 8] = [
    "--kubeconfig",
    "{kubeconfig}",
    "--context",
    "prod",
    "--ingress-address",
    "127.0.0.1:{http}",
    "--ingress-https-port",
    "{https}",
];

#[test]
fn an_existing_cluster_gets_its_namespace_and_loses_it_afterwards() {
    let (rig, plan, result) = rehearse(&EXISTING, Fault::None);
    result.unwrap();
    let recorded = rig.recorded();
    assert_eq!(recorded, expected(&plan.actions().collect::<Vec<_>>()));
    assert_eq!(
        recorded
            .iter()
            .find(|l| l.starts_with("PATCH"))
            .map(String::as_str),
        Some("PATCH /api/v1/namespaces/wsgate-e2e"),
        "the namespace first"
    );
    assert!(
        recorded
            .last()
            .is_some_and(|l| l.contains("delete namespace wsgate-e2e")),
        "{recorded:#?}"
    );
    assert!(
        !recorded
            .iter()
            .any(|l| l.starts_with("kind ") || l.starts_with("docker "))
    );
}

#[test]
fn someone_elses_namespace_on_an_existing_cluster_is_neither_changed_nor_deleted() {
    let rig = fails_at(
        Fault::Exists {
            path: "namespaces/wsgate-e2e",
            by_wsgate: false,
        },
        StepId::Manifests,
        &EXISTING,
    );
    // Only step 1's read-only version check ran.
    assert_eq!(rig.recorded(), ["cargo nextest --version"]);
}

#[test]
fn a_namespace_left_by_an_earlier_run_is_taken_over() {
    let (rig, plan, result) = rehearse(
        &EXISTING,
        Fault::Exists {
            path: "namespaces/wsgate-e2e",
            by_wsgate: true,
        },
    );
    result.unwrap();
    assert_eq!(
        rig.recorded(),
        expected(&plan.actions().collect::<Vec<_>>())
    );
}

#[test]
fn a_namespace_still_terminating_from_the_last_run_is_waited_for() {
    let (rig, plan, result) = rehearse(&EXISTING, Fault::Terminating("namespaces/wsgate-e2e"));
    result.unwrap();
    assert!(TERMINATING_SEEN.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    assert_eq!(
        rig.recorded(),
        expected(&plan.actions().collect::<Vec<_>>())
    );
}

#[test]
fn own_manifests_over_someone_elses_objects_are_refused_before_any_change() {
    let chat = concat!(env!("CARGO_MANIFEST_DIR"), "/../../manifests/examples/chat");
    let mut flags = EXISTING.to_vec();
    flags.extend(["--manifests", chat]);
    let rig = fails_at(
        Fault::Exists {
            path: "services/chat",
            by_wsgate: false,
        },
        StepId::WorkloadApply,
        &flags,
    );
    assert_eq!(rig.recorded(), ["cargo nextest --version"]);
}

#[test]
fn an_existing_cluster_failing_before_its_objects_exist_deletes_nothing() {
    fails_at(
        Fault::Command("kubectl"),
        StepId::Prerequisites,
        &[
            "--kubeconfig",
            "/nonexistent",
            "--ingress-address",
            "lb",
            "--strict",
        ],
    );
}

#[test]
fn a_cluster_that_already_exists_is_never_deleted() {
    let rig = fails_at(Fault::ClusterExists, StepId::Cluster, &[]);
    assert_eq!(
        rig.recorded(),
        [
            "docker version --format {{.Server.Version}}",
            "cargo nextest --version",
            "kind get clusters"
        ]
    );
}

#[test]
fn own_manifests_are_loaded_applied_waited_for_and_checked() {
    let chat = concat!(env!("CARGO_MANIFEST_DIR"), "/../../manifests/examples/chat");
    let (rig, plan, result) = rehearse(
        &[
            "--manifests",
            chat,
            "--load-image",
            "chat:dev",
            "--max-idle",
            "1",
            "--echo",
        ],
        Fault::None,
    );
    result.unwrap();
    let recorded = rig.recorded();
    assert_eq!(recorded, expected(&plan.actions().collect::<Vec<_>>()));
    for want in [
        "kind load docker-image chat:dev --name wsgate",
        "PATCH /api/v1/namespaces/default/services/chat",
        "PATCH /apis/apps/v1/namespaces/default/deployments/chat",
        "PATCH /apis/networking.k8s.io/v1/namespaces/default/ingresses/chat",
    ] {
        assert!(
            recorded.iter().any(|l| l == want),
            "{want} not in {recorded:#?}"
        );
    }
    // The checks ran for real against the stand-in ingress and wrote their rows.
    let rows = wsgate_report::read_rows(&plan.rows()).unwrap();
    let cases: Vec<&str> = rows.iter().map(|r| r.case.as_str()).collect();
    assert_eq!(
        cases,
        [
            "workload::echo",
            "workload::handshake",
            "workload::idle",
            "workload::liveness",
            "workload::traffic"
        ]
    );
    assert!(
        rows.iter().all(|r| r.pass() && r.tier == "kind"),
        "{rows:#?}"
    );
}

/// The pod-template annotation of the echo Deployment on the mock cluster.
fn image_id_on_cluster(rig: &Rig) -> Option<String> {
    rig.mock
        .object("/apis/apps/v1/namespaces/default/deployments/websocket-server")?
        .pointer("/spec/template/metadata/annotations/wsgate.dev~1image-id")?
        .as_str()
        .map(str::to_owned)
}

#[test]
fn keep_then_reuse_starts_from_the_documents_state_and_rolls_a_changed_image() {
    let rig = Rig::new();
    let ws = "/apis/networking.k8s.io/v1/namespaces/default/ingresses/ws";
    let (_, first) = rig.rehearse(&["--keep"], Fault::None);
    first.unwrap();
    assert!(
        rig.mock.object(ws).unwrap().pointer("/spec/tls").is_some(),
        "the kept cluster has the TLS patch"
    );
    assert_eq!(image_id_on_cluster(&rig).as_deref(), Some("sha256:1111"));

    // The same tag, rebuilt from a dirty tree: another image ID.
    rig.clear_log();
    rig.set_image_id("sha256:2222");
    let (plan, second) = rig.rehearse(&["--reuse"], Fault::None);
    second.unwrap();
    let recorded = rig.recorded();
    assert_eq!(recorded, expected(&plan.actions().collect::<Vec<_>>()));
    let at = |l: &str| recorded.iter().position(|r| r == l);
    let first_apply = at("PATCH /apis/apps/v1/namespaces/default/deployments/websocket-server")
        .expect("step 5 applies the Deployment");
    for gone in [
        format!("DELETE {ws}"),
        "DELETE /apis/networking.k8s.io/v1/namespaces/default/ingresses/ws-no-annotations".into(),
        "DELETE /api/v1/namespaces/default/secrets/nginx-ingress-tls".into(),
        "DELETE /api/v1/namespaces/default/secrets/wsgate-variants-tls".into(),
    ] {
        assert!(
            at(&gone).is_some_and(|i| i < first_apply),
            "{gone} before step 5: {recorded:#?}"
        );
    }
    let reapplied = at(&format!("PATCH {ws}")).unwrap();
    let patched_again = recorded.iter().rposition(|r| r == &format!("PATCH {ws}"));
    assert!(
        patched_again > Some(reapplied),
        "applied without spec.tls, then patched by the TLS step"
    );
    // The pod template now names the new image: the Deployment rolls its pods, and step 5
    // waits for that rollout before any route is tried.
    assert_eq!(image_id_on_cluster(&rig).as_deref(), Some("sha256:2222"));
    assert!(
        plan.step(StepId::Manifests)
            .unwrap()
            .actions
            .iter()
            .any(|a| a.signature() == "wait rollout default/websocket-server")
    );
    let text = plan.render();
    for part in [
        "reused cluster: back to the document's starting state",
        "DELETE /apis/networking.k8s.io/v1/namespaces/default/ingresses/ws (absent is fine)",
        "template annotation wsgate.dev/image-id",
    ] {
        assert!(text.contains(part), "{part:?} not printed:\n{text}");
    }

    // Nothing changed since: the same template, so no restart.
    rig.clear_log();
    let (_, third) = rig.rehearse(&["--reuse"], Fault::None);
    third.unwrap();
    assert_eq!(image_id_on_cluster(&rig).as_deref(), Some("sha256:2222"));
}

/// The error of a run that must stop in step 1, after checking nothing was made.
fn stops_in_step_1(flags: &[&str], fault: Fault) -> String {
    let rig = fails_at(fault, StepId::Prerequisites, flags);
    assert!(
        !rig.recorded().iter().any(|l| l.starts_with("kind create")),
        "{:#?}",
        rig.recorded()
    );
    let (_, _, result) = rehearse(flags, fault);
    format!("{:#}", result.unwrap_err())
}

#[test]
fn a_taken_host_port_stops_the_run_in_step_1_with_the_flags_that_fix_it() {
    let e = stops_in_step_1(&[], Fault::PortTaken);
    assert!(
        e.contains("something already answers on 127.0.0.1:")
            && e.contains("--http-port 8080 --https-port 8443"),
        "{e}"
    );
}

#[test]
fn a_missing_nextest_stops_the_run_in_step_1_with_the_install_command() {
    let e = stops_in_step_1(&[], Fault::Command("nextest --version"));
    assert!(e.contains("cargo install cargo-nextest --locked"), "{e}");
}

#[test]
fn admission_jobs_that_failed_and_were_removed_fail_the_controller_step_naming_the_secret() {
    let rig = fails_at(Fault::JobsFail, StepId::IngressNginx, &[]);
    drop(rig);
    let (_, _, result) = rehearse(&[], Fault::JobsFail);
    let e = format!("{:#}", result.unwrap_err());
    assert!(
        e.contains("Secret ingress-nginx/ingress-nginx-admission"),
        "{e}"
    );
}

#[test]
fn docker_before_28_saves_without_platform_after_the_direct_load_fails() {
    let (rig, _, result) = rehearse(
        &[],
        Fault::Commands(&["kind load docker-image", "save --platform"]),
    );
    result.unwrap();
    let recorded = rig.recorded();
    let tried: Vec<&String> = recorded
        .iter()
        .filter(|l| l.starts_with("kind load") || l.starts_with("docker save"))
        .collect();
    assert_eq!(tried.len(), 4, "{tried:#?}");
    assert!(tried[1].starts_with("docker save --platform linux/amd64"));
    assert!(tried[2].starts_with("docker save --output"));
    assert!(tried[3].starts_with("kind load image-archive"));
}

#[test]
fn a_reused_cluster_failing_a_step_still_gets_diagnostics() {
    let (_rig, plan, result) = rehearse(&["--reuse"], Fault::Api("ingresses/ws"));
    result.unwrap_err();
    let dir = plan.work.join("diagnostics");
    for f in ["controller.log", "pods-default.txt", "pod-logs-default.txt"] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
}

#[test]
fn strict_on_an_ignored_annotation_value_is_bad_input_and_makes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let chat = concat!(env!("CARGO_MANIFEST_DIR"), "/../../manifests/examples/chat");
    for f in ["deployment.yaml", "service.yaml", "ingress.yaml"] {
        let text = std::fs::read_to_string(format!("{chat}/{f}")).unwrap();
        // A unit suffix: the controller ignores the value and keeps its default.
        let text = text.replace(r#"proxy-read-timeout: "4""#, r#"proxy-read-timeout: "4s""#);
        std::fs::write(dir.path().join(f), text).unwrap();
    }
    let manifests = dir.path().display().to_string();
    let (rig, _, result) = rehearse(&["--manifests", &manifests, "--strict"], Fault::None);
    let failed = result.expect_err("--strict refuses it");
    assert_eq!(failed.exit, Exit::BadInput, "{failed:#}");
    assert!(format!("{failed:#}").contains("\"4s\""), "{failed:#}");
    assert!(
        !rig.recorded().iter().any(|l| l.starts_with("kind create")),
        "nothing made: {:#?}",
        rig.recorded()
    );
}
