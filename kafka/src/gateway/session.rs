//! One client connection: SASL first, then requests read in order, each routed (forwarded to
//! the backend on one leased connection, or answered here), and answers written back in the
//! order the requests came, as a broker does.

use std::{net::IpAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use kafka_protocol::{
    messages::{
        ApiKey, ApiVersionsResponse, RequestKind, ResponseKind, SaslAuthenticateResponse,
        SaslHandshakeResponse, api_versions_response::ApiVersion,
    },
    protocol::StrBytes,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter},
    sync::{Notify, mpsc, oneshot, watch},
};

use super::{
    Shared, admin,
    backend::{BackendPool, Lease, Target},
    codec::{self, Request, Undecodable},
    delivery,
    errors::{code, error_response},
    frame::{FrameError, read_frame, write_frame},
    names::Names,
    policy::{Engine, Tenant},
    requests::{self, Context, Route},
    responses::Rewriter,
    sasl::{Exchange, SaslMechanism, Step},
    throttle::{self, FETCH_MUTE_MAX, Mute},
    versions,
};
use crate::Result;

/// Largest frame before authentication (Kafka's `sasl.server.max.receive.size`).
const MAX_UNAUTHENTICATED_FRAME: usize = 512 * 1024;
/// Time a client has to authenticate.
const AUTHENTICATION_TIMEOUT: Duration = Duration::from_secs(30);
/// A connection that sends nothing for this long is closed (Kafka's `connections.max.idle.ms`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Requests of one connection waiting for their answers; more wait in the socket.
const MAX_IN_FLIGHT: usize = 128;
/// How often an authenticated connection's credential is checked again.
const REVALIDATE_EVERY: Duration = Duration::from_secs(30);
/// Wait for a free backend connection before giving up on a request.
const LEASE_WAIT: Duration = Duration::from_secs(10);

/// Why a connection was closed early, for the log and `/metrics`.
#[derive(Debug)]
struct Rejection {
    reason: &'static str,
    detail: String,
}

fn reject(reason: &'static str, detail: impl Into<String>) -> Rejection {
    Rejection {
        reason,
        detail: detail.into(),
    }
}

/// Serves one client connection until it closes, misbehaves, or the gateway stops.
pub async fn serve<S>(
    stream: S,
    peer: std::net::SocketAddr,
    target: Target,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (read, write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    let mut writer = BufWriter::new(write);
    let authenticated = tokio::select! {
        result = tokio::time::timeout(AUTHENTICATION_TIMEOUT, authenticate(&mut reader, &mut writer, &shared, peer.ip())) => match result {
            Ok(result) => result,
            Err(_) => Err(reject("authentication_timeout", "no authentication in time")),
        },
        _ = stop.changed() => return,
    };
    let tenant = match authenticated {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return,
        Err(rejection) => {
            note(&shared, peer, &rejection);
            return;
        }
    };
    tracing::debug!(%peer, cluster = %tenant.cluster_id, "Kafka client authenticated");
    if let Err(rejection) = serve_requests(reader, writer, target, tenant, &shared, stop).await {
        note(&shared, peer, &rejection);
    }
}

fn note(shared: &Shared, peer: std::net::SocketAddr, rejection: &Rejection) {
    shared
        .metrics
        .rejected
        .with_label_values(&[rejection.reason])
        .inc();
    tracing::info!(%peer, reason = rejection.reason, detail = %rejection.detail, "closed a Kafka client connection");
}

/// The ApiVersions answer: the versions offered in front of `engine`.
fn api_versions(engine: Engine, error_code: i16) -> ResponseKind {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            versions::table(engine)
                .into_iter()
                .map(|(key, range)| {
                    ApiVersion::default()
                        .with_api_key(key as i16)
                        .with_min_version(range.min)
                        .with_max_version(range.max)
                })
                .collect(),
        )
        .into()
}

async fn write_answer<W: AsyncWrite + Unpin>(
    writer: &mut W,
    key: ApiKey,
    version: i16,
    correlation: i32,
    answer: &ResponseKind,
) -> std::io::Result<()> {
    let frame = codec::encode_response(key, version, correlation, answer)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    write_frame(writer, &frame).await?;
    writer.flush().await
}

