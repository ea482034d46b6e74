//! JSON Schema: structural checks and the compatibility rules the registry applies.
//!
//! Compatibility asks one question: can every document valid under the writer's schema fail
//! under the reader's? The rules below answer it for the keywords that carry data shape
//! (`type`, `enum`, `const`, `properties`, `required`, `additionalProperties`, `items`, and the
//! numeric, string and array bounds); `$ref` and the combinators (`allOf`, `anyOf`, `oneOf`,
//! `not`) are compared as written: unchanged is compatible, changed is reported. This is the
//! core of Confluent's JSON Schema rules, including its open/closed content model: a property
//! added to a reader whose writer was open (no `additionalProperties: false`) is incompatible,
//! since old data may already carry that name with another shape.

use serde_json::{Map, Value};

const TYPES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "string", "integer",
];

/// Checks the shape of a JSON Schema document: a boolean or an object whose data-shape
/// keywords are well formed, all the way down.
pub fn validate(schema: &Value) -> Result<(), String> {
    validate_at(schema, "#")
}

fn validate_at(schema: &Value, path: &str) -> Result<(), String> {
    let object = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(object) => object,
        _ => return Err(format!("{path}: a JSON Schema is an object or a boolean")),
    };
    if let Some(kind) = object.get("type") {
        let names: Vec<&Value> = match kind {
            Value::Array(names) => names.iter().collect(),
            other => vec![other],
        };
        for name in names {
            if !name.as_str().is_some_and(|n| TYPES.contains(&n)) {
                return Err(format!("{path}/type: {name} is not a JSON Schema type"));
            }
        }
    }
    if let Some(required) = object.get("required")
        && !required
            .as_array()
            .is_some_and(|r| r.iter().all(Value::is_string))
    {
        return Err(format!(
            "{path}/required: must be an array of property names"
        ));
    }
    if let Some(properties) = object.get("properties") {
        let properties = properties
            .as_object()
            .ok_or_else(|| format!("{path}/properties: must be an object"))?;
        for (name, property) in properties {
            validate_at(property, &format!("{path}/properties/{name}"))?;
        }
    }
    for keyword in ["additionalProperties", "items", "not"] {
        if let Some(sub) = object.get(keyword)
            && !(keyword == "items" && sub.is_array())
        {
            validate_at(sub, &format!("{path}/{keyword}"))?;
        }
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        if let Some(list) = object.get(keyword) {
            let list = list
                .as_array()
                .ok_or_else(|| format!("{path}/{keyword}: must be an array of schemas"))?;
            for (i, sub) in list.iter().enumerate() {
                validate_at(sub, &format!("{path}/{keyword}/{i}"))?;
            }
        }
    }
    if let Some(values) = object.get("enum")
        && !values.is_array()
    {
        return Err(format!("{path}/enum: must be an array"));
    }
    Ok(())
}

/// Why a document valid under `writer` may be invalid under `reader`; empty when none.
pub fn reader_accepts(reader: &Value, writer: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    compare(reader, writer, "#", &mut problems);
    problems
}

fn compare(reader: &Value, writer: &Value, path: &str, problems: &mut Vec<String>) {
    let empty = Map::new();
    let reader = match reader {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            if *writer != Value::Bool(false) {
                problems.push(format!("{path}: the reader accepts nothing"));
            }
            return;
        }
        Value::Object(object) => object,
        _ => &empty,
    };
    let writer = match writer {
        Value::Bool(false) => return,
        Value::Bool(true) => &empty,
        Value::Object(object) => object,
        _ => &empty,
    };
    for keyword in ["$ref", "allOf", "anyOf", "oneOf", "not"] {
        if reader.get(keyword).is_some() && reader.get(keyword) != writer.get(keyword) {
            problems.push(format!(
                "{path}/{keyword}: changed ({keyword} is compared as written)"
            ));
        }
    }
    compare_types(reader, writer, path, problems);
    compare_values(reader, writer, path, problems);
    compare_bounds(reader, writer, path, problems);
    compare_objects(reader, writer, path, problems);
    if let Some(reader_items) = reader.get("items") {
        let writer_items = writer.get("items").unwrap_or(&Value::Bool(true));
        if reader_items.is_array() || writer_items.is_array() {
            if reader_items != writer_items {
                problems.push(format!("{path}/items: tuple items changed"));
            }
        } else {
            compare(
                reader_items,
                writer_items,
                &format!("{path}/items"),
                problems,
            );
        }
    }
}

