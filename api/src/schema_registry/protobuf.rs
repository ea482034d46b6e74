//! Protobuf schemas (`.proto` text): parsed with `protox-parse`, and compared by the rules of
//! Confluent's Protobuf compatibility that decide whether bytes written with one schema decode
//! with another. Fields are matched by number, messages by their full name.
//!
//! Incompatible: the package changed; a message removed; a field's wire type changed (scalars
//! are grouped as the wire format allows: `int32`/`int64`/`uint32`/`uint64`/`bool`,
//! `sint32`/`sint64`, `fixed32`/`sfixed32`, `fixed64`/`sfixed64`, `string`/`bytes`); a field's
//! message or enum type changed; a field turned to or from `repeated`; a `required` field added
//! or removed; a field moved into a `oneof` that already existed, or several into a new one.
//! Compatible: fields and messages added, fields removed, names changed, enum values changed.
//! Imports are not resolved: a type from another file is compared by the name written.
//!
//! A schema may also come, as confluent-kafka's serializers send it, as the base64 of a
//! serialized `FileDescriptorProto`; either form is answered in that one with
//! `?format=serialized`, which is what their deserializers ask for.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::STANDARD};
use prost::Message;
use prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorProto,
    field_descriptor_proto::{Label, Type},
};

/// Parses a `.proto` text, or the base64 of a serialized `FileDescriptorProto`.
pub fn parse(text: &str) -> Result<FileDescriptorProto, String> {
    protox_parse::parse("schema.proto", text).or_else(|error| {
        serialized_descriptor(text).ok_or_else(|| {
            format!(
                "not a valid Protobuf schema (neither .proto text nor a base64 FileDescriptorProto): {error}"
            )
        })
    })
}

/// The schema as Confluent's `format=serialized` answers it: the base64 of its
/// `FileDescriptorProto`.
pub fn serialized(text: &str) -> Result<String, String> {
    if serialized_descriptor(text).is_some() {
        return Ok(text.trim().to_owned());
    }
    Ok(STANDARD.encode(parse(text)?.encode_to_vec()))
}

/// The descriptor `text` is the base64 of, when it is one that declares something.
fn serialized_descriptor(text: &str) -> Option<FileDescriptorProto> {
    let bytes = STANDARD.decode(text.trim()).ok()?;
    FileDescriptorProto::decode(bytes.as_slice())
        .ok()
        .filter(|file| !file.message_type.is_empty() || !file.enum_type.is_empty())
}

/// Why bytes written with `writer` may not decode with `reader`; empty when they always do.
pub fn reader_accepts(reader: &FileDescriptorProto, writer: &FileDescriptorProto) -> Vec<String> {
    let mut problems = Vec::new();
    if reader.package() != writer.package() {
        problems.push(format!(
            "the package changed from {:?} to {:?}",
            writer.package(),
            reader.package()
        ));
    }
    let reader_messages = messages(reader);
    for (name, written) in messages(writer) {
        match reader_messages.get(&name) {
            None => problems.push(format!("message {name} was removed")),
            Some(read) => compare_message(&name, read, written, &mut problems),
        }
    }
    problems
}

/// Every message of the file, nested ones included, by full name (`Outer.Inner`).
fn messages(file: &FileDescriptorProto) -> HashMap<String, &DescriptorProto> {
    fn walk<'a>(
        prefix: &str,
        list: &'a [DescriptorProto],
        out: &mut HashMap<String, &'a DescriptorProto>,
    ) {
        for message in list {
            let name = if prefix.is_empty() {
                message.name().to_owned()
            } else {
                format!("{prefix}.{}", message.name())
            };
            walk(&name, &message.nested_type, out);
            out.insert(name, message);
        }
    }
    let mut out = HashMap::new();
    walk("", &file.message_type, &mut out);
    out
}

fn compare_message(
    name: &str,
    reader: &DescriptorProto,
    writer: &DescriptorProto,
    problems: &mut Vec<String>,
) {
    let by_number = |message: &DescriptorProto| -> HashMap<i32, FieldDescriptorProto> {
        message
            .field
            .iter()
            .map(|f| (f.number(), f.clone()))
            .collect()
    };
    let read_fields = by_number(reader);
    let written_fields = by_number(writer);
    let mut moved_into: HashMap<i32, usize> = HashMap::new();
    for (number, written) in &written_fields {
        let Some(read) = read_fields.get(number) else {
            if written.label() == Label::Required {
                problems.push(format!(
                    "{name}: required field {} (#{number}) was removed",
                    written.name()
                ));
            }
            continue;
        };
        let at = format!("{name}.{} (#{number})", read.name());
        match (named_type(read), named_type(written)) {
            (Some(r), Some(w)) if r != w => problems.push(format!("{at}: its type changed from {w} to {r}")),
            (Some(_), None) | (None, Some(_)) => problems.push(format!("{at}: changed between a scalar and a message or enum")),
            (None, None) if wire_group(read.r#type()) != wire_group(written.r#type()) => problems.push(format!(
                "{at}: its scalar type changed from {:?} to {:?}, which the wire format cannot carry",
                written.r#type(),
                read.r#type()
            )),
            _ => {}
        }
        if (read.label() == Label::Repeated) != (written.label() == Label::Repeated) {
            problems.push(format!("{at}: changed to or from repeated"));
        }
        if (read.label() == Label::Required) != (written.label() == Label::Required) {
            problems.push(format!("{at}: changed to or from required"));
        }
        if written.oneof_index.is_none()
            && let Some(index) = read.oneof_index
            && !read.proto3_optional()
        {
            let oneof = reader
                .oneof_decl
                .get(index as usize)
                .map(|o| o.name())
                .unwrap_or_default();
            if writer.oneof_decl.iter().any(|o| o.name() == oneof) {
                problems.push(format!("{at}: moved into the existing oneof {oneof}"));
            }
            *moved_into.entry(index).or_default() += 1;
        }
    }
    for (index, count) in moved_into {
        if count > 1 {
            let oneof = reader
                .oneof_decl
                .get(index as usize)
                .map(|o| o.name())
                .unwrap_or_default();
            problems.push(format!(
                "{name}: {count} existing fields moved into the new oneof {oneof}"
            ));
        }
    }
    for (number, read) in &read_fields {
        if !written_fields.contains_key(number) && read.label() == Label::Required {
            problems.push(format!(
                "{name}: required field {} (#{number}) was added",
                read.name()
            ));
        }
    }
}