/// Reads frames until the client has authenticated (`Some`), gave up (`None`), or broke a rule.
async fn authenticate<R, W>(
    reader: &mut R,
    writer: &mut W,
    shared: &Shared,
    peer: IpAddr,
) -> Result<Option<Tenant>, Rejection>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let engine = shared.config.engine;
    let mut exchange: Option<Exchange> = None;
    // After SaslHandshake v0, tokens come as bare frames instead of SaslAuthenticate requests.
    let mut bare_tokens = false;
    loop {
        let frame = match read_frame(reader, MAX_UNAUTHENTICATED_FRAME).await {
            Ok(frame) => frame,
            Err(FrameError::Closed) => return Ok(None),
            Err(FrameError::TooLarge(size, max)) => {
                return Err(reject(
                    "frame_too_large",
                    format!("{size} bytes before authentication (limit {max})"),
                ));
            }
            Err(FrameError::Io(e)) => return Err(reject("io", e.to_string())),
        };
        if bare_tokens {
            let Some(current) = exchange.as_mut() else {
                return Err(reject("sasl", "token without a handshake"));
            };
            if let Some(message) = locked_out(shared, peer) {
                return Err(reject("authentication_locked_out", message));
            }
            match step(current, &frame, shared, peer).await {
                Step::Continue(token) => {
                    write_frame(writer, &token)
                        .await
                        .map_err(|e| reject("io", e.to_string()))?;
                    writer
                        .flush()
                        .await
                        .map_err(|e| reject("io", e.to_string()))?;
                }
                Step::Done(token, tenant) => {
                    write_frame(writer, &token)
                        .await
                        .map_err(|e| reject("io", e.to_string()))?;
                    writer
                        .flush()
                        .await
                        .map_err(|e| reject("io", e.to_string()))?;
                    return Ok(Some(*tenant));
                }
                Step::Failed(why) | Step::Unavailable(why) => {
                    return Err(reject("authentication_failed", why));
                }
            }
            continue;
        }
        if let Some((key, version, correlation)) = codec::peek(&frame)
            && key == ApiKey::ApiVersions as i16
            && version > 4
        {
            // KIP-511: a version the gateway does not know gets v0 with the versions it does.
            write_answer(
                writer,
                ApiKey::ApiVersions,
                0,
                correlation,
                &api_versions(engine, code::UNSUPPORTED_VERSION),
            )
            .await
            .map_err(|e| reject("io", e.to_string()))?;
            continue;
        }
        let request = codec::decode_request(frame).map_err(undecodable)?;
        let Request {
            key,
            version,
            correlation,
            body,
            ..
        } = request;
        let answer: ResponseKind = match body {
            RequestKind::ApiVersions(_) => api_versions(engine, 0),
            RequestKind::SaslHandshake(handshake) => {
                let offered = offered_mechanisms(shared);
                let wanted = SaslMechanism::from_name(handshake.mechanism.as_str())
                    .filter(|m| offered.contains(m));
                let mut answer = SaslHandshakeResponse::default().with_mechanisms(
                    offered
                        .iter()
                        .map(|m| StrBytes::from_static_str(m.name()))
                        .collect(),
                );
                match wanted {
                    Some(mechanism) => {
                        exchange = Some(Exchange::new(mechanism));
                        bare_tokens = version == 0;
                    }
                    None => answer.error_code = code::UNSUPPORTED_SASL_MECHANISM,
                }
                answer.into()
            }
            RequestKind::SaslAuthenticate(authenticate) => {
                let Some(current) = exchange.as_mut() else {
                    let answer = SaslAuthenticateResponse::default()
                        .with_error_code(code::ILLEGAL_SASL_STATE)
                        .with_error_message(Some(StrBytes::from_static_str(
                            "SaslHandshake must come first",
                        )));
                    let _ = write_answer(writer, key, version, correlation, &answer.into()).await;
                    return Err(reject("sasl", "SaslAuthenticate before SaslHandshake"));
                };
                let mechanism = current.mechanism().name();
                let request = (key, version, correlation);
                if let Some(message) = locked_out(shared, peer) {
                    refuse(
                        writer,
                        shared,
                        request,
                        mechanism,
                        "locked_out",
                        message.clone(),
                    )
                    .await;
                    return Err(reject("authentication_locked_out", message));
                }
                match step(current, &authenticate.auth_bytes, shared, peer).await {
                    Step::Continue(token) => SaslAuthenticateResponse::default()
                        .with_auth_bytes(Bytes::from(token))
                        .into(),
                    Step::Done(token, tenant) => {
                        let answer: ResponseKind = SaslAuthenticateResponse::default()
                            .with_auth_bytes(Bytes::from(token))
                            .into();
                        write_answer(writer, key, version, correlation, &answer)
                            .await
                            .map_err(|e| reject("io", e.to_string()))?;
                        shared
                            .metrics
                            .authentications
                            .with_label_values(&[mechanism, "ok"])
                            .inc();
                        return Ok(Some(*tenant));
                    }
                    Step::Failed(why) | Step::Unavailable(why) => {
                        let message = format!(
                            "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
                        );
                        refuse(writer, shared, request, mechanism, "failed", message).await;
                        return Err(reject("authentication_failed", why));
                    }
                }
            }
            _ => {
                return Err(reject(
                    "unauthenticated_request",
                    format!("{key:?} before authentication"),
                ));
            }
        };
        write_answer(writer, key, version, correlation, &answer)
            .await
            .map_err(|e| reject("io", e.to_string()))?;
    }
}

