//! An authenticated client connection to one broker (SASL/SCRAM-SHA-512), sending one request
//! at a time: what the metering reads, user administration and the gateway's own admin calls use.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::{
    messages::{
        AlterClientQuotasRequest, AlterClientQuotasResponse, AlterUserScramCredentialsRequest,
        AlterUserScramCredentialsResponse, ApiKey, ApiVersionsRequest, ApiVersionsResponse,
        CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
        DeleteGroupsRequest, DeleteGroupsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
        DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
        DescribeConfigsResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
        DescribeQuorumRequest, DescribeQuorumResponse, FetchRequest, FetchResponse,
        FindCoordinatorRequest, FindCoordinatorResponse, ListGroupsRequest, ListGroupsResponse,
        ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
        OffsetFetchRequest, OffsetFetchResponse, RequestHeader, ResponseHeader,
        SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
        SaslHandshakeResponse, UnregisterBrokerRequest, UnregisterBrokerResponse,
    },
    protocol::{Decodable, Encodable, HeaderVersion, StrBytes},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{
    Error, Result,
    scram::Scram,
    tls::{Stream, Tls},
};

/// How to reach and authenticate to a cluster's brokers.
#[derive(Clone)]
pub struct Credentials {
    /// `host:port` of any broker.
    pub bootstrap: String,
    /// SCRAM-SHA-512 user.
    pub username: String,
    /// Its password.
    pub password: String,
    /// TLS, when the brokers' listener is SASL_SSL; plain TCP when `None`.
    pub tls: Option<Tls>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("bootstrap", &self.bootstrap)
            .field("username", &self.username)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// An authenticated connection to the bootstrap broker.
    pub async fn connect(&self) -> Result<Connection> {
        self.connect_to(&self.bootstrap).await
    }

    /// An authenticated connection to the broker at `address`, as these credentials say.
    pub async fn connect_to(&self, address: &str) -> Result<Connection> {
        Connection::open_with(address, &self.username, &self.password, self.tls.as_ref()).await
    }
}

/// Bound on connecting and on each request.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response accepted.
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

/// An authenticated connection to one broker.
#[derive(Debug)]
pub struct Connection {
    stream: Stream,
    correlation: i32,
}

impl Connection {
    /// Connects to `address` over plain TCP and authenticates with SCRAM-SHA-512.
    pub async fn open(address: &str, username: &str, password: &str) -> Result<Self> {
        Self::open_with(address, username, password, None).await
    }

    /// Connects to `address`, over TLS when `tls` is given, and authenticates with
    /// SCRAM-SHA-512.
    pub async fn open_with(
        address: &str,
        username: &str,
        password: &str,
        tls: Option<&Tls>,
    ) -> Result<Self> {
        let connecting = async {
            let tcp = TcpStream::connect(address)
                .await
                .map_err(|e| Error::Unreachable(format!("{address}: {e}")))?;
            tcp.set_nodelay(true).ok();
            match tls {
                Some(tls) => tls.connect(address, tcp).await,
                None => Ok(Stream::Plain(tcp)),
            }
        };
        let stream = tokio::time::timeout(TIMEOUT, connecting)
            .await
            .map_err(|_| Error::Unreachable(format!("{address}: connect timed out")))??;
        let mut connection = Connection {
            stream,
            correlation: 0,
        };
        connection.authenticate(username, password).await?;
        Ok(connection)
    }

    /// The authenticated socket, for a caller that frames requests itself, and the last
    /// correlation id used on it; only a plain TCP connection can be handed over.
    pub fn into_stream(self) -> Result<(TcpStream, i32)> {
        match self.stream {
            Stream::Plain(tcp) => Ok((tcp, self.correlation)),
            Stream::Tls(_) => Err(Error::Protocol(
                "a TLS connection cannot be handed over as a TCP stream".into(),
            )),
        }
    }

