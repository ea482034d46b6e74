//! Requests and responses to and from frames, checked: the gateway decodes what untrusted
//! clients send, so every malformed frame is an error value, never a panic.

use bytes::{Bytes, BytesMut};
use kafka_protocol::{
    messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind},
    protocol::{Decodable, Encodable, StrBytes},
};

/// What a frame asked.
#[derive(Debug)]
pub struct Request {
    /// The API.
    pub key: ApiKey,
    /// Its version.
    pub version: i16,
    /// The client's correlation id.
    pub correlation: i32,
    /// The client's id.
    pub client_id: Option<StrBytes>,
    /// The body.
    pub body: RequestKind,
}

/// Why a frame is not a request the gateway can read.
#[derive(Debug)]
pub enum Undecodable {
    /// Too short to hold a request header.
    Truncated,
    /// An API key Kafka does not have.
    UnknownKey {
        /// The key as sent.
        key: i16,
    },
    /// A known key whose header or body does not decode at the version sent.
    Malformed {
        /// The API.
        key: ApiKey,
        /// The version sent.
        version: i16,
        /// What went wrong.
        reason: String,
    },
}

fn codec_error(error: impl std::fmt::Display) -> crate::Error {
    crate::Error::Protocol(format!("{error:#}"))
}

/// The API key, version and correlation id at the start of a request frame.
pub fn peek(frame: &[u8]) -> Option<(i16, i16, i32)> {
    let key = i16::from_be_bytes(frame.get(0..2)?.try_into().ok()?);
    let version = i16::from_be_bytes(frame.get(2..4)?.try_into().ok()?);
    let correlation = i32::from_be_bytes(frame.get(4..8)?.try_into().ok()?);
    Some((key, version, correlation))
}

/// Decodes a request frame (without its size prefix).
pub fn decode_request(mut frame: Bytes) -> Result<Request, Undecodable> {
    let (raw_key, version, correlation) = peek(&frame).ok_or(Undecodable::Truncated)?;
    let key = ApiKey::try_from(raw_key).map_err(|()| Undecodable::UnknownKey { key: raw_key })?;
    let malformed = |reason: String| Undecodable::Malformed {
        key,
        version,
        reason,
    };
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|e| malformed(format!("header: {e}")))?;
    let body =
        RequestKind::decode(key, &mut frame, version).map_err(|e| malformed(format!("{e:#}")))?;
    if !frame.is_empty() {
        // Brokers ignore what follows a body (librdkafka sends Metadata v12 with three bytes
        // more than the schema has), and so does the gateway: they are not forwarded.
        tracing::trace!(
            ?key,
            version,
            left = frame.len(),
            "bytes after a request body"
        );
    }
    Ok(Request {
        key,
        version,
        correlation,
        client_id: header.client_id,
        body,
    })
}

/// Encodes a request for a broker.
pub fn encode_request(
    key: ApiKey,
    version: i16,
    correlation: i32,
    client_id: Option<StrBytes>,
    body: &RequestKind,
) -> crate::Result<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(client_id);
    let mut out = BytesMut::new();
    header
        .encode(&mut out, key.request_header_version(version))
        .map_err(codec_error)?;
    body.encode(&mut out, version).map_err(codec_error)?;
    Ok(out.freeze())
}

/// Encodes a response for a client.
pub fn encode_response(
    key: ApiKey,
    version: i16,
    correlation: i32,
    body: &ResponseKind,
) -> crate::Result<Bytes> {
    let mut out = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation)
        .encode(&mut out, key.response_header_version(version))
        .map_err(codec_error)?;
    body.encode(&mut out, version).map_err(codec_error)?;
    Ok(out.freeze())
}

/// Decodes a broker's response frame: its correlation id and body.
pub fn decode_response(
    key: ApiKey,
    version: i16,
    mut frame: Bytes,
) -> crate::Result<(i32, ResponseKind)> {
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))
        .map_err(codec_error)?;
    let body = ResponseKind::decode(key, &mut frame, version).map_err(codec_error)?;
    Ok((header.correlation_id, body))
}

/// The correlation id of a response frame.
pub fn response_correlation(frame: &[u8]) -> Option<i32> {
    Some(i32::from_be_bytes(frame.get(0..4)?.try_into().ok()?))
}

/// A response frame with its correlation id replaced (the rest is forwarded untouched).
pub fn with_correlation(frame: Bytes, correlation: i32) -> Bytes {
    let mut out = BytesMut::from(frame);
    if out.len() >= 4 {
        out[0..4].copy_from_slice(&correlation.to_be_bytes());
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::MetadataRequest;

    use super::*;

    #[test]
    fn a_request_survives_encoding_and_decoding() {
        let body = RequestKind::Metadata(MetadataRequest::default().with_topics(None));
        let frame = encode_request(
            ApiKey::Metadata,
            12,
            7,
            Some(StrBytes::from_static_str("c")),
            &body,
        )
        .unwrap();
        let request = decode_request(frame).unwrap();
        assert_eq!(
            (request.key, request.version, request.correlation),
            (ApiKey::Metadata, 12, 7)
        );
        assert_eq!(request.body, body);
    }

    #[test]
    fn short_unknown_and_garbage_frames_are_errors_not_panics() {
        assert!(matches!(
            decode_request(Bytes::from_static(&[0, 3])),
            Err(Undecodable::Truncated)
        ));
        assert!(matches!(
            decode_request(Bytes::from_static(&[0x7f, 0, 0, 0, 0, 0, 0, 9])),
            Err(Undecodable::UnknownKey { key: 0x7f00 })
        ));
        // Metadata v1 whose topic array claims 2^31-1 entries: the unpatched crate aborts.
        let hostile =
            Bytes::from_static(&[0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decode_request(hostile),
            Err(Undecodable::Malformed { .. })
        ));
    }
}