/// Answers a SaslAuthenticate `request` (key, version, correlation) with
/// SASL_AUTHENTICATION_FAILED and `message`, counting `outcome` for the mechanism; the
/// connection is closed after it.
async fn refuse<W: AsyncWrite + Unpin>(
    writer: &mut W,
    shared: &Shared,
    request: (ApiKey, i16, i32),
    mechanism: &'static str,
    outcome: &'static str,
    message: String,
) {
    shared
        .metrics
        .authentications
        .with_label_values(&[mechanism, outcome])
        .inc();
    let (key, version, correlation) = request;
    let answer = SaslAuthenticateResponse::default()
        .with_error_code(code::SASL_AUTHENTICATION_FAILED)
        .with_error_message(Some(StrBytes::from_string(message)));
    let _ = write_answer(writer, key, version, correlation, &answer.into()).await;
}

/// One SASL step of the client at `peer`; a credential that does not match counts against
/// its address.
async fn step(exchange: &mut Exchange, token: &[u8], shared: &Shared, peer: IpAddr) -> Step {
    let step = exchange
        .step(token, shared.policy.as_ref(), &shared.config.decoy_key)
        .await;
    if let Step::Failed(_) = &step {
        shared.policy.authentication_failed(peer);
    }
    step
}

/// What a client at `peer` is told when its address has failed to authenticate too often
/// (no credential of it is looked at then); `None` when it may try.
fn locked_out(shared: &Shared, peer: IpAddr) -> Option<String> {
    let wait = shared.policy.may_authenticate(peer).err()?;
    Some(format!(
        "too many failed authentications from this address: try again in {} s",
        wait.as_secs().max(1)
    ))
}

fn offered_mechanisms(shared: &Shared) -> Vec<SaslMechanism> {
    use crate::scram::Mechanism;
    let mut offered = vec![
        SaslMechanism::Scram(Mechanism::Sha512),
        SaslMechanism::Scram(Mechanism::Sha256),
    ];
    if shared.config.tls.is_some() {
        offered.push(SaslMechanism::Plain);
    }
    offered
}

fn undecodable(error: Undecodable) -> Rejection {
    match error {
        Undecodable::Truncated => reject("malformed", "a frame too short for a request header"),
        Undecodable::UnknownKey { key, .. } => reject("unknown_api_key", format!("API key {key}")),
        Undecodable::Malformed {
            key,
            version,
            reason,
            ..
        } => reject("malformed", format!("{key:?} v{version}: {reason}")),
    }
}

/// An answer on its way to the client, in request order.
struct Pending {
    key: ApiKey,
    version: i16,
    correlation: i32,
    answer: Answer,
    /// Throttle time the gateway already decided for this answer (a rate-limited produce).
    throttle: Duration,
}

