//! A team's own manifests through the local tier (`--manifests`), with a backend of their own:
//! the README's chat example, a ConfigMap default under an Ingress annotation, a TLS Secret
//! without data, and a backend that is nowhere.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use wsgate_e2e::{Expect, Row};
use wsgate_local::ServiceRef;
use wsgate_manifests::{Source, Workload};
use wsgate_probe::{Endpoint, Probe, Scheme, Trust, chain};
use wsgate_workload::{Backends, start};
use wsgate_workload::{Settings, check_all};

/// A chat server written for this test (not the workspace's echo server): each text message
/// goes to every other client; pings are answered with pongs, as RFC 6455 requires.
async fn chat_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, _) = broadcast::channel::<(u64, String)>(64);
    tokio::spawn(async move {
        let mut next_id = 0u64;
        while let Ok((stream, _)) = listener.accept().await {
            next_id += 1;
            let (id, tx) = (next_id, tx.clone());
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let (mut sink, mut incoming) = ws.split();
                let mut rx = tx.subscribe();
                loop {
                    tokio::select! {
                        msg = incoming.next() => match msg {
                            Some(Ok(Message::Text(t))) => {
                                let _ = tx.send((id, t.to_string()));
                            }
                            // tungstenite queues the pong; flushing sends it now.
                            Some(Ok(Message::Ping(_))) => {
                                if sink.flush().await.is_err() {
                                    return;
                                }
                            }
                            Some(Ok(_)) => {}
                            _ => return,
                        },
                        Ok((from, text)) = rx.recv() => {
                            if from != id && sink.send(Message::text(text)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

fn rows_of<'a>(rows: &'a [Row], case: &str) -> Vec<&'a Row> {
    rows.iter().filter(|r| r.case == case).collect()
}

fn record_and_check(rows: &[Row], notes: &[String]) {
    wsgate_report::assert_rows(rows, &format!("notes: {notes:?}"));
}

#[tokio::test]
async fn the_chat_example_is_cut_at_its_4s_read_timeout_kept_alive_by_traffic_and_answers_pings() {
    let chat = chat_server().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples/chat");
    let w = Workload::load(&[dir]).unwrap_or_else(|e| panic!("{}", chain(&e)));
    let backends = Backends {
        named: BTreeMap::from([(ServiceRef::new("default", "chat", 8080), chat)]),
        echo: false,
    };
    let local = start(&w, &backends, &[])
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let rows = check_all(&local.rules, &local.addrs, &Settings::default()).await;
    record_and_check(&rows, &local.notes);
    let cases: Vec<&str> = rows.iter().map(|r| r.case.as_str()).collect();
    assert_eq!(
        cases,
        [
            "workload::handshake",
            "workload::liveness",
            "workload::idle",
            "workload::traffic"
        ],
        "no echo checks: the chat server does not echo"
    );
    let idle = rows_of(&rows, "workload::idle")[0];
    assert_eq!(
        idle.expect,
        Expect::cut_at(
            Duration::from_secs(4),
            Duration::from_millis(300),
            Duration::from_secs(2)
        )
    );
    assert!(
        idle.ingress.contains("read 4 s (annotation)"),
        "{}",
        idle.ingress
    );
    assert_eq!(
        rows_of(&rows, "workload::traffic")[0].client,
        "ping every 2 s for 6 s"
    );

    // And it is the chat behind /chat, not an echo: one client's message reaches the other.
    let probe = Probe::new(
        Endpoint::new(Scheme::Ws, local.addrs.http.clone(), "chat.example.org").with_path("/chat"),
        Trust::Certificates(vec![]),
    );
    let (mut alice, mut bob) = (
        probe.connect().await.unwrap(),
        probe.connect().await.unwrap(),
    );
    alice.send(Message::text("hi bob")).await.unwrap();
    assert_eq!(
        bob.next_message(Duration::from_secs(5)).await.unwrap(),
        Message::text("hi bob")
    );
}

const LAYERED: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: ingress-nginx-controller
  namespace: ingress-nginx
data:
  proxy-read-timeout: "2"
---
apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  ports:
  - port: 80
---
apiVersion: v1
kind: Secret
metadata:
  name: b-tls
type: kubernetes.io/tls
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: from-configmap
spec:
  rules:
  - host: a.example.org
    http:
      paths:
      - path: /
        pathType: ImplementationSpecific
        backend: {service: {name: app, port: {number: 80}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: annotated
  annotations:
    nginx.ingress.kubernetes.io/proxy-read-timeout: "3"
spec:
  tls:
  - hosts: [b.example.org]
    secretName: b-tls
  rules:
  - host: b.example.org
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: app, port: {number: 80}}}
"#;

#[tokio::test]
async fn an_annotation_overrides_the_configmap_default_and_each_row_says_which_applied() {
    let w = Workload::from_sources(&[("layered.yaml".into(), LAYERED.into())]).unwrap();
    let local = start(&w, &Backends::default(), &[])
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)));
    assert!(
        local
            .notes
            .iter()
            .any(|n| n.contains("default/b-tls has no tls.crt/tls.key")
                && n.contains("b.example.org")),
        "{:?}",
        local.notes
    );
    let rows = check_all(&local.rules, &local.addrs, &Settings::default()).await;
    record_and_check(&rows, &local.notes);
    // Served by the echo server (the Service is in the manifests, no --backend): echo checked.
    assert_eq!(rows_of(&rows, "workload::echo").len(), 2);
    let idle = rows_of(&rows, "workload::idle");
    let of = |host: &str| {
        idle.iter()
            .find(|r| r.ingress.contains(host))
            .unwrap_or_else(|| panic!("no idle row for {host}"))
    };
    let (a, b) = (of("a.example.org"), of("b.example.org"));
    assert!(a.ingress.contains("read 2 s (ConfigMap)"), "{}", a.ingress);
    assert!(b.ingress.contains("read 3 s (annotation)"), "{}", b.ingress);
    assert_eq!(
        b.scheme,
        Some(Scheme::Wss),
        "the TLS host is checked over wss"
    );
    let config = w.controller_config().unwrap();
    let rules = w.rules(&config).unwrap();
    assert_eq!(rules[0].timeouts.read.source, Source::ConfigMap);
}

#[test]
fn a_backend_neither_in_the_manifests_nor_given_is_an_error_naming_it() {
    let text = LAYERED.replace("name: app\nspec:", "name: other\nspec:");
    let w = Workload::from_sources(&[("l.yaml".into(), text)]).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt
        .block_on(start(&w, &Backends::default(), &[]))
        .err()
        .expect("no server for default/app:80");
    let msg = e.to_string();
    assert!(
        msg.contains("Ingress default/from-configmap")
            && msg.contains("default/app:80")
            && msg.contains("--backend default/app:80=HOST:PORT"),
        "{msg}"
    );
}
