"""confluent-kafka's SchemaRegistryClient (PyPI) against Capstan's schema registry: Avro, JSON
Schema and Protobuf serializers producing through Capstan's Kafka gateway, a consumer
deserializing by schema id, an incompatible evolution refused with 409, a second tenant that
sees nothing, and a migration from another registry in IMPORT mode with the ids preserved."""

import base64
import io
import json
import time
import urllib.error
import urllib.request

import fastavro
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import Schema, SchemaReference, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message_factory import GetMessageClass
from confluent_kafka.serialization import MessageField, SerializationContext

from support import call, client_config

USER_V1 = {"type": "record", "name": "User", "namespace": "shop",
           "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}]}
USER_BAD = {**USER_V1, "fields": USER_V1["fields"] + [{"name": "age", "type": "int"}]}
EVENT = {"type": "object", "properties": {"kind": {"type": "string"}, "count": {"type": "integer"}},
         "required": ["kind"], "additionalProperties": False}


ORDER_PROTO = """syntax = "proto3";
package shop;

message Order {
  int64 id = 1;
  string item = 2;
  Line line = 3;
}

message Line {
  int32 quantity = 1;
}
"""


def order_class():
    """shop.Order, built at run time as protoc's generated code would define it."""
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="shop/order.proto", package="shop", syntax="proto3")
    order = file.message_type.add(name="Order")
    order.field.add(name="id", number=1, type=field.TYPE_INT64, label=field.LABEL_OPTIONAL)
    order.field.add(name="item", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return GetMessageClass(pool.FindMessageTypeByName("shop.Order"))


def new_cluster(capstan, name, auth=None):
    return call(capstan["api"], "POST", "/v2/kafka/cluster", auth or capstan["auth"], {"name": name, "region": "eu-west-1"})


def new_topic(capstan, cluster, name):
    call(capstan["api"], "POST", "/v2/kafka/topic", capstan["auth"], {
        "name": name, "partitions": 1, "retention_time": -1, "retention_size": -1, "max_message_size": -1,
        "cleanup_policy": "delete", "cluster_id": cluster["cluster_id"]})


def registry_of(capstan, cluster):
    return SchemaRegistryClient({"url": f"{capstan['rest']}/schema-registry",
                                 "basic.auth.user.info": f"{cluster['username']}:{cluster['password']}"})


def consume(config, topic, count, deserialize):
    consumer = Consumer({**config, "group.id": f"{topic}-readers", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values = []
    deadline = time.time() + 60
    while len(values) < count:
        assert time.time() < deadline, values
        message = consumer.poll(0.2)
        if message is None or message.error():
            continue
        values.append(deserialize(message.value(), SerializationContext(topic, MessageField.VALUE)))
    consumer.close()
    return values


def test_avro_and_json_serializers_through_the_kafka_gateway(capstan):
    cluster = new_cluster(capstan, "py-registry")
    for topic in ("users", "events"):
        new_topic(capstan, cluster, topic)
    config = client_config(cluster, "SCRAM-SHA-512")
    registry = registry_of(capstan, cluster)

    avro = AvroSerializer(registry, json.dumps(USER_V1))
    as_json = JSONSerializer(json.dumps(EVENT), registry)
    producer = Producer(config)
    users = [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}]
    for user in users:
        producer.produce("users", value=avro(user, SerializationContext("users", MessageField.VALUE)))
    events = [{"kind": "signup", "count": 1}, {"kind": "login"}]
    for event in events:
        producer.produce("events", value=as_json(event, SerializationContext("events", MessageField.VALUE)))
    assert producer.flush(30) == 0

    # A consumer with a registry client of its own: it decodes by the id in each message.
    reader = registry_of(capstan, cluster)
    assert consume(config, "users", 2, AvroDeserializer(reader)) == users
    assert consume(config, "events", 2, JSONDeserializer(json.dumps(EVENT), schema_registry_client=reader)) == events
    assert sorted(registry.get_subjects()) == ["events-value", "users-value"]
    latest = registry.get_latest_version("users-value")
    assert latest.version == 1 and json.loads(latest.schema.schema_str) == USER_V1

    # An incompatible change is refused with 409 (the default level is BACKWARD).
    with pytest.raises(SchemaRegistryError) as refused:
        registry.register_schema("users-value", Schema(json.dumps(USER_BAD), "AVRO"))
    assert refused.value.http_status_code == 409 and refused.value.error_code == 409
    assert not registry.test_compatibility("users-value", Schema(json.dumps(USER_BAD), "AVRO"))

    # Another tenant's cluster: a registry of its own that knows none of this.
    other = call(capstan["api"], "POST", "/v2/auth/signup", body={"email": "py-other@example.com", "password": "correct horse battery"})
    assert other
    token = call(capstan["api"], "POST", "/v2/auth/login", body={"email": "py-other@example.com", "password": "correct horse battery"})["token"]
    theirs = new_cluster(capstan, "py-theirs", auth=f"Bearer {token}")
    stranger = registry_of(capstan, theirs)
    assert stranger.get_subjects() == []
    with pytest.raises(SchemaRegistryError) as hidden:
        stranger.get_schema(latest.schema_id)
    assert hidden.value.http_status_code == 404 and hidden.value.error_code == 40403


def test_protobuf_serializers_and_the_serialized_format(capstan):
    cluster = new_cluster(capstan, "py-protobuf")
    new_topic(capstan, cluster, "orders")
    config = client_config(cluster, "SCRAM-SHA-512")
    registry = registry_of(capstan, cluster)
    order = order_class()

    # confluent-kafka registers a Protobuf schema as a base64 FileDescriptorProto, and its
    # deserializer asks for the writer's schema with format=serialized.
    serialize = ProtobufSerializer(order, registry, {"use.deprecated.format": False})
    producer = Producer(config)
    sent = [order(id=1, item="tea"), order(id=2, item="cake")]
    for message in sent:
        producer.produce("orders", value=serialize(message, SerializationContext("orders", MessageField.VALUE)))
    assert producer.flush(30) == 0
    deserialize = ProtobufDeserializer(order, {"use.deprecated.format": False}, schema_registry_client=registry_of(capstan, cluster))
    received = consume(config, "orders", 2, deserialize)
    assert [(m.id, m.item) for m in received] == [(1, "tea"), (2, "cake")]
    assert registry.get_latest_version("orders-value").schema.schema_type == "PROTOBUF"

    # A .proto text registered by another client is answered as a descriptor a protobuf
    # runtime loads, its types found by name.
    # (The client caches a schema by id whatever the format: each read gets a client of its own.)
    text_id = registry.register_schema("shop-text", Schema(ORDER_PROTO, "PROTOBUF"))
    assert registry_of(capstan, cluster).get_schema(text_id).schema_str == ORDER_PROTO, "as stored without a format"
    serialized = registry_of(capstan, cluster).get_schema(text_id, fmt="serialized").schema_str
    file = descriptor_pb2.FileDescriptorProto.FromString(base64.standard_b64decode(serialized))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    line_field = pool.FindMessageTypeByName("shop.Order").fields_by_name["line"]
    assert line_field.message_type.full_name == "shop.Line"
    version = registry_of(capstan, cluster).get_version("shop-text", 1, fmt="serialized")
    assert version.schema.schema_str == serialized

    # A compatible evolution of the descriptor form is accepted, a wire-type change refused.
    with pytest.raises(SchemaRegistryError) as refused:
        changed = descriptor_pb2.FileDescriptorProto.FromString(base64.standard_b64decode(
            registry.get_latest_version("orders-value", fmt="serialized").schema.schema_str))
        changed.message_type[0].field[0].type = descriptor_pb2.FieldDescriptorProto.TYPE_STRING
        registry.register_schema("orders-value", Schema(base64.standard_b64encode(changed.SerializeToString()).decode(), "PROTOBUF"))
    assert refused.value.http_status_code == 409


def test_migrating_from_another_registry_keeps_the_ids(capstan):
    """docs/schema-registry.md's migration recipe: IMPORT mode, each subject's versions posted
    with their old ids, READWRITE again; messages written with the old ids still decode."""
    cluster = new_cluster(capstan, "py-import")
    new_topic(capstan, cluster, "legacy")
    registry = registry_of(capstan, cluster)
    secret = base64.b64encode(f"{cluster['username']}:{cluster['password']}".encode()).decode()

    def send(method, path, body):
        request = urllib.request.Request(f"{capstan['rest']}/schema-registry{path}", method=method,
                                         data=json.dumps(body).encode())
        request.add_header("content-type", "application/vnd.schemaregistry.v1+json")
        request.add_header("authorization", f"Basic {secret}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    assert send("PUT", "/mode", {"mode": "IMPORT"}) == {"mode": "IMPORT"}
    # What an export of the old registry holds: subject, version, id, schema.
    exported = [("legacy-value", 1, 100_001, USER_V1)]
    for subject, version, schema_id, schema in exported:
        body = {"schema": json.dumps(schema), "id": schema_id, "version": version}
        assert send("POST", f"/subjects/{subject}/versions", body) == {"id": schema_id}
    assert send("PUT", "/mode", {"mode": "READWRITE"}) == {"mode": "READWRITE"}

    # A message written against the old registry (magic byte 0, id 100001, Avro body).
    config = client_config(cluster, "SCRAM-SHA-512")
    producer = Producer(config)
    old_writer = AvroSerializer(registry, json.dumps(USER_V1), conf={"auto.register.schemas": False, "use.latest.version": True})
    payload = old_writer({"id": 7, "name": "Linus"}, SerializationContext("legacy", MessageField.VALUE))
    assert payload[:5] == b"\x00" + (100_001).to_bytes(4, "big")
    producer.produce("legacy", value=payload)
    assert producer.flush(30) == 0
    assert consume(config, "legacy", 1, AvroDeserializer(registry_of(capstan, cluster))) == [{"id": 7, "name": "Linus"}]
    with pytest.raises(urllib.error.HTTPError):
        send("PUT", "/mode", {"mode": "SIDEWAYS"})


ADDRESS = {"type": "record", "name": "Address", "namespace": "shop",
           "fields": [{"name": "city", "type": "string"}]}
ORDER = {"type": "record", "name": "Order", "namespace": "shop",
         "fields": [{"name": "to", "type": "shop.Address"}, {"name": "from", "type": ["null", "shop.Address"], "default": None}]}


def test_resolved_format_is_a_schema_a_reader_without_the_registry_parses(capstan):
    """?format=resolved: an Avro schema with a reference comes back self-contained, so fastavro
    parses it with no named types given (the stored text alone names an unknown type)."""
    cluster = new_cluster(capstan, "py-resolved")
    registry = registry_of(capstan, cluster)
    registry.register_schema("address", Schema(json.dumps(ADDRESS), "AVRO"))
    reference = SchemaReference("shop.Address", "address", 1)
    order_id = registry.register_schema("orders-value", Schema(json.dumps(ORDER), "AVRO", [reference]))

    with pytest.raises(fastavro.schema.UnknownType):
        fastavro.parse_schema(json.loads(registry_of(capstan, cluster).get_schema(order_id).schema_str))
    resolved = registry_of(capstan, cluster).get_schema(order_id, fmt="resolved")
    assert [r.name for r in resolved.references] == ["shop.Address"]
    parsed = fastavro.parse_schema(json.loads(resolved.schema_str))
    order = {"to": {"city": "Lisbon"}, "from": {"city": "Porto"}}
    written = io.BytesIO()
    fastavro.schemaless_writer(written, parsed, order)
    written.seek(0)
    assert fastavro.schemaless_reader(written, parsed) == order
    by_version = registry_of(capstan, cluster).get_version("orders-value", 1, fmt="resolved")
    assert json.loads(by_version.schema.schema_str) == json.loads(resolved.schema_str)