enum Answer {
    Ready(Box<ResponseKind>),
    Forwarded(oneshot::Receiver<Result<Bytes>>, Context),
}

/// What the tasks of one connection tell each other.
#[derive(Default)]
struct Signals {
    /// The connection is to close (the client or the broker went away, or the credential did).
    closing: Notify,
    /// Reading is paused while the cluster is throttled.
    mute: Mute,
}

/// How long, once a client is gone, the answers it was owed are still awaited (and written, if
/// it only half-closed).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

async fn serve_requests<R, W>(
    mut reader: BufReader<R>,
    writer: BufWriter<W>,
    target: Target,
    tenant: Tenant,
    shared: &Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Rejection>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let pool = shared.pool(&tenant.backend);
    let names = Names::scoped(&tenant.prefix, tenant.scope.clone());
    let tenant = Arc::new(tenant);
    let signals = Arc::new(Signals::default());
    let (pending, queue) = mpsc::channel::<Pending>(MAX_IN_FLIGHT);
    let mut answers = tokio::spawn(write_answers(
        writer,
        queue,
        names.clone(),
        tenant.clone(),
        pool.clone(),
        shared.clone(),
        signals.clone(),
    ));
    let revalidation = tokio::spawn(revalidate(shared.clone(), tenant.clone(), signals.clone()));
    let mut lease: Option<Lease> = None;
    let max_frame = shared.config.max_frame_bytes;
    let outcome = loop {
        if reader.buffer().is_empty() {
            // Nothing more from the client for now: what was buffered for the broker goes out,
            // and a broker connection with no answers due goes back to the pool (an idle client
            // holds none).
            if let Err(rejection) = flush(&mut lease).await {
                break Err(rejection);
            }
            if lease
                .as_mut()
                .and_then(|l| l.upstream().ok())
                .is_some_and(|u| u.is_idle())
            {
                lease = None;
            }
        }
        if let Some(until) = signals.mute.until() {
            // Throttled (KIP-219): the next request waits in the socket until the mute ends.
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = signals.closing.notified() => break Ok(()),
                _ = stop.changed() => break Ok(()),
            }
        }
        let frame = tokio::select! {
            frame = tokio::time::timeout(IDLE_TIMEOUT, read_frame(&mut reader, max_frame)) => frame,
            _ = signals.closing.notified() => break Ok(()),
            _ = stop.changed() => break Ok(()),
        };
        let frame = match frame {
            Err(_) => break Ok(()),
            Ok(Ok(frame)) => frame,
            Ok(Err(FrameError::Closed)) => break Ok(()),
            Ok(Err(FrameError::TooLarge(size, max))) => {
                break Err(reject(
                    "frame_too_large",
                    format!("{size} bytes (limit {max})"),
                ));
            }
            Ok(Err(FrameError::Io(e))) => break Err(reject("io", e.to_string())),
        };
        let request = match codec::decode_request(frame) {
            Ok(request) => request,
            Err(error) => break Err(undecodable(error)),
        };
        shared
            .metrics
            .requests
            .with_label_values(&[api_name(request.key)])
            .inc();
        let handled = handle(
            request,
            target,
            &names,
            &tenant,
            &pool,
            shared,
            &mut lease,
            &signals.mute,
        )
        .await;
        let pending_answer = match handled {
            Ok(Some(answer)) => answer,
            Ok(None) => continue,
            Err(rejection) => break Err(rejection),
        };
        // When the client has pipelined more than the queue holds, what is buffered for the
        // broker must go out before waiting, or its answers (which free the queue) never come.
        let pending_answer = match pending.try_send(pending_answer) {
            Ok(()) => continue,
            Err(mpsc::error::TrySendError::Closed(_)) => break Ok(()),
            Err(mpsc::error::TrySendError::Full(pending_answer)) => pending_answer,
        };
        if let Err(rejection) = flush(&mut lease).await {
            break Err(rejection);
        }
        tokio::select! {
            sent = pending.send(pending_answer) => if sent.is_err() { break Ok(()) },
            _ = signals.closing.notified() => break Ok(()),
            _ = stop.changed() => break Ok(()),
        }
    };
    drop(pending);
    revalidation.abort();
    // What was buffered for the broker goes out either way: its answers are owed (and a broker
    // connection must never wait for requests that will not come).
    let _ = flush(&mut lease).await;
    if outcome.is_err() {
        // A client that broke the protocol gets nothing more.
        answers.abort();
    } else if tokio::time::timeout(DRAIN_TIMEOUT, &mut answers)
        .await
        .is_err()
    {
        answers.abort();
    }
    outcome
}

