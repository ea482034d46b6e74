//! The schema formats the registry stores: how a schema text is checked, stored and compared
//! with another version of itself.

use apache_avro::{Schema as AvroSchema, schema_compatibility::SchemaCompatibility};

use super::{json_schema, protobuf};

/// A schema's format, `schemaType` in Confluent's API (absent means Avro).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaType {
    /// Apache Avro.
    Avro,
    /// JSON Schema.
    Json,
    /// Protocol Buffers (`.proto` text).
    Protobuf,
}

impl SchemaType {
    /// Parses a request's `schemaType`.
    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        match raw.map(str::to_ascii_uppercase).as_deref() {
            None | Some("AVRO") => Ok(SchemaType::Avro),
            Some("JSON") => Ok(SchemaType::Json),
            Some("PROTOBUF") => Ok(SchemaType::Protobuf),
            Some(other) => Err(format!(
                "unknown schemaType {other:?}: use AVRO (the default), JSON or PROTOBUF"
            )),
        }
    }

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    /// The formats `GET /schemas/types` lists.
    pub const ALL: [SchemaType; 3] = [SchemaType::Json, SchemaType::Protobuf, SchemaType::Avro];
}

/// A schema with the texts of the schemas it refers to, those a reference needs first.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Its format.
    pub kind: SchemaType,
    /// Its text as stored.
    pub text: String,
    /// The texts of its references, transitively, each after the ones it needs itself.
    pub dependencies: Vec<String>,
}

/// The text to store for `text`: for Avro and JSON Schema, the JSON with insignificant
/// whitespace removed (so the same schema sent with other indentation gets the same id), and with
/// `normalize` its object keys also sorted (so a schema whose attributes are only reordered does
/// too); a `.proto` text is stored as sent.
pub fn stored_text(kind: SchemaType, text: &str, normalize: bool) -> Result<String, String> {
    if kind == SchemaType::Protobuf {
        return Ok(text.to_owned());
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("the schema is not JSON: {e}"))?;
    if normalize {
        return Ok(value.to_string());
    }
    Ok(minify(text))
}

/// Checks that the schema is one of its format, with every reference resolvable.
pub fn validate(schema: &Resolved) -> Result<(), String> {
    match schema.kind {
        SchemaType::Avro => avro(schema).map(drop),
        SchemaType::Json => json_schema::validate(&json(&schema.text)?),
        SchemaType::Protobuf => protobuf::parse(&schema.text).map(drop),
    }
}

/// Why data written with `writer` may not be readable with `reader`; empty when it always is.
pub fn reader_accepts(reader: &Resolved, writer: &Resolved) -> Vec<String> {
    if reader.kind != writer.kind {
        return vec![format!(
            "the schema type changed from {} to {}",
            writer.kind.as_str(),
            reader.kind.as_str()
        )];
    }
    match reader.kind {
        SchemaType::Avro => match (avro(reader), avro(writer)) {
            (Ok(reader), Ok(writer)) => match SchemaCompatibility::can_read(&writer, &reader) {
                Ok(()) => Vec::new(),
                Err(why) => vec![format!(
                    "a reader with the new schema cannot read data written with the old one: {why}"
                )],
            },
            (Err(why), _) | (_, Err(why)) => vec![why],
        },
        SchemaType::Json => match (json(&reader.text), json(&writer.text)) {
            (Ok(reader), Ok(writer)) => json_schema::reader_accepts(&reader, &writer),
            (Err(why), _) | (_, Err(why)) => vec![why],
        },
        SchemaType::Protobuf => {
            match (protobuf::parse(&reader.text), protobuf::parse(&writer.text)) {
                (Ok(reader), Ok(writer)) => protobuf::reader_accepts(&reader, &writer),
                (Err(why), _) | (_, Err(why)) => vec![why],
            }
        }
    }
}

fn avro(schema: &Resolved) -> Result<AvroSchema, String> {
    let parsed = if schema.dependencies.is_empty() {
        AvroSchema::parse_str(&schema.text)
    } else {
        AvroSchema::parse_str_with_list(&schema.text, &schema.dependencies)
            .map(|(schema, _)| schema)
    };
    parsed.map_err(|e| format!("not a valid Avro schema: {e}"))
}

fn json(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("the schema is not JSON: {e}"))
}

/// JSON text without the whitespace between tokens.
fn minify(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avro_schema(text: &str) -> Resolved {
        Resolved {
            kind: SchemaType::Avro,
            text: stored_text(SchemaType::Avro, text, false).expect("json"),
            dependencies: Vec::new(),
        }
    }

    #[test]
    fn whitespace_outside_strings_is_dropped_inside_kept() {
        assert_eq!(
            minify("{ \"doc\" : \"a  b \\\" c\" ,\n \"x\": [1, 2] }"),
            "{\"doc\":\"a  b \\\" c\",\"x\":[1,2]}"
        );
    }

    #[test]
    fn normalize_sorts_keys() {
        assert_eq!(
            stored_text(
                SchemaType::Avro,
                "{\"type\":\"record\",\"name\":\"A\",\"fields\":[]}",
                true
            )
            .expect("json"),
            "{\"fields\":[],\"name\":\"A\",\"type\":\"record\"}"
        );
    }

    #[test]
    fn avro_field_with_default_added_is_backward_compatible_without_default_not() {
        let v1 = avro_schema(
            r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}"#,
        );
        let with_default = avro_schema(
            r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"email","type":"string","default":""}]}"#,
        );
        let without_default = avro_schema(
            r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"},{"name":"email","type":"string"}]}"#,
        );
        assert!(reader_accepts(&with_default, &v1).is_empty());
        assert!(!reader_accepts(&without_default, &v1).is_empty());
        // Forward: the old reader ignores the new field.
        assert!(reader_accepts(&v1, &without_default).is_empty());
    }

    #[test]
    fn avro_type_promotion_follows_the_specification() {
        let int =
            avro_schema(r#"{"type":"record","name":"R","fields":[{"name":"n","type":"int"}]}"#);
        let long =
            avro_schema(r#"{"type":"record","name":"R","fields":[{"name":"n","type":"long"}]}"#);
        assert!(reader_accepts(&long, &int).is_empty());
        assert!(!reader_accepts(&int, &long).is_empty());
    }

    #[test]
    fn invalid_avro_is_refused() {
        let broken =
            avro_schema(r#"{"type":"record","name":"R","fields":[{"name":"n","type":"integer"}]}"#);
        assert!(validate(&broken).is_err());
        assert!(SchemaType::parse(Some("XML")).is_err());
        assert_eq!(SchemaType::parse(None), Ok(SchemaType::Avro));
    }

    #[test]
    fn avro_references_resolve_through_dependencies() {
        let address = r#"{"type":"record","name":"Address","namespace":"shop","fields":[{"name":"city","type":"string"}]}"#;
        let order = Resolved {
            kind: SchemaType::Avro,
            text: r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"to","type":"shop.Address"}]}"#.into(),
            dependencies: vec![address.into()],
        };
        assert_eq!(validate(&order), Ok(()));
        let alone = Resolved {
            dependencies: Vec::new(),
            ..order
        };
        assert!(validate(&alone).is_err());
    }
}