/// A field's message or enum type, without the leading dot of a resolved name.
fn named_type(field: &FieldDescriptorProto) -> Option<&str> {
    field
        .type_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .map(|n| n.trim_start_matches('.'))
}

/// Scalars that share a wire encoding and so read each other's bytes.
fn wire_group(kind: Type) -> u8 {
    match kind {
        Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 | Type::Bool => 1,
        Type::Sint32 | Type::Sint64 => 2,
        Type::Fixed32 | Type::Sfixed32 => 3,
        Type::Fixed64 | Type::Sfixed64 => 4,
        Type::String | Type::Bytes => 5,
        Type::Float => 6,
        Type::Double => 7,
        Type::Enum => 8,
        Type::Message | Type::Group => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schema_is_the_same_as_text_and_as_a_serialized_descriptor() {
        let text = "syntax = \"proto3\"; package shop; message Order { int64 id = 1; }";
        let serialized = serialized(text).unwrap();
        assert_eq!(parse(&serialized).unwrap(), parse(text).unwrap());
        assert_eq!(
            super::serialized(&serialized).unwrap(),
            serialized,
            "a descriptor is answered as sent"
        );
        assert!(reader_accepts(&parse(&serialized).unwrap(), &parse(text).unwrap()).is_empty());
        for not_a_schema in ["bm90IGEgZGVzY3JpcHRvcg==", "message {"] {
            assert!(parse(not_a_schema).is_err(), "{not_a_schema:?}");
        }
    }

    fn compatible(reader: &str, writer: &str) -> Vec<String> {
        reader_accepts(
            &parse(reader).expect("reader"),
            &parse(writer).expect("writer"),
        )
    }

    const V1: &str = r#"syntax = "proto3"; package shop; message User { int64 id = 1; string name = 2; Address home = 3; message Address { string city = 1; } }"#;

    #[test]
    fn fields_added_or_removed_are_compatible() {
        let added = r#"syntax = "proto3"; package shop; message User { int64 id = 1; string name = 2; Address home = 3; string email = 4; message Address { string city = 1; } }"#;
        assert_eq!(compatible(added, V1), Vec::<String>::new());
        assert_eq!(compatible(V1, added), Vec::<String>::new());
        let renamed = r#"syntax = "proto3"; package shop; message User { int64 key = 1; bytes name = 2; Address home = 3; message Address { string town = 1; } }"#;
        assert_eq!(
            compatible(renamed, V1),
            Vec::<String>::new(),
            "names and string/bytes do not matter on the wire"
        );
    }

    #[test]
    fn wire_changes_are_incompatible() {
        let retyped = r#"syntax = "proto3"; package shop; message User { string id = 1; string name = 2; Address home = 3; message Address { string city = 1; } }"#;
        assert_eq!(compatible(retyped, V1).len(), 1);
        let repeated = r#"syntax = "proto3"; package shop; message User { int64 id = 1; repeated string name = 2; Address home = 3; message Address { string city = 1; } }"#;
        assert_eq!(compatible(repeated, V1).len(), 1);
        let other_package = V1.replace("package shop", "package store");
        assert_eq!(compatible(&other_package, V1).len(), 1);
        let without_nested =
            r#"syntax = "proto3"; package shop; message User { int64 id = 1; string name = 2; }"#;
        assert_eq!(
            compatible(without_nested, V1),
            vec!["message User.Address was removed".to_owned()]
        );
        let oneof = r#"syntax = "proto3"; package shop; message User { oneof key { int64 id = 1; string name = 2; } Address home = 3; message Address { string city = 1; } }"#;
        assert_eq!(
            compatible(oneof, V1).len(),
            1,
            "two fields moved into a new oneof"
        );
    }

    #[test]
    fn required_fields_may_not_come_or_go() {
        let v1 = r#"syntax = "proto2"; message M { optional int32 a = 1; }"#;
        let v2 = r#"syntax = "proto2"; message M { optional int32 a = 1; required int32 b = 2; }"#;
        assert_eq!(compatible(v2, v1).len(), 1);
        assert_eq!(compatible(v1, v2).len(), 1);
    }

    #[test]
    fn invalid_text_is_refused() {
        assert!(parse("message { int32 = 1 }").is_err());
        assert!(parse("{\"type\":\"record\"}").is_err());
    }
}