/// Writes out what was buffered for the broker.
async fn flush(lease: &mut Option<Lease>) -> Result<(), Rejection> {
    let Some(lease) = lease.as_mut() else {
        return Ok(());
    };
    let flushed = match lease.upstream() {
        Ok(upstream) => upstream.flush().await,
        Err(e) => Err(e),
    };
    flushed.map_err(|e| reject("backend", e.to_string()))
}

#[allow(clippy::too_many_arguments)]
async fn handle(
    request: Request,
    target: Target,
    names: &Names,
    tenant: &Arc<Tenant>,
    pool: &Arc<BackendPool>,
    shared: &Arc<Shared>,
    lease: &mut Option<Lease>,
    mute: &Mute,
) -> Result<Option<Pending>, Rejection> {
    let Request {
        key,
        version,
        correlation,
        client_id,
        body,
    } = request;
    let pending = |answer| {
        Some(Pending {
            key,
            version,
            correlation,
            answer,
            throttle: Duration::ZERO,
        })
    };
    if key == ApiKey::ApiVersions {
        let answer = api_versions(pool.spec.engine, 0);
        return Ok(pending(Answer::Ready(Box::new(answer))));
    }
    if matches!(key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) {
        // Re-authentication (KIP-368) is not offered: the gateway re-checks credentials itself.
        let answer = match body {
            RequestKind::SaslHandshake(_) => SaslHandshakeResponse::default()
                .with_error_code(code::ILLEGAL_SASL_STATE)
                .into(),
            _ => SaslAuthenticateResponse::default()
                .with_error_code(code::ILLEGAL_SASL_STATE)
                .into(),
        };
        return Ok(pending(Answer::Ready(Box::new(answer))));
    }
    if !versions::supports(pool.spec.engine, key, version) {
        if matches!(&body, RequestKind::Produce(produce) if produce.acks == 0) {
            // The client expects no answer to an acks=0 produce, not even an error.
            return Ok(None);
        }
        let answer = error_response(
            &body,
            version,
            code::UNSUPPORTED_VERSION,
            "this version is not offered here",
        );
        return match answer {
            Some(answer) => Ok(pending(Answer::Ready(Box::new(answer)))),
            None => Err(reject("unsupported_api", format!("{key:?} v{version}"))),
        };
    }
    if matches!(body, RequestKind::Fetch(_))
        && let Some(wait) = shared.policy.limited(tenant).await
        && !wait.is_zero()
    {
        // In debt: no records until it is repaid, as a throttled Kafka fetch is answered.
        let wait = wait.min(FETCH_MUTE_MAX);
        mute.extend(wait);
        let answer = throttle::throttled_fetch(version, wait);
        return Ok(pending(Answer::Ready(Box::new(answer))));
    }
    let route = requests::route(body, version, names, pool)
        .await
        .map_err(|e| reject("backend", e.to_string()))?;
    match route {
        Route::Answer(answer) => Ok(pending(Answer::Ready(Box::new(answer)))),
        Route::Nothing => Ok(None),
        Route::Admin(request) if !tenant.scope.administer => {
            let answer = error_response(
                &request,
                version,
                code::TOPIC_AUTHORIZATION_FAILED,
                "only the cluster's default credential may administer topics",
            );
            match answer {
                Some(answer) => Ok(pending(Answer::Ready(Box::new(answer)))),
                None => Err(reject("unsupported_api", format!("{key:?} v{version}"))),
            }
        }
        Route::Admin(request) => {
            // Answered in order with the requests around it, as a broker would: what came
            // before reaches the brokers first, what comes after sees its effect.
            flush(lease).await?;
            if let Some(upstream) = lease.as_mut().and_then(|l| l.upstream().ok()) {
                upstream.settle().await;
            }
            let answer = admin::answer(
                request,
                version,
                tenant,
                names,
                shared.policy.as_ref(),
                pool,
            )
            .await;
            Ok(pending(Answer::Ready(Box::new(answer))))
        }
        Route::Forward {
            request,
            context,
            answer,
        } => {
            // A connection the broker closed (a restart, say) is replaced; requests still in
            // flight on it get no answer, which closes this client's connection (see
            // write_answers), and the client retries on a new one.
            if lease
                .as_mut()
                .is_some_and(|l| l.upstream().is_ok_and(|u| u.is_dead()))
            {
                *lease = None;
            }
            if lease
                .as_ref()
                .is_none_or(|l| l.pool().spec.id != pool.spec.id)
            {
                *lease = Some(
                    pool.lease(target, LEASE_WAIT)
                        .await
                        .map_err(|e| reject("backend", e.to_string()))?,
                );
            }
            let mut throttled = Duration::ZERO;
            if let RequestKind::Produce(produce) = &request {
                let records = throttle::records_produced(produce);
                if records > 0 && shared.policy.limited(tenant).await.is_some() {
                    // Forwarded, then throttled, as Kafka's produce quotas do.
                    throttled = shared.policy.charge(tenant, records);
                    mute.extend(throttled);
                }
            }
            let Some(lease) = lease.as_mut() else {
                return Err(reject("backend", "no backend connection"));
            };
            let upstream = lease
                .upstream()
                .map_err(|e| reject("backend", e.to_string()))?;
            let backend_correlation = upstream.next_correlation();
            // The broker sees which tenant a client id belongs to (its logs and client-id
            // quotas are per pool).
            let client_id = client_id.map(|id| names.physical(&id));
            let frame =
                codec::encode_request(key, version, backend_correlation, client_id, &request)
                    .map_err(|e| reject("encoding", e.to_string()))?;
            let (reply, receiver) = if answer {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            upstream
                .send(backend_correlation, &frame, reply)
                .await
                .map_err(|e| reject("backend", e.to_string()))?;
            Ok(receiver
                .and_then(|rx| pending(Answer::Forwarded(rx, context)))
                .map(|answer| Pending {
                    throttle: throttled,
                    ..answer
                }))
        }
    }
}

async fn write_answers<W: AsyncWrite + Unpin>(
    mut writer: BufWriter<W>,
    mut queue: mpsc::Receiver<Pending>,
    names: Names,
    tenant: Arc<Tenant>,
    pool: Arc<BackendPool>,
    shared: Arc<Shared>,
    signals: Arc<Signals>,
) {
    let rewriter = Rewriter {
        names: &names,
        advertised: &shared.config.advertised,
        cluster_id: &tenant.cluster_id,
        pool: &pool,
    };
    loop {
        // Answers already written go out before waiting for one that is not there yet.
        let next = match queue.try_recv() {
            Ok(next) => next,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                if writer.flush().await.is_err() {
                    break;
                }
                match queue.recv().await {
                    Some(next) => next,
                    None => break,
                }
            }
        };
        let Pending {
            key,
            version,
            correlation,
            answer,
            throttle,
        } = next;
        let frame = match answer {
            Answer::Ready(response) => codec::encode_response(key, version, correlation, &response),
            Answer::Forwarded(mut reply, context) => {
                let arrived = match reply.try_recv() {
                    Ok(arrived) => Ok(arrived),
                    Err(oneshot::error::TryRecvError::Empty) => {
                        if writer.flush().await.is_err() {
                            break;
                        }
                        reply.await.map_err(|_| {
                            crate::Error::Unreachable("the backend connection closed".into())
                        })
                    }
                    Err(oneshot::error::TryRecvError::Closed) => Err(crate::Error::Unreachable(
                        "the backend connection closed".into(),
                    )),
                };
                match arrived {
                    Ok(Ok(frame)) => match context {
                        Context::Opaque => Ok(codec::with_correlation(frame, correlation)),
                        context => match codec::decode_response(key, version, frame) {
                            Ok((_, mut response)) => {
                                let mut throttle = throttle;
                                if let (ResponseKind::Fetch(fetched), Context::Fetch(_, asked)) =
                                    (&mut response, &context)
                                {
                                    let wait =
                                        count_delivered(&shared, &tenant, fetched, asked, version)
                                            .await;
                                    signals.mute.extend(wait);
                                    throttle = throttle.max(wait);
                                }
                                throttle::report_in(&mut response, version, throttle);
                                rewriter.rewrite(&mut response, context, version);
                                codec::encode_response(key, version, correlation, &response)
                            }
                            Err(e) => Err(e),
                        },
                    },
                    Ok(Err(e)) | Err(e) => Err(e),
                }
            }
        };
        let written = match frame {
            Ok(frame) => write_frame(&mut writer, &frame).await,
            Err(error) => {
                // The broker went away (or answered garbage): close, as a broker that fails
                // does; clients treat that as retriable and reconnect.
                tracing::debug!(cluster = %tenant.cluster_id, %error, "closing a client connection after a backend failure");
                break;
            }
        };
        if written.is_err() {
            break;
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
    signals.closing.notify_one();
}

/// Meters the records a Fetch answer delivers and, for a rate-limited cluster, takes them from
/// its allowance: returns how long the connection is to be throttled (at most
/// [`FETCH_MUTE_MAX`]).
async fn count_delivered(
    shared: &Shared,
    tenant: &Tenant,
    fetched: &mut kafka_protocol::messages::FetchResponse,
    asked: &delivery::Asked,
    version: i16,
) -> Duration {
    let limited = shared.policy.limited(tenant).await.is_some();
    if limited {
        // A few records at a time while limited, so that one answer cannot run up a debt.
        throttle::at_most(fetched, throttle::LIMITED_FETCH_RECORDS);
    }
    let mut total = 0;
    for (topic, messages) in delivery::delivered(fetched, asked, version) {
        shared.policy.delivered(tenant, &topic, messages);
        total += messages;
    }
    if !limited || total == 0 {
        return Duration::ZERO;
    }
    shared.policy.charge(tenant, total).min(FETCH_MUTE_MAX)
}

/// Closes the connection once its credential stops being valid.
async fn revalidate(shared: Arc<Shared>, tenant: Arc<Tenant>, signals: Arc<Signals>) {
    let mut tick = tokio::time::interval(REVALIDATE_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        if !shared.policy.still_valid(&tenant).await {
            tracing::info!(cluster = %tenant.cluster_id, "closing a Kafka connection: its credential is no longer valid");
            signals.closing.notify_one();
            return;
        }
    }
}

/// A metric label for an API key.
fn api_name(key: ApiKey) -> &'static str {
    use ApiKey::*;
    match key {
        Produce => "Produce",
        Fetch => "Fetch",
        ListOffsets => "ListOffsets",
        Metadata => "Metadata",
        OffsetCommit => "OffsetCommit",
        OffsetFetch => "OffsetFetch",
        FindCoordinator => "FindCoordinator",
        JoinGroup => "JoinGroup",
        Heartbeat => "Heartbeat",
        LeaveGroup => "LeaveGroup",
        SyncGroup => "SyncGroup",
        DescribeGroups => "DescribeGroups",
        ListGroups => "ListGroups",
        SaslHandshake => "SaslHandshake",
        ApiVersions => "ApiVersions",
        CreateTopics => "CreateTopics",
        DeleteTopics => "DeleteTopics",
        DeleteRecords => "DeleteRecords",
        InitProducerId => "InitProducerId",
        OffsetForLeaderEpoch => "OffsetForLeaderEpoch",
        AddPartitionsToTxn => "AddPartitionsToTxn",
        AddOffsetsToTxn => "AddOffsetsToTxn",
        EndTxn => "EndTxn",
        TxnOffsetCommit => "TxnOffsetCommit",
        DescribeConfigs => "DescribeConfigs",
        AlterConfigs => "AlterConfigs",
        DescribeLogDirs => "DescribeLogDirs",
        SaslAuthenticate => "SaslAuthenticate",
        CreatePartitions => "CreatePartitions",
        DeleteGroups => "DeleteGroups",
        IncrementalAlterConfigs => "IncrementalAlterConfigs",
        OffsetDelete => "OffsetDelete",
        DescribeCluster => "DescribeCluster",
        _ => "other",
    }
}
