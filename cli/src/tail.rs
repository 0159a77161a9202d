//! `edgeloop tail`: follow one partition of the global stream — its history after
//! `--after`, then live events — printing one envelope per line on stdout.
//!
//! Every event is printed once, in offset order: the client's stream subscription
//! acknowledges what was printed, and after a dropped connection or the server's 4008
//! `slow_consumer` close it reconnects after the last offset printed. Notes about the
//! connection (caught up, reconnected) go to stderr, so stdout stays pure NDJSON.

use std::io::{self, Write};

use client::StreamUpdate;

use crate::server::{ServerArgs, explain};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// The partition to follow
    #[arg(long, value_name = "P")]
    partition: u32,

    /// Start after this offset (0: from the oldest event still hot)
    #[arg(long, default_value_t = 0, value_name = "O")]
    after: u64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.server.client()?;
    let url = args.server.url();
    let mut live = client
        .subscribe_stream(args.partition, args.after)
        .await
        .map_err(|e| explain(e, url, "replay"))?;
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    loop {
        let update = tokio::select! {
            biased;
            _ = &mut interrupt => break,
            update = live.next() => update.map_err(|e| explain(e, url, "replay"))?,
        };
        match update {
            StreamUpdate::Event(event) => {
                let mut line = serde_json::to_vec(&event)?;
                line.push(b'\n');
                let mut out = io::stdout().lock();
                match out.write_all(&line).and_then(|()| out.flush()) {
                    Ok(()) => {}
                    // The reader went away (`edgeloop tail … | head`): a normal end.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break,
                    Err(e) => return Err(e.into()),
                }
            }
            StreamUpdate::CaughtUp { position } => eprintln!(
                "caught up at offset {} of partition {}; following live events",
                position.offset, position.partition
            ),
            StreamUpdate::Reconnected { after } => {
                eprintln!("reconnected; resuming after offset {after}")
            }
            _ => {}
        }
    }
    live.close().await;
    Ok(())
}