/// The types a schema allows, `None` for any.
fn types(schema: &Map<String, Value>) -> Option<Vec<&str>> {
    match schema.get("type")? {
        Value::String(one) => Some(vec![one.as_str()]),
        Value::Array(many) => Some(many.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

fn compare_types(
    reader: &Map<String, Value>,
    writer: &Map<String, Value>,
    path: &str,
    problems: &mut Vec<String>,
) {
    let Some(reader_types) = types(reader) else {
        return;
    };
    let allowed =
        |t: &str| reader_types.contains(&t) || (t == "integer" && reader_types.contains(&"number"));
    match types(writer) {
        None => problems.push(format!(
            "{path}/type: narrowed from any type to {reader_types:?}"
        )),
        Some(writer_types) => {
            for t in writer_types.into_iter().filter(|t| !allowed(t)) {
                problems.push(format!("{path}/type: {t} is no longer allowed"));
            }
        }
    }
}

fn compare_values(
    reader: &Map<String, Value>,
    writer: &Map<String, Value>,
    path: &str,
    problems: &mut Vec<String>,
) {
    if let Some(Value::Array(reader_values)) = reader.get("enum") {
        match (writer.get("enum"), writer.get("const")) {
            (Some(Value::Array(writer_values)), _) => {
                for value in writer_values.iter().filter(|v| !reader_values.contains(v)) {
                    problems.push(format!("{path}/enum: {value} was removed"));
                }
            }
            (_, Some(value)) if reader_values.contains(value) => {}
            _ => problems.push(format!("{path}/enum: added")),
        }
    }
    if let Some(value) = reader.get("const") {
        let writer_values = match (writer.get("const"), writer.get("enum")) {
            (Some(one), _) => vec![one],
            (_, Some(Value::Array(many))) => many.iter().collect(),
            _ => Vec::new(),
        };
        if writer_values.is_empty() || writer_values.iter().any(|v| *v != value) {
            problems.push(format!("{path}/const: added or changed"));
        }
    }
}

/// Lower bounds may only go down and upper bounds only up; a pattern or format only stay.
fn compare_bounds(
    reader: &Map<String, Value>,
    writer: &Map<String, Value>,
    path: &str,
    problems: &mut Vec<String>,
) {
    let number = |schema: &Map<String, Value>, key: &str| schema.get(key).and_then(Value::as_f64);
    for (key, lower) in [
        ("minimum", true),
        ("exclusiveMinimum", true),
        ("minLength", true),
        ("minItems", true),
        ("minProperties", true),
        ("maximum", false),
        ("exclusiveMaximum", false),
        ("maxLength", false),
        ("maxItems", false),
        ("maxProperties", false),
    ] {
        let Some(limit) = number(reader, key) else {
            continue;
        };
        let tightened = match number(writer, key) {
            None => true,
            Some(old) if lower => limit > old,
            Some(old) => limit < old,
        };
        if tightened {
            problems.push(format!("{path}/{key}: tightened to {limit}"));
        }
    }
    for key in ["pattern", "format", "multipleOf"] {
        if reader.get(key).is_some() && reader.get(key) != writer.get(key) {
            problems.push(format!("{path}/{key}: added or changed"));
        }
    }
    if reader.get("uniqueItems") == Some(&Value::Bool(true))
        && writer.get("uniqueItems") != Some(&Value::Bool(true))
    {
        problems.push(format!("{path}/uniqueItems: added"));
    }
}

fn compare_objects(
    reader: &Map<String, Value>,
    writer: &Map<String, Value>,
    path: &str,
    problems: &mut Vec<String>,
) {
    let empty = Map::new();
    let names = |schema: &Map<String, Value>| -> Vec<String> {
        schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let writer_required = names(writer);
    for name in names(reader)
        .into_iter()
        .filter(|n| !writer_required.contains(n))
    {
        problems.push(format!("{path}/required: property {name} is now required"));
    }
    let reader_properties = reader
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let writer_properties = writer
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let open = Value::Bool(true);
    let reader_additional = reader.get("additionalProperties").unwrap_or(&open);
    let writer_additional = writer.get("additionalProperties").unwrap_or(&open);
    for (name, reader_property) in reader_properties {
        let at = format!("{path}/properties/{name}");
        match writer_properties.get(name) {
            Some(writer_property) => compare(reader_property, writer_property, &at, problems),
            // Old data may hold this name with whatever the writer's open content allowed.
            None => {
                let before = problems.len();
                compare(reader_property, writer_additional, &at, problems);
                if problems.len() > before {
                    problems.truncate(before);
                    problems.push(format!("{at}: added to an open content model (old data may hold {name} with another shape)"));
                }
            }
        }
    }
    for (name, writer_property) in writer_properties {
        if reader_properties.contains_key(name) {
            continue;
        }
        let at = format!("{path}/properties/{name}");
        let before = problems.len();
        compare(reader_additional, writer_property, &at, problems);
        if problems.len() > before {
            problems.truncate(before);
            problems.push(format!("{at}: removed from a closed content model"));
        }
    }
    if reader.contains_key("additionalProperties") {
        compare(
            reader_additional,
            writer_additional,
            &format!("{path}/additionalProperties"),
            problems,
        );
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn compatible(reader: Value, writer: Value) -> bool {
        reader_accepts(&reader, &writer).is_empty()
    }

    #[test]
    fn closed_model_optional_property_added_is_compatible_required_is_not() {
        let v1 = json!({"type": "object", "properties": {"id": {"type": "integer"}}, "additionalProperties": false});
        let optional = json!({"type": "object", "properties": {"id": {"type": "integer"}, "email": {"type": "string"}}, "additionalProperties": false});
        let required = json!({"type": "object", "properties": {"id": {"type": "integer"}, "email": {"type": "string"}}, "required": ["email"], "additionalProperties": false});
        assert!(compatible(optional.clone(), v1.clone()));
        assert!(!compatible(required, v1.clone()));
        // Forward: the old, closed reader refuses the new property.
        assert!(!compatible(v1, optional));
    }

    #[test]
    fn open_model_property_added_is_incompatible() {
        let v1 = json!({"type": "object", "properties": {"id": {"type": "integer"}}});
        let v2 = json!({"type": "object", "properties": {"id": {"type": "integer"}, "email": {"type": "string"}}});
        assert!(!compatible(v2.clone(), v1.clone()));
        // A removed property is still accepted by the open reader.
        assert!(compatible(v1, v2));
    }

    #[test]
    fn types_widen_but_never_narrow() {
        assert!(compatible(
            json!({"type": "number"}),
            json!({"type": "integer"})
        ));
        assert!(!compatible(
            json!({"type": "integer"}),
            json!({"type": "number"})
        ));
        assert!(compatible(
            json!({"type": ["string", "null"]}),
            json!({"type": "string"})
        ));
        assert!(!compatible(json!({"type": "string"}), json!({})));
    }

    #[test]
    fn bounds_and_enums_only_loosen() {
        assert!(compatible(
            json!({"maxLength": 10}),
            json!({"maxLength": 5})
        ));
        assert!(!compatible(
            json!({"maxLength": 5}),
            json!({"maxLength": 10})
        ));
        assert!(!compatible(json!({"minimum": 1}), json!({})));
        assert!(compatible(
            json!({"enum": ["a", "b", "c"]}),
            json!({"enum": ["a", "b"]})
        ));
        assert!(!compatible(
            json!({"enum": ["a"]}),
            json!({"enum": ["a", "b"]})
        ));
    }

    #[test]
    fn nested_items_are_compared() {
        let v1 = json!({"type": "array", "items": {"type": "integer"}});
        let v2 = json!({"type": "array", "items": {"type": "string"}});
        assert_eq!(
            reader_accepts(&v2, &v1),
            vec!["#/items/type: integer is no longer allowed".to_owned()]
        );
    }

    #[test]
    fn malformed_schemas_are_refused() {
        assert!(validate(&json!({"type": "text"})).is_err());
        assert!(validate(&json!({"properties": {"a": 3}})).is_err());
        assert!(validate(&json!([1])).is_err());
        assert!(
            validate(&json!({"type": "object", "properties": {"a": {"type": ["string", "null"]}}}))
                .is_ok()
        );
    }
}
