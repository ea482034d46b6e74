//! The server side of SASL: SCRAM-SHA-256/512 (RFC 5802) against the keys the policy derives,
//! and PLAIN (only offered on TLS listeners). An unknown user runs the whole SCRAM exchange
//! against decoy keys and fails like a wrong password, so user names cannot be probed.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use subtle::ConstantTimeEq;

use super::policy::{Policy, Tenant};
use crate::scram::{self, Mechanism, ServerKeys};

/// A mechanism a client may choose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    /// SCRAM with SHA-256 or SHA-512.
    Scram(Mechanism),
    /// PLAIN (username and password in the clear: TLS only).
    Plain,
}

impl SaslMechanism {
    /// Parses a mechanism name.
    pub fn from_name(name: &str) -> Option<Self> {
        if name == "PLAIN" {
            return Some(SaslMechanism::Plain);
        }
        Mechanism::from_name(name).map(SaslMechanism::Scram)
    }

    /// The SASL name.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Scram(m) => m.name(),
            SaslMechanism::Plain => "PLAIN",
        }
    }
}

/// What one step of the exchange gives.
#[derive(Debug)]
pub enum Step {
    /// Send this token and wait for the next.
    Continue(Vec<u8>),
    /// Authenticated: send this last token.
    Done(Vec<u8>, Box<Tenant>),
    /// Refused: the credential does not match (the reason is for the log, never for the
    /// client).
    Failed(String),
    /// The credential could not be checked (the platform failed, not the client): refused
    /// too, but not counted against the client.
    Unavailable(String),
}

/// Why the client-first message got no server-first answer.
enum FirstError {
    Refused(String),
    Unavailable(String),
}

impl From<&str> for FirstError {
    fn from(why: &str) -> Self {
        FirstError::Refused(why.to_owned())
    }
}

impl From<String> for FirstError {
    fn from(why: String) -> Self {
        FirstError::Refused(why)
    }
}

enum State {
    First,
    Final {
        keys: ServerKeys,
        tenant: Option<Box<Tenant>>,
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Over,
}

/// One authentication exchange on a connection.
pub struct Exchange {
    mechanism: SaslMechanism,
    state: State,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// Starts an exchange.
    pub fn new(mechanism: SaslMechanism) -> Self {
        Exchange {
            mechanism,
            state: State::First,
        }
    }

    /// The mechanism.
    pub fn mechanism(&self) -> SaslMechanism {
        self.mechanism
    }

    /// Takes the client's next token. `decoy_key` makes stable fake salts for unknown users.
    pub async fn step(&mut self, token: &[u8], policy: &dyn Policy, decoy_key: &[u8]) -> Step {
        let state = std::mem::replace(&mut self.state, State::Over);
        match (self.mechanism, state) {
            (SaslMechanism::Plain, State::First) => plain(token, policy).await,
            (SaslMechanism::Scram(mechanism), State::First) => {
                match client_first(mechanism, token, policy, decoy_key).await {
                    Ok((server_first, next)) => {
                        self.state = next;
                        Step::Continue(server_first.into_bytes())
                    }
                    Err(FirstError::Refused(why)) => Step::Failed(why),
                    Err(FirstError::Unavailable(why)) => Step::Unavailable(why),
                }
            }
            (
                SaslMechanism::Scram(mechanism),
                State::Final {
                    keys,
                    tenant,
                    gs2_header,
                    client_first_bare,
                    server_first,
                    nonce,
                },
            ) => {
                let checked = client_final(
                    mechanism,
                    token,
                    &keys,
                    &gs2_header,
                    &client_first_bare,
                    &server_first,
                    &nonce,
                );
                match (checked, tenant) {
                    (Ok(server_final), Some(tenant)) => {
                        Step::Done(server_final.into_bytes(), tenant)
                    }
                    (Ok(_), None) => Step::Failed("unknown user".into()),
                    (Err(why), _) => Step::Failed(why),
                }
            }
            (_, _) => Step::Failed("the exchange is over".into()),
        }
    }
}

async fn plain(token: &[u8], policy: &dyn Policy) -> Step {
    let Ok(text) = std::str::from_utf8(token) else {
        return Step::Failed("PLAIN token is not UTF-8".into());
    };
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Step::Failed("malformed PLAIN token".into());
    };
    if !authzid.is_empty() && authzid != user {
        return Step::Failed("PLAIN authorization id differs from the user".into());
    }
    match policy.check_password(user, password).await {
        Ok(Some(tenant)) => Step::Done(Vec::new(), Box::new(tenant)),
        Ok(None) => Step::Failed("wrong username or password".into()),
        Err(e) => Step::Unavailable(format!("could not check the password: {e}")),
    }
}

