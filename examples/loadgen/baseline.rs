//! `--baseline`: the same load against `fanout_baseline`, a bare
//! tokio-tungstenite fan-out server that writes once per delivery, so the
//! platform's deliveries per CPU second have something to be judged against.
//!
//! The clients are plain tokio-tungstenite sockets speaking the baseline's
//! 5-byte-header frames. A message frame is padded to [`FRAME_BYTES`], about the
//! size of the platform's protobuf `message.created` event, so both servers move
//! the same bytes per delivery.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{
    Args, Received, Server, bounded, connected, drive, free_port, report, sibling, spawn, usage,
};

/// Bytes of one message frame (header, sender, send time, padding).
const FRAME_BYTES: usize = 256;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Starts `fanout_baseline` on a free loopback port.
async fn start() -> Server {
    let binary = sibling("fanout_baseline");
    let port = free_port();
    let child = spawn(
        &binary,
        Command::new(&binary).arg(format!("127.0.0.1:{port}")),
    );
    let server = Server {
        child,
        base: format!("ws://127.0.0.1:{port}"),
        dir: None,
    };
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    usage("the baseline server did not start");
}

async fn connect(base: String, user: usize) -> Socket {
    match tokio_tungstenite::connect_async(format!("{base}/?user={user}")).await {
        Ok((ws, _)) => ws,
        Err(e) => usage(&format!("connect {user}: {e}")),
    }
}

fn join_frame(conversation: usize, members: &[usize]) -> Message {
    let mut f = vec![0u8];
    f.extend_from_slice(&(conversation as u32).to_le_bytes());
    for m in members {
        f.extend_from_slice(&(*m as u32).to_le_bytes());
    }
    Message::Binary(f.into())
}

fn message_frame(conversation: usize, sender: usize, sent_micros: u64) -> Message {
    let mut f = Vec::with_capacity(FRAME_BYTES);
    f.push(1u8);
    f.extend_from_slice(&(conversation as u32).to_le_bytes());
    f.extend_from_slice(&(sender as u32).to_le_bytes());
    f.extend_from_slice(&sent_micros.to_le_bytes());
    f.resize(FRAME_BYTES, b'.');
    Message::Binary(f.into())
}

/// The sender and send time of a message frame.
fn parse_message(f: &[u8]) -> Option<(u32, u64)> {
    if f.first() != Some(&1) {
        return None;
    }
    let sender = u32::from_le_bytes(f.get(5..9)?.try_into().ok()?);
    let sent = u64::from_le_bytes(f.get(9..17)?.try_into().ok()?);
    Some((sender, sent))
}

fn receiver(
    me: usize,
    mut stream: SplitStream<Socket>,
    epoch: Instant,
    warm: u64,
    stop: Arc<tokio::sync::Notify>,
) -> Received {
    tokio::spawn(async move {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
            .unwrap_or_else(|e| usage(&e.to_string()));
        let mut deliveries = 0u64;
        loop {
            tokio::select! {
                _ = stop.notified() => break,
                m = stream.next() => match m {
                    Some(Ok(Message::Binary(f))) => {
                        if let Some((sender, sent)) = parse_message(&f)
                            && sent >= warm
                        {
                            deliveries += 1;
                            if sender as usize != me {
                                let now = epoch.elapsed().as_micros() as u64;
                                let _ = h.record(now.saturating_sub(sent).max(1));
                            }
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
        }
        (h, deliveries)
    })
}

/// The whole `--baseline` run.
pub(crate) async fn run(args: Args) {
    let server = start().await;
    let setup = Instant::now();
    let rss_before = server.rss_kib();
    let sockets: Vec<Socket> = bounded(args.users, 64, |i| connect(server.base.clone(), i)).await;
    if connected(&args, std::slice::from_ref(&server), setup, rss_before).await {
        return;
    }
    let mut sinks = Vec::with_capacity(args.users);
    let mut streams = Vec::with_capacity(args.users);
    for s in sockets {
        let (sink, stream) = s.split();
        sinks.push(Mutex::new(sink));
        streams.push(stream);
    }

    // Conversations, announced on the first socket; each is answered by one `0`.
    let members = super::membership(&args);
    {
        let mut first = sinks[0].lock().await;
        for (c, m) in members.iter().enumerate() {
            if let Err(e) = first.send(join_frame(c, m)).await {
                usage(&format!("set-up: {e}"));
            }
        }
    }
    let mut joined = 0;
    while joined < members.len() {
        match tokio::time::timeout(Duration::from_secs(10), streams[0].next()).await {
            Ok(Some(Ok(Message::Binary(f)))) if f.as_ref() == [0u8] => joined += 1,
            Ok(Some(Ok(_))) => {}
            _ => usage("the baseline server did not confirm the conversations"),
        }
    }

    let epoch = Instant::now();
    let stop = Arc::new(tokio::sync::Notify::new());
    let receivers: Vec<Received> = streams
        .into_iter()
        .enumerate()
        .map(|(i, s)| receiver(i, s, epoch, args.warmup_micros(), stop.clone()))
        .collect();
    let sinks: Arc<Vec<Mutex<SplitSink<Socket, Message>>>> = Arc::new(sinks);
    let pid = server.child.id();
    let warm = super::warm_cpu(&args, vec![pid]);
    let outcome = drive(&args, &members, move |c, who, _| {
        let sinks = sinks.clone();
        async move {
            let frame = message_frame(c, who, epoch.elapsed().as_micros() as u64);
            sinks[who].lock().await.send(frame).await.is_ok()
        }
    })
    .await;
    let cpu_before = warm.await.map(|(cpu, _)| cpu).unwrap_or_default();
    let cpu = server.cpu_secs() - cpu_before;
    stop.notify_waiters();
    report(
        &args,
        std::slice::from_ref(&server),
        outcome,
        cpu,
        Default::default(),
        receivers,
    )
    .await;
}