    async fn authenticate(&mut self, username: &str, password: &str) -> Result<()> {
        let handshake = self
            .call(
                SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str("SCRAM-SHA-512")),
                1,
            )
            .await?;
        if handshake.error_code != 0 {
            return Err(Error::Authentication(format!(
                "SCRAM-SHA-512 refused (error {})",
                handshake.error_code
            )));
        }
        let scram = Scram::new(username, password);
        let first = self
            .call(
                SaslAuthenticateRequest::default()
                    .with_auth_bytes(Bytes::from(scram.client_first())),
                1,
            )
            .await?;
        if first.error_code != 0 {
            return Err(Error::Authentication(error_text(
                first.error_message,
                first.error_code,
            )));
        }
        let (client_final, expected) = scram.client_final(&first.auth_bytes)?;
        let last = self
            .call(
                SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(client_final)),
                1,
            )
            .await?;
        if last.error_code != 0 {
            return Err(Error::Authentication(error_text(
                last.error_message,
                last.error_code,
            )));
        }
        Scram::verify_server_final(&last.auth_bytes, &expected)
    }

    /// Sends one request at `version` and reads its response.
    pub async fn call<R: Exchange>(&mut self, request: R, version: i16) -> Result<R::Response> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("capstan")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(protocol)?;
        request.encode(&mut body, version).map_err(protocol)?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        let exchange = async {
            self.stream.write_all(&frame).await?;
            let size = self.stream.read_i32().await? as usize;
            if size > MAX_RESPONSE {
                return Err(std::io::Error::other(format!("response of {size} bytes")));
            }
            let mut buffer = vec![0u8; size];
            self.stream.read_exact(&mut buffer).await?;
            Ok(Bytes::from(buffer))
        };
        let mut response = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| Error::Unreachable("a broker request timed out".into()))?
            .map_err(|e| Error::Unreachable(format!("broker connection failed: {e}")))?;
        let header = ResponseHeader::decode(
            &mut response,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .map_err(protocol)?;
        if header.correlation_id != self.correlation {
            return Err(Error::Protocol("response out of order".into()));
        }
        let decoded = R::Response::decode(&mut response, version).map_err(|e| {
            Error::Protocol(format!(
                "could not decode a {:?} v{version} response: {e}",
                R::KEY
            ))
        })?;
        if response.has_remaining() {
            tracing::debug!(left = response.remaining(), "unread bytes after a response");
        }
        Ok(decoded)
    }
}

pub(crate) fn protocol(error: impl std::fmt::Display) -> Error {
    Error::Protocol(error.to_string())
}

pub(crate) fn error_text(message: Option<StrBytes>, code: i16) -> String {
    message
        .map(|m| m.to_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("error code {code}"))
}

/// A request the collector sends, with its API key and response type.
pub trait Exchange: Encodable + HeaderVersion {
    /// The API key.
    const KEY: ApiKey;
    /// What the broker answers.
    type Response: Decodable + HeaderVersion;
}

macro_rules! exchange {
    ($($request:ty => $response:ty, $key:ident;)*) => {
        $(impl Exchange for $request {
            const KEY: ApiKey = ApiKey::$key;
            type Response = $response;
        })*
    };
}

exchange! {
    SaslHandshakeRequest => SaslHandshakeResponse, SaslHandshake;
    SaslAuthenticateRequest => SaslAuthenticateResponse, SaslAuthenticate;
    MetadataRequest => MetadataResponse, Metadata;
    ListOffsetsRequest => ListOffsetsResponse, ListOffsets;
    ListGroupsRequest => ListGroupsResponse, ListGroups;
    FindCoordinatorRequest => FindCoordinatorResponse, FindCoordinator;
    OffsetFetchRequest => OffsetFetchResponse, OffsetFetch;
    DescribeLogDirsRequest => DescribeLogDirsResponse, DescribeLogDirs;
    AlterUserScramCredentialsRequest => AlterUserScramCredentialsResponse, AlterUserScramCredentials;
    ApiVersionsRequest => ApiVersionsResponse, ApiVersions;
    FetchRequest => FetchResponse, Fetch;
    DescribeConfigsRequest => DescribeConfigsResponse, DescribeConfigs;
    DescribeClusterRequest => DescribeClusterResponse, DescribeCluster;
    DeleteTopicsRequest => DeleteTopicsResponse, DeleteTopics;
    DeleteGroupsRequest => DeleteGroupsResponse, DeleteGroups;
    CreateAclsRequest => CreateAclsResponse, CreateAcls;
    DeleteAclsRequest => DeleteAclsResponse, DeleteAcls;
    AlterClientQuotasRequest => AlterClientQuotasResponse, AlterClientQuotas;
    DescribeQuorumRequest => DescribeQuorumResponse, DescribeQuorum;
    UnregisterBrokerRequest => UnregisterBrokerResponse, UnregisterBroker;
}
