//! One authenticated connection from the gateway to a backend broker. Requests are written in
//! the order the client sent them and answered in that order (Kafka answers a connection's
//! requests in order), so one client connection's requests keep their order end to end.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use bytes::Bytes;
use tokio::{
    io::{AsyncWriteExt, BufReader, BufWriter},
    net::tcp::{OwnedReadHalf, OwnedWriteHalf},
    sync::{Notify, mpsc, oneshot},
};

use super::{
    codec,
    frame::{read_frame, write_frame},
};
use crate::{Connection, Error, Result};

/// Largest response accepted from a broker (Fetch answers are bounded by the request's
/// `max_bytes`, which clients keep far below this).
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Where a response goes: back to the session, or nowhere (requests the client expects no
/// answer to, such as `acks=0` produces).
pub type Reply = Option<oneshot::Sender<Result<Bytes>>>;

struct Expected {
    correlation: i32,
    reply: Reply,
}

/// A backend connection.
pub struct Upstream {
    writer: BufWriter<OwnedWriteHalf>,
    expected: mpsc::UnboundedSender<Expected>,
    in_flight: Arc<AtomicUsize>,
    dead: Arc<AtomicBool>,
    settled: Arc<Notify>,
    correlation: i32,
    /// The broker's address.
    pub address: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("address", &self.address)
            .field("in_flight", &self.in_flight.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Connects to `address` and authenticates as the gateway's user.
    pub async fn open(address: &str, username: &str, password: &str) -> Result<Self> {
        let (stream, correlation) = Connection::open(address, username, password)
            .await?
            .into_stream()?;
        let (read, write) = stream.into_split();
        let (expected, queue) = mpsc::unbounded_channel();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let dead = Arc::new(AtomicBool::new(false));
        let settled = Arc::new(Notify::new());
        tokio::spawn(read_responses(
            BufReader::new(read),
            queue,
            Status {
                in_flight: in_flight.clone(),
                dead: dead.clone(),
                settled: settled.clone(),
            },
            address.to_owned(),
        ));
        Ok(Upstream {
            writer: BufWriter::new(write),
            expected,
            in_flight,
            dead,
            settled,
            correlation,
            address: address.to_owned(),
        })
    }

    /// True once the broker closed the connection or a request on it failed.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// True when nothing is waiting for an answer (the connection can serve someone else).
    pub fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0 && !self.is_dead()
    }

    /// Waits until every answer has arrived or the connection died.
    pub async fn settle(&self) {
        loop {
            let settled = self.settled.notified();
            if self.in_flight.load(Ordering::Acquire) == 0 || self.is_dead() {
                return;
            }
            settled.await;
        }
    }

    /// The next correlation id on this connection.
    pub fn next_correlation(&mut self) -> i32 {
        self.correlation = self.correlation.wrapping_add(1);
        self.correlation
    }

    /// Buffers an encoded request (header and body) whose header carries `correlation`; its
    /// answer goes to `reply`. [`Upstream::flush`] writes it out.
    pub async fn send(&mut self, correlation: i32, frame: &[u8], reply: Reply) -> Result<()> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        if self.expected.send(Expected { correlation, reply }).is_err() {
            self.dead.store(true, Ordering::Release);
            return Err(Error::Unreachable(format!(
                "{}: connection closed",
                self.address
            )));
        }
        write_frame(&mut self.writer, frame).await.map_err(|e| {
            self.dead.store(true, Ordering::Release);
            Error::Unreachable(format!("{}: {e}", self.address))
        })
    }

    /// Writes out what [`Upstream::send`] buffered.
    pub async fn flush(&mut self) -> Result<()> {
        self.writer.flush().await.map_err(|e| {
            self.dead.store(true, Ordering::Release);
            Error::Unreachable(format!("{}: {e}", self.address))
        })
    }
}

/// Reads answers in order and hands each to the request that expects it. Ends, marking the
/// connection dead and failing whatever still waits, when the broker closes the connection,
/// sends something nobody asked for, or answers out of order.
struct Status {
    in_flight: Arc<AtomicUsize>,
    dead: Arc<AtomicBool>,
    settled: Arc<Notify>,
}

async fn read_responses(
    mut reader: BufReader<OwnedReadHalf>,
    mut queue: mpsc::UnboundedReceiver<Expected>,
    status: Status,
    address: String,
) {
    let failure = loop {
        let expected = tokio::select! {
            // Entries are queued before their request is written, so a waiting entry always
            // comes first.
            biased;
            expected = queue.recv() => match expected {
                Some(expected) => expected,
                None => return, // the connection was dropped
            },
            // Anything readable while nothing was asked is the broker closing (or misbehaving).
            _ = reader.get_ref().readable() => {
                if reader.buffer().is_empty() {
                    let mut probe = [0u8; 1];
                    match reader.get_ref().try_read(&mut probe) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Ok(0) => break "closed by the broker".to_owned(),
                        Ok(_) => break "the broker sent data nobody asked for".to_owned(),
                        Err(e) => break e.to_string(),
                    }
                }
                break "the broker sent data nobody asked for".to_owned();
            }
        };
        tracing::trace!(
            correlation = expected.correlation,
            "awaiting a backend answer"
        );
        let frame = match read_frame(&mut reader, MAX_RESPONSE_BYTES).await {
            Ok(frame) => frame,
            Err(e) => {
                fail(expected.reply, &address, &e.to_string());
                break e.to_string();
            }
        };
        if codec::response_correlation(&frame) != Some(expected.correlation) {
            fail(expected.reply, &address, "answer out of order");
            break "answer out of order".to_owned();
        }
        if let Some(reply) = expected.reply {
            let _ = reply.send(Ok(frame));
        }
        if status.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            status.settled.notify_waiters();
        }
    };
    status.dead.store(true, Ordering::Release);
    status.settled.notify_waiters();
    tracing::debug!(%address, reason = %failure, "backend connection ended");
    queue.close();
    while let Ok(expected) = queue.try_recv() {
        fail(expected.reply, &address, &failure);
    }
}

fn fail(reply: Reply, address: &str, why: &str) {
    if let Some(reply) = reply {
        let _ = reply.send(Err(Error::Unreachable(format!("{address}: {why}"))));
    }
}
