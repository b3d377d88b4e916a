//! A bare tokio-tungstenite fan-out server: the baseline that `loadgen --baseline`
//! measures the platform against (BENCHMARKS.md).
//!
//! It does the least a chat fan-out can do: no authentication, no storage, no
//! policy, a 5-byte header instead of a protocol, tungstenite's default buffers.
//! Each connection has a reader and a writer task fed by an unbounded channel,
//! and every delivery is one `send` (one write and one flush), as in a server
//! without write coalescing. The platform has to beat it on deliveries per CPU
//! second while doing all the rest; coalescing queued frames into one write is
//! how.
//!
//! Frames (binary):
//! - `0, conv: u32 LE, members: u32 LE…`: conversation `conv` has these members
//!   (set-up; answered with the one-byte frame `0`);
//! - `1, conv: u32 LE, …`: a message; the whole frame goes to every member.
//!
//! A client names itself with `?user=N` on the upgrade request.
//!
//! ```sh
//! cargo run --release --example fanout_baseline -- 127.0.0.1:9000
//! ```
//!
//! Listens on loopback only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

/// Who is connected, and who is in which conversation.
#[derive(Default)]
struct Hub {
    peers: RwLock<HashMap<u32, mpsc::UnboundedSender<Message>>>,
    conversations: RwLock<HashMap<u32, Vec<u32>>>,
}

#[tokio::main]
async fn main() {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let addr: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(e) => fail(&format!("`{listen}` is not an address: {e}")),
    };
    if !addr.ip().is_loopback() {
        fail("the baseline listens on loopback only");
    }
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => fail(&format!("cannot listen on {addr}: {e}")),
    };
    if let Ok(a) = listener.local_addr() {
        println!("listening on {a}");
    }
    let hub = Arc::new(Hub::default());
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                // As the platform does: small frames go out at once.
                let _ = tcp.set_nodelay(true);
                tokio::spawn(serve(hub.clone(), tcp));
            }
            Err(e) => eprintln!("accept failed: {e}"),
        }
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(2)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

// The handshake callback's error type is tungstenite's, large or not.
#[allow(clippy::result_large_err)]
async fn serve(hub: Arc<Hub>, tcp: TcpStream) {
    let mut user = None;
    let named = |req: &Request, resp: Response| {
        user = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("user="))
            .and_then(|u| u.parse::<u32>().ok());
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, named).await else {
        return;
    };
    let Some(user) = user else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    hub.peers
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(user, tx.clone());
    let writer = tokio::spawn(async move {
        // One delivery, one write: no coalescing.
        while let Some(m) = rx.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(m)) = stream.next().await {
        let Message::Binary(frame) = m else {
            continue;
        };
        let Some(conversation) = u32_at(&frame, 1) else {
            continue;
        };
        match frame[0] {
            0 => {
                let members = (5..frame.len())
                    .step_by(4)
                    .filter_map(|at| u32_at(&frame, at))
                    .collect();
                hub.conversations
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(conversation, members);
                let _ = tx.send(Message::Binary(vec![0u8].into()));
            }
            1 => {
                let conversations = hub
                    .conversations
                    .read()
                    .unwrap_or_else(PoisonError::into_inner);
                let peers = hub.peers.read().unwrap_or_else(PoisonError::into_inner);
                for member in conversations.get(&conversation).into_iter().flatten() {
                    if let Some(peer) = peers.get(member) {
                        let _ = peer.send(Message::Binary(frame.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    hub.peers
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&user);
    writer.abort();
}
