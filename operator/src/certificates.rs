//! The TLS Secrets of a cluster's listeners, read as the brokers will load them: whether they
//! are complete, a digest of their certificates for the brokers' config hash, and the CA the
//! operator trusts when the internal listener is TLS.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::{KafkaCluster, Result, reconciler::kube_error};

/// The listeners' certificates as the brokers will load them.
#[derive(Default)]
pub(crate) struct Certificates {
    /// A digest of every certificate (never of a key), for the brokers' config hash.
    pub(crate) digest: Option<String>,
    /// What the operator trusts when the internal listener is TLS.
    pub(crate) internal: Option<capstan_kafka::Tls>,
    /// Listeners whose Secret the brokers cannot start with yet: condition type, reason,
    /// message.
    pub(crate) unusable: Vec<(&'static str, &'static str, String)>,
}

/// Reads the TLS Secrets of the cluster's listeners.
pub(crate) async fn certificates(
    client: &Client,
    namespace: &str,
    cluster: &KafkaCluster,
) -> Result<Certificates> {
    use sha2::{Digest, Sha256};
    let listeners = &cluster.spec.listeners;
    let mut found = Certificates::default();
    let mut digest = Sha256::new();
    let mut digested = false;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for (listener, condition, tls, needed) in [
        (
            "internal",
            "InternalTlsNotReady",
            listeners.internal_tls(),
            &["tls.crt", "tls.key", "ca.crt"][..],
        ),
        (
            "external",
            "ExternalTlsNotReady",
            listeners.external_tls(),
            &["tls.crt", "tls.key"][..],
        ),
    ] {
        let Some(tls) = tls else { continue };
        let name = &tls.secret_name;
        let Some(secret) = api.get_opt(name).await.map_err(kube_error)? else {
            found.unusable.push((condition, "SecretNotFound", format!(
                "the {listener} listener's TLS Secret {name} does not exist in {namespace}; the brokers start once it does (a cert-manager Certificate writes it)"
            )));
            continue;
        };
        let data = secret.data.unwrap_or_default();
        let value = |key: &str| {
            data.get(key)
                .map(|v| v.0.as_slice())
                .filter(|v| !v.is_empty())
        };
        let missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|k| value(k).is_none())
            .collect();
        if !missing.is_empty() {
            found.unusable.push((condition, "SecretIncomplete", format!(
                "the {listener} listener's TLS Secret {name} has no {}; it needs {} (the key in PKCS#8)",
                missing.join(" and "),
                needed.join(", ")
            )));
            continue;
        }
        if let Some(ca) = value("ca.crt").filter(|_| listener == "internal") {
            match capstan_kafka::Tls::trusting(ca) {
                Ok(trust) => found.internal = Some(trust),
                Err(error) => {
                    found.unusable.push((condition, "InvalidCa", format!(
                        "the {listener} listener's TLS Secret {name} has a ca.crt that cannot be used: {error}"
                    )));
                    continue;
                }
            }
        }
        for key in ["tls.crt", "ca.crt"] {
            digest.update(listener.as_bytes());
            digest.update(key.as_bytes());
            digest.update(value(key).unwrap_or_default());
        }
        digested = true;
    }
    found.digest = digested.then(|| crate::render::short_hex(&digest.finalize()));
    Ok(found)
}
