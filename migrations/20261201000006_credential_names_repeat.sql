-- Credential names may repeat within a cluster, as Upstash allowed (its terraform provider's own
-- example makes two credentials with one name): a credential is known by its id and username.
-- The per-cluster quota stays atomic through the cluster row's lock (store::lock_owner).
DROP INDEX credentials_cluster_name;
