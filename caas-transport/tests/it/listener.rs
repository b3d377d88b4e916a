//! The listener's limits, driven over raw TCP: what one client or a crowd of
//! idle sockets can do before authentication has a say.

use std::time::{Duration, Instant};

use caas_transport::{GatewayConfig, ServeConfig, WsConfig};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::server::{Server, quota};

fn fast(config: ServeConfig) -> ServeConfig {
    ServeConfig {
        header_timeout: Duration::from_millis(300),
        keep_alive_timeout: Duration::from_millis(400),
        ..config
    }
}

/// Reads until the peer closes (or `limit` passes); returns what was read and
/// whether the peer closed.
async fn read_to_close(tcp: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response (head and a `content-length` body) off a keep-alive
/// connection.
async fn read_response(tcp: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("a response in time")
            .unwrap();
        assert!(n > 0, "closed before a whole response: {out:?}");
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if out.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

async fn get(tcp: &mut TcpStream, path: &str) -> String {
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nhost: caas\r\n\r\n").as_bytes())
        .await
        .unwrap();
    read_response(tcp).await
}

#[tokio::test]
async fn a_silent_socket_and_a_slow_head_are_closed_after_the_header_timeout() {
    let s = Server::with_serve(fast(ServeConfig::default())).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(s.addr).await.unwrap();
    let (_, closed) = read_to_close(&mut silent, Duration::from_secs(5)).await;
    assert!(closed, "a socket that never sends is closed");
    assert!(started.elapsed() >= Duration::from_millis(250));

    // Slowloris: a byte of the head every 100 ms never completes it.
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    let started = Instant::now();
    let trickle = async {
        for b in b"GET /health/live HTTP/1.1\r\nx-a: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), trickle).await;
    let (_, closed) = read_to_close(&mut slow, Duration::from_secs(1)).await;
    assert!(closed, "a head that never completes is cut off");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "within about the header timeout, not the trickle's pace: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not() {
    let s = Server::with_serve(ServeConfig {
        header_timeout: Duration::from_secs(10),
        keep_alive_timeout: Duration::from_millis(400),
        ..ServeConfig::default()
    })
    .await;
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    for _ in 0..4 {
        let r = get(&mut tcp, "/health/live").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        // Requests closer together than the idle timeout keep it open.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let idle = Instant::now();
    let (_, closed) = read_to_close(&mut tcp, Duration::from_secs(5)).await;
    assert!(closed, "an idle keep-alive connection is closed");
    assert!(
        idle.elapsed() < Duration::from_secs(2),
        "{:?}",
        idle.elapsed()
    );
}

#[tokio::test]
async fn connections_past_the_per_client_cap_get_429_at_once() {
    let s = Server::with_serve(ServeConfig {
        max_connections_per_ip: 3,
        ..ServeConfig::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(s.addr).await.unwrap());
    }
    let mut extra = TcpStream::connect(s.addr).await.unwrap();
    extra
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: caas\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let (answer, closed) = read_to_close(&mut extra, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("application/problem+json") && answer.contains("rate_limited"));
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"));
    assert!(answer.to_ascii_lowercase().contains("x-correlation-id: "));
    assert!(closed && started.elapsed() < Duration::from_secs(2));

    // A closed connection gives its place back.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut tcp = TcpStream::connect(s.addr).await.unwrap();
        tcp.write_all(b"GET /health/live HTTP/1.1\r\nhost: caas\r\n\r\n")
            .await
            .unwrap();
        let r = read_response(&mut tcp).await;
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the place never came back: {r}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_full_node_answers_503_instead_of_hanging_and_recovers() {
    let s = Server::with_serve(ServeConfig {
        header_timeout: Duration::from_millis(500),
        max_connections: Some(4),
        ..ServeConfig::default()
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(s.addr).await.unwrap());
    }
    let mut probe = TcpStream::connect(s.addr).await.unwrap();
    probe
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: caas\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_to_close(&mut probe, Duration::from_secs(2)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":\"unavailable\""), "{answer}");
    // The silent sockets time out and the node serves again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = s.call(Method::GET, "/health/live", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn shutdown_closes_a_connection_stuck_in_its_head_after_the_deadline() {
    let mut s = Server::with_serve(ServeConfig {
        header_timeout: Duration::from_secs(60),
        shutdown_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    })
    .await;
    let mut stuck = TcpStream::connect(s.addr).await.unwrap();
    stuck
        .write_all(b"GET /health/live HTTP/1.1\r\nhost: ca")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), s.stop())
        .await
        .expect("shutdown completes");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let (_, closed) = read_to_close(&mut stuck, Duration::from_secs(1)).await;
    assert!(closed, "what was left is closed");
}

#[tokio::test]
async fn a_declared_length_over_the_body_limit_is_refused_at_once() {
    let s = Server::start().await;
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    tcp.write_all(
        b"POST /v1/tenants HTTP/1.1\r\nhost: caas\r\ncontent-type: application/json\r\ncontent-length: 1099511627776\r\n\r\n",
    )
    .await
    .unwrap();
    tcp.write_all(&[b'{'; 1024]).await.unwrap();
    let started = Instant::now();
    let r = read_response(&mut tcp).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert!(r.contains("payload_too_large"), "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn health_probes_are_exempt_from_the_edge_limit() {
    let s = Server::with_listener(
        GatewayConfig {
            edge_quota: Some(quota(2)),
            ..GatewayConfig::default()
        },
        WsConfig::default(),
        ServeConfig::default(),
    )
    .await;
    for path in ["/health/ready", "/health/live", "/health"] {
        for _ in 0..4 {
            let r = s.call(Method::GET, path, None, None).await;
            assert_eq!(r.status, StatusCode::OK, "{path}");
        }
    }
    let mut limited = false;
    for _ in 0..4 {
        limited |= s
            .call(Method::GET, "/openapi.json", None, None)
            .await
            .status
            == StatusCode::TOO_MANY_REQUESTS;
    }
    assert!(limited, "everything else is still limited");
}
