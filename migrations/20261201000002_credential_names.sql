-- A credential's name is unique within its cluster (the API has always refused duplicates;
-- the index makes it hold under concurrent requests too).
CREATE UNIQUE INDEX credentials_cluster_name ON credentials (cluster_id, name);
