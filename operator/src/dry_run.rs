//! `capstan operator render`: every object the operator would apply for a `KafkaCluster`
//! written by hand, as YAML, without a cluster (a dry run, like `helm template`). What the
//! API server and the operator would fill in is shown as visible placeholders.

use crate::{KafkaCluster, RenderInput, Result, rendered_yaml};

/// Stands for what the operator generates once, at creation, and keeps in the Secret.
const GENERATED: &str = "GENERATED-AT-CREATION";
/// Stands for the uid the API server gives the resource.
const UID: &str = "00000000-0000-0000-0000-000000000000";

/// The objects of the `KafkaCluster` in `yaml`, as YAML documents. A resource without a
/// namespace is rendered in `default`, as `kubectl apply` would place it.
pub fn dry_run(yaml: &str) -> Result<String> {
    let mut cluster: KafkaCluster = serde_yaml::from_str(yaml)
        .map_err(|e| crate::Error::Invalid(format!("not a KafkaCluster: {e}")))?;
    cluster
        .metadata
        .namespace
        .get_or_insert_with(|| "default".to_owned());
    cluster.metadata.uid.get_or_insert_with(|| UID.to_owned());
    rendered_yaml(&RenderInput {
        cluster: &cluster,
        kraft_cluster_id: GENERATED.into(),
        admin_password: GENERATED.into(),
        client_username: GENERATED.into(),
        client_password: GENERATED.into(),
        // Read from the cluster when reconciling; its digest only moves the config hash.
        certificates_digest: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hand_written_resource_renders_with_placeholders_and_bad_input_is_refused() {
        let yaml = "apiVersion: capstan.dev/v1alpha1\nkind: KafkaCluster\nmetadata:\n  name: orders\nspec:\n  zoneMode: single\n";
        let rendered = dry_run(yaml).unwrap();
        assert!(rendered.contains("kind: StatefulSet"), "{rendered}");
        assert!(rendered.contains("namespace: default"));
        assert!(rendered.contains(UID));
        assert!(dry_run("kind: Nothing\n").is_err());
        let no_name =
            "apiVersion: capstan.dev/v1alpha1\nkind: KafkaCluster\nmetadata: {}\nspec: {}\n";
        assert!(dry_run(no_name).is_err());
    }
}
