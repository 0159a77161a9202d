//! WebSocket fan-out: commit → frame with many subscribers, on one aggregate's socket and on
//! a partition's socket (`/v1/stream/ws`).
//!
//! `subscribers` raw sockets are opened (each its own connection), each read by its own
//! task that stamps every `event` frame the moment it arrives (before any parsing). Then
//! commands one at a time: each is timed from the start of its POST to every subscriber's
//! frame. The figures: the median and p99 over all (subscriber, command) frames, and the
//! median and p99 of the slowest subscriber per command. Fewer commands than the ack
//! window (1,000), so no socket acknowledges anything.

use std::time::{Duration, Instant};

use client::{Incoming, Socket, Upgrade};
use tokio::sync::{mpsc, watch};

use crate::measure::Stats;
use crate::scale::{Scale, comment};

pub struct Fanout {
    pub subscribers: usize,
    pub all: Stats,
    pub slowest: Stats,
}

enum Seen {
    Ready,
    Event(Instant),
}

/// Opens `path`, retrying while the object still counts sockets closed a moment ago.
async fn open(scale: &Scale<'_>, path: &str) -> Socket {
    for _ in 0..100 {
        match scale
            .session
            .client
            .upgrade(path, &[])
            .await
            .expect("upgrade")
        {
            Upgrade::Accepted(socket) => return *socket,
            Upgrade::Refused(reply) if reply.status == 429 => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Upgrade::Refused(reply) => panic!("{path}: {} {}", reply.status, reply.text()),
        }
    }
    panic!("{path}: still refused after 10 s");
}

/// `subscribers` sockets on `path` (which must send `caught_up` once live), then `commands`
/// comments on `id`, each timed to every subscriber's frame.
async fn measure(
    scale: &Scale<'_>,
    path: &str,
    id: &str,
    subscribers: usize,
    commands: usize,
) -> Fanout {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (stop_tx, stop) = watch::channel(false);
    let mut tasks = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let mut socket = open(scale, path).await;
        let seen_tx = seen_tx.clone();
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    incoming = socket.recv() => match incoming {
                        Ok(Some(Incoming::Text(text))) => {
                            let now = Instant::now();
                            if text.contains(r#""kind":"event""#) {
                                let _ = seen_tx.send(Seen::Event(now));
                            } else if text.contains(r#""kind":"caught_up""#) {
                                let _ = seen_tx.send(Seen::Ready);
                            } else {
                                assert!(!text.contains(r#""kind":"error""#), "{text}");
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => return,
                    },
                    _ = stop.changed() => {
                        socket.close().await;
                        return;
                    }
                }
            }
        }));
    }
    drop(seen_tx);
    let mut ready = 0;
    while ready < subscribers {
        match tokio::time::timeout(Duration::from_secs(60), seen.recv()).await {
            Ok(Some(Seen::Ready)) => ready += 1,
            Ok(Some(Seen::Event(_))) => panic!("an event before any command"),
            _ => panic!("only {ready} of {subscribers} sockets caught up"),
        }
    }
    let mut all = Vec::with_capacity(subscribers * commands);
    let mut slowest = Vec::with_capacity(commands);
    let body = comment(None);
    for _ in 0..commands {
        let started = Instant::now();
        let (_, last) = tokio::join!(scale.command(id, &body), async {
            let mut last = Duration::ZERO;
            for _ in 0..subscribers {
                match tokio::time::timeout(Duration::from_secs(30), seen.recv()).await {
                    Ok(Some(Seen::Event(at))) => {
                        let latency = at.saturating_duration_since(started);
                        all.push(latency);
                        last = last.max(latency);
                    }
                    Ok(Some(Seen::Ready)) => panic!("a late caught_up"),
                    _ => panic!("a subscriber missed a frame"),
                }
            }
            last
        });
        slowest.push(last);
    }
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    Fanout {
        subscribers,
        all: Stats::of(all),
        slowest: Stats::of(slowest),
    }
}

/// On a fresh aggregate's socket.
pub async fn aggregate(scale: &Scale<'_>, id: &str, subscribers: usize, commands: usize) -> Fanout {
    scale.board(id).await;
    let path = format!("/v1/aggregates/board/{id}/ws?after=2");
    measure(scale, &path, id, subscribers, commands).await
}

/// On partition 0's socket (the Worker has one partition), from its current head; the
/// stream is drained first so that only these commands' events arrive.
pub async fn partition(scale: &Scale<'_>, id: &str, subscribers: usize, commands: usize) -> Fanout {
    scale.board(id).await;
    scale.drain().await;
    let path = format!("/v1/stream/ws?partition=0&after={}", scale.committed());
    measure(scale, &path, id, subscribers, commands).await
}