async fn client_first(
    mechanism: Mechanism,
    token: &[u8],
    policy: &dyn Policy,
    decoy_key: &[u8],
) -> Result<(String, State), FirstError> {
    let text = std::str::from_utf8(token).map_err(|_| "client-first is not UTF-8".to_owned())?;
    // gs2-header: channel-binding flag, optional authzid; then client-first-bare.
    let mut split = text.splitn(3, ',');
    let (Some(flag), Some(authzid), Some(bare)) = (split.next(), split.next(), split.next()) else {
        return Err("malformed client-first".into());
    };
    if flag != "n" && flag != "y" {
        return Err("channel binding is not supported".into());
    }
    let mut attributes = bare.split(',');
    let user = attributes
        .next()
        .and_then(|a| a.strip_prefix("n="))
        .and_then(scram::unescape_saslname)
        .ok_or("client-first has no user name")?;
    let client_nonce = attributes
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_graphic() && c != ','))
        .ok_or("client-first has no nonce")?;
    if attributes.next().is_some() {
        return Err("SCRAM extensions (such as delegation tokens) are not supported".into());
    }
    if let Some(authzid) = authzid.strip_prefix("a=") {
        if scram::unescape_saslname(authzid).as_deref() != Some(user.as_str()) {
            return Err("the authorization id differs from the user".into());
        }
    } else if !authzid.is_empty() {
        return Err("malformed gs2 header".into());
    }
    let found = policy
        .scram_keys(mechanism, &user)
        .await
        .map_err(|e| FirstError::Unavailable(format!("could not look up the user: {e}")))?;
    let (keys, tenant) = match found {
        Some((keys, tenant)) => (keys, Some(Box::new(tenant))),
        None => (decoy(mechanism, &user, decoy_key)?, None),
    };
    let nonce = format!("{client_nonce}{}", scram::nonce());
    let server_first = format!(
        "r={nonce},s={},i={}",
        STANDARD.encode(&keys.salt),
        keys.iterations
    );
    Ok((
        server_first.clone(),
        State::Final {
            keys,
            tenant,
            gs2_header: format!("{flag},{authzid},"),
            client_first_bare: bare.to_owned(),
            server_first,
            nonce,
        },
    ))
}

/// Keys nobody can match, with a salt that is the same at every attempt for a name and has the
/// shape of the control plane's (64 hexadecimal characters), so it tells nothing apart.
fn decoy(mechanism: Mechanism, user: &str, decoy_key: &[u8]) -> Result<ServerKeys, String> {
    let digest = mechanism
        .hmac(decoy_key, user.as_bytes())
        .map_err(|e| e.to_string())?;
    let salt: String = digest.iter().take(32).map(|b| format!("{b:02x}")).collect();
    Ok(ServerKeys {
        mechanism,
        salt: salt.into_bytes(),
        iterations: 4096,
        stored_key: scram::nonce().into_bytes(),
        server_key: Vec::new(),
    })
}

