//! Kafka's framing: a big-endian `i32` size, then that many bytes.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why no frame was read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// The size prefix is negative or above the limit.
    #[error("a frame of {0} bytes is over the limit of {1}")]
    TooLarge(i64, usize),
    /// The connection failed mid-frame.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame of at most `max` bytes (the size prefix is not returned).
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Bytes, FrameError> {
    let mut size = [0u8; 4];
    match reader.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size);
    if size < 0 || size as usize > max {
        return Err(FrameError::TooLarge(i64::from(size), max));
    }
    // Grown as bytes arrive, never reserved from what the size prefix merely claims.
    let size = size as usize;
    let mut body = Vec::with_capacity(size.min(64 * 1024));
    let read = (&mut *reader)
        .take(size as u64)
        .read_to_end(&mut body)
        .await?;
    if read < size {
        return Err(FrameError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the connection closed in the middle of a frame",
        )));
    }
    Ok(Bytes::from(body))
}

/// Writes `body` as one frame (not flushed).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
) -> std::io::Result<()> {
    let mut size = BytesMut::with_capacity(4);
    size.put_i32(body.len() as i32);
    writer.write_all(&size).await?;
    writer.write_all(body).await
}
