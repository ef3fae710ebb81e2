//! The echo server image as a container (testcontainers): what the kubelet and a rollout see.
//!
//! The image is built (or found up to date) by the first test; the tests share the Docker
//! daemon and the build, so they run one at a time across nextest's processes.

use std::path::Path;
use std::time::{Duration, Instant};

use serial_test::file_serial;
use testcontainers::core::{ContainerPort, IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use wsgate_probe::{CloseKind, Endpoint, Message, Probe, Scheme, Trust};

/// How long a container may take to log that it listens.
const STARTUP: Duration = Duration::from_secs(20);

fn image() -> wsgate_image::Image {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    match wsgate_image::ensure_image_for_server(root) {
        Ok(image) => image,
        // Fail, never skip: a missing Docker must be seen.
        Err(e) => panic!("{}", wsgate_probe::chain(&e)),
    }
}

async fn start(bind_port: u16) -> (ContainerAsync<GenericImage>, u16) {
    let image = image();
    let container = GenericImage::new(image.repository.clone(), image.tag.clone())
        .with_exposed_port(bind_port.tcp())
        .with_wait_for(WaitFor::message_on_stdout("listening"))
        .with_env_var("BIND_PORT", bind_port.to_string())
        .with_startup_timeout(STARTUP)
        .start()
        .await
        .unwrap_or_else(|e| panic!("starting {}: {e}", image.reference()));
    let port = container
        .get_host_port_ipv4(ContainerPort::Tcp(bind_port))
        .await
        .expect("mapped port");
    (container, port)
}

fn probe(port: u16) -> Probe {
    // The mapped port is on loopback; the Host is what the Ingress would forward.
    Probe::new(
        Endpoint::new(Scheme::Ws, format!("127.0.0.1:{port}"), "test.example.com"),
        Trust::Certificates(vec![]),
    )
}

#[tokio::test]
#[file_serial(docker)]
async fn container_with_bind_port_3000_echoes_text_and_binary() {
    let (_c, port) = start(3000).await;
    let mut s = probe(port).connect().await.unwrap();
    s.echo(Message::text("from the container")).await.unwrap();
    s.echo(Message::binary(vec![1u8, 2, 3, 0, 255]))
        .await
        .unwrap();
    s.close().await;
}

#[tokio::test]
#[file_serial(docker)]
async fn container_honours_another_bind_port() {
    let (_c, port) = start(8088).await;
    let mut s = probe(port).connect().await.unwrap();
    s.echo(Message::text("on 8088")).await.unwrap();
}

#[tokio::test]
#[file_serial(docker)]
async fn container_answers_a_plain_http_get_with_200() {
    let (_c, port) = start(3000).await;
    let reply = probe(port).http_get().await.unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
}

#[tokio::test]
#[file_serial(docker)]
async fn stopping_the_container_sends_1001_and_ends_it_within_2s() {
    let (c, port) = start(3000).await;
    let mut s = probe(port).connect().await.unwrap();
    s.echo(Message::text("before stop")).await.unwrap();
    let started = Instant::now();
    // `docker stop` sends SIGTERM to PID 1 and SIGKILLs after 10 s: a PID 1 that ignored
    // SIGTERM would show up as a 10 s stop here.
    let (stopped, how) = tokio::join!(c.stop(), s.wait_for_close(Duration::from_secs(5)));
    let took = started.elapsed();
    stopped.expect("docker stop");
    assert_eq!(
        how,
        Some(CloseKind::CloseFrame {
            code: 1001,
            reason: "server shutting down".into()
        }),
        "the client must see close 1001, not a reset"
    );
    assert!(
        took < Duration::from_secs(2),
        "stop took {} ms, expected < 2000 ms",
        took.as_millis()
    );
    println!("docker stop took {} ms", took.as_millis());
}