fn client_final(
    mechanism: Mechanism,
    token: &[u8],
    keys: &ServerKeys,
    gs2_header: &str,
    client_first_bare: &str,
    server_first: &str,
    nonce: &str,
) -> Result<String, String> {
    let text = std::str::from_utf8(token).map_err(|_| "client-final is not UTF-8".to_owned())?;
    let (without_proof, proof) = text.rsplit_once(",p=").ok_or("client-final has no proof")?;
    let mut attributes = without_proof.split(',');
    let binding = attributes
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or("client-final has no channel binding")?;
    if STANDARD.decode(binding).ok().as_deref() != Some(gs2_header.as_bytes()) {
        return Err("the channel binding differs from the gs2 header".into());
    }
    if attributes.next().and_then(|a| a.strip_prefix("r=")) != Some(nonce) {
        return Err("the nonce differs".into());
    }
    let proof = STANDARD
        .decode(proof)
        .map_err(|_| "the proof is not base64".to_owned())?;
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = mechanism
        .hmac(&keys.stored_key, auth_message.as_bytes())
        .map_err(|e| e.to_string())?;
    if proof.len() != signature.len() {
        return Err("wrong proof length".into());
    }
    let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
    let matches: bool = mechanism.hash(&client_key).ct_eq(&keys.stored_key).into();
    if !matches {
        return Err("wrong password".into());
    }
    let server_signature = mechanism
        .hmac(&keys.server_key, auth_message.as_bytes())
        .map_err(|e| e.to_string())?;
    Ok(format!("v={}", STANDARD.encode(server_signature)))
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;

    use super::*;
    use crate::{
        gateway::policy::{
            AdminError, Backend, ConfigChange, CreatedTopic, Engine, NewTopic, PolicyError,
        },
        scram::Scram,
    };

    #[derive(Debug)]
    struct OneUser;

    fn tenant() -> Tenant {
        Tenant {
            cluster_id: "c1".into(),
            principal: "alice".into(),
            prefix: "p.".into(),
            backend: Backend {
                id: "pool".into(),
                bootstrap: "127.0.0.1:1".into(),
                username: "admin".into(),
                password: "x".into(),
                engine: Engine::Tansu,
            },
            credential_token: String::new(),
            scope: crate::gateway::Scope::full(),
        }
    }

    #[async_trait]
    impl Policy for OneUser {
        async fn scram_keys(
            &self,
            mechanism: Mechanism,
            username: &str,
        ) -> Result<Option<(ServerKeys, Tenant)>, PolicyError> {
            Ok((username == "alice").then(|| {
                (
                    mechanism.server_keys("secret", b"salty", 4096).unwrap(),
                    tenant(),
                )
            }))
        }
        async fn check_password(&self, u: &str, p: &str) -> Result<Option<Tenant>, PolicyError> {
            Ok((u == "alice" && p == "secret").then(tenant))
        }
        fn delivered(&self, _: &Tenant, _: &str, _: u64) {}

        fn may_authenticate(&self, _: std::net::IpAddr) -> Result<(), std::time::Duration> {
            Ok(())
        }

        fn authentication_failed(&self, _: std::net::IpAddr) {}

        async fn limited(&self, _: &Tenant) -> Option<std::time::Duration> {
            None
        }

        fn charge(&self, _: &Tenant, _: u64) -> std::time::Duration {
            std::time::Duration::ZERO
        }

        async fn still_valid(&self, _: &Tenant) -> bool {
            true
        }
        async fn create_topics(
            &self,
            _: &Tenant,
            _: Vec<NewTopic>,
            _: bool,
        ) -> Vec<Result<CreatedTopic, AdminError>> {
            Vec::new()
        }
        async fn delete_topics(&self, _: &Tenant, _: Vec<String>) -> Vec<Result<(), AdminError>> {
            Vec::new()
        }
        async fn create_partitions(
            &self,
            _: &Tenant,
            _: Vec<(String, i32)>,
            _: bool,
        ) -> Vec<Result<(), AdminError>> {
            Vec::new()
        }
        async fn alter_topic_configs(
            &self,
            _: &Tenant,
            _: String,
            _: Vec<ConfigChange>,
            _: bool,
            _: bool,
        ) -> Result<(), AdminError> {
            Ok(())
        }
    }

    async fn run(user: &str, password: &str) -> Step {
        let client = Scram::new(user, password);
        let mut server = Exchange::new(SaslMechanism::Scram(Mechanism::Sha512));
        let Step::Continue(server_first) = server
            .step(&client.client_first(), &OneUser, b"decoy")
            .await
        else {
            panic!("no server-first");
        };
        let (client_final, expected) = client.client_final(&server_first).unwrap();
        let last = server.step(&client_final, &OneUser, b"decoy").await;
        if let Step::Done(server_final, _) = &last {
            Scram::verify_server_final(server_final, &expected).unwrap();
        }
        last
    }

    #[tokio::test]
    async fn the_right_password_authenticates_and_the_server_proves_itself() {
        assert!(matches!(run("alice", "secret").await, Step::Done(_, t) if t.cluster_id == "c1"));
    }

    #[tokio::test]
    async fn a_wrong_password_and_an_unknown_user_fail_alike() {
        assert!(matches!(run("alice", "guess").await, Step::Failed(_)));
        assert!(matches!(run("mallory", "secret").await, Step::Failed(_)));
    }

    #[tokio::test]
    async fn an_unknown_user_gets_the_same_salt_every_time() {
        let salt = |token: Vec<u8>| {
            String::from_utf8(token)
                .unwrap()
                .split(',')
                .nth(1)
                .unwrap()
                .to_owned()
        };
        let mut a = Exchange::new(SaslMechanism::Scram(Mechanism::Sha256));
        let mut b = Exchange::new(SaslMechanism::Scram(Mechanism::Sha256));
        let (Step::Continue(x), Step::Continue(y)) = (
            a.step(b"n,,n=mallory,r=abc", &OneUser, b"k").await,
            b.step(b"n,,n=mallory,r=def", &OneUser, b"k").await,
        ) else {
            panic!("no server-first");
        };
        assert_eq!(salt(x.clone()), salt(y));
        // Shaped like the control plane's salts (64 hexadecimal characters).
        let decoded = STANDARD.decode(salt(x).trim_start_matches("s=")).unwrap();
        assert_eq!(decoded.len(), 64);
        assert!(decoded.iter().all(u8::is_ascii_hexdigit));
    }

    #[tokio::test]
    async fn plain_checks_the_password() {
        let mut ok = Exchange::new(SaslMechanism::Plain);
        assert!(matches!(
            ok.step(b"\0alice\0secret", &OneUser, b"").await,
            Step::Done(..)
        ));
        let mut wrong = Exchange::new(SaslMechanism::Plain);
        assert!(matches!(
            wrong.step(b"\0alice\0nope", &OneUser, b"").await,
            Step::Failed(_)
        ));
    }
}
